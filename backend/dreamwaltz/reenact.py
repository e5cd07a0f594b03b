"""Human video reenactment: a tracked person replaced by an avatar (docs/REENACT.md).

1. Mask: the body model posed by the track, rasterised through the track's camera, dilated.
2. Clean plate: each masked pixel filled from the other frames where it is visible (nearest
   frames first, median of what they show), frames aligned by homographies (SIFT matches on the
   unmasked background with RANSAC, refined by ECC; identity when the camera is still); pixels no
   frame shows are inpainted (OpenCV Telea).
3. The avatar posed per frame by the same track (``core.posing.pose_avatar``, its pelvis put where
   the tracked body's pelvis is), rendered with the track's camera (``render.rasterize``), over
   the plate with a soft contact shadow under the feet.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .core.camera import Camera
from .core.errors import TrackError
from .core.rotations import axis_angle_to_matrix
from .core.tracks import Track, TrackPerson

SHADOW_STRENGTH = 0.55  # darkest the plate gets under a foot
SHADOW_REACH_M = 0.12  # body points this close to the ground cast shadow
SHADOW_SOFT_M = 0.05  # blur of the shadow, in metres on the ground


@dataclass
class ReenactResult:
    frames: np.ndarray  # (T,H,W,3) uint8 composited
    plate: np.ndarray  # (T,H,W,3) uint8 clean plate
    masks: np.ndarray  # (T,H,W) bool removed-person mask (dilated)
    silhouettes: np.ndarray  # (T,H,W) bool tracked bodies, undilated
    alphas: np.ndarray  # (T,H,W) float avatar coverage
    static_camera: bool


# ------------------------------------------------------------------ tracked bodies

def _betas_for(body, betas: np.ndarray) -> np.ndarray:
    out = np.zeros((betas.shape[0], body.num_betas))
    n = min(body.num_betas, betas.shape[1])
    out[:, :n] = betas[:, :n]
    return out


def track_body(body, person: TrackPerson, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Posed vertices (N,V,3) of ``body`` (a ``BodyModel``) per present frame, and the rest pelvis
    (N,3) at the tracked shape (where the track's translation is measured from)."""
    import torch

    verts, pelvis = [], []
    betas = _betas_for(body, person.betas)
    with torch.no_grad():
        for s in range(0, person.num_frames, chunk):
            e = min(person.num_frames, s + chunk)
            out = body(betas=torch.as_tensor(betas[s:e], dtype=torch.float64),
                       full_pose=torch.as_tensor(person.full_pose[s:e], dtype=torch.float64),
                       transl=torch.as_tensor(person.transl[s:e], dtype=torch.float64))
            verts.append(out.vertices.double().numpy())
            pelvis.append(out.rest_joints[:, 0].double().numpy())
    return np.concatenate(verts), np.concatenate(pelvis)


def track_camera(track: Track, t: int, width: int, height: int) -> Camera:
    return Camera(track.viewmat(t), track.camera.K[t], width, height)


def silhouettes(track: Track, people: Sequence[int], body, width: int, height: int) -> np.ndarray:
    """(T,H,W) bool: where the tracked bodies of ``people`` cover the image."""
    from .stage1.meshraster import rasterize_mesh

    faces = body.faces.numpy()
    out = np.zeros((track.num_frames, height, width), bool)
    for k in people:
        person = track.person(k)
        verts, _ = track_body(body, person)
        for i, t in enumerate(person.frames):
            out[t] |= rasterize_mesh(verts[i], faces, track_camera(track, int(t), width, height)).mask
    return out


def dilate(masks: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    if radius <= 0:
        return masks.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in masks])


def default_dilation(width: int, height: int) -> int:
    """Pixels added around the tracked body: trackers miss hair, clothes and motion blur by a few % of the frame."""
    return max(2, int(round(0.01 * float(np.hypot(width, height)))))


# ------------------------------------------------------------------ camera motion

def _pair_homography(img_a: np.ndarray, img_b: np.ndarray, use_a: np.ndarray, use_b: np.ndarray) -> np.ndarray:
    """H taking pixel coordinates of frame a to frame b, from their unmasked backgrounds."""
    import cv2

    ga = cv2.cvtColor(img_a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(img_b, cv2.COLOR_RGB2GRAY)
    ma, mb = use_a.astype(np.uint8) * 255, use_b.astype(np.uint8) * 255
    H = None
    sift = cv2.SIFT_create()
    ka, da = sift.detectAndCompute(ga, ma)
    kb, db = sift.detectAndCompute(gb, mb)
    if da is not None and db is not None and len(ka) >= 8 and len(kb) >= 8:
        matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
        good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
        if len(good) >= 8:
            pa = np.float32([ka[m.queryIdx].pt for m in good])
            pb = np.float32([kb[m.trainIdx].pt for m in good])
            H, inliers = cv2.findHomography(pa, pb, cv2.RANSAC, 2.0)
            if H is not None and int(inliers.sum()) < 8:
                H = None
    # ECC refines (or, on images too small or plain for features, finds) the homography densely.
    # findTransformECC's warp maps template (b) coordinates into the input image (a).
    start = np.eye(3, dtype=np.float32) if H is None else np.linalg.inv(H).astype(np.float32)
    try:
        _, warp = cv2.findTransformECC(gb.astype(np.float32), ga.astype(np.float32), start, cv2.MOTION_HOMOGRAPHY,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6), ma & mb, 3)
        H = np.linalg.inv(warp.astype(np.float64))
    except cv2.error:
        pass
    return np.eye(3) if H is None else H / H[2, 2]


def frame_homographies(frames: np.ndarray, masks: np.ndarray, still_px: float = 0.3) -> tuple[np.ndarray, bool]:
    """(T,3,3) homographies taking each frame's pixels to frame 0's, and whether the camera is still
    (every corner moves less than ``still_px``: then all are the identity, exactly)."""
    T, h, w = masks.shape
    Hs = np.tile(np.eye(3), (T, 1, 1))
    for t in range(1, T):
        Hs[t] = Hs[t - 1] @ _pair_homography(frames[t], frames[t - 1], ~masks[t], ~masks[t - 1])
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    moved = 0.0
    for H in Hs:
        p = H @ corners
        moved = max(moved, float(np.abs(p[:2] / p[2] - corners[:2]).max()))
    if moved < still_px:
        return np.tile(np.eye(3), (T, 1, 1)), True
    return Hs, False


# ------------------------------------------------------------------ clean plate

def clean_plate(frames: np.ndarray, masks: np.ndarray, homographies: Optional[np.ndarray] = None,
                max_sources: int = 24, inpaint_radius: int = 3, reporter=None) -> np.ndarray:
    """Frames with the masked pixels filled from the other frames (median of the nearest ``max_sources``
    that see them), then spatially inpainted where none does."""
    import cv2

    T, h, w = masks.shape
    static = homographies is None
    plate = frames.copy()
    guard = dilate(masks, 1)  # a source pixel next to the person may carry its colour (blur, resampling)
    for t in range(T):
        hole = masks[t]
        if hole.any():
            ys, xs = np.nonzero(hole)
            sources = sorted((s for s in range(T) if s != t), key=lambda s: abs(s - t))[:max_sources]
            samples = np.full((len(sources), len(ys), 3), np.nan, np.float32)
            for j, s in enumerate(sources):
                if static:
                    ok = ~guard[s][ys, xs]
                    samples[j, ok] = frames[s][ys[ok], xs[ok]]
                    continue
                G = np.linalg.inv(homographies[s]) @ homographies[t]  # t -> s
                p = G @ np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
                u, v = p[0] / p[2], p[1] / p[2]
                inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
                ui, vi = np.clip(np.rint(u), 0, w - 1).astype(int), np.clip(np.rint(v), 0, h - 1).astype(int)
                ok = inside & ~guard[s][vi, ui]
                if ok.any():
                    mx, my = u[ok].astype(np.float32)[None], v[ok].astype(np.float32)[None]
                    samples[j, ok] = cv2.remap(frames[s], mx, my, cv2.INTER_LINEAR)[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: pixels no frame sees
                fill = np.nanmedian(samples, axis=0)
            seen = np.isfinite(fill).all(axis=1)
            plate[t][ys[seen], xs[seen]] = np.clip(np.rint(fill[seen]), 0, 255).astype(np.uint8)
            unseen = np.zeros((h, w), np.uint8)
            unseen[ys[~seen], xs[~seen]] = 255
            if unseen.any():
                plate[t] = cv2.inpaint(plate[t], unseen, inpaint_radius, cv2.INPAINT_TELEA)
        if reporter is not None:
            reporter.step("plate", t + 1, T)
    return plate


# ------------------------------------------------------------------ avatar and shadow

def body_up(track: Track, person: TrackPerson) -> np.ndarray:
    """The ground's normal in the track's frame: world +Y, or (camera frame) the tracked root's mean up."""
    if track.frame == "world":
        return np.array([0.0, 1.0, 0.0])
    up = axis_angle_to_matrix(person.full_pose[:, 0])[:, :, 1].mean(axis=0)
    return up / max(float(np.linalg.norm(up)), 1e-9)


def contact_shadow(vertices: np.ndarray, up: np.ndarray, ground: float, camera: Camera) -> np.ndarray:
    """(H,W) darkening in [0, SHADOW_STRENGTH]: body points near the ground, dropped onto it and blurred."""
    import cv2

    W, H = camera.width, camera.height
    height = vertices @ up - ground
    near = height < SHADOW_REACH_M
    shadow = np.zeros((H, W), np.float32)
    if not near.any():
        return shadow
    points = vertices[near] - np.maximum(height[near], 0.0)[:, None] * up
    uv, z = camera.project(points)
    ok = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    if not ok.any():
        return shadow
    weight = np.exp(-np.maximum(height[near][ok], 0.0) / (SHADOW_REACH_M / 3))
    np.add.at(shadow, (uv[ok, 1].astype(int), uv[ok, 0].astype(int)), weight.astype(np.float32))
    sigma = max(0.7, float(camera.K[0, 0]) * SHADOW_SOFT_M / float(np.median(z[ok])))
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    top = float(np.percentile(shadow[shadow > 0], 95)) if (shadow > 0).any() else 1.0
    return SHADOW_STRENGTH * np.clip(shadow / max(top, 1e-12), 0.0, 1.0)


def antialiased_opacities(means: np.ndarray, covariances: np.ndarray, opacities: np.ndarray, camera: Camera,
                          eps2d: float = 0.3) -> np.ndarray:
    """Opacities scaled by sqrt(det S / det(S + eps2d I)) of each projected 2D covariance S (gsplat's
    "antialiased" mode, from Mip-Splatting): the rasterizer's eps2d low-pass otherwise swells
    Gaussians smaller than a pixel, and an avatar seen smaller than it was trained grows a halo."""
    R, t = camera.viewmat[:3, :3], camera.viewmat[:3, 3]
    p = means @ R.T + t
    z = np.maximum(p[:, 2], 1e-6)
    fx, fy = camera.K[0, 0], camera.K[1, 1]
    J = np.zeros((len(p), 2, 3))
    J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * p[:, 0] / z ** 2
    J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * p[:, 1] / z ** 2
    S = J @ (R @ covariances @ R.T) @ np.transpose(J, (0, 2, 1))
    det = S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] * S[:, 1, 0]
    blurred = (S[:, 0, 0] + eps2d) * (S[:, 1, 1] + eps2d) - S[:, 0, 1] * S[:, 1, 0]
    return opacities * np.sqrt(np.clip(det, 0.0, None) / np.maximum(blurred, 1e-12))


def auto_supersample(heights_px: np.ndarray, target_px: float = 192.0, most: int = 4) -> int:
    """Render factor so the body spans at least ``target_px`` pixels: splat avatars are trained on
    renders where the body is hundreds of pixels tall, and box-filtering a finer render down is the
    plain cure for their aliasing in small frames."""
    h = float(np.median(heights_px)) if len(heights_px) else target_px
    return int(min(most, max(1, math.ceil(target_px / max(h, 1.0)))))


def render_person(avatar, track: Track, k: int, body, width: int, height: int, device="cpu", reporter=None,
                  supersample: Optional[int] = None):
    """Premultiplied colour (T,H,W,3), alpha (T,H,W), shadow (T,H,W) and pelvis depth (T,) of
    ``avatar`` in place of tracked person ``k``. ``supersample``: render factor (None: automatic)."""
    from .core.posing import pose_avatar
    from .render import rasterize_posed

    person = track.person(k)
    _, pelvis = track_body(body, person)
    avatar_pelvis = np.asarray(avatar.arrays["rig/rest_joints"][0], np.float64)
    T = track.num_frames
    rgb = np.zeros((T, height, width, 3), np.float32)
    alpha = np.zeros((T, height, width), np.float32)
    shadow = np.zeros((T, height, width), np.float32)
    depth = np.full(T, np.inf)
    up = body_up(track, person)
    posed_all, heights = [], []
    for i, t in enumerate(person.frames):
        posed = pose_avatar(avatar, person.full_pose[i], transl=person.transl[i] + pelvis[i] - avatar_pelvis)
        posed_all.append(posed)
        uv, z = track_camera(track, int(t), width, height).project(posed.body.vertices)
        if (z > 0).all():
            heights.append(float(np.ptp(uv[:, 1])))
    ground = min(float((p.body.vertices @ up).min()) for p in posed_all) if posed_all else 0.0  # lowest sole over the clip
    s = auto_supersample(np.array(heights)) if supersample is None else int(supersample)
    for i, t in enumerate(person.frames):
        t = int(t)
        camera = track_camera(track, t, width, height)
        fine = Camera(camera.viewmat, np.diag([s, s, 1.0]) @ camera.K, width * s, height * s)
        posed = posed_all[i]
        posed = replace(posed, opacities=antialiased_opacities(posed.means, posed.covariances, posed.opacities, fine))
        out = rasterize_posed(posed, fine, device, background=(0.0, 0.0, 0.0))
        image = out.image.detach().clamp(0, 1).cpu().numpy()
        cover = out.alpha.detach().clamp(0, 1).cpu().numpy()[..., 0]
        rgb[t] = image.reshape(height, s, width, s, 3).mean(axis=(1, 3))  # box filter of premultiplied colour
        alpha[t] = cover.reshape(height, s, width, s).mean(axis=(1, 3))
        shadow[t] = contact_shadow(posed.body.vertices, up, ground, camera)
        _, z = camera.project(posed.body.joints[:1])
        depth[t] = float(z[0])
        if reporter is not None:
            reporter.step("avatar", i + 1, person.num_frames)
    return rgb, alpha, shadow, depth


def composite(plate: np.ndarray, layers: list) -> tuple[np.ndarray, np.ndarray]:
    """Avatars over the plate, farthest first, each darkening what is behind it with its shadow."""
    out = plate.astype(np.float32) / 255.0
    total_alpha = np.zeros(plate.shape[:3], np.float32)
    T = plate.shape[0]
    for t in range(T):
        for rgb, alpha, shadow, depth in sorted(layers, key=lambda layer: -layer[3][t]):
            a = alpha[t][..., None]
            out[t] = rgb[t] + (1.0 - a) * out[t] * (1.0 - shadow[t][..., None])
            total_alpha[t] = 1.0 - (1.0 - total_alpha[t]) * (1.0 - alpha[t])
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), total_alpha


# ------------------------------------------------------------------ the whole job

def reenact(video_path, track: Track, pairs: Sequence[tuple], out_path=None, plate_out=None, body=None,
            device="cpu", dilation: Optional[int] = None, reporter=None, supersample: Optional[int] = None) -> ReenactResult:
    """Replace each (avatar, person index) of ``pairs`` in the video; write ``out_path`` (and the clean
    plate to ``plate_out``) with the video's size, frame rate, frame count and audio."""
    from .video_io import read_video, write_video

    if body is None:
        from .body import BodyModel

        body = BodyModel.load("open", dtype=__import__("torch").float64)
    frames, info = read_video(video_path)
    track = track.with_image_size(info.width, info.height)
    track.check_video(info.num_frames, info.width, info.height)
    people = [k for _, k in pairs]
    for k in people:
        track.person(k)
    if len(set(people)) != len(people):
        raise TrackError("The same person is given two avatars.", "Give each --person once.")
    if reporter is not None:
        reporter.info("reenact", f"{info.num_frames} frames {info.width}x{info.height} at {float(info.fps):.3f} fps")
    sil = silhouettes(track, people, body, info.width, info.height)
    masks = dilate(sil, default_dilation(info.width, info.height) if dilation is None else dilation)
    Hs, static = frame_homographies(frames, masks)
    plate = clean_plate(frames, masks, None if static else Hs, reporter=reporter)
    layers = [render_person(avatar, track, k, body, info.width, info.height, device, reporter, supersample) for avatar, k in pairs]
    result, alpha = composite(plate, layers)
    if out_path is not None:
        write_video(out_path, result, info.fps, info.width, info.height, audio_from=Path(video_path), pix_fmt=info.pix_fmt)
    if plate_out is not None:
        write_video(plate_out, plate, info.fps, info.width, info.height, audio_from=Path(video_path), pix_fmt=info.pix_fmt)
    return ReenactResult(result, plate, masks, sil, alpha, static)
