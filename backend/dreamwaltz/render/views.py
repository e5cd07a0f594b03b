"""Views of an exported avatar around it: the render command's turntable and the batch contact sheet."""

from __future__ import annotations

import numpy as np

from ..core.camera import orbit_camera
from .rasterizer import rasterize_posed


def avatar_view(
    avatar, posed, azimuth_deg: float, size: int = 512, device="cpu", elevation_deg: float = 85.0
) -> np.ndarray:
    """An (size, size, 3) uint8 image of ``posed`` (``core.posing.pose_avatar(avatar, ...)``) seen
    from ``azimuth_deg``, framed on the avatar's height and the posed Gaussians' centre."""
    height = float(np.ptp(avatar["body/template_vertices"][:, 1]))
    centre = posed.means.mean(0)
    cam = orbit_camera(
        azimuth_deg, elevation_deg, 1.6 * height + 0.6, (centre[0], centre[1], centre[2]), 50, size, size
    )
    out = rasterize_posed(posed, cam, device)
    return (out.image.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
