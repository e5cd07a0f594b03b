"""Issue 6: inspect / export / render on .h3ga files, and the .ply splat format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, write_small_avatar  # noqa: E402

from dreamwaltz.core.motion import TargetSkeleton, load_motion
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.core.rotations import quaternion_to_matrix
from dreamwaltz.core.splat_files import read_gaussian_ply
from dreamwaltz.core.splat_writers import write_gaussian_ply

MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    return write_small_avatar(tmp_path_factory.mktemp("a"))


def test_ply_round_trip_preserves_the_gaussians(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 3, 3)) * 0.02
    cov = A @ A.transpose(0, 2, 1) + 1e-6 * np.eye(3)
    means, colors, opac = rng.normal(size=(50, 3)), rng.uniform(0, 1, (50, 3)), rng.uniform(0.05, 0.95, 50)
    data = read_gaussian_ply(write_gaussian_ply(tmp_path / "s.ply", means, cov, colors, opac))
    R = quaternion_to_matrix(np.stack([data[f"rot_{i}"] for i in range(4)], 1))
    S = np.exp(2 * np.stack([data[f"scale_{i}"] for i in range(3)], 1))
    back = np.einsum("nij,nj,nkj->nik", R, S, R)
    assert np.allclose(back, cov, rtol=1e-3, atol=1e-8)
    assert np.allclose(np.stack([data["x"], data["y"], data["z"]], 1), means, atol=1e-6)
    assert np.allclose(
        0.5 + 0.28209479177387814 * np.stack([data[f"f_dc_{i}"] for i in range(3)], 1), colors, atol=1e-5
    )
    assert np.allclose(1 / (1 + np.exp(-data["opacity"])), opac, atol=1e-5)


def test_inspect_summarises_and_refuses_bad_files(avatar_file, tmp_path):
    avatar, path = avatar_file
    out = cli("inspect", path, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["summary"]
    assert summary["free_gaussians"] == 400 and summary["mesh_bound_gaussians"] == 100 and summary["valid"]
    bad = tmp_path / "bad.h3ga"
    bad.write_bytes(b"nope")
    out = cli("inspect", bad)
    assert out.returncode == 2 and "not a valid zip" in out.stderr and "Traceback" not in out.stderr


def test_export_with_a_motion_frame_matches_the_reference_evaluator(avatar_file, tmp_path):
    avatar, path = avatar_file
    out = cli(
        "export",
        path,
        "--format",
        "ply",
        "--pose",
        MOCAP / "cmu_12_03_walk_cgspeed.bvh",
        "--frame",
        "200",
        "--out",
        tmp_path / "f200.ply",
    )
    assert out.returncode == 0, out.stderr
    seq = load_motion(MOCAP / "cmu_12_03_walk_cgspeed.bvh", TargetSkeleton.from_avatar(avatar))
    ref = pose_avatar(avatar, seq.full_pose[200], transl=seq.transl[200])
    data = read_gaussian_ply(tmp_path / "f200.ply")
    assert np.allclose(np.stack([data["x"], data["y"], data["z"]], 1), ref.means, atol=1e-5)
    out = cli(
        "export", path, "--pose", MOCAP / "cmu_12_03_walk_cgspeed.bvh", "--frame", "99999", "--out", tmp_path / "x.ply"
    )
    assert out.returncode == 2 and "outside the clip" in out.stderr


def test_render_writes_frames_of_the_motion(avatar_file, tmp_path):
    _, path = avatar_file
    out = cli(
        "render",
        path,
        "--motion",
        MOCAP / "makehuman_walk1.bvh",
        "--every",
        "5",
        "--size",
        "96",
        "--out",
        tmp_path / "frames",
    )
    assert out.returncode == 0, out.stderr
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(frames) == 3  # 14 frames, every 5th
    from PIL import Image

    a, b = (np.asarray(Image.open(f), dtype=float) for f in frames[:2])
    assert (np.abs(a - b).max(axis=2) > 8).mean() > 0.01, "the avatar moves between frames"
    assert (np.abs(a - 127.5) > 10).any(axis=2).mean() > 0.02, "the avatar is in view"
