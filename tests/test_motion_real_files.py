"""Issue 32: retargeting BVH files written by other tools (tests/data/real_bvh, licences beside
them), refusing skeletons that are not humanoid and malformed files in one line, and the frame
ceiling that refuses huge motion files before they are read."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from motion_corpus import MILLION, bvh_text, million_frame_npz, quadruped

from dreamwaltz.core.errors import MotionError
from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.joints import JOINT_INDEX
from dreamwaltz.core.motion import TargetSkeleton, forward_kinematics_batch, load_motion, read_bvh
from dreamwaltz.core.motion.sequence import DEFAULT_MAX_FRAMES, MAX_FRAMES_ENV
from dreamwaltz.core.rotations import axis_angle_to_matrix
from dreamwaltz.core.testing import make_test_avatar

REAL = Path(__file__).resolve().parent / "data" / "real_bvh"
FILES = sorted(p.name for p in REAL.glob("*.bvh"))
VRMA = Path(__file__).resolve().parent / "data" / "real_vrma"
VRMA_FILES = sorted(p.name for p in VRMA.glob("*.vrma"))


@pytest.fixture(scope="module")
def target():
    return TargetSkeleton.from_avatar(make_test_avatar(num_free=10, num_bound=5, seed=0))


@pytest.mark.parametrize("folder, names, count", [(REAL, FILES, 12), (VRMA, VRMA_FILES, 2)])
def test_every_real_file_has_its_licence_beside_it(folder, names, count):
    licences = (folder / "LICENSES.md").read_text(encoding="utf-8")
    assert len(names) == count
    for name in names:
        row = next((line for line in licences.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None and row.count("|") >= 5, f"{name} has no source and licence in LICENSES.md"


def source_moves(bvh) -> bool:
    """Whether any source joint turns by more than 5 degrees (from its first frame) over the clip."""
    R, _ = bvh.world_transforms()
    for j, p in enumerate(bvh.parents):
        rel = R[:, j] if p < 0 else np.transpose(R[:, p], (0, 2, 1)) @ R[:, j]
        cos = (np.einsum("tij,ij->t", rel, rel[0]) - 1) / 2  # trace(rel[0]^T rel[t])
        if np.degrees(np.arccos(np.clip(cos, -1, 1))).max() > 5.0:
            return True
    return False


def source_clip(path: Path):
    """The clip a motion file holds (BVH, or a VRM animation sampled), for its duration and motion."""
    from dreamwaltz.core.motion.vrma import read_vrma

    return read_bvh(path) if path.suffix == ".bvh" else read_vrma(path)[0]


@pytest.mark.parametrize("path", [REAL / n for n in FILES] + [VRMA / n for n in VRMA_FILES], ids=FILES + VRMA_FILES)
def test_real_files_retarget_upright_finite_in_time_and_moving(path, target):
    bvh = source_clip(path)
    seq = load_motion(path, target, fps=30)
    W, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
    assert np.isfinite(P).all() and np.isfinite(seq.full_pose).all()
    # Duration kept: the resampled clip spans the source's (frames - 1) frame times.
    assert abs((seq.num_frames - 1) / 30 - (bvh.num_frames - 1) * bvh.frame_time) <= 1 / 30 + 1e-9
    height = P[:, JOINT_INDEX["head"], 1] - P[:, JOINT_INDEX["pelvis"], 1]
    assert np.median(height) > 0.25, f"not upright: head {np.median(height):.2f} m above the pelvis"
    if seq.num_frames > 1:
        speed = np.linalg.norm(np.diff(P[:, 0], axis=0), axis=1) * 30
        assert speed.max() <= 12.0, f"the root moves at {speed.max():.1f} m/s"
    if source_moves(bvh):
        R = axis_angle_to_matrix(seq.full_pose)
        turn = np.degrees(np.arccos(np.clip((np.einsum("tkij,kij->tk", R, R[0]) - 1) / 2, -1, 1))).max()
        travel = np.linalg.norm(seq.transl[:, [0, 2]] - seq.transl[0, [0, 2]], axis=1).max()
        assert turn > 5.0 or travel > 0.2, "the source moves but the avatar does not"


def test_zero_length_hip_joints_are_not_the_hips(target):
    """CMU's LHipJoint/RHipJoint sit on the pelvis: the hips are LeftUpLeg/RightUpLeg, and the arm
    chain starts at the upper arm (LeftShoulder is the collar)."""
    seq = load_motion(REAL / "cmu_01_01_fairmotion.bvh", target)
    m = seq.mapping
    assert (m["left_hip"], m["left_knee"], m["left_ankle"]) == ("LeftUpLeg", "LeftLeg", "LeftFoot")
    assert (m["left_collar"], m["left_shoulder"], m["left_elbow"]) == ("LeftShoulder", "LeftArm", "LeftForeArm")


def test_classic_biovision_names_map(target):
    m = load_motion(REAL / "biovision_classic_example_bvhio.bvh", target).mapping
    assert (m["left_hip"], m["left_knee"], m["left_shoulder"], m["left_elbow"]) == (
        "LeftUpLeg",
        "LeftLowLeg",
        "LeftUpArm",
        "LeftLowArm",
    )


def test_a_rest_pose_that_is_not_a_standing_human_uses_a_frame(target):
    """Rokoko video's zero pose has every limb along X: the head must still be over the pelvis and
    the legs under it, as in the source's frames."""
    seq = load_motion(REAL / "rokoko_video_jesse_dance.bvh", target)
    assert any("reference pose" in n for n in seq.notes)
    # In a posed frame (a foot on tiptoe, arms hanging from a leaning body) the names break the tie along each limb.
    m = seq.mapping
    assert (m["left_hip"], m["left_knee"], m["left_ankle"], m["left_foot"]) == (
        "LeftUpLeg",
        "LeftLeg",
        "LeftFoot",
        "LeftToeBase",
    )
    assert (m["right_collar"], m["right_shoulder"], m["right_elbow"]) == ("RightShoulder", "RightArm", "RightForeArm")
    _, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
    for side in ("left", "right"):
        leg = P[:, JOINT_INDEX[f"{side}_ankle"]] - P[:, JOINT_INDEX[f"{side}_hip"]]
        assert np.median(leg[:, 1] / np.linalg.norm(leg, axis=1)) < -0.8, "legs hang down"


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "kind, joints",
    [
        ("quadruped", quadruped()),
        ("prop", [("Sword", -1, (0, 100, 0), None), ("Blade", 0, (0, 10, 0), (0, 80, 0))]),
    ],
)
def test_skeletons_that_are_not_humanoid_are_refused_in_one_line(kind, joints, target, tmp_path):
    path = tmp_path / f"{kind}.bvh"
    path.write_text(bvh_text(joints))
    with pytest.raises(MotionError) as err:
        load_motion(path, target)
    text = str(err.value)
    assert "\n" not in text and f"{kind}.bvh" in text
    assert "does not look like a standing human" in text or "could not map" in text


def test_the_quadruped_is_refused_because_it_does_not_stand(target, tmp_path):
    path = tmp_path / "dog.bvh"
    path.write_text(bvh_text(quadruped()))
    with pytest.raises(MotionError, match="not look like a standing human.*quadrupeds"):
        load_motion(path, target)


def _motion_lines(text: str) -> tuple[list[str], int]:
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("frame time")) + 1
    return lines, first


def test_rows_of_unequal_length_are_refused_naming_the_line(target, tmp_path):
    text = (REAL / "mocapbank_test.bvh").read_bytes().decode()
    lines, first = _motion_lines(text)
    bad = first + 4
    lines[bad] = " ".join(lines[bad].split()[:-2])  # a row two numbers short, in the middle of the clip
    path = tmp_path / "short_row.bvh"
    path.write_bytes("\n".join(lines).encode())
    with pytest.raises(MotionError) as err:
        load_motion(path, target)
    assert f"line {bad + 1} holds" in str(err.value) and "\n" not in str(err.value)


def test_channel_counts_that_disagree_with_the_hierarchy_are_refused(target, tmp_path):
    text = (REAL / "mocapbank_test.bvh").read_bytes().decode()
    text = text.replace(
        "CHANNELS 3 Zrotation Xrotation Yrotation",
        "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
        1,
    )
    path = tmp_path / "channels.bvh"
    path.write_bytes(text.encode())
    _, first = _motion_lines(text)
    with pytest.raises(MotionError, match=f"line {first + 1} holds .* but the hierarchy declares"):
        load_motion(path, target)


# ----------------------------------------------------------------------------- the frame ceiling


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    d = tmp_path_factory.mktemp("million")
    bvh = d / "million.bvh"
    with open(bvh, "w") as f:  # a real 1,000,000-frame file (one joint, ~6 MB)
        f.write("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n")
        f.write("End Site\n{\nOFFSET 0 10 0\n}\n}\n")
        f.write(f"MOTION\nFrames: {MILLION}\nFrame Time: 0.0083333\n")
        f.write("0 0 0\n" * MILLION)
    return {"npz": million_frame_npz(d / "million.npz"), "bvh": bvh}


@pytest.mark.parametrize("kind", ["npz", "bvh"])
def test_a_million_frame_file_is_refused_before_it_is_read(kind, million, target):
    tracemalloc.start()
    try:
        with pytest.raises(MotionError) as err:
            load_motion(million[kind], target, fps=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(err.value)
    assert "\n" not in text and f"{MILLION:,} frames" in text and f"{DEFAULT_MAX_FRAMES:,}" in text
    assert "max_frames" in text and "--max-frames" in text and MAX_FRAMES_ENV in text and "GB" in text
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB allocated to refuse it"


def test_the_cli_refuses_a_million_frame_file_within_a_gib(million, tmp_path):
    # The child's own peak (/proc VmHWM): ru_maxrss would count the forking pytest process's pages too
    # (Linux keeps the high-water mark across exec), 2.6 GB late in a full run.
    avatar = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=10, num_bound=5, seed=1))
    code = (
        "import sys\nfrom dreamwaltz.cli import main\nrc = main(sys.argv[1:])\n"
        "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0]\n"
        "print('maxrss_kb', hwm, file=sys.stderr)\nsys.exit(rc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, "export", avatar, "--pose", million["npz"], "--out", tmp_path / "x.ply"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ceiling of 100,000 frames" in errors[0] and "--max-frames" in errors[0]
    rss_kb = int(run.stderr.split("maxrss_kb")[1].split()[0])
    assert rss_kb < 1 << 20, f"the CLI used {rss_kb / 2**20:.2f} GiB to refuse it"


def test_the_ceiling_is_raised_by_the_option_and_the_environment(target, monkeypatch):
    clip = REAL / "mocapbank_test.bvh"
    frames = read_bvh(clip).num_frames
    with pytest.raises(MotionError, match=f"over the ceiling of {frames - 1:,} frames"):
        load_motion(clip, target, max_frames=frames - 1)
    assert load_motion(clip, target, max_frames=frames).num_frames == frames
    monkeypatch.setenv(MAX_FRAMES_ENV, str(frames - 1))
    with pytest.raises(MotionError, match="over the ceiling"):
        load_motion(clip, target)
    monkeypatch.setenv(MAX_FRAMES_ENV, "lots")
    with pytest.raises(MotionError, match=f"{MAX_FRAMES_ENV}='lots' is not a number of frames"):
        load_motion(clip, target)


# ----------------------------------------------------------------------------- the floor meets the body mesh


@pytest.mark.parametrize(
    "path",
    [REAL / "cmu_01_01_fairmotion.bvh", REAL / "mixamo_prefixed_test_freebvh.bvh", REAL / "smplx_wham_sample.bvh"]
    + [VRMA / "vrma_hips_spine_twisting.vrma"],  # a leaning, twisting body: its hands reach the floor
    ids=lambda p: p.name,
)
def test_the_skinned_body_mesh_meets_the_floor(path):
    """The floor pass works on the body's own sole vertices (heel, ball, toe tip), skinned as the
    body is: they land where the posed mesh puts them, and the posed mesh's lowest point stays on
    the floor (-2..+4 cm on the median frame, never under -3 cm, whatever part of it is lowest)."""
    from dreamwaltz.core.motion.retarget import sole_points
    from dreamwaltz.core.posing import pose_body

    avatar = make_test_avatar(num_free=10, num_bound=5, seed=3)
    target = TargetSkeleton.from_avatar(avatar)
    seq = load_motion(path, target, fps=30)
    frames = np.unique(np.linspace(0, seq.num_frames - 1, 40).astype(int))
    W, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose[frames]), target.rest_joints, seq.transl[frames])
    predicted = sole_points(W, P, target)
    lowest = []
    for i, f in enumerate(frames):
        body = pose_body(avatar, seq.full_pose[f], transl=seq.transl[f])
        match = np.abs(body.vertices[:, None, :] - predicted[i][None]).sum(axis=2).min(axis=0)
        assert match.max() < 1e-6, "each sole point is a vertex of the posed body"
        lowest.append(body.vertices[:, 1].min() - target.ground_y)
    lowest = np.array(lowest)
    assert -0.02 <= np.median(lowest) <= 0.04 and lowest.min() >= -0.03, (np.median(lowest), lowest.min())


def test_offsets_in_other_units_than_the_position_channels_do_not_change_the_motion(target, tmp_path):
    """WHAM writes six channels on every joint: the frames' positions, not the hierarchy's offsets,
    say how long the legs are. Offsets a hundred times too large change nothing."""
    import re

    text = (REAL / "smplx_wham_sample.bvh").read_text()
    head, motion = text.split("MOTION", 1)
    scaled = re.sub(
        r"OFFSET\s+(\S+)\s+(\S+)\s+(\S+)", lambda m: "OFFSET " + " ".join(str(float(v) * 100) for v in m.groups()), head
    )
    path = tmp_path / "wham_offsets_cm.bvh"
    path.write_text(scaled + "MOTION" + motion)
    seq = load_motion(REAL / "smplx_wham_sample.bvh", target)
    other = load_motion(path, target)
    assert np.abs(other.transl - seq.transl).max() < 1e-3
    assert np.abs(axis_angle_to_matrix(other.full_pose) - axis_angle_to_matrix(seq.full_pose)).max() < 1e-3


def test_the_up_axis_override_is_honoured_for_bvh(target):
    clip = REAL / "fair_mocap_dab_Zup.bvh"
    auto = load_motion(clip, target)
    assert np.abs(load_motion(clip, target, up_axis="z").full_pose - auto.full_pose).max() < 1e-9
    wrong = load_motion(clip, target, up_axis="y", keep_on_ground=False)  # the user's override wins, even wrong
    _, P = forward_kinematics_batch(axis_angle_to_matrix(wrong.full_pose), target.rest_joints, wrong.transl)
    assert np.median(P[:, JOINT_INDEX["head"], 1] - P[:, JOINT_INDEX["pelvis"], 1]) < 0.25
    with pytest.raises(MotionError, match="up_axis 'w'"):
        load_motion(clip, target, up_axis="w")


def test_a_drifting_floor_level_is_followed(tmp_path):
    """Video trackers let the root's height drift by tens of centimetres over a clip: the body mesh
    must still stand on the floor, so the floor level is taken locally (DRIFT_S), not once."""
    from dreamwaltz.core.posing import pose_body

    text = (REAL / "univrm_motionbuilder21_test.bvh").read_text()
    head, motion = text.split("MOTION", 1)
    lines = motion.strip().splitlines()
    rows = [line.split() for line in lines[2:]]
    for i, row in enumerate(rows):  # the root's Yposition (cm): 40 cm of drift over the clip
        row[1] = f"{float(row[1]) + 40.0 * i / len(rows):.4f}"
    path = tmp_path / "drift.bvh"
    path.write_text(head + "MOTION\n" + "\n".join(lines[:2] + [" ".join(r) for r in rows]) + "\n")
    avatar = make_test_avatar(num_free=10, num_bound=5, seed=3)
    target = TargetSkeleton.from_avatar(avatar)
    seq = load_motion(path, target, fps=10)
    lowest = (
        np.array(
            [
                pose_body(avatar, seq.full_pose[f], transl=seq.transl[f]).vertices[:, 1].min()
                for f in range(0, seq.num_frames, 5)
            ]
        )
        - target.ground_y
    )
    assert -0.02 <= np.median(lowest) <= 0.04 and lowest.min() >= -0.03, (np.median(lowest), lowest.min())


def test_retarget_preview_draws_a_contact_sheet_with_its_figures(tmp_path):
    from cli_helpers import cli
    from PIL import Image

    avatar = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=10, num_bound=5, seed=1))
    out = tmp_path / "sheet.png"
    run = cli(
        "retarget-preview", REAL / "mixamo_prefixed_test_freebvh.bvh", "--avatar", avatar, "--out", out, "--frames", "4"
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("frame ")]
    assert len(lines) == 4
    heads = [float(line.split("head above pelvis ")[1].split()[0]) for line in lines]
    assert min(heads) > 25, "upright on every frame drawn (cm)"
    image = Image.open(out)
    assert image.width > 800 and image.height > 300
    pixels = np.asarray(image.convert("L"))
    assert (pixels < 200).mean() > 0.01, "something is drawn"
    bad = cli("retarget-preview", tmp_path / "missing.bvh", "--avatar", avatar, "--out", out)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.bvh" in bad.stderr


def test_makehuman_t_pose_stands_in_a_t_pose(target):
    """MakeHuman writes six channels of zeros on its leg joints: displacements from the OFFSET,
    not positions (read as positions, every leg bone folded to nothing and the avatar knelt)."""
    seq = load_motion(REAL / "makehuman_default_tpose_Zup.bvh", target)
    _, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
    P = P[0]
    for side in ("left", "right"):
        thigh = P[JOINT_INDEX[f"{side}_knee"]] - P[JOINT_INDEX[f"{side}_hip"]]
        shin = P[JOINT_INDEX[f"{side}_ankle"]] - P[JOINT_INDEX[f"{side}_knee"]]
        cos = thigh @ shin / np.linalg.norm(thigh) / np.linalg.norm(shin)
        assert cos > np.cos(np.radians(20)), f"{side} knee bent {np.degrees(np.arccos(cos)):.0f} degrees"
        arm = P[JOINT_INDEX[f"{side}_wrist"]] - P[JOINT_INDEX[f"{side}_shoulder"]]
        assert abs(arm[1]) < 0.3 * np.linalg.norm(arm), f"{side} arm held out"


def test_vrma_bones_are_mapped_by_their_vrm_names(target):
    """A VRM animation names its humanoid bones: every body joint and finger comes from them."""
    seq = load_motion(VRMA / "three-vrm_test.vrma", target)
    m = seq.mapping
    assert (m["pelvis"], m["left_hip"], m["left_knee"], m["left_ankle"]) == (
        "hips",
        "leftUpperLeg",
        "leftLowerLeg",
        "leftFoot",
    )
    assert (m["left_collar"], m["left_shoulder"], m["left_elbow"], m["left_wrist"]) == (
        "leftShoulder",
        "leftUpperArm",
        "leftLowerArm",
        "leftHand",
    )
    assert m["left_thumb1"] == "leftThumbMetacarpal" and m["right_pinky3"] == "rightLittleDistal"


def test_a_bad_vrma_is_refused_in_one_line(target, tmp_path):
    path = tmp_path / "bad.vrma"
    path.write_bytes(b"glTF" + bytes(30))
    with pytest.raises(MotionError) as err:
        load_motion(path, target)
    assert "bad.vrma" in str(err.value) and "\n" not in str(err.value)


def test_only_the_frames_asked_for_are_materialised(target, tmp_path):
    """export --pose needs one frame: an AMASS .npz converts only it (its arrays are still read,
    within the frame ceiling), and gives the same pose."""
    rng = np.random.default_rng(4)
    path = tmp_path / "amass.npz"
    np.savez(path, poses=rng.normal(scale=0.2, size=(20_000, 165)), trans=rng.normal(size=(20_000, 3)))
    tracemalloc.start()
    try:
        one = load_motion(path, target, frames=slice(7, 8))
        one_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        whole = load_motion(path, target)
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one.num_frames == 1
    assert np.abs(one.full_pose[0] - whole.full_pose[7]).max() < 1e-12
    assert np.abs(one.transl[0] - whole.transl[7]).max() < 1e-12
    # The file's arrays are read whole (the ceiling bounds them); the per-frame pose arrays are not made.
    assert whole_peak - one_peak > 0.5 * 20_000 * 55 * 3 * 8, (one_peak, whole_peak)
    with pytest.raises(MotionError, match="outside the clip"):
        load_motion(path, target, frames=slice(20_000, 20_001))
