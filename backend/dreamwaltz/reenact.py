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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.camera import Camera
from .core.color import linear_to_srgb, srgb_to_linear
from .core.errors import TrackError
from .core.tracks import Track, TrackPerson, body_up

SHADOW_STRENGTH = 0.55  # darkest the plate gets under a foot
SHADOW_REACH_M = 0.12  # body points this close to the ground cast shadow
SHADOW_SOFT_M = 0.05  # blur of the shadow, in metres on the ground


@dataclass
class ReenactResult:
    frames: np.ndarray | None  # (T,H,W,3) uint8 composited (None when only streamed to the file)
    plate: np.ndarray  # (T,H,W,3) uint8 clean plate
    masks: np.ndarray  # (T,H,W) bool removed-person mask (dilated)
    silhouettes: np.ndarray  # (T,H,W) bool tracked bodies, undilated
    alphas: np.ndarray  # (T,H,W) uint8 avatar coverage, 0-255
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
            out = body(
                betas=torch.as_tensor(betas[s:e], dtype=torch.float64),
                full_pose=torch.as_tensor(person.full_pose[s:e], dtype=torch.float64),
                transl=torch.as_tensor(person.transl[s:e], dtype=torch.float64),
            )
            verts.append(out.vertices.double().numpy())
            pelvis.append(out.rest_joints[:, 0].double().numpy())
    return np.concatenate(verts), np.concatenate(pelvis)


def track_camera(track: Track, t: int, width: int, height: int) -> Camera:
    return Camera(track.viewmat(t), track.camera.K[t], width, height)


def silhouettes(track: Track, people: Sequence[int], body, width: int, height: int) -> np.ndarray:
    """(T,H,W) bool: where the tracked bodies of ``people`` cover the image."""
    import cv2

    from .render.meshraster import rasterize_mesh

    faces = body.faces.numpy()
    out = np.zeros((track.num_frames, height, width), bool)
    for k in people:
        person = track.person(k)
        verts, _ = track_body(body, person)
        for i, t in enumerate(person.frames):
            camera = track_camera(track, int(t), width, height)
            scale = 1.0
            while True:
                try:  # the small rasterizer bounds its work; a body filling a large frame is drawn smaller, then scaled up
                    small = Camera(
                        camera.viewmat,
                        np.diag([scale, scale, 1.0]) @ camera.K,
                        max(1, round(width * scale)),
                        max(1, round(height * scale)),
                    )
                    mask = rasterize_mesh(verts[i], faces, small).mask
                    break
                except ValueError:
                    scale /= 2.0
            if scale < 1.0:
                mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
            out[t] |= mask
    return out


def dilate(masks: np.ndarray, radius: int, square: bool = False) -> np.ndarray:
    import cv2

    if radius <= 0:
        return masks.copy()
    kernel = cv2.getStructuringElement(
        cv2.MORPH_RECT if square else cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)
    )
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
        _, warp = cv2.findTransformECC(
            gb.astype(np.float32),
            ga.astype(np.float32),
            start,
            cv2.MOTION_HOMOGRAPHY,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6),
            ma & mb,
            3,
        )
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


def clean_plate(
    frames: np.ndarray,
    masks: np.ndarray,
    homographies: np.ndarray | None = None,
    max_sources: int = 24,
    inpaint_radius: int = 3,
    reporter=None,
    in_place: bool = False,
) -> np.ndarray:
    """Frames with the masked pixels filled from the other frames (median of the nearest ``max_sources``
    that see them), then spatially inpainted where none does. ``in_place`` fills ``frames`` itself
    (safe: sources are only read outside the grown masks, which are the only pixels written)."""
    import cv2

    T, h, w = masks.shape
    static = homographies is None
    plate = frames if in_place else frames.copy()
    guard = dilate(
        masks, 1, square=True
    )  # a source pixel next to the person (8 neighbours: bilinear reads) may carry its colour
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


def auto_supersample(heights_px: np.ndarray, target_px: float = 256.0, most: int = 4) -> int:
    """Render factor so the body spans at least ``target_px`` pixels: splat avatars are trained on
    renders where the body is hundreds of pixels tall, and box-filtering a finer render down is the
    plain cure for their aliasing in small frames."""
    h = float(np.median(heights_px)) if len(heights_px) else target_px
    return int(min(most, max(1, math.ceil(target_px / max(h, 1.0)))))


class AvatarLayer:
    """One avatar in place of tracked person ``k``, rendered a frame at a time (memory stays one
    frame's worth however long the video). ``supersample``: render factor (None: automatic)."""

    def __init__(
        self,
        avatar,
        track: Track,
        k: int,
        body,
        width: int,
        height: int,
        device="cpu",
        supersample: int | None = None,
    ):
        from .core.posing import pose_body

        self.avatar, self.track, self.device = avatar, track, device
        self.width, self.height = width, height
        self.person = track.person(k)
        _, pelvis = track_body(body, self.person)
        # The avatar keeps its shape; its pelvis goes where the tracked body's is.
        self.transl = self.person.transl + pelvis - np.asarray(avatar.arrays["rig/rest_joints"][0], np.float64)
        self.up = body_up(track, self.person)
        lows, heights = [], []
        for i, t in enumerate(self.person.frames):
            v = pose_body(avatar, self.person.full_pose[i], transl=self.transl[i]).vertices
            lows.append(float((v @ self.up).min()))
            uv, z = track_camera(track, int(t), width, height).project(v)
            if (z > 0).all():
                heights.append(float(np.ptp(uv[:, 1])))
        self.ground = min(lows) if lows else 0.0  # the lowest the soles go over the clip
        self.supersample = auto_supersample(np.array(heights)) if supersample is None else max(1, int(supersample))

    def render(self, t: int):
        """(premultiplied linear-light colour (H,W,3), alpha (H,W), shadow (H,W), pelvis depth) at
        video frame ``t``, or None when the person is not in it. Rendered as avatars are trained
        (``render.AVATAR_RENDER``: antialiased, so Gaussians smaller than a pixel do not swell into a
        halo; blended as light)."""
        from .core.posing import pose_avatar
        from .render import rasterize_posed

        i = self.person.index_of(t)
        if i is None:
            return None
        s, W, H = self.supersample, self.width, self.height
        camera = track_camera(self.track, t, W, H)
        fine = Camera(camera.viewmat, np.diag([s, s, 1.0]) @ camera.K, W * s, H * s)
        posed = pose_avatar(self.avatar, self.person.full_pose[i], transl=self.transl[i])
        out = rasterize_posed(posed, fine, self.device, background=(0.0, 0.0, 0.0))
        # Over black the encoded image decodes to premultiplied linear colour.
        image = srgb_to_linear(out.image.detach().clamp(0, 1).cpu().numpy())
        cover = out.alpha.detach().clamp(0, 1).cpu().numpy()[..., 0]
        rgb = image.reshape(H, s, W, s, 3).mean(axis=(1, 3))  # box filter of premultiplied colour
        alpha = cover.reshape(H, s, W, s).mean(axis=(1, 3))
        shadow = contact_shadow(posed.body.vertices, self.up, self.ground, camera)
        _, z = camera.project(posed.body.joints[:1])
        return rgb.astype(np.float32), alpha.astype(np.float32), shadow, float(z[0])


def composite_frame(plate: np.ndarray, layers: list) -> tuple[np.ndarray, np.ndarray]:
    """One frame: rendered avatars (``AvatarLayer.render`` results) over the plate (H,W,3 uint8),
    farthest first, each darkening what is behind it with its shadow, blended as light (the plate
    decoded from sRGB, the result encoded again). Returns uint8 and coverage."""
    out = srgb_to_linear(plate.astype(np.float32) / 255.0)
    coverage = np.zeros(plate.shape[:2], np.float32)
    for rgb, alpha, shadow, _ in sorted(layers, key=lambda layer: -layer[3]):
        out = rgb + (1.0 - alpha[..., None]) * out * (1.0 - shadow[..., None])
        coverage = 1.0 - (1.0 - coverage) * (1.0 - alpha)
    return np.clip(np.rint(linear_to_srgb(np.clip(out, 0.0, 1.0)) * 255.0), 0, 255).astype(np.uint8), coverage


def render_person(
    avatar,
    track: Track,
    k: int,
    body,
    width: int,
    height: int,
    device="cpu",
    reporter=None,
    supersample: int | None = None,
):
    """Every frame of one layer at once (short clips, tests): colour (T,H,W,3), alpha (T,H,W),
    shadow (T,H,W), depth (T,) (inf where the person is not in the frame)."""
    layer = AvatarLayer(avatar, track, k, body, width, height, device, supersample)
    T = track.num_frames
    rgb = np.zeros((T, height, width, 3), np.float32)
    alpha = np.zeros((T, height, width), np.float32)
    shadow = np.zeros((T, height, width), np.float32)
    depth = np.full(T, np.inf)
    for t in range(T):
        r = layer.render(t)
        if r is not None:
            rgb[t], alpha[t], shadow[t], depth[t] = r
        if reporter is not None:
            reporter.step("avatar", t + 1, T)
    return rgb, alpha, shadow, depth


def composite(plate: np.ndarray, layers: list) -> tuple[np.ndarray, np.ndarray]:
    """``composite_frame`` over every frame of ``render_person`` results."""
    frames, coverage = [], []
    for t in range(plate.shape[0]):
        here = [
            (rgb[t], alpha[t], shadow[t], depth[t]) for rgb, alpha, shadow, depth in layers if np.isfinite(depth[t])
        ]
        f, c = composite_frame(plate[t], here)
        frames.append(f)
        coverage.append(c)
    return np.stack(frames), np.stack(coverage)


# ------------------------------------------------------------------ the whole job


def reenact(
    video_path,
    track: Track,
    pairs: Sequence[tuple],
    out_path=None,
    plate_out=None,
    body=None,
    device="cpu",
    dilation: int | None = None,
    reporter=None,
    supersample: int | None = None,
    keep_frames: bool | None = None,
) -> ReenactResult:
    """Replace each (avatar, person index) of ``pairs`` in the video; write ``out_path`` (and the clean
    plate to ``plate_out``) with the video's size, frame rate, frame count, pixel format and audio.
    Output frames are streamed to the file; ``keep_frames`` (default: when there is no file) also
    returns them."""
    from .video_io import read_video, write_video

    if body is None:
        import torch

        from .body import BodyModel

        body = BodyModel.load("open", dtype=torch.float64)
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
    W, H, T = info.width, info.height, info.num_frames
    sil = silhouettes(track, people, body, W, H)
    masks = dilate(sil, default_dilation(W, H) if dilation is None else dilation)
    Hs, static = frame_homographies(frames, masks)
    plate = clean_plate(frames, masks, None if static else Hs, reporter=reporter, in_place=True)
    del frames  # now the plate
    if plate_out is not None:
        write_video(plate_out, plate, info.fps, W, H, audio_from=Path(video_path), pix_fmt=info.pix_fmt)
    layers = [AvatarLayer(avatar, track, k, body, W, H, device, supersample) for avatar, k in pairs]
    coverage = np.zeros((T, H, W), np.uint8)
    keep = out_path is None if keep_frames is None else keep_frames
    kept = []

    def output():
        for t in range(T):
            frame, cover = composite_frame(
                plate[t], [r for r in (layer.render(t) for layer in layers) if r is not None]
            )
            coverage[t] = np.rint(cover * 255.0).astype(np.uint8)
            if keep:
                kept.append(frame)
            if reporter is not None:
                reporter.step("render", t + 1, T)
            yield frame

    if out_path is not None:
        write_video(out_path, output(), info.fps, W, H, audio_from=Path(video_path), pix_fmt=info.pix_fmt)
    else:
        for _ in output():
            pass
    return ReenactResult(np.stack(kept) if kept else None, plate, masks, sil, coverage, static)
