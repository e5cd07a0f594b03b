"""Independent reference for render tests: the alpha a 3D Gaussian splatting renderer produces.

Total alpha does not depend on the compositing order (1 - prod(1 - a_i)), so projecting each
Gaussian with the EWA approximation and accumulating gives the exact silhouette to compare with.
Works in Blender world space with a Blender camera's pinhole parameters.
"""

from __future__ import annotations

import numpy as np


def blender_camera_intrinsics(camera_obj, size: int):
    """World->camera (OpenCV axes) 4x4 and the focal length in pixels for a square render."""
    cam = camera_obj.data
    focal = cam.lens / cam.sensor_width * size
    world_to_cam = np.array(camera_obj.matrix_world.inverted(), dtype=np.float64)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender camera looks down -Z with +Y up
    return flip @ world_to_cam, focal


def splat_alpha(means, covariances, opacities, viewmat, focal, size) -> np.ndarray:
    cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    keep = z > 0.05
    cam, z, cov, op = cam[keep], z[keep], covariances[keep], opacities[keep]
    W = viewmat[:3, :3]
    J = np.zeros((len(cam), 2, 3))
    J[:, 0, 0] = focal / z
    J[:, 0, 2] = -focal * cam[:, 0] / z**2
    J[:, 1, 1] = focal / z
    J[:, 1, 2] = -focal * cam[:, 1] / z**2
    cov2d = J @ W @ cov @ W.T @ np.transpose(J, (0, 2, 1)) + 0.3 * np.eye(2)
    centre = focal * cam[:, :2] / z[:, None] + size / 2.0
    inv = np.linalg.inv(cov2d)
    transmittance = np.ones((size, size))
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    for c, ic, o, cv in zip(centre, inv, op, cov2d):
        r = 3.0 * np.sqrt(max(cv[0, 0], cv[1, 1]))
        x0, x1 = int(max(0, c[0] - r)), int(min(size, c[0] + r + 1))
        y0, y1 = int(max(0, c[1] - r)), int(min(size, c[1] + r + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        dx, dy = xs[y0:y1, x0:x1] - c[0], ys[y0:y1, x0:x1] - c[1]
        power = -0.5 * (ic[0, 0] * dx * dx + 2 * ic[0, 1] * dx * dy + ic[1, 1] * dy * dy)
        transmittance[y0:y1, x0:x1] *= 1.0 - np.minimum(0.99, o * np.exp(power))
    return 1.0 - transmittance
