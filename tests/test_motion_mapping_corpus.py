"""Issue 17: mapping by structure on rigs of other conventions, and feet on the ground.

The corpus is made here from the bundled CMU 12_03 clip (tests/motion_corpus.py rewrites it into
Acclaim, 3ds Max Biped, Mixamo, Unreal, old MakeHuman, a minimal 19-joint skeleton, twist bones and
a prop, in Y-up and Z-up, metres, centimetres and inches), so the right mapping is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from motion_corpus import CONVENTIONS, ZUP, convention, rewrite

from dreamwaltz.core.joints import JOINT_NAMES
from dreamwaltz.core.motion import TargetSkeleton, forward_kinematics_batch, load_motion, read_bvh
from dreamwaltz.core.motion.retarget import foot_heights
from dreamwaltz.core.rotations import axis_angle_to_matrix
from dreamwaltz.core.testing import make_test_avatar

MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"
SOURCE = MOCAP / "cmu_12_03_walk_cgspeed.bvh"
EVERY = slice(None, None, 4)  # 142 frames at 30 fps
UNITS = {"native": 1.0, "m": 0.07, "cm": 7.0, "in": 2.75}  # the clip is ~24 units tall
# (convention, axes, units): every convention in both axes, units spread over them.
VARIANTS = [
    (c, axes, units)
    for i, c in enumerate(CONVENTIONS)
    for axes, units in (("yup", ("native", "m", "in")[i % 3]), ("zup", ("cm", "m", "in")[i % 3]))
]
BODY = 22


@pytest.fixture(scope="module")
def target():
    return TargetSkeleton.from_avatar(make_test_avatar(num_free=10, num_bound=5, seed=0))


@pytest.fixture(scope="module")
def source():
    return read_bvh(SOURCE)


def posed(seq, target):
    W, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
    return W, P, foot_heights(W, P, target)


@pytest.fixture(scope="module")
def original(source, target, tmp_path_factory):
    path = rewrite(source, convention("identity")[0], tmp_path_factory.mktemp("corpus") / "original.bvh", frames=EVERY)
    return posed(load_motion(path, target), target)


def check_grounded(heights, grounded, label):
    lowest = heights.min(axis=1)
    assert lowest.min() > -0.02, f"{label}: a foot {-lowest.min():.3f} m under the ground"
    assert np.abs(lowest[grounded]).max() <= 0.02, (
        f"{label}: grounded frames up to {np.abs(lowest[grounded]).max():.3f} m off"
    )


@pytest.mark.parametrize("name, axes, units", VARIANTS)
def test_every_convention_maps_to_the_right_joints_and_moves_the_same(
    name, axes, units, source, target, original, tmp_path
):
    spec, truth = convention(name)
    path = rewrite(
        source,
        spec,
        tmp_path / f"{name}.bvh",
        axes=ZUP if axes == "zup" else np.eye(3),
        scale=UNITS[units],
        frames=EVERY,
    )
    seq = load_motion(path, target)
    body = {j: b for j, b in seq.mapping.items() if JOINT_NAMES.index(j) < BODY}
    wrong = {j: (truth.get(j), body.get(j)) for j in set(truth) | set(body) if truth.get(j) != body.get(j)}
    assert not wrong, f"{name}: (truth, mapped) {wrong}"
    assert any(line.startswith("left_shoulder <- ") for line in seq.notes), "the report lists what mapped to what"

    _, P0, _ = original
    _, P, heights = posed(seq, target)
    error = np.abs(P[:, :BODY] - P0[:, :BODY]).max(axis=(0, 2))
    if name == "minimal19":
        # Without collars and one spine joint fewer the avatar cannot bend where the source has no
        # joint: legs and pelvis are exact, the arms point the same way.
        legs = [
            JOINT_NAMES.index(j) for j in JOINT_NAMES[:BODY] if "hip" in j or "knee" in j or "ankle" in j or "foot" in j
        ]
        assert error[[0] + legs].max() < 0.01
        for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow")):
            i, k = JOINT_NAMES.index(a), JOINT_NAMES.index(b)
            d0, d = P0[:, k] - P0[:, i], P[:, k] - P[:, i]
            cos = np.sum(d0 * d, axis=1) / np.linalg.norm(d0, axis=1) / np.linalg.norm(d, axis=1)
            assert cos.min() > np.cos(np.radians(2.0)), f"{a}: {np.degrees(np.arccos(cos.min())):.2f} deg"
    else:
        assert error.max() < 0.01, f"{name}: joints up to {error.max():.4f} m from the original's"
    check_grounded(heights, np.ones(len(heights), bool), name)


def test_user_mapping_still_overrides_the_structure(source, target, tmp_path):
    spec, _ = convention("acclaim")
    path = rewrite(source, spec, tmp_path / "acclaim.bvh", frames=EVERY)
    seq = load_motion(path, target, mapping={"spine2": None, "neck": "Neck1"})
    assert "spine2" not in seq.mapping and seq.mapping["neck"] == "Neck1"
    assert "neck <- Neck1 (your mapping)" in seq.notes


@pytest.mark.parametrize("clip", ["cmu_12_03_walk_cgspeed.bvh", "cmu_02_02_walk_daz.bvh", "makehuman_walk1.bvh"])
def test_bundled_clips_keep_a_foot_on_the_ground_every_frame(clip, target):
    _, _, heights = posed(load_motion(MOCAP / clip, target), target)
    check_grounded(heights, np.ones(len(heights), bool), clip)


@pytest.mark.parametrize("frame", [0, 40, 101])
def test_one_frame_pose_files_stand_on_the_ground(frame, source, target, original, tmp_path):
    spec, _ = convention("mixamo")
    path = rewrite(source, spec, tmp_path / "pose.bvh", frames=slice(frame * 4, frame * 4 + 1))
    seq = load_motion(path, target)
    assert seq.num_frames == 1
    _, P, heights = posed(seq, target)
    check_grounded(heights, np.array([True]), "pose")
    _, P0, _ = original
    relative = (P[0, :BODY] - P[0, :1]) - (P0[frame, :BODY] - P0[frame, :1])
    assert np.abs(relative).max() < 0.01, "the same pose as that frame of the clip"


def test_jumps_stay_airborne_and_the_rest_stays_grounded(source, target, original, tmp_path):
    first, last, height = 50, 70, 6.0  # 0.67 s, ~0.4 m up (the clip is ~24 units tall)
    spec, _ = convention("identity")
    path = rewrite(source, spec, tmp_path / "jump.bvh", frames=EVERY, jump=(first, last, height))
    seq = load_motion(path, target)
    _, P, heights = posed(seq, target)
    t = np.arange(len(heights))
    flight = np.zeros(len(t), bool)
    check_grounded(heights, (t < first) | (t > last), "jump")
    _, _, h0 = original
    rest, names = source.rest_positions(), source.names
    leg = lambda p, a, b, c: np.linalg.norm(p[b] - p[a]) + np.linalg.norm(p[c] - p[b])
    ratio = leg(target.rest_joints, 1, 4, 7) / leg(
        rest, *(names.index(n) for n in ("LeftUpLeg", "LeftLeg", "LeftFoot"))
    )
    lift = 4 * height * (t - first) * (last - t) / (last - first) ** 2 * ratio
    got = heights.min(axis=1) - h0.min(axis=1)
    flight = lift > 0.15  # take-off and landing, lower, count as contact (CONTACT_M)
    assert heights.min(axis=1)[flight].min() > 0.1, "in the air during the jump"
    assert (got[flight] > 0.5 * lift[flight]).all(), (
        "the jump keeps most of its height (take-off and landing are pinned)"
    )
