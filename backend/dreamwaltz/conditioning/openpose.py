"""Skeleton images drawn exactly in ControlNet's OpenPose style (facts in core/data, drawing rules
from the annotator: limb ellipses at 60 % intensity, joint dots, HSV rainbow hand edges, blue hand
dots, white face dots), sizes scaled from the annotator's 512-pixel defaults. Pillow, not OpenCV:
Pillow is already a dependency and draws the same filled polygons, lines and circles."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ..core.joints import facts
from .keypoints import Keypoints

_DRAW = facts()["controlnet_openpose_drawing"]
BODY_COLORS = [tuple(c) for c in _DRAW["body_keypoint_colors_by_coco18_index"]]
LIMBS = [(a - 1, b - 1) for a, b in _DRAW["body_limbs_1based_coco18"][:17]]
HAND_EDGES = [tuple(e) for e in _DRAW["hand_edges"]]
# The annotator's HSV rainbow hsv_to_rgb([e/20, 1, 1]) * 255 as OpenCV rounds it into the uint8
# canvas (e.g. 76.5 -> 77 but 229.5 -> 229 because of float error): taken from the facts, not
# recomputed, since Python's round() would differ on the .5 cases.
HAND_EDGE_COLORS = [tuple(e["rgb_int_cv2_rounded"]) for e in _DRAW["hand_edge_colors_hsv"]]
HAND_DOT_COLOR = (0, 0, 255)
FACE_DOT_COLOR = (255, 255, 255)


def _ellipse_polygon(p0, p1, half_width, steps=36):
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_length = math.hypot(x1 - x0, y1 - y0) / 2
    angle = math.atan2(y1 - y0, x1 - x0)
    ca, sa = math.cos(angle), math.sin(angle)
    pts = []
    for i in range(steps):
        t = 2 * math.pi * i / steps
        ex, ey = half_length * math.cos(t), half_width * math.sin(t)
        pts.append((cx + ex * ca - ey * sa, cy + ex * sa + ey * ca))
    return pts


def _dot(draw, xy, radius, color):
    x, y = xy
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def draw_openpose(kp: Keypoints, hands: bool = True, face: bool = True) -> np.ndarray:
    """(H,W,3) uint8 RGB skeleton image on black."""
    scale = min(kp.width, kp.height) / 512.0
    stick, body_r, hand_r, face_r = 4 * scale, max(1.0, 4 * scale), max(1.0, 4 * scale), max(1.0, 3 * scale)
    image = Image.new("RGB", (kp.width, kp.height))
    draw = ImageDraw.Draw(image)
    for i, (a, b) in enumerate(LIMBS):
        if kp.body[a, 2] > 0 and kp.body[b, 2] > 0:
            color = tuple(int(c * 0.6) for c in BODY_COLORS[i])
            draw.polygon(_ellipse_polygon(kp.body[a, :2], kp.body[b, :2], stick), fill=color)
    for i in range(18):
        if kp.body[i, 2] > 0:
            _dot(draw, kp.body[i, :2], body_r, BODY_COLORS[i])
    if hands:
        for pts in (kp.left_hand, kp.right_hand):
            for e, (a, b) in enumerate(HAND_EDGES):
                if pts[a, 2] > 0 and pts[b, 2] > 0:
                    draw.line(
                        [tuple(pts[a, :2]), tuple(pts[b, :2])], fill=HAND_EDGE_COLORS[e], width=max(1, round(2 * scale))
                    )
            for p in pts:
                if p[2] > 0:
                    _dot(draw, p[:2], hand_r, HAND_DOT_COLOR)
    if face:
        for p in kp.face:
            if p[2] > 0:
                _dot(draw, p[:2], face_r, FACE_DOT_COLOR)
    return np.asarray(image)
