"""The 89 landmark points keypoints need: SMPL-X's 21 extra joints, then the 68 iBUG face points.

Landmarks are stored as (triangle, barycentric) pairs so they work on any mesh topology.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import BodyModelError
from ..core.joints import facts

EXTRA_JOINTS = [
    "nose",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
    "left_thumb",
    "left_index",
    "left_middle",
    "left_ring",
    "left_pinky",
    "right_thumb",
    "right_index",
    "right_middle",
    "right_ring",
    "right_pinky",
]
LANDMARK_NAMES = EXTRA_JOINTS + [f"face_{i:02d}" for i in range(68)]
LANDMARK_INDEX = {n: i for i, n in enumerate(LANDMARK_NAMES)}
# smplx's VertexJointSelector keys for the extra joints, in the order above.
_SMPLX_VERTEX_KEYS = [
    "nose",
    "reye",
    "leye",
    "rear",
    "lear",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "RBigToe",
    "RSmallToe",
    "RHeel",
    "lthumb",
    "lindex",
    "lmiddle",
    "lring",
    "lpinky",
    "rthumb",
    "rindex",
    "rmiddle",
    "rring",
    "rpinky",
]
SMPLX_VERTEX_COUNT = 10475
NEUTRAL_YAW_BIN = 39  # dynamic contour landmarks: 79 bins for neck yaw -39..39 degrees


def vertex_as_barycentric(faces: np.ndarray, vertex: int) -> tuple[int, np.ndarray]:
    rows, cols = np.nonzero(faces == vertex)
    if len(rows) == 0:
        raise BodyModelError(f"vertex {vertex} belongs to no triangle.", "The model file is damaged.")
    bary = np.zeros(3)
    bary[cols[0]] = 1.0
    return int(rows[0]), bary


def smplx_landmarks(data: dict, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of a real SMPL-X file: extra-joint vertices, 51 static + 17 contour face points."""
    V = np.asarray(data["v_template"]).shape[0]
    if V != SMPLX_VERTEX_COUNT:
        raise BodyModelError(
            f"This SMPL-X file has {V} vertices, not {SMPLX_VERTEX_COUNT}.",
            "Use an official SMPL-X model file (SMPLX_NEUTRAL.npz).",
        )
    if "lmk_faces_idx" not in data or "lmk_bary_coords" not in data:
        raise BodyModelError(
            "This SMPL-X file has no face landmarks (lmk_faces_idx).",
            "Use the official SMPL-X .npz from smpl-x.is.tue.mpg.de.",
        )
    ids = facts()["smplx_vertex_ids_for_extra_joints"]
    out_faces, out_bary = [], []
    for key in _SMPLX_VERTEX_KEYS:
        f, b = vertex_as_barycentric(faces, int(ids[key]))
        out_faces.append(f)
        out_bary.append(b)
    if "dynamic_lmk_faces_idx" in data:
        contour_faces = np.asarray(data["dynamic_lmk_faces_idx"])[NEUTRAL_YAW_BIN]
        contour_bary = np.asarray(data["dynamic_lmk_bary_coords"])[NEUTRAL_YAW_BIN]
    else:  # no contour in the file: use the nearest static points (chin) so the image still has a jaw line
        contour_faces = np.repeat(np.asarray(data["lmk_faces_idx"])[:1], 17)
        contour_bary = np.repeat(np.asarray(data["lmk_bary_coords"])[:1], 17, axis=0)
    out_faces += list(contour_faces) + list(np.asarray(data["lmk_faces_idx"]))
    out_bary += list(contour_bary) + list(np.asarray(data["lmk_bary_coords"]))
    return np.asarray(out_faces, dtype=np.int64), np.asarray(out_bary, dtype=np.float64)
