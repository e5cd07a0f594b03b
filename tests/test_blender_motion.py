"""Issue 9 in Blender: apply_motion writes an Action whose bones match the shared retargeting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.h3ga import read_h3ga, write_h3ga
from dreamwaltz.core.joints import JOINT_NAMES
from dreamwaltz.core.motion import TargetSkeleton, forward_kinematics_batch, load_motion
from dreamwaltz.core.rotations import axis_angle_to_matrix
from dreamwaltz.core.testing import make_test_avatar

pytestmark = pytest.mark.blender
MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"


@pytest.fixture
def imported(addon, tmp_path):
    from dreamwaltz_blender import api

    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=300, num_bound=100, seed=2))
    return api.import_avatar(str(path)), read_h3ga(path)


def test_bvh_clip_becomes_an_action_matching_the_backend_frame_for_frame(imported):
    import bpy

    from dreamwaltz_blender import motion
    from dreamwaltz_blender.importer import space

    avatar, data = imported
    scene = bpy.context.scene
    scene.render.fps = 30
    action = motion.apply_motion(avatar, str(MOCAP / "cmu_02_02_walk_daz.bvh"), start_frame=10)
    assert avatar.armature.animation_data.action == action
    seq = load_motion(MOCAP / "cmu_02_02_walk_daz.bvh", TargetSkeleton.from_avatar(data), fps=30)
    assert tuple(action.frame_range) == (10, 10 + seq.num_frames - 1), "one key per resampled frame, none lost"
    _, P = forward_kinematics_batch(
        axis_angle_to_matrix(seq.full_pose), data["rig/rest_joints"].astype(np.float64), seq.transl
    )
    offset = np.array(avatar.armature["dreamwaltz_offset"])
    for i in (0, seq.num_frames // 3, seq.num_frames - 1):
        scene.frame_set(10 + i)
        heads = np.array([avatar.armature.pose.bones[n].head for n in JOINT_NAMES])
        expected = space.points_to_blender(P[i]) + offset
        assert np.abs(heads - expected).max() < 2e-4, f"frame {i}"
    # Usable in the NLA: push it down as a strip.
    track = avatar.armature.animation_data.nla_tracks.new()
    track.strips.new(action.name, 10, action)
    assert len(track.strips) == 1
    assert not [
        o for o in bpy.data.objects if o.name not in {avatar.armature.name, avatar.body.name, avatar.splats.name}
    ], "no helper objects are left behind"


def test_expressions_from_a_smplx_file_animate_the_expression_keys(imported, tmp_path):
    import bpy

    from dreamwaltz_blender import motion

    avatar, data = imported
    T = 6
    rng = np.random.default_rng(0)
    flat = np.concatenate([np.zeros((T, 165)), rng.normal(size=(T, 100))], axis=1)
    np.save(tmp_path / "face.npy", flat)
    bpy.context.scene.render.fps = 30
    motion.apply_motion(avatar, str(tmp_path / "face.npy"), start_frame=1)
    bpy.context.scene.frame_set(3)
    keys = [k for k in avatar.body.data.shape_keys.key_blocks if k.name.startswith("expression:")]
    assert np.allclose([k.value for k in keys], flat[2, 165 : 165 + len(keys)], atol=1e-5)


def test_a_corrupt_clip_is_refused_and_leaves_the_scene_as_it_was(imported, tmp_path):
    import bpy

    avatar, _ = imported
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\n")
    actions = len(bpy.data.actions)
    bpy.context.view_layer.objects.active = avatar.armature
    with pytest.raises(RuntimeError, match="bad.bvh.*malformed"):
        bpy.ops.dreamwaltz.apply_motion(filepath=str(bad))
    assert len(bpy.data.actions) == actions
    assert avatar.armature.animation_data is None or avatar.armature.animation_data.action is None


def _scene_snapshot(avatar):
    import bpy

    rig = avatar.armature
    anim = rig.animation_data
    keys = avatar.body.data.shape_keys
    return {
        "action": anim.action.name if anim and anim.action else None,
        "actions": sorted(a.name for a in bpy.data.actions),
        "frames": (bpy.context.scene.frame_start, bpy.context.scene.frame_end, bpy.context.scene.frame_current),
        "modes": [b.rotation_mode for b in rig.pose.bones],
        "selected": sorted(o.name for o in bpy.context.view_layer.objects if o.select_get()),
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
        "key_action": keys.animation_data.action.name
        if keys and keys.animation_data and keys.animation_data.action
        else None,
    }


@pytest.mark.parametrize("failure", ["negative_rate", "zero_rate", "mid_rig", "mid_expressions"])
def test_a_failing_apply_motion_leaves_the_previous_action_frame_range_and_selection(
    imported, tmp_path, monkeypatch, failure
):
    """Issue 16: all or nothing. A clip that is refused, or one whose keyframing fails part-way,
    leaves the rig's previous action, the frame range, bone modes and the selection as they were."""
    import bpy

    from dreamwaltz_blender import motion

    avatar, _ = imported
    scene = bpy.context.scene
    scene.render.fps = 30
    previous = motion.apply_motion(avatar, str(MOCAP / "cmu_02_02_walk_daz.bvh"), start_frame=5)
    scene.frame_start, scene.frame_end = 3, 77
    scene.frame_set(12)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == avatar.body)
    bpy.context.view_layer.objects.active = avatar.body
    before = _scene_snapshot(avatar)
    assert before["action"] == previous.name

    T = 8
    flat = np.concatenate([np.zeros((T, 165)), np.random.default_rng(0).normal(size=(T, 100))], axis=1)
    clip = tmp_path / "clip.npz"
    rate = {"negative_rate": -30.0, "zero_rate": 0.0}.get(failure, 30.0)
    np.savez(clip, poses=flat[:, :165].reshape(T, 55, 3) * 0.1, mocap_framerate=rate)
    if failure.startswith("mid_"):
        np.save(tmp_path / "clip.npy", flat)  # with expressions: the shape keys get an action too
        clip = tmp_path / "clip.npy"
        calls = {"n": 0}
        real = motion._write

        def flaky(*args, **kwargs):
            calls["n"] += 1
            # 55 x 4 rotation + 3 location curves on the rig, then the expression keys' curves
            if calls["n"] > (100 if failure == "mid_rig" else 224):
                raise RuntimeError("disk full")
            return real(*args, **kwargs)

        monkeypatch.setattr(motion, "_write", flaky)
        with pytest.raises(RuntimeError, match="disk full"):
            motion.apply_motion(avatar, str(clip), start_frame=40)
    else:
        from dreamwaltz.core.errors import DreamWaltzError

        with pytest.raises(DreamWaltzError, match="frame rate"):
            motion.apply_motion(avatar, str(clip), start_frame=40)
        bpy.context.view_layer.objects.active = avatar.armature
        with pytest.raises(RuntimeError, match="frame rate"):
            bpy.ops.dreamwaltz.apply_motion(filepath=str(clip))
        bpy.context.view_layer.objects.active = avatar.body
    assert _scene_snapshot(avatar) == before
