"""Track readers (docs/REENACT.md): one known-truth track written in each tool's layout reads back
as the same Track; pickles only through the restricted unpickler and only when opted in."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch
from reenact_shot import write_gvhmr, write_smpl_file, write_smplerx

from dreamwaltz.core.errors import TrackError
from dreamwaltz.core.rotations import axis_angle_to_matrix
from dreamwaltz.core.tracks import Track, TrackCamera, load_track, make_person, read_track_file, write_track
from dreamwaltz.tracks_io import load_any_track, safe_unpickle

N = 9
W, H = 160, 120


@pytest.fixture(scope="module")
def truth() -> Track:
    """Random global and body rotations (what every one of these tools can carry: GVHMR has no hands
    or face), a shape, a path, and a camera whose intrinsics change per frame (a zoom)."""
    rng = np.random.default_rng(11)
    full = np.zeros((N, 55, 3))
    full[:, :22] = rng.normal(scale=0.4, size=(N, 22, 3))
    transl = rng.normal(size=(N, 3)) * 0.3 + [0.0, 0.2, 3.0]
    betas = np.repeat(rng.normal(size=(1, 10)), N, axis=0)
    f = 150.0 + 3.0 * np.arange(N)
    K = np.zeros((N, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f * 1.01, W / 2 + 1.5, H / 2 - 0.5, 1.0
    person = make_person(np.arange(N), full, transl, betas)
    return Track([person], TrackCamera(K, W, H), 30.0, "camera", "truth")


def same(track: Track, truth: Track, tol: float = 1e-5, camera: bool = True) -> None:
    a, b = track.persons[0], truth.persons[0]
    assert list(a.frames) == list(b.frames)
    np.testing.assert_allclose(a.full_pose, b.full_pose, atol=tol)
    np.testing.assert_allclose(a.transl, b.transl, atol=tol)
    np.testing.assert_allclose(a.betas[:, :10], b.betas, atol=tol)
    assert track.frame == "camera"
    if camera:
        np.testing.assert_allclose(track.camera.K, truth.camera.K, atol=tol)


def test_three_tools_give_the_same_track(tmp_path, truth):
    gvhmr = load_any_track(write_gvhmr(tmp_path / "hmr4d_results.pt", truth))
    smplerx = load_track(write_smplerx(tmp_path / "smplerx", truth))
    smpl = load_track(write_smpl_file(tmp_path / "walk.smpl", truth))
    for track in (gvhmr, smplerx, smpl):
        same(track, truth)
    assert smpl.fps == 30.0 and smpl.camera.width == W


def test_own_file_round_trip_and_no_pickles(tmp_path, truth):
    path = write_track(tmp_path / "shot.track.npz", truth)
    back = load_track(path)
    same(back, truth, tol=0.0)
    assert (back.camera.width, back.camera.height, back.fps) == (W, H, 30.0)
    with np.load(path, allow_pickle=False) as data:  # a plain npz: readable without pickle anywhere
        assert str(data["format"]) == "dreamwaltz-track"


def test_smpl_tracks_map_onto_smplx(tmp_path, truth):
    """SMPL (24 joints): the shared 22 joints keep their rotations, jaw, eyes and hands stay neutral."""
    p = truth.persons[0]
    smpl_pose = np.concatenate([p.full_pose[:, :22], np.full((N, 2, 3), 0.3)], axis=1).reshape(N, 72)
    np.savez(
        tmp_path / "amass.npz",
        poses=smpl_pose,
        trans=p.transl,
        betas=p.betas[0],
        mocap_framerate=30.0,
        K=truth.camera.K,
        image_size=np.array([W, H]),
        frame=np.array("camera"),
    )
    track = load_track(tmp_path / "amass.npz")
    same(track, truth)
    assert track.persons[0].model == "smpl"
    assert not np.any(track.persons[0].full_pose[:, 22:])


def test_tram_and_wham_pickles_with_opt_in(tmp_path, truth):
    import joblib

    p = truth.persons[0]
    rotmat = torch.as_tensor(
        axis_angle_to_matrix(np.concatenate([p.full_pose[:, :22], np.zeros((N, 2, 3))], 1).reshape(-1, 3)),
        dtype=torch.float64,
    ).reshape(N, 24, 3, 3)
    hps = tmp_path / "tram" / "hps"
    hps.mkdir(parents=True)
    np.save(
        hps / "hps_track_0.npy",
        {
            "pred_rotmat": rotmat,
            "pred_shape": torch.as_tensor(p.betas),
            "pred_trans": torch.as_tensor(p.transl).reshape(N, 1, 3),
            "frame": torch.arange(N),
            "pred_cam": torch.zeros(N, 3),
        },
        allow_pickle=True,
    )
    f = float(truth.camera.K[0, 0, 0])
    np.save(
        tmp_path / "tram" / "camera.npy",
        {
            "img_focal": f,
            "img_center": np.array([W / 2, H / 2]),
            "pred_cam_R": np.tile(np.eye(3), (N, 1, 1)),
            "pred_cam_T": np.zeros((N, 3)),
        },
        allow_pickle=True,
    )
    tram = load_any_track(tmp_path / "tram", allow_pickle=True)
    same(tram, truth, camera=False)
    assert tram.camera.K[0, 0, 0] == f and np.allclose(tram.camera.world_to_camera, np.eye(4))

    joblib.dump(
        {
            7: {
                "pose": np.concatenate([p.full_pose[:, :22].reshape(N, 66), np.zeros((N, 6))], 1).astype(np.float32),
                "trans": p.transl.astype(np.float32),
                "betas": p.betas.astype(np.float32),
                "pose_world": np.zeros((N, 72)),
                "trans_world": np.zeros((N, 3)),
                "frame_ids": np.arange(N),
                "verts": np.zeros((N, 4, 3), np.float32),
            }
        },
        tmp_path / "wham_output.pkl",
    )
    wham = load_any_track(tmp_path / "wham_output.pkl", allow_pickle=True, width=W, height=H)
    same(wham, truth, camera=False)
    assert wham.camera.K[0, 0, 0] == pytest.approx(np.hypot(W, H))

    for path in (
        tmp_path / "wham_output.pkl",
        hps / "hps_track_0.npy",
    ):  # without the opt-in: refused, whatever is inside
        with pytest.raises(TrackError, match="--allow-pickle"):
            load_any_track(path)


class _RunsCode:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    sentinel = tmp_path / "ran"
    evil = {"pose": np.zeros((2, 72)), "payload": _RunsCode(sentinel)}
    plain = tmp_path / "wham_output.pkl"
    with open(plain, "wb") as f:
        pickle.dump({0: evil}, f)
    as_npy = tmp_path / "hps_track_0.npy"
    np.save(as_npy, np.array(evil, dtype=object), allow_pickle=True)
    for path in (plain, as_npy):
        with pytest.raises(TrackError, match="refused posix.system|refused nt.system"):
            load_any_track(path, allow_pickle=True)
        with pytest.raises(TrackError, match="--allow-pickle"):
            safe_unpickle(path)
    assert not sentinel.exists()  # nothing ran
    # The same file through plain pickle really would run it: the test is not vacuous.
    with open(plain, "rb") as f:
        pickle.load(f)
    assert sentinel.exists()


def test_clear_errors(tmp_path, truth):
    odd = tmp_path / "motion.xyz"
    odd.write_text("hello")
    with pytest.raises(TrackError, match="unknown track format '.xyz'"):
        load_any_track(odd)
    track = load_track(write_track(tmp_path / "t.track.npz", truth))
    with pytest.raises(TrackError, match="has no person 3; it has people 0 to 0"):
        track.person(3)
    with pytest.raises(TrackError, match="covers 9 frames but the video has 12"):
        track.check_video(12, W, H)
    with pytest.raises(TrackError, match="is for 160x120 images but the video is 320x240"):
        track.check_video(N, 320, 240)
    broken = tmp_path / "smplerx"
    write_smplerx(broken, truth)
    (broken / "meta" / "00001_0.json").write_text(json.dumps({"focal": [1.0]}))
    with pytest.raises(TrackError, match="'meta/00001_0.json' has no readable 'focal' and 'princpt'"):
        load_track(broken)
    bad = dict(np.load(tmp_path / "t.track.npz"))
    bad["person0/full_pose"] = bad["person0/full_pose"][:, :22]
    np.savez(tmp_path / "bad.track.npz", **bad)
    with pytest.raises(TrackError, match=r"'full_pose' has shape \(9, 22, 3\), expected \(9, 55, 3\)"):
        read_track_file(tmp_path / "bad.track.npz")


def test_gvhmr_world_frame_recovers_the_camera(tmp_path, truth):
    """GVHMR stores no extrinsics: they come from its two bodies (incam, global)."""
    from dreamwaltz.body import BodyModel
    from dreamwaltz.core.rotations import matrix_to_axis_angle

    world = truth.persons[0]
    body = BodyModel.load("open", dtype=torch.float64)
    with torch.no_grad():
        j0 = body(betas=torch.as_tensor(world.betas)).rest_joints[:, 0].numpy()
    rng = np.random.default_rng(5)
    R = axis_angle_to_matrix(rng.normal(scale=0.3, size=(N, 3)))
    t = rng.normal(size=(N, 3))
    cam_pose = world.full_pose.copy()
    cam_pose[:, 0] = matrix_to_axis_angle(R @ axis_angle_to_matrix(world.full_pose[:, 0]))
    cam_transl = np.einsum("nij,nj->ni", R, j0 + world.transl) + t - j0
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)

    def params(pose, transl):
        return {
            "global_orient": f32(pose[:, 0]),
            "body_pose": f32(pose[:, 1:22].reshape(N, 63)),
            "betas": f32(world.betas),
            "transl": f32(transl),
        }

    torch.save(
        {
            "smpl_params_global": params(world.full_pose, world.transl),
            "smpl_params_incam": params(cam_pose, cam_transl),
            "K_fullimg": f32(truth.camera.K),
        },
        tmp_path / "hmr4d_results.pt",
    )
    track = load_any_track(tmp_path / "hmr4d_results.pt", frame="world")
    assert track.frame == "world"
    np.testing.assert_allclose(track.persons[0].full_pose, world.full_pose, atol=1e-5)
    np.testing.assert_allclose(track.camera.world_to_camera[:, :3, :3], R, atol=1e-5)
    np.testing.assert_allclose(track.camera.world_to_camera[:, :3, 3], t, atol=1e-4)
    np.testing.assert_allclose(track.viewmat(3)[:3, 3], t[3], atol=1e-4)


def test_prompthmr_and_phalp_layouts(tmp_path, truth):
    import joblib

    p = truth.persons[0]
    w2c = np.tile(np.eye(4), (N, 1, 1))
    w2c[:, :3, 3] = [0.1, 0.2, 0.3]
    f = 170.0
    joblib.dump(
        {
            "people": {
                1: {
                    "frames": np.arange(N),
                    "track_id": 1,
                    "bboxes": np.zeros((N, 4)),
                    "smplx_world": {"pose": p.full_pose.reshape(N, 165), "shape": p.betas, "trans": p.transl},
                }
            },
            "camera_world": {
                "Rcw": w2c[:, :3, :3],
                "Tcw": w2c[:, :3, 3],
                "img_focal": f,
                "img_center": np.array([W / 2, H / 2]),
            },
            "timings": {"hps": 1.5},
            "has_tracks": True,
        },
        tmp_path / "results.pkl",
    )
    phmr = load_any_track(tmp_path / "results.pkl", allow_pickle=True)
    assert phmr.frame == "world" and phmr.source.endswith("(PromptHMR)")
    np.testing.assert_allclose(phmr.persons[0].full_pose, p.full_pose, atol=1e-6)
    np.testing.assert_allclose(phmr.camera.world_to_camera, w2c)
    assert phmr.camera.K[0, 0, 0] == f

    R = axis_angle_to_matrix(np.concatenate([p.full_pose[:, :22], np.zeros((N, 2, 3))], 1).reshape(-1, 3)).reshape(
        N, 24, 3, 3
    )
    frames = {
        f"img_{t:06d}.jpg": {
            "tid": [4],
            "time": t,
            "size": [(H, W)],
            "camera": [p.transl[t].astype(np.float32)],
            "smpl": [
                {
                    "global_orient": R[t, :1].astype(np.float32),
                    "body_pose": R[t, 1:].astype(np.float32),
                    "betas": p.betas[t].astype(np.float32),
                }
            ],
        }
        for t in range(N)
    }
    joblib.dump(frames, tmp_path / "demo_video.pkl", compress=3)
    phalp = load_any_track(tmp_path / "demo_video.pkl", allow_pickle=True, kind="phalp")
    same(phalp, truth, camera=False)
    assert phalp.camera.K[0, 0, 0] == pytest.approx(5000.0 / 256.0 * W)


def test_malformed_files_give_one_line_errors(tmp_path, truth):
    """Arrays of the wrong size deep inside each format: a TrackError naming the file, never a traceback."""
    folder = write_smplerx(tmp_path / "smplerx", truth)
    first = folder / "smplx" / "00001_0.npz"
    data = dict(np.load(first))
    data["body_pose"] = np.zeros((5, 3), np.float32)
    np.savez(first, **data)
    with pytest.raises(TrackError, match="smplerx"):
        load_track(folder)
    smpl = write_smpl_file(tmp_path / "walk.smpl", truth)
    data = dict(np.load(smpl))
    data["headPose"] = np.zeros((N, 2, 3), np.float32)
    with open(smpl, "wb") as f:
        np.savez(f, **data)
    with pytest.raises(TrackError, match="'walk.smpl' does not have the layout its format needs"):
        load_track(smpl)
    pt = write_gvhmr(tmp_path / "hmr4d_results.pt", truth)
    data = torch.load(pt, weights_only=True)
    data["smpl_params_incam"]["transl"] = torch.zeros(N, 2)
    torch.save(data, pt)
    with pytest.raises(TrackError, match="hmr4d_results.pt"):
        load_any_track(pt)
    # A .pt that only a full unpickle could read (a pickled module): refused, not run.
    torch.save({"smpl_params_incam": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    with pytest.raises(TrackError, match="is not a GVHMR result readable safely"):
        load_any_track(tmp_path / "module.pt")


def test_camera_reaches_the_end_of_the_video(tmp_path, truth):
    """SMPLer-X stores a camera only with a detection: given the video's length, the last known one holds."""
    track = load_any_track(write_smplerx(tmp_path / "smplerx", truth), num_frames=N + 3)
    assert track.camera.num_frames == N + 3
    np.testing.assert_allclose(track.camera.K[N + 2], truth.camera.K[N - 1], atol=1e-5)
    track.check_video(N + 3, W, H)  # a person leaving before the end is not a mismatch


def test_core_reader_needs_no_torch(tmp_path, truth):
    """What the add-on imports: the core reader works with torch (and every backend package) unimportable."""
    import subprocess
    import sys
    import textwrap

    path = write_track(tmp_path / "t.track.npz", truth)
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "cv2", "av", "smplcodec", "joblib", "smplx", "diffusers"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        from dreamwaltz.core.tracks import load_track
        track = load_track({str(path)!r})
        print("OK", track.persons[0].num_frames, track.camera.K.shape)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "backend")},
    )
    assert f"OK {N} ({N}, 3, 3)" in out.stdout, out.stderr[-2000:]
