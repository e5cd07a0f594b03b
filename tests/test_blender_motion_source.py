"""Issue 17 in Blender: motion from an armature in the scene (Blender's BVH importer, an FBX round trip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.joints import JOINT_NAMES
from dreamwaltz.core.testing import make_test_avatar

pytestmark = pytest.mark.blender
MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"
FRAMES = 30


def short_clip(src: Path, dst: Path, frames: int = FRAMES) -> Path:
    """The clip's first frames at 25 fps (so the scene's rate is the file's: no resampling either way)."""
    hierarchy, motion = src.read_text().split("MOTION", 1)
    rows = [line for line in motion.splitlines() if line.strip()][2 : 2 + frames]
    dst.write_text(f"{hierarchy}MOTION\nFrames: {len(rows)}\nFrame Time: 0.04\n" + "\n".join(rows) + "\n")
    return dst


@pytest.fixture
def avatar(addon, tmp_path):
    import bpy

    from dreamwaltz_blender import api

    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 25, 1.0
    return api.import_avatar(str(write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=200, num_bound=50, seed=2))))


def import_bvh(path: Path):
    import bpy

    before = set(bpy.data.objects)
    bpy.ops.import_anim.bvh(
        filepath=str(path), update_scene_fps=False, update_scene_duration=False, use_fps_scale=False
    )
    (obj,) = [o for o in bpy.data.objects if o not in before]
    return obj


def pose_track(avatar, frames):
    """Per frame the avatar rig's pose-bone rotations (T,55,4) and root locations (T,3)."""
    import bpy

    bones = [avatar.armature.pose.bones[n] for n in JOINT_NAMES]
    quats, locs = [], []
    for f in frames:
        bpy.context.scene.frame_set(int(f))
        quats.append([tuple(b.rotation_quaternion) for b in bones])
        locs.append(tuple(bones[0].location))
    return np.array(quats), np.array(locs)


def angle(q1, q2):
    dot = np.abs(
        np.sum(
            q1 / np.linalg.norm(q1, axis=-1, keepdims=True) * q2 / np.linalg.norm(q2, axis=-1, keepdims=True), axis=-1
        )
    )
    return 2 * np.arccos(np.clip(dot, -1.0, 1.0))


@pytest.mark.parametrize("clip", ["cmu_02_02_walk_daz.bvh", "cmu_12_03_walk_cgspeed.bvh", "makehuman_walk1.bvh"])
def test_an_armature_from_blenders_bvh_importer_gives_the_same_poses_as_the_file(avatar, tmp_path, clip):
    import bpy

    from dreamwaltz_blender import api

    path = short_clip(MOCAP / clip, tmp_path / clip)
    frames = np.arange(1, 1 + 14, 1) if clip.startswith("makehuman") else np.arange(1, FRAMES + 1, 3)
    api.apply_motion(avatar, str(path), start_frame=1)
    q_file, loc_file = pose_track(avatar, frames)

    source = import_bvh(path)
    assert source.animation_data.action is not None
    action = api.apply_motion(avatar, source, start_frame=1)
    assert avatar.armature.animation_data.action == action
    q_rig, loc_rig = pose_track(avatar, frames)
    diff = angle(q_file, q_rig)
    print(f"{clip}: max rotation difference {diff.max():.2e} rad, root {np.abs(loc_file - loc_rig).max():.2e} m")
    assert diff.max() < 1e-3
    assert np.abs(loc_file - loc_rig).max() < 1e-3
    assert bpy.context.scene.frame_current == int(frames[-1]), "sampling the source leaves the current frame alone"


def test_the_operator_takes_the_selected_armature_and_refuses_without_one(avatar, tmp_path):
    import bpy

    path = short_clip(MOCAP / "cmu_12_03_walk_cgspeed.bvh", tmp_path / "walk.bvh")
    view_layer = bpy.context.view_layer
    view_layer.objects.active = avatar.armature
    bpy.ops.object.select_all(action="DESELECT")
    avatar.armature.select_set(True)
    actions = set(bpy.data.actions)
    with pytest.raises(RuntimeError, match="no other armature is selected"):
        bpy.ops.dreamwaltz.apply_motion(from_armature=True)
    assert set(bpy.data.actions) == actions and avatar.armature.animation_data is None, "nothing changed"

    source = import_bvh(path)
    source.select_set(True)
    avatar.armature.select_set(True)
    view_layer.objects.active = avatar.armature
    assert bpy.ops.dreamwaltz.apply_motion(from_armature=True, start_frame=5) == {"FINISHED"}
    action = avatar.armature.animation_data.action
    assert action is not None and source.name in action.name
    assert tuple(action.frame_range) == (5, 5 + FRAMES - 1)
    assert view_layer.objects.active == avatar.armature and avatar.armature.select_get() and source.select_get()
    assert not any(o.hide_viewport for o in (avatar.armature, avatar.body, avatar.splats)), "shown again after sampling"


def test_a_failure_part_way_leaves_the_scene_as_it_was(avatar, tmp_path, monkeypatch):
    import bpy

    from dreamwaltz_blender import api, motion

    source = import_bvh(short_clip(MOCAP / "cmu_12_03_walk_cgspeed.bvh", tmp_path / "walk.bvh"))
    actions = set(bpy.data.actions)
    start, end = bpy.context.scene.frame_start, bpy.context.scene.frame_end

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(motion, "_write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        api.apply_motion(avatar, source, start_frame=1)
    assert set(bpy.data.actions) == actions and avatar.armature.animation_data is None
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (start, end)
    with pytest.raises(Exception, match="avatar's own rig|DreamWaltz avatar"):
        api.apply_motion(avatar, avatar.armature)


@pytest.mark.parametrize("clip", ["cmu_02_02_walk_daz.bvh", "cmu_12_03_walk_cgspeed.bvh"])
def test_the_same_after_a_round_trip_through_blenders_fbx_exporter_and_importer(avatar, tmp_path, clip):
    import bpy

    from dreamwaltz_blender import api

    path = short_clip(MOCAP / clip, tmp_path / clip)
    frames = np.arange(1, FRAMES + 1, 3)
    api.apply_motion(avatar, str(path), start_frame=1)
    q_file, loc_file = pose_track(avatar, frames)

    bvh_rig = import_bvh(path)
    # An armature-only FBX has no bind pose: the importer takes the rest from the pose at export
    # time, so export at a frame keyed at rest (outside the exported range 1..FRAMES).
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, FRAMES
    for bone in bvh_rig.pose.bones:
        bone.location, bone.rotation_euler, bone.rotation_quaternion = (0, 0, 0), (0, 0, 0), (1, 0, 0, 0)
        bone.keyframe_insert("location", frame=0)
        bone.keyframe_insert("rotation_quaternion" if bone.rotation_mode == "QUATERNION" else "rotation_euler", frame=0)
    scene.frame_set(0)
    bpy.ops.object.select_all(action="DESELECT")
    bvh_rig.select_set(True)
    bpy.context.view_layer.objects.active = bvh_rig
    fbx = tmp_path / "walk.fbx"
    bpy.ops.export_scene.fbx(
        filepath=str(fbx),
        use_selection=True,
        object_types={"ARMATURE"},
        bake_anim=True,
        bake_anim_use_all_actions=False,
        bake_anim_use_nla_strips=False,
        bake_anim_simplify_factor=0.0,
        add_leaf_bones=True,
    )
    before = set(bpy.data.objects)
    bpy.ops.import_scene.fbx(filepath=str(fbx))
    (fbx_rig,) = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    assert any(b.name.endswith("_end") for b in fbx_rig.data.bones), "leaf bones came back (they become End Sites)"
    api.apply_motion(avatar, fbx_rig, start_frame=1)  # the action's own range (the importer starts it at frame 2)
    q_rig, loc_rig = pose_track(avatar, frames)
    diff = angle(q_file, q_rig)
    print(
        f"{clip} via FBX: max rotation difference {diff.max():.2e} rad, root {np.abs(loc_file - loc_rig).max():.2e} m"
    )
    assert diff.max() < 1e-3
    assert np.abs(loc_file - loc_rig).max() < 1e-3


def test_the_same_after_a_round_trip_through_blenders_gltf_exporter_and_importer(avatar, tmp_path):
    import bpy

    from dreamwaltz_blender import api

    path = short_clip(MOCAP / "cmu_12_03_walk_cgspeed.bvh", tmp_path / "walk.bvh")
    frames = np.arange(1, FRAMES + 1, 3)
    api.apply_motion(avatar, str(path), start_frame=1)
    q_file, loc_file = pose_track(avatar, frames)

    bvh_rig = import_bvh(path)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, FRAMES
    bpy.ops.object.select_all(action="DESELECT")
    bvh_rig.select_set(True)
    bpy.context.view_layer.objects.active = bvh_rig
    glb = tmp_path / "walk.glb"
    # Only the rig's own action: the default mode also exports the avatar's action onto it.
    bpy.ops.export_scene.gltf(
        filepath=str(glb),
        use_selection=True,
        export_animations=True,
        export_force_sampling=True,
        export_optimize_animation_size=False,
        export_animation_mode="ACTIVE_ACTIONS",
    )
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    (gltf_rig,) = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    api.apply_motion(avatar, gltf_rig, start_frame=1)
    q_rig, loc_rig = pose_track(avatar, frames)
    diff = angle(q_file, q_rig)
    print(f"via glTF: max rotation difference {diff.max():.2e} rad, root {np.abs(loc_file - loc_rig).max():.2e} m")
    from dreamwaltz_blender import compat

    if not compat.HAS_ACTION_SLOTS and not (diff.max() < 1e-3 and np.abs(loc_file - loc_rig).max() < 1e-3):
        # Known on 4.2 (issue 20): Blender 4.2's glTF exporter writes this rig's animation as its
        # rest pose (every channel constant in the .glb, read with pygltflib) when another animated
        # armature (the avatar) is in the scene; exported alone, the re-imported rig's clip equals the
        # BVH rig's to 1.5e-5 m. The exporter's fault, not the retargeting's; 4.5 and 5.0 pass.
        pytest.xfail(f"Blender 4.2's glTF exporter wrote a rest-pose animation ({diff.max():.2f} rad off; issue 20)")
    assert diff.max() < 1e-3
    assert np.abs(loc_file - loc_rig).max() < 1e-3
