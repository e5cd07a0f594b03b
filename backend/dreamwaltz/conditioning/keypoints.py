"""OpenPose keypoints (COCO-18 body, 2 x 21 hands, 68 face) of a posed body, seen by a camera.

Face and hand points hidden behind the body are dropped (as in the paper) by a depth test
against the posed mesh; body joints are always kept; points behind the camera or off the
image are dropped. The depth test uses a coarse z-buffer of the mesh's vertices: vertices are
~1 cm apart, so the nearest vertex per ~2 cm cell is the visible surface there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body.landmarks import LANDMARK_INDEX
from ..core.camera import Camera
from ..core.joints import JOINT_INDEX, facts

_COCO = facts()["smplx_to_controlnet_coco18"]
# Hand-21: wrist, then per finger (thumb, index, middle, ring, pinky) three joints and the tip.
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# How far behind the visible surface a point may lie and still count as seen: hand joints sit
# inside the hand (the wrist ~2.5 cm deep), face points on the skin. Anything behind the torso or
# the head is 10 cm or more further away, so it is still culled.
DEPTH_TOLERANCE_M = {"hand": 0.05, "face": 0.03}
CELL_M = 0.02


@dataclass
class Keypoints:
    body: np.ndarray  # (18,3) x, y, visible (0/1) in pixels, COCO-18 order
    left_hand: np.ndarray  # (21,3)
    right_hand: np.ndarray  # (21,3)
    face: np.ndarray  # (68,3)
    width: int
    height: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k).round(2).tolist() for k in ("body", "left_hand", "right_hand", "face")} | {
            "width": self.width, "height": self.height}


def _points_3d(joints: np.ndarray, landmarks: np.ndarray):
    def source(index):
        return joints[index] if index < 55 else landmarks[index - 55]

    body = np.stack([source(e["smplx_joint_index"]) for e in _COCO])
    hands = {}
    for side in ("left", "right"):
        pts = [joints[JOINT_INDEX[f"{side}_wrist"]]]
        for finger in _FINGERS:
            pts += [joints[JOINT_INDEX[f"{side}_{finger}{i}"]] for i in (1, 2, 3)]
            pts.append(landmarks[LANDMARK_INDEX[f"{side}_{finger}"]])
        hands[side] = np.stack(pts)
    face = landmarks[LANDMARK_INDEX["face_00"]:LANDMARK_INDEX["face_00"] + 68]
    return body, hands["left"], hands["right"], face


def visible_mask(points: np.ndarray, camera: Camera, vertices: np.ndarray, tolerance: float = 0.03) -> np.ndarray:
    """True where a point is not hidden behind the mesh (coarse vertex z-buffer)."""
    uv, z = camera.project(vertices)
    front = z > 1e-3
    if not front.any():  # the body is entirely behind the camera: nothing can hide anything
        return np.ones(len(points), dtype=bool)
    uv, z = uv[front], z[front]
    cell = max(1.0, camera.K[0, 0] * CELL_M / max(float(np.median(z)), 1e-3))
    gw, gh = int(camera.width / cell) + 1, int(camera.height / cell) + 1
    ij = np.floor(uv / cell).astype(int)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < gw) & (ij[:, 1] >= 0) & (ij[:, 1] < gh)
    zbuf = np.full(gw * gh, np.inf)
    np.minimum.at(zbuf, ij[inside, 1] * gw + ij[inside, 0], z[inside])
    puv, pz = camera.project(points)
    pij = np.floor(puv / cell).astype(int)
    ok = (pij[:, 0] >= 0) & (pij[:, 0] < gw) & (pij[:, 1] >= 0) & (pij[:, 1] < gh)
    surface = np.full(len(points), np.inf)
    surface[ok] = zbuf[pij[ok, 1] * gw + pij[ok, 0]]
    return pz <= surface + tolerance


def body_keypoints(joints: np.ndarray, landmarks: np.ndarray, vertices: np.ndarray, camera: Camera,
                   occlusion: bool = True) -> Keypoints:
    """Keypoints of one posed body (numpy (55,3), (89,3), (V,3) in SMPL-X space)."""
    groups = _points_3d(np.asarray(joints, np.float64), np.asarray(landmarks, np.float64))
    out = []
    for gi, pts in enumerate(groups):
        uv, z = camera.project(pts)
        visible = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
        if occlusion and gi > 0:  # hands and face only; body joints are always drawn
            tolerance = DEPTH_TOLERANCE_M["face" if gi == 3 else "hand"]
            visible &= visible_mask(pts, camera, np.asarray(vertices, np.float64), tolerance)
        out.append(np.concatenate([uv, visible[:, None].astype(np.float64)], axis=1))
    return Keypoints(*out, camera.width, camera.height)
