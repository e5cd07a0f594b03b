"""Choosing the open body's 89 landmark points on its mesh (used once, by build_open_body).

Geometric rules in SMPL-X space (+Y up, facing +Z, the subject's left on +X): the nose tip is the
most forward face vertex, ears the most lateral head vertices at eye height, toes and heels the
extreme sole vertices, fingertips the farthest vertices along each distal finger bone. The 68 face
points follow the iBUG-68 layout, drawn in units of the eye distance around the eyes' midpoint and
snapped onto the front of the face.
"""

from __future__ import annotations

import numpy as np

from ..core.joints import JOINT_INDEX
from .landmarks import vertex_as_barycentric


def ibug68_template() -> np.ndarray:
    """(68,2) face points (u to the subject's left, v up) in eye-distance units, eyes at v = 0."""
    pts = []
    theta = np.linspace(np.pi, 2 * np.pi, 17)
    pts += list(zip(1.05 * np.cos(theta), 0.05 + 1.55 * np.sin(theta)))  # 0-16 jaw, subject right -> left
    for centre in (-0.55, 0.55):  # 17-21 right brow, 22-26 left brow
        u = np.linspace(centre - 0.35, centre + 0.35, 5)
        pts += list(zip(u, 0.33 + 0.08 * np.cos((u - centre) / 0.35 * np.pi / 2)))
    pts += [(0.0, v) for v in np.linspace(0.05, -0.5, 4)]  # 27-30 nose bridge
    pts += [(-0.25, -0.6), (-0.13, -0.65), (0.0, -0.67), (0.13, -0.65), (0.25, -0.6)]  # 31-35
    for centre, order in ((-0.5, 1), (0.5, -1)):  # 36-41 right eye, 42-47 left eye (from the outer/inner corner)
        a = np.array([0, 60, 120, 180, 240, 300]) * np.pi / 180
        u = centre - order * 0.18 * np.cos(a) if order == 1 else centre - 0.18 * np.cos(a)
        v = 0.07 * np.sin(a)
        pts += list(zip(u, v))
    a = np.linspace(np.pi, 0, 7)  # 48-54 upper outer lip, right corner -> left corner
    pts += list(zip(0.4 * np.cos(a), -1.0 + 0.18 * np.sin(a)))
    a = np.linspace(-np.pi / 6, -5 * np.pi / 6, 5)  # 55-59 lower outer lip, left -> right
    pts += list(zip(0.4 * np.cos(a), -1.0 + 0.18 * np.sin(a)))
    a = np.linspace(np.pi, 0, 5)  # 60-64 inner upper, right -> left
    pts += list(zip(0.3 * np.cos(a), -1.0 + 0.06 * np.sin(a)))
    a = np.linspace(-np.pi / 4, -3 * np.pi / 4, 3)  # 65-67 inner lower, left -> right
    pts += list(zip(0.3 * np.cos(a), -1.0 + 0.06 * np.sin(a)))
    return np.array(pts)


def choose_landmarks(vertices, faces, weights, joints):
    def owned(*names, threshold=0.5):
        return np.nonzero(weights[:, [JOINT_INDEX[n] for n in names]].sum(axis=1) > threshold)[0]

    head = owned("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")
    eye_l, eye_r = joints[JOINT_INDEX["left_eye_smplhf"]], joints[JOINT_INDEX["right_eye_smplhf"]]
    mid_eye = 0.5 * (eye_l + eye_r)
    ied = np.linalg.norm(eye_l - eye_r)
    chosen = {}
    front = head[vertices[head, 2] > mid_eye[2] - 0.02]
    central = front[np.abs(vertices[front, 0]) < 0.01]
    low = central[(vertices[central, 1] < mid_eye[1]) & (vertices[central, 1] > mid_eye[1] - 1.2 * ied)]
    chosen["nose"] = low[np.argmax(vertices[low, 2])]
    for name, eye in (("left_eye", eye_l), ("right_eye", eye_r)):
        near = front[np.linalg.norm(vertices[front, :2] - eye[:2], axis=1) < 0.25 * ied]
        chosen[name] = near[np.argmax(vertices[near, 2])]
    band = head[np.abs(vertices[head, 1] - (mid_eye[1] - 0.3 * ied)) < 0.4 * ied]
    chosen["left_ear"], chosen["right_ear"] = band[np.argmax(vertices[band, 0])], band[np.argmin(vertices[band, 0])]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        foot = owned(f"{side}_foot")
        medial = foot[sign * vertices[foot, 0] <= np.median(sign * vertices[foot, 0])]
        lateral = foot[sign * vertices[foot, 0] > np.median(sign * vertices[foot, 0])]
        chosen[f"{side}_big_toe"] = medial[np.argmax(vertices[medial, 2])]
        chosen[f"{side}_small_toe"] = lateral[np.argmax(vertices[lateral, 2])]
        ankle = owned(f"{side}_ankle")
        sole = ankle[vertices[ankle, 1] < np.percentile(vertices[ankle, 1], 20)]
        chosen[f"{side}_heel"] = sole[np.argmin(vertices[sole, 2])]
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            tip_joint, base_joint = JOINT_INDEX[f"{side}_{finger}3"], JOINT_INDEX[f"{side}_{finger}2"]
            direction = joints[tip_joint] - joints[base_joint]
            part = owned(f"{side}_{finger}3")
            chosen[f"{side}_{finger}"] = part[np.argmax((vertices[part] - joints[tip_joint]) @ direction)]
    from .landmarks import EXTRA_JOINTS

    ids = [chosen[n] for n in EXTRA_JOINTS]
    face_area = head[vertices[head, 2] > mid_eye[2] - 0.09]
    for u, v in ibug68_template():
        target = mid_eye[:2] + ied * np.array([u, v])
        d = np.linalg.norm(vertices[face_area, :2] - target, axis=1) - 0.05 * vertices[face_area, 2]
        ids.append(face_area[np.argmin(d)])
    out = [vertex_as_barycentric(faces, int(i)) for i in ids]
    return np.array([f for f, _ in out]), np.stack([b for _, b in out])
