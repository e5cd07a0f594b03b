"""A synthetic shot with known truth for the reenactment tests: the open body in a coloured outfit
walking across a textured background, seen by a known static or panning (rotating) camera,
written as an .mp4 with an audio track, and the matching track in several tools' layouts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from dreamwaltz.core.camera import Camera
from dreamwaltz.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamwaltz.core.tracks import Track, TrackCamera, make_person

W, H, T = 160, 120, 12
FPS = Fraction(24)
FOCAL = 150.0
BETAS = np.zeros(10)  # the avatar's own body (the avatar keeps its shape; see docs/REENACT.md)


@dataclass
class Shot:
    video: Path
    frames: np.ndarray  # (T,H,W,3) uint8 as rendered (before encoding)
    background: np.ndarray  # (T,H,W,3) uint8 true background
    person: np.ndarray  # (T,H,W) bool true body silhouette
    track: Track  # camera frame, the truth
    K: np.ndarray  # (3,3)
    world_track: Track  # the same bodies in a y-up world, with the camera's world_to_camera per frame


def texture(width: int, height: int, seed: int = 3) -> np.ndarray:
    """A smooth, feature-rich colour texture (blobs and stripes), values in [0,1]."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 1, (height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    img = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img += 0.25 * np.sin(x / 3.1 + y / 5.3)[..., None] * np.array([1.0, 0.6, 0.2], np.float32)
    return np.clip(0.15 + 0.7 * img, 0, 1)


def walk_pose(t: int) -> np.ndarray:
    """A simple walk cycle in the smplx full-pose order (hips, knees, shoulders swing)."""
    pose = np.zeros((55, 3))
    phase = 2 * np.pi * t / T
    swing = 0.5 * np.sin(phase)
    pose[1, 0], pose[2, 0] = swing, -swing  # hips about x
    pose[4, 0], pose[5, 0] = 0.4 * max(0.0, -np.sin(phase)), 0.4 * max(0.0, np.sin(phase))  # knees
    pose[16, 2], pose[17, 2] = -1.1, 1.1  # arms down from the A/T pose
    pose[16, 1], pose[17, 1] = 0.4 * swing, 0.4 * swing
    return pose


def make_shot(folder: Path, body, panning: bool = False, seed: int = 0) -> Shot:
    import av
    import torch

    from dreamwaltz.render.meshraster import rasterize_mesh
    from dreamwaltz.stage2.oracle import outfit_colors

    folder.mkdir(parents=True, exist_ok=True)
    K = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1.0]])
    pad = 40 if panning else 0
    tex = texture(W + 2 * pad, H + 2 * pad, seed + 3)
    K_tex = K.copy()
    K_tex[0, 2] += pad
    K_tex[1, 2] += pad
    yaw = [0.012 * (t - T / 2) if panning else 0.0 for t in range(T)]  # camera rotation, world -> camera
    R_cam = [axis_angle_to_matrix(np.array([0.0, a, 0.0])) for a in yaw]
    with torch.no_grad():
        rest = body(betas=torch.as_tensor(BETAS[None, : body.num_betas]))
    J0 = rest.rest_joints[0, 0].double().numpy()
    upright = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0])) @ axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))
    full, transl = np.zeros((T, 55, 3)), np.zeros((T, 3))
    flip = np.diag([1.0, -1.0, -1.0])  # y-up world -> the first camera's axes
    world_pose, world_transl, world_to_camera = np.zeros((T, 55, 3)), np.zeros((T, 3)), np.tile(np.eye(4), (T, 1, 1))
    for t in range(T):
        pose = walk_pose(t)
        pelvis_world = np.array([-1.0 + 2.0 * t / (T - 1), -0.1, 2.6])
        R_root = R_cam[t] @ upright @ axis_angle_to_matrix(pose[0])
        pose[0] = matrix_to_axis_angle(R_root)
        full[t] = pose
        transl[t] = R_cam[t] @ pelvis_world - J0
        world_pose[t] = pose
        world_pose[t, 0] = matrix_to_axis_angle(flip.T @ R_cam[t].T @ R_root)
        world_transl[t] = flip.T @ pelvis_world - J0
        world_to_camera[t, :3, :3] = R_cam[t] @ flip
    with torch.no_grad():
        out = body(
            betas=torch.as_tensor(np.repeat(BETAS[None, : body.num_betas], T, 0)),
            full_pose=torch.as_tensor(full),
            transl=torch.as_tensor(transl),
        )
    verts = out.vertices.double().numpy()
    colors = outfit_colors(rest.rest_vertices[0].double().numpy(), rest.rest_joints[0].double().numpy())
    faces = body.faces.numpy()
    frames, backgrounds, persons = [], [], []
    import cv2

    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u)], -1).reshape(-1, 3)
    for t in range(T):
        d = pix @ np.linalg.inv(K).T @ R_cam[t]  # rows: R^T K^-1 x  (directions in the world)
        q = d @ K_tex.T
        mx = (q[:, 0] / q[:, 2] - 0.5).reshape(H, W).astype(np.float32)
        my = (q[:, 1] / q[:, 2] - 0.5).reshape(H, W).astype(np.float32)
        bg = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        r = rasterize_mesh(verts[t], faces, Camera(np.eye(4), K, W, H), colors=colors)
        img = np.where(r.mask[..., None], r.color, bg)
        frames.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
        backgrounds.append(np.clip(np.rint(bg * 255), 0, 255).astype(np.uint8))
        persons.append(r.mask)
    video = folder / ("panning.mp4" if panning else "static.mp4")
    with av.open(str(video), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv444p"
        vs.options = {"crf": "4"}
        a = c.add_stream("aac", rate=44100)
        a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            vf.time_base = 1 / FPS
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        samples = int(44100 * T / FPS)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
        for s in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, s : s + 1024]), format="fltp", layout="mono")
            af.sample_rate = 44100
            af.pts = s
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    person = make_person(np.arange(T), full, transl, np.repeat(BETAS[None], T, 0))
    track = Track([person], TrackCamera(np.repeat(K[None], T, 0), W, H), float(FPS), "camera", "truth")
    world = Track(
        [make_person(np.arange(T), world_pose, world_transl, np.repeat(BETAS[None], T, 0))],
        TrackCamera(np.repeat(K[None], T, 0), W, H, world_to_camera),
        float(FPS),
        "world",
        "truth (world)",
    )
    return Shot(video, np.stack(frames), np.stack(backgrounds), np.stack(persons), track, K, world)


# ------------------------------------------------------------------ the truth in tools' layouts


def write_gvhmr(path: Path, track: Track) -> Path:
    import torch

    p = track.persons[0]
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
    params = {
        "global_orient": f32(p.full_pose[:, 0]),
        "body_pose": f32(p.full_pose[:, 1:22].reshape(-1, 63)),
        "betas": f32(p.betas),
        "transl": f32(p.transl),
    }
    torch.save(
        {
            "smpl_params_global": {k: v.clone() for k, v in params.items()},
            "smpl_params_incam": params,
            "K_fullimg": f32(track.camera.K),
            "net_outputs": {"static_conf_logits": torch.zeros(1, len(p.frames), 6)},
        },
        path,
    )
    return path


def write_smplerx(folder: Path, track: Track) -> Path:
    p = track.persons[0]
    (folder / "smplx").mkdir(parents=True, exist_ok=True)
    (folder / "meta").mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(p.frames):
        name = f"{int(t) + 1:05d}_0"  # SMPLer-X's demo numbers frames from 1
        fp = p.full_pose[i].astype(np.float32)
        np.savez(
            folder / "smplx" / f"{name}.npz",
            global_orient=fp[0:1],
            body_pose=fp[1:22],
            jaw_pose=fp[22:23],
            leye_pose=np.zeros((1, 3), np.float32),
            reye_pose=np.zeros((1, 3), np.float32),
            left_hand_pose=fp[25:40],
            right_hand_pose=fp[40:55],
            betas=p.betas[i : i + 1].astype(np.float32),
            expression=np.zeros((1, 10), np.float32),
            transl=p.transl[i : i + 1].astype(np.float32),
        )
        K = track.camera.K[t]
        meta = {
            "focal": [float(K[0, 0]), float(K[1, 1])],
            "princpt": [float(K[0, 2]), float(K[1, 2])],
            "bbox": [0.0, 0.0, float(W), float(H)],
            "img_path": f"{int(t) + 1:06d}.jpg",
        }
        (folder / "meta" / f"{name}.json").write_text(json.dumps(meta))
    return folder


def write_smpl_file(path: Path, track: Track) -> Path:
    from smplcodec import SMPLCodec, SMPLVersion

    p = track.persons[0]
    n = p.num_frames
    codec = SMPLCodec(
        smpl_version=SMPLVersion.SMPLX,
        shape_parameters=p.betas[0].astype(np.float32),
        frame_count=n,
        frame_rate=float(track.fps),
        body_translation=p.transl.astype(np.float32),
        body_pose=p.full_pose[:, :22].astype(np.float32),
        head_pose=p.full_pose[:, 22:25].astype(np.float32),
        left_hand_pose=p.full_pose[:, 25:40].astype(np.float32),
        right_hand_pose=p.full_pose[:, 40:55].astype(np.float32),
    )
    codec.write(path)
    cam = {"K": track.camera.K.tolist(), "width": track.camera.width, "height": track.camera.height}
    path.with_name(path.name.split(".")[0] + ".camera.json").write_text(json.dumps(cam))
    return path


def flat_avatar(body, num_free: int = 12000, size: float = 0.008, thickness: float = 0.0005):
    """The oracle's reference avatar (the open body in its outfit) with its free Gaussians as thin
    discs in the surface, as trained avatars have them: its silhouette is the body's."""
    from dreamwaltz.core.rotations import matrix_to_quaternion
    from dreamwaltz.stage2.oracle import reference_avatar

    avatar = reference_avatar(body, num_free).export()
    a = avatar.arrays
    rest = a["body/template_vertices"].astype(np.float64) + a["body/shape_dirs"].astype(np.float64) @ a[
        "rig/betas"
    ].astype(np.float64)
    tri = rest[a["body/faces"][a["free/bind_faces"]]]
    e1 = tri[:, 1] - tri[:, 0]
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    a["free/quats"] = matrix_to_quaternion(np.stack([e1, np.cross(n, e1), n], axis=2)).astype(a["free/quats"].dtype)
    a["free/log_scales"] = np.log(np.tile([size, size, thickness], (len(e1), 1))).astype(a["free/log_scales"].dtype)
    return avatar


def docs_figures(out_dir: Path, work: Path) -> None:
    """The before/after frames in docs/REENACT.md and the figures quoted there:
    PYTHONPATH=backend python tests/reenact_shot.py docs/images /tmp/reenact_shot"""
    import torch
    from PIL import Image

    from dreamwaltz.body import BodyModel
    from dreamwaltz.reenact import reenact

    body = BodyModel.load("open", dtype=torch.float64)
    avatar = flat_avatar(BodyModel.load("open"))
    for panning in (False, True):
        shot = make_shot(work, body, panning=panning)
        res = reenact(
            shot.video, shot.track, [(avatar, 0)], work / "out.mp4", work / "plate.mp4", body=body, keep_frames=True
        )
        d = res.plate.astype(float)[res.masks] - shot.background.astype(float)[res.masks]
        iou = [
            ((res.alphas[t] > 127) & shot.person[t]).sum() / ((res.alphas[t] > 127) | shot.person[t]).sum()
            for t in range(T)
        ]
        print(
            f"{'panning' if panning else 'static'}: camera still={res.static_camera}, plate PSNR in the mask "
            f"{10 * np.log10(255**2 / np.mean(d**2)):.2f} dB, avatar IoU min {min(iou):.3f} mean {np.mean(iou):.3f}"
        )
        rows = [np.concatenate([shot.frames[t], res.plate[t], res.frames[t]], axis=1) for t in (0, T // 2, T - 1)]
        grid = np.concatenate(rows, axis=0)
        Image.fromarray(grid).save(out_dir / f"reenact_{'panning' if panning else 'static'}.png")


if __name__ == "__main__":
    import sys

    docs_figures(Path(sys.argv[1]), Path(sys.argv[2]))
