"""Issue 32 in Blender: each real BVH and VRM animation (tests/data/real_bvh, real_vrma) applied to a tiny avatar with
Apply Motion, judged on the skinned body mesh the artist sees; a million-frame file refused."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from motion_corpus import MILLION, bvh_text, million_frame_npz, quadruped

from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.testing import make_test_avatar

pytestmark = pytest.mark.blender
DATA = Path(__file__).resolve().parent / "data"
PATHS = sorted(DATA.glob("real_bvh/*.bvh")) + sorted(DATA.glob("real_vrma/*.vrma"))


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    return write_h3ga(tmp_path_factory.mktemp("real") / "a.h3ga", make_test_avatar(num_free=300, num_bound=100))


def _scene_state(bpy):
    return sorted((o.name, o.type) for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions)


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_real_files_on_the_skinned_body_upright_on_the_floor_and_moving(path, addon, avatar_file):
    import bpy
    from test_motion_real_files import source_clip

    from dreamwaltz_blender import api

    bvh = source_clip(path)
    avatar = api.import_avatar(str(avatar_file))
    scene = bpy.context.scene
    action = api.apply_motion(avatar, str(path))
    f0, f1 = int(action.frame_range[0]), int(action.frame_range[1])
    fps = scene.render.fps / scene.render.fps_base
    want = (bvh.num_frames - 1) * bvh.frame_time
    assert abs((f1 - f0) / fps - want) <= 1.0 / fps + 1e-6, "duration kept"
    rig, body = avatar.armature, avatar.body
    step = max(1, (f1 - f0) // 40)
    lowest, pelvis, head, turn = [], [], [], []
    rest = {b.name: b.matrix_basis.to_quaternion() for b in rig.pose.bones}
    for f in range(f0, f1 + 1, step):
        scene.frame_set(f)
        mesh = body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        M = np.array(body.matrix_world)
        lowest.append((co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3])[:, 2].min())
        pelvis.append(np.array(rig.matrix_world @ rig.pose.bones["pelvis"].head))
        head.append(np.array(rig.matrix_world @ rig.pose.bones["head"].head))
        turn.append(
            [
                math.degrees(b.matrix_basis.to_quaternion().rotation_difference(rest[b.name]).angle)
                for b in rig.pose.bones
            ]
        )
    lowest, pelvis, head, turn = map(np.array, (lowest, pelvis, head, turn))
    assert np.isfinite(lowest).all() and np.isfinite(pelvis).all()
    assert np.median(head[:, 2] - pelvis[:, 2]) > 0.25, "upright: head above the pelvis"
    # The body mesh on the floor: the median frame's lowest point within -2..+4 cm, none below -3 cm.
    assert -0.02 <= np.median(lowest) <= 0.04, f"median lowest point {np.median(lowest):+.3f} m"
    assert lowest.min() >= -0.03, f"the mesh goes {lowest.min():+.3f} m into the floor"
    if len(pelvis) > 1:
        speed = np.linalg.norm(np.diff(pelvis, axis=0), axis=1) * fps / step
        assert speed.max() <= 12.0, f"root speed {speed.max():.1f} m/s"
        travel = np.linalg.norm(pelvis[:, :2] - pelvis[0, :2], axis=1).max()
        assert turn.max() > 5.0 or travel > 0.2, "the avatar moves when the source does"


def test_apply_motion_refuses_a_million_frame_file_before_allocating(addon, avatar_file, tmp_path):
    import bpy

    from dreamwaltz.core.errors import MotionError
    from dreamwaltz_blender import api

    big = million_frame_npz(tmp_path / "amass_million.npz")
    avatar = api.import_avatar(str(avatar_file))
    before = _scene_state(bpy), (bpy.context.scene.frame_start, bpy.context.scene.frame_end)
    tracemalloc.start()
    try:
        with pytest.raises(MotionError) as err:
            api.apply_motion(avatar, str(big))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(err.value)
    assert "\n" not in text and f"{MILLION:,} frames" in text and "ceiling of 100,000" in text
    assert "max_frames" in text
    assert peak < 256 << 20, f"{peak / 2**20:.0f} MiB allocated to refuse it"
    assert (_scene_state(bpy), (bpy.context.scene.frame_start, bpy.context.scene.frame_end)) == before
    assert avatar.armature.animation_data is None or avatar.armature.animation_data.action is None


def test_a_quadruped_is_refused_with_the_scene_unchanged(addon, avatar_file, tmp_path):
    import bpy

    from dreamwaltz.core.errors import MotionError
    from dreamwaltz_blender import api

    path = tmp_path / "dog.bvh"
    path.write_text(bvh_text(quadruped()))
    avatar = api.import_avatar(str(avatar_file))
    before = _scene_state(bpy)
    with pytest.raises(MotionError, match="does not look like a standing human"):
        api.apply_motion(avatar, str(path))
    assert _scene_state(bpy) == before


RIGS = DATA / "real_rigs"


def _import_rig(bpy, path: Path, action=None):
    if path.suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.animation_data and o.animation_data.action)
    if action is not None:  # the FBX holds two takes; the importer assigns the first (a 2-frame pose)
        rig.animation_data.action = bpy.data.actions[action]
    return rig


@pytest.mark.parametrize(
    "name, action",
    [("BrainStem_threejs_reexport.glb", None), ("shadermotion_run_anim.fbx", "Root|Root|Run")],
)
def test_animated_rigs_from_blenders_importers_drive_the_avatar(name, action, addon, avatar_file):
    """A humanoid robot with GUID bone names and two-bone arms (glTF) and a Unity humanoid run
    whose FBX carries IK control bones as extra roots: both stand, move and meet the floor."""
    import bpy

    from dreamwaltz_blender import api

    rig = _import_rig(bpy, RIGS / name, action)
    avatar = api.import_avatar(str(avatar_file))
    bpy.context.view_layer.update()
    act = api.apply_motion(avatar, rig)
    scene = bpy.context.scene
    f0, f1 = int(act.frame_range[0]), int(act.frame_range[1])
    assert f1 - f0 >= 10
    lowest, height, turn = [], [], []
    rest = {b.name: b.matrix_basis.to_quaternion() for b in avatar.armature.pose.bones}
    for f in range(f0, f1 + 1, max(1, (f1 - f0) // 30)):
        scene.frame_set(f)
        mesh = avatar.body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        M = np.array(avatar.body.matrix_world)
        lowest.append((co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3])[:, 2].min())
        bones = avatar.armature.pose.bones
        height.append(
            (avatar.armature.matrix_world @ bones["head"].head).z
            - (avatar.armature.matrix_world @ bones["pelvis"].head).z
        )
        turn.append(
            max(math.degrees(b.matrix_basis.to_quaternion().rotation_difference(rest[b.name]).angle) for b in bones)
        )
    lowest = np.array(lowest)
    assert np.median(height) > 0.25 and max(turn) > 5.0
    assert lowest.min() >= -0.03, f"the mesh goes {lowest.min():+.3f} m into the floor"
    assert -0.02 <= np.percentile(lowest, 25) <= 0.04, "on the floor on the contact frames (a run is airborne between)"


@pytest.mark.parametrize("name", ["khronos_Fox.glb", "khronos_SimpleSkin_embedded.gltf"])
def test_animated_rigs_that_are_not_humanoid_are_refused(name, addon, avatar_file):
    import bpy

    from dreamwaltz.core.errors import MotionError
    from dreamwaltz_blender import api

    rig = _import_rig(bpy, RIGS / name)
    avatar = api.import_avatar(str(avatar_file))
    before = _scene_state(bpy)
    with pytest.raises(MotionError, match="does not look like a standing human") as err:
        api.apply_motion(avatar, rig)
    assert "\n" not in str(err.value)
    assert _scene_state(bpy) == before


def test_retarget_preview_from_the_api_draws_the_sheet_with_the_backend(addon, tmp_path):
    """api.retarget_preview: the local backend draws the contact sheet of a real clip on the avatar."""
    from conftest import BACKEND_PYTHON
    from PIL import Image

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api

    avatar = api.import_avatar(str(write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=200, num_bound=40))))
    clip = Path(__file__).resolve().parent / "data" / "real_bvh" / "mocapbank_test.bvh"
    sheet = api.retarget_preview(avatar, clip, tmp_path / "sheet.png", frames=3, python=BACKEND_PYTHON)
    with Image.open(sheet) as image:
        assert image.width > 300 and image.height > 200
        assert len(set(image.convert("L").getdata())) > 10, "a drawing, not a blank page"
    with pytest.raises(api.errors.DreamWaltzError, match="No local backend"):
        api.retarget_preview(avatar, clip, tmp_path / "x.png", python=str(tmp_path / "no-python"))
