"""Issue 9: retargeting real mocap (three conventions) and SMPL-family files onto an avatar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.errors import MotionError
from dreamwaltz.core.joints import JOINT_INDEX
from dreamwaltz.core.motion import (
    TargetSkeleton,
    auto_mapping,
    forward_kinematics_batch,
    load_motion,
    read_bvh,
    save_mapping,
)
from dreamwaltz.core.motion.retarget import BONE_CHILD, sole_heights, source_basis
from dreamwaltz.core.rotations import axis_angle_to_matrix
from dreamwaltz.core.testing import make_test_avatar

MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"
CLIPS = ["cmu_12_03_walk_cgspeed.bvh", "cmu_02_02_walk_daz.bvh", "makehuman_walk1.bvh"]


@pytest.fixture(scope="module")
def target():
    return TargetSkeleton.from_avatar(make_test_avatar(num_free=10, num_bound=5, seed=0))


def posed(seq, target):
    return forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)


@pytest.mark.parametrize("clip", CLIPS)
def test_real_clips_keep_feet_on_the_ground_and_follow_the_source(clip, target):
    bvh = read_bvh(MOCAP / clip)
    seq = load_motion(MOCAP / clip, target)
    assert seq.num_frames == bvh.num_frames, "no frame is lost"
    W, P = posed(seq, target)

    heights = sole_heights(W, P, target)
    assert heights.min() > -0.02, f"a foot goes {-heights.min():.3f} m below the ground"
    contact = heights < 0.03
    assert contact.mean() > 0.3, "a walk has a foot on the ground most of the time"
    assert np.abs(heights[contact]).max() <= 0.03

    mapping = seq.mapping
    index = {n: i for i, n in enumerate(bvh.names)}
    _, P_src = bvh.world_transforms()
    B = source_basis(bvh.rest_positions(), mapping, index)
    cosines = []
    for joint, children in BONE_CHILD.items():
        child = next((c for c in children if c in mapping), None)
        if joint not in mapping or child is None:
            continue
        src = (P_src[:, index[mapping[child]]] - P_src[:, index[mapping[joint]]]) @ B.T
        if np.linalg.norm(src, axis=1).min() < 1e-6:  # a zero-length source bone has no direction
            continue
        tgt = P[:, JOINT_INDEX[child]] - P[:, JOINT_INDEX[joint]]
        cos = np.sum(src * tgt, axis=1) / (np.linalg.norm(src, axis=1) * np.linalg.norm(tgt, axis=1))
        cosines.append(cos.mean())
    assert len(cosines) >= 10 and min(cosines) >= 0.9, f"bone directions: {np.round(cosines, 3)}"

    # The root path is the source's, scaled by the leg-length ratio (horizontal: the ground pass is vertical).
    def leg(points, hip, knee, ankle):
        return np.linalg.norm(points[..., knee, :] - points[..., hip, :], axis=-1) + np.linalg.norm(
            points[..., ankle, :] - points[..., knee, :], axis=-1
        )

    rest = bvh.rest_positions()
    src_leg = np.mean(
        [
            leg(rest, index[mapping[f"{s}_hip"]], index[mapping[f"{s}_knee"]], index[mapping[f"{s}_ankle"]])
            for s in ("left", "right")
        ]
    )
    tgt_leg = np.mean(
        [
            leg(target.rest_joints, JOINT_INDEX[f"{s}_hip"], JOINT_INDEX[f"{s}_knee"], JOINT_INDEX[f"{s}_ankle"])
            for s in ("left", "right")
        ]
    )
    src_path = (P_src[:, index[mapping["pelvis"]]] - P_src[0, index[mapping["pelvis"]]]) @ B.T * (tgt_leg / src_leg)
    tgt_path = P[:, 0] - P[0, 0]
    assert np.abs(src_path[:, [0, 2]] - tgt_path[:, [0, 2]]).max() < 1e-6


def test_walks_travel_forward_in_place_stays(target):
    seq = load_motion(MOCAP / CLIPS[0], target)
    assert seq.transl[-1, 2] - seq.transl[0, 2] > 2.0, "the CMU walk travels ~4 m towards the avatar's front (+Z)"
    still = load_motion(MOCAP / CLIPS[0], target, in_place=True)
    assert np.abs(still.transl[:, [0, 2]]).max() == 0.0
    half = load_motion(MOCAP / CLIPS[0], target, scale=0.5)
    assert np.isclose(half.transl[-1, 2], seq.transl[-1, 2] * 0.5, rtol=1e-6)


def zup_centimetres(bvh_path, out_path, scale=2.54):
    """Rewrite a Y-up clip as Z-up in other units: (x, y, z) -> (x, -z, y), rotations alike."""
    bvh = read_bvh(bvh_path)
    rename = {"X": ("X", 1.0), "Y": ("Z", 1.0), "Z": ("Y", -1.0)}
    lines, signs = [], []
    for chans in bvh.channels:
        for c in chans:
            signs.append(rename[c[0].upper()][1])
    for line in Path(bvh_path).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "OFFSET":
            x, y, z = (float(v) * scale for v in parts[1:4])
            line = f"OFFSET {x} {-z} {y}"
        elif parts and parts[0] == "CHANNELS":
            line = "CHANNELS " + parts[1] + " " + " ".join(rename[c[0].upper()][0] + c[1:] for c in parts[2:])
        lines.append(line)
        if parts and parts[0] == "MOTION":
            break
    frames = bvh.frames * np.array(signs)
    column = 0
    for chans in bvh.channels:
        for c in chans:
            if c.lower().endswith("position"):
                frames[:, column] *= scale
            column += 1
    lines += [f"Frames: {bvh.num_frames}", f"Frame Time: {bvh.frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in frames]
    Path(out_path).write_text("\n".join(lines))
    return out_path


def test_axes_and_units_are_detected(target, tmp_path):
    """The same clip as Z-up centimetres retargets to the same poses and path."""
    seq = load_motion(MOCAP / CLIPS[0], target)
    other = load_motion(zup_centimetres(MOCAP / CLIPS[0], tmp_path / "zup_cm.bvh"), target)
    assert other.num_frames == seq.num_frames
    R1, R2 = axis_angle_to_matrix(seq.full_pose), axis_angle_to_matrix(other.full_pose)
    assert np.abs(R1 - R2).max() < 1e-4
    assert np.abs(other.transl - seq.transl).max() < 1e-4


def test_unknown_skeletons_say_which_bones_are_missing_and_custom_mappings_work(target, tmp_path):
    text = (MOCAP / CLIPS[0]).read_text().replace("LeftLeg", "Shin_Lft").replace("RightLeg", "Shin_Rgt")
    odd = tmp_path / "odd.bvh"
    odd.write_text(text)
    # Issue 17: unknown names are no obstacle, the structure finds the knees ...
    assert load_motion(odd, target).mapping["left_knee"] == "Shin_Lft"
    # ... and a required joint left unmapped (here on purpose) is named, with the unmapped bones.
    with pytest.raises(MotionError) as err:
        load_motion(odd, target, mapping={"left_knee": None})
    assert "left_knee" in err.value.message and "Shin_Lft" in err.value.message and "mapping" in err.value.hint
    mapping = auto_mapping(read_bvh(odd).names)
    mapping.update(left_knee="Shin_Lft", right_knee="Shin_Rgt")
    saved = save_mapping(mapping, tmp_path / "mapping.json")
    assert load_motion(odd, target, mapping=saved).num_frames == read_bvh(odd).num_frames


def test_a_partial_user_mapping_is_laid_over_the_automatic_one(target, tmp_path):
    text = (MOCAP / CLIPS[0]).read_text().replace("LeftLeg", "Shin_Lft").replace("RightLeg", "Shin_Rgt")
    odd = tmp_path / "odd.bvh"
    odd.write_text(text)
    # Only the two joints the aliases missed: the rest still comes from the automatic mapping.
    partial = save_mapping({"left_knee": "Shin_Lft", "right_knee": "Shin_Rgt"}, tmp_path / "fix.json")
    seq = load_motion(odd, target, mapping=partial)
    assert seq.mapping["left_knee"] == "Shin_Lft" and seq.mapping["pelvis"] == "Hips"
    # A joint mapped to null is dropped; a misspelt joint name is refused with the list of names.
    dropped = load_motion(odd, target, mapping={"left_knee": "Shin_Lft", "right_knee": "Shin_Rgt", "left_wrist": None})
    assert "left_wrist" not in dropped.mapping
    with pytest.raises(MotionError, match="left_kne is not an SMPL-X joint") as err:
        load_motion(odd, target, mapping={"left_kne": "Shin_Lft"})
    assert "left_knee" in err.value.hint


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (
            b"HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n",
            "not closed",
        ),
        (b"garbage", "not a BVH"),
        (
            b"HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n}\nMOTION\nFrames: 5\nFrame Time: 0.03\n1 2 3\n",
            "holds 1",
        ),
        (b"HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Zrotation Xrotation Qrotation\n}\n", "unknown channel"),
    ],
)
def test_corrupt_bvh_files_get_clear_errors(content, expected, target, tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_bytes(content)
    with pytest.raises(MotionError, match=expected):
        load_motion(path, target)


# ----------------------------------------------------------------------------- SMPL-family files


def random_pose(rng, T):
    return rng.normal(scale=0.3, size=(T, 55, 3))


@pytest.mark.parametrize("layout", ["per_joint", "amass_smplx", "amass_smplh", "flat265", "motionx322"])
def test_smpl_family_files_round_trip(layout, target, tmp_path):
    rng = np.random.default_rng(1)
    T = 12
    pose = random_pose(rng, T)
    trans = rng.normal(size=(T, 3))
    path = tmp_path / f"{layout}.npz"
    if layout == "per_joint":
        np.savez(path, poses=pose, trans=trans, betas=np.zeros(10), mocap_framerate=30.0)
    elif layout == "amass_smplx":
        np.savez(path, poses=pose.reshape(T, 165), trans=trans, mocap_frame_rate=60.0, surface_model_type="smplx")
    elif layout == "amass_smplh":
        pose[:, 22:25] = 0.0  # SMPL+H has no jaw or eyes
        flat = np.concatenate([pose[:, :22].reshape(T, -1), pose[:, 25:].reshape(T, -1)], axis=1)
        np.savez(path, poses=flat, trans=trans, mocap_framerate=120.0, betas=np.zeros(16), dmpls=np.zeros((T, 8)))
    elif layout == "flat265":
        expr = rng.normal(size=(T, 100))
        flat = np.concatenate(
            [
                pose[:, 22],
                pose[:, 23],
                pose[:, 24],
                pose[:, 0],
                pose[:, 1:22].reshape(T, -1),
                pose[:, 25:].reshape(T, -1),
                expr,
            ],
            axis=1,
        )
        path = tmp_path / "flat.npy"
        np.save(path, flat)
    else:
        pose[:, 23:25] = 0.0  # no eyes in Motion-X
        expr = rng.normal(size=(T, 50))
        flat = np.concatenate(
            [
                pose[:, 0],
                pose[:, 1:22].reshape(T, -1),
                pose[:, 25:].reshape(T, -1),
                pose[:, 22],
                expr,
                np.zeros((T, 100)),
                trans,
                np.zeros((T, 10)),
            ],
            axis=1,
        )
        np.save(tmp_path / "mx.npy", flat)
        path = tmp_path / "mx.npy"
    seq = load_motion(path, target)
    assert seq.num_frames == T
    assert np.allclose(seq.full_pose[:, 1:], pose[:, 1:], atol=1e-9), "every joint but the root equals the file"
    if layout.startswith("amass"):
        R = axis_angle_to_matrix(seq.full_pose[:, 0])
        C = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
        assert np.allclose(R, C @ axis_angle_to_matrix(pose[:, 0]), atol=1e-9), "Z-up root turned to Y-up"
        assert seq.fps in (60.0, 120.0)
    else:
        assert np.allclose(seq.full_pose[:, 0], pose[:, 0], atol=1e-9)
    if layout == "flat265":
        assert seq.expression.shape == (T, 100) and np.allclose(seq.expression, expr)


def test_bad_numpy_motion_files_are_refused(target, tmp_path):
    pickled = tmp_path / "p.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MotionError, match="pickle"):
        load_motion(pickled, target)
    wrong = tmp_path / "w.npz"
    np.savez(wrong, poses=np.zeros((4, 17)))
    with pytest.raises(MotionError, match="no known layout"):
        load_motion(wrong, target)
    with pytest.raises(MotionError, match="pickle"):
        load_motion(tmp_path / "x.pkl", target)
    broken = tmp_path / "b.npz"
    broken.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(MotionError, match="not a readable"):
        load_motion(broken, target)
    nan = tmp_path / "n.npz"
    np.savez(nan, poses=np.full((3, 55, 3), np.nan))
    with pytest.raises(MotionError, match="NaN"):
        load_motion(nan, target)


def test_resampling_keeps_duration(target):
    seq = load_motion(MOCAP / CLIPS[0], target, fps=24.0)
    source = read_bvh(MOCAP / CLIPS[0])
    assert abs((seq.num_frames - 1) / 24.0 - (source.num_frames - 1) * source.frame_time) < 1 / 24.0
