# SPDX-License-Identifier: GPL-3.0-or-later
"""SMPL-X space (+Y up, faces +Z) <-> Blender space (+Z up, faces -Y): (x, y, z) -> (x, -z, y)."""

import numpy as np

TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def points_to_blender(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ TO_BLENDER.T


def points_to_smplx(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ TO_BLENDER


def matrices_to_blender(m: np.ndarray) -> np.ndarray:
    """Covariances / linear maps: C M C^T."""
    return TO_BLENDER @ np.asarray(m, dtype=np.float64) @ TO_BLENDER.T


def matrices_to_smplx(m: np.ndarray) -> np.ndarray:
    return TO_BLENDER.T @ np.asarray(m, dtype=np.float64) @ TO_BLENDER
