"""Issue 21: one posed frame as Niantic's .spz (read back by an independent decoder written here
from the format's description), and a motion as a sequence of .ply files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, write_small_avatar  # noqa: E402

from dreamwaltz.core.motion import TargetSkeleton, load_motion
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.core.splat_files import read_gaussian_ply

WALK = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap" / "cmu_12_03_walk_cgspeed.bvh"


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    return write_small_avatar(tmp_path_factory.mktemp("a"))


def read_spz_v3(path) -> dict:
    """Decode a gzip SPZ (versions 2-3) as Niantic's format describes it: a 16-byte header, then
    positions (24-bit fixed point), alphas, colours, scales, rotations, each for every splat."""
    raw = gzip.decompress(Path(path).read_bytes())
    magic, version, n, sh_degree, frac_bits, _flags, reserved = struct.unpack_from("<IIIBBBB", raw, 0)
    assert magic == 0x5053474E and version in (2, 3) and reserved == 0
    o = 16
    b = np.frombuffer(raw, np.uint8, 9 * n, o).reshape(n, 3, 3).astype(np.int32)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    o += 9 * n
    alpha = np.frombuffer(raw, np.uint8, n, o) / 255.0
    o += n
    f_dc = (np.frombuffer(raw, np.uint8, 3 * n, o).reshape(n, 3) / 255.0 - 0.5) / 0.15
    o += 3 * n
    log_scales = np.frombuffer(raw, np.uint8, 3 * n, o).reshape(n, 3) / 16.0 - 10.0
    o += 3 * n
    assert version == 3  # smallest three: 2 bits for the largest's index, then 3 x (sign, 9 bits)
    word = np.frombuffer(raw, "<u4", n, o).astype(np.int64)
    largest = word >> 30
    q = np.zeros((n, 4))  # x y z w
    rest = word.copy()
    for axis in (3, 2, 1, 0):
        here = largest != axis
        mag = (rest & 511) / 511.0 * np.sqrt(0.5)
        q[here, axis] = np.where((rest >> 9) & 1, -mag, mag)[here]
        rest = np.where(here, rest >> 10, rest)
    q[np.arange(n), largest] = np.sqrt(np.clip(1 - (q**2).sum(1), 0, None))
    assert sh_degree == 0 and len(raw) == o + 4 * n  # what the exporter writes: no higher harmonics
    return {
        "means": fixed / float(1 << frac_bits),
        "alpha": alpha,
        "f_dc": f_dc,
        "log_scales": log_scales,
        "quat_wxyz": q[:, [3, 0, 1, 2]],
        "frac_bits": frac_bits,
    }


def test_spz_is_read_back_within_its_quantisation(avatar_file, tmp_path):
    pytest.importorskip("gsply", reason="--format spz needs gsply (requirements.txt)")
    _, path = avatar_file
    for fmt in ("spz", "ply"):
        out = cli("export", path, "--format", fmt, "--pose", WALK, "--frame", "200", "--out", tmp_path / f"f.{fmt}")
        assert out.returncode == 0, out.stderr
    spz, ply = read_spz_v3(tmp_path / "f.spz"), read_gaussian_ply(tmp_path / "f.ply")
    step = 1.0 / (1 << spz["frac_bits"])
    assert np.abs(spz["means"] - np.stack([ply["x"], ply["y"], ply["z"]], 1)).max() <= 0.5 * step + 1e-6
    log_scales = np.stack([ply[f"scale_{i}"] for i in range(3)], 1)
    assert log_scales.min() > -10 and log_scales.max() < 5.9  # inside SPZ's range, so only rounding differs
    assert np.abs(spz["log_scales"] - log_scales).max() <= 1 / 32 + 1e-6
    assert np.abs(spz["alpha"] - 1 / (1 + np.exp(-ply["opacity"]))).max() <= 0.5 / 255 + 1e-6
    assert np.abs(spz["f_dc"] - np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1)).max() <= 0.5 / (255 * 0.15) + 1e-5
    q_ply = np.stack([ply[f"rot_{i}"] for i in range(4)], 1)
    q_ply /= np.linalg.norm(q_ply, axis=1, keepdims=True)
    assert np.abs(np.sum(spz["quat_wxyz"] * q_ply, axis=1)).min() > 1 - 1e-5  # same rotation, 9-bit components


def test_ply_sequence_has_one_posed_file_per_frame(avatar_file, tmp_path):
    avatar, path = avatar_file
    out = cli("export", path, "--format", "ply", "--motion", WALK, "--frames", "100:103", "--out", tmp_path / "seq")
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "seq").glob("*.ply"))
    assert [f.name for f in files] == ["frame_000100.ply", "frame_000101.ply", "frame_000102.ply"]
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    for f, frame in zip(files, (100, 101, 102)):
        data = read_gaussian_ply(f)
        ref = pose_avatar(avatar, seq.full_pose[frame], transl=seq.transl[frame])
        assert np.abs(np.stack([data["x"], data["y"], data["z"]], 1) - ref.means).max() < 1e-5
    first, last = (read_gaussian_ply(f)["x"] for f in (files[0], files[-1]))
    assert np.abs(first - last).max() > 1e-3  # the avatar moves between frames
