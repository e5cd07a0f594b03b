"""Pinhole cameras in SMPL-X model space (metres, +Y up, the body faces +Z).

One convention everywhere in the backend (conditioning, NeRF, rasterizers, oracle): OpenCV /
gsplat camera axes (x right, y down, z forward), a world-to-camera matrix ``viewmat`` (4, 4)
and intrinsics ``K`` (3, 3) in pixels, pixel centres at integer + 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    viewmat: np.ndarray  # (4, 4) world -> camera, float64
    K: np.ndarray  # (3, 3) intrinsics in pixels
    width: int
    height: int

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world space."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    @property
    def fov_y_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.K[1, 1])))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) and camera depth z (N,)."""
        p = np.asarray(points, dtype=np.float64)
        cam = p @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        z = cam[:, 2]
        safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
        uv = (cam[:, :2] / safe[:, None]) @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, z

    def resized(self, width: int, height: int) -> Camera:
        """The same view at another resolution (progressive training)."""
        K = self.K.copy()
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Camera(self.viewmat, K, width, height)


def intrinsics(fov_y_deg: float, width: int, height: int) -> np.ndarray:
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera matrix (OpenCV axes) for a camera at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    up = np.asarray(up, dtype=np.float64)
    if abs(float(forward @ up)) > 0.999:  # looking straight up or down: pick another up
        up = np.array([0.0, 0.0, -1.0]) if forward[1] < 0 else np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in world space
    viewmat = np.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return viewmat


def orbit_camera(
    azimuth_deg: float,
    elevation_deg: float,
    radius: float,
    target=(0.0, 0.0, 0.0),
    fov_y_deg: float = 50.0,
    width: int = 512,
    height: int = 512,
) -> Camera:
    """A camera on a sphere around ``target``.

    ``elevation_deg`` is the polar angle from +Y as in the paper (90 = level, 60 = above);
    azimuth 0 looks at the body's front (the camera sits on +Z), 90 at its left side (+X).
    """
    theta, phi = math.radians(elevation_deg), math.radians(azimuth_deg)
    offset = radius * np.array([math.sin(theta) * math.sin(phi), math.cos(theta), math.sin(theta) * math.cos(phi)])
    target = np.asarray(target, dtype=np.float64)
    return Camera(look_at(target + offset, target), intrinsics(fov_y_deg, width, height), width, height)
