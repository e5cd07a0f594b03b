"""A contact sheet that shows at once whether a retarget worked (``dreamwaltz retarget-preview``).

For a few frames of a clip: the source skeleton beside the avatar's skinned body mesh posed by the
retargeted motion (three-quarter view, the floor drawn), with that frame's figures (the mesh's
lowest point above the floor, the foot slide, the head above the pelvis) under each pair, and the
bone mapping at the bottom. Drawn with PIL (flat-shaded triangles, painter's order): no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..core.joints import JOINT_INDEX, PARENTS
from ..core.motion import TargetSkeleton, forward_kinematics_batch, load_motion, read_bvh
from ..core.motion.retarget import sole_points
from ..core.motion.vrma import read_vrma
from ..core.posing import pose_body
from ..core.rotations import axis_angle_to_matrix

PANEL_W, PANEL_H = 220, 330
PX_PER_M = 140.0
VIEW_DEG = 35.0  # turned about the vertical, so walks and arm swings both show
BACKGROUND, FLOOR, BONE, JOINT_DOT, TEXT = (250, 250, 247), (120, 120, 120), (40, 90, 200), (200, 60, 40), (20, 20, 20)


@dataclass
class FrameFigures:
    frame: int
    lowest_m: float  # the posed body mesh's lowest point above the floor
    slide_m_s: float  # horizontal speed of the lowest sole point (a foot on the floor should not slide)
    head_above_pelvis_m: float


def _project(points: np.ndarray, centre_x: float) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X space (Y up) -> panel pixels and a depth per point (larger is nearer)."""
    a = np.radians(VIEW_DEG)
    u = points[..., 0] * np.cos(a) + points[..., 2] * np.sin(a)
    depth = -points[..., 0] * np.sin(a) + points[..., 2] * np.cos(a)
    px = PANEL_W / 2 + (u - centre_x) * PX_PER_M
    py = PANEL_H - 30 - points[..., 1] * PX_PER_M
    return np.stack([px, py], axis=-1), depth


def _centre(point: np.ndarray) -> float:
    a = np.radians(VIEW_DEG)
    return float(point[0] * np.cos(a) + point[2] * np.sin(a))


def _floor(draw: ImageDraw.ImageDraw, x0: int) -> None:
    y = PANEL_H - 30
    draw.line([(x0 + 6, y), (x0 + PANEL_W - 6, y)], fill=FLOOR, width=2)


def _draw_mesh(draw, vertices, faces, x0, centre_x) -> None:
    xy, depth = _project(vertices, centre_x)
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.6, 0.75])
    shade = 0.35 + 0.65 * np.abs(normal @ (light / np.linalg.norm(light)))
    order = np.argsort(depth[faces].mean(axis=1))  # far first
    for f in order:
        c = int(80 + 150 * shade[f])
        pts = [(x0 + float(p[0]), float(p[1])) for p in xy[faces[f]]]
        draw.polygon(pts, fill=(c, int(c * 0.93), int(c * 0.85)))


def _draw_skeleton(draw, points, parents, x0, centre_x) -> None:
    xy, _ = _project(points, centre_x)
    for j, p in enumerate(parents):
        if p >= 0:
            draw.line([(x0 + xy[p, 0], xy[p, 1]), (x0 + xy[j, 0], xy[j, 1])], fill=BONE, width=2)
    for x, y in xy:
        draw.ellipse([x0 + x - 2, y - 2, x0 + x + 2, y - 2 + 4], fill=JOINT_DOT)


def source_skeleton(clip: Path, seq, target: TargetSkeleton):
    """(points (T,J,3) in the avatar's space, parents) of the clip's own skeleton, standing on the floor."""
    if clip.suffix.lower() in (".bvh", ".vrma") and seq.source_basis is not None:
        bvh = read_bvh(clip) if clip.suffix.lower() == ".bvh" else read_vrma(clip)[0]
        _, P = bvh.world_transforms()
        points = (P @ seq.source_basis.T) * seq.source_scale
        parents = bvh.parents
    else:  # SMPL-family files: the motion's own SMPL-X skeleton
        _, points = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
        parents = PARENTS
    lowest = points[..., 1].min(axis=1)
    points = points - np.array([0.0, np.percentile(lowest, 5), 0.0])  # its contact level on the floor
    return points, parents


def contact_sheet(clip, avatar, frames: int = 8, mapping=None) -> tuple[Image.Image, list[FrameFigures], list[str]]:
    """The sheet for ``clip`` (a motion file) on ``avatar`` (an ``H3GAAvatar``), its per-frame figures
    and the retargeting report (bone mapping)."""
    clip = Path(clip)
    target = TargetSkeleton.from_avatar(avatar)
    seq = load_motion(clip, target, mapping=mapping)
    T = seq.num_frames
    picks = np.unique(np.linspace(0, T - 1, max(1, min(frames, T))).round().astype(int))
    W, P = forward_kinematics_batch(axis_angle_to_matrix(seq.full_pose), target.rest_joints, seq.transl)
    soles = sole_points(W, P, target)
    lowest_sole = np.argmin(soles[:, :, 1], axis=1)
    low_xz = soles[np.arange(T), lowest_sole][:, [0, 2]]
    slide = np.zeros(T)
    if T > 1:
        step = np.linalg.norm(np.diff(low_xz, axis=0), axis=1) * seq.fps
        slide = np.concatenate([step, step[-1:]])
    src, parents = source_skeleton(clip, seq, target)
    faces = avatar.arrays["body/faces"]
    cols = min(4, len(picks))
    rows = -(-len(picks) // cols)
    cell_w, cell_h = 2 * PANEL_W + 10, PANEL_H + 52
    report = list(seq.notes)
    map_lines = [line for line in report if "<-" in line or line.startswith("not used")]
    other = [line for line in report if line not in map_lines]
    text_cols = max(1, max(cols * cell_w, 880) // 400)  # a mapping line is up to ~65 characters of 6 px
    per_col = -(-len(map_lines) // text_cols) if map_lines else 0
    text_h = 14 * (per_col + len(other) + 3)
    sheet = Image.new("RGB", (max(cols * cell_w + 20, 900), rows * cell_h + text_h + 40), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (10, 8),
        f"{clip.name} -> avatar: {T} frames at {seq.fps:g} fps; left: the source skeleton, right: the avatar",
        fill=TEXT,
    )
    figures = []
    for n, f in enumerate(picks):
        x0, y0 = 10 + (n % cols) * cell_w, 30 + (n // cols) * cell_h
        panel = Image.new("RGB", (2 * PANEL_W, PANEL_H), BACKGROUND)
        pd = ImageDraw.Draw(panel)
        _floor(pd, 0)
        _floor(pd, PANEL_W)
        _draw_skeleton(pd, src[f], parents, 0, _centre(src[f, 0]))
        body = pose_body(avatar, seq.full_pose[f], transl=seq.transl[f])
        vertices = body.vertices - np.array([0.0, target.ground_y, 0.0])
        _draw_mesh(pd, vertices, faces, PANEL_W, _centre(body.joints[0]))
        sheet.paste(panel, (x0, y0))
        fig = FrameFigures(
            int(f),
            float(vertices[:, 1].min()),
            float(slide[f]),
            float(body.joints[JOINT_INDEX["head"], 1] - body.joints[JOINT_INDEX["pelvis"], 1]),
        )
        figures.append(fig)
        draw.text(
            (x0 + 4, y0 + PANEL_H + 4),
            f"frame {f}: lowest mesh point {100 * fig.lowest_m:+.1f} cm\n"
            f"foot slide {100 * fig.slide_m_s:.0f} cm/s, head above pelvis {100 * fig.head_above_pelvis_m:.0f} cm",
            fill=TEXT,
        )
    y = 30 + rows * cell_h + 6
    draw.text((10, y), "Bone mapping (SMPL-X joint <- source bone):", fill=TEXT)
    y += 16
    col_w = max(cols * cell_w, 880) // text_cols
    for i, line in enumerate(map_lines):
        draw.text((10 + (i // max(per_col, 1)) * col_w, y + 14 * (i % max(per_col, 1))), line[: col_w // 6], fill=TEXT)
    y += 14 * per_col + 6
    for line in other:
        draw.text((10, y), line[: (cols * cell_w) // 6], fill=TEXT)
        y += 14
    return sheet, figures, report


def retarget_preview(clip, avatar, out, frames: int = 8, mapping=None) -> tuple[Path, list[FrameFigures]]:
    """Write the contact sheet of ``clip`` on ``avatar`` (an ``H3GAAvatar`` or a .h3ga path) to ``out`` (PNG)."""
    if not hasattr(avatar, "arrays"):
        from ..core.h3ga import read_h3ga

        avatar = read_h3ga(avatar)
    sheet, figures, _ = contact_sheet(clip, avatar, frames, mapping)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out, figures


__all__ = ["FrameFigures", "contact_sheet", "retarget_preview"]
