"""Gaussian rasterization with one API: gsplat's kernels on CUDA when they load, the project's
own pure-torch rasterizer everywhere else (see ``rasterizer`` and ``gsplat_backend``)."""

from .gsplat_backend import GsplatStatus, gsplat_status, rasterizer_name
from .rasterizer import AVATAR_RENDER, RenderOutput, linear_to_srgb, rasterize, rasterize_posed, srgb_to_linear

__all__ = [
    "AVATAR_RENDER",
    "linear_to_srgb",
    "srgb_to_linear",
    "GsplatStatus",
    "RenderOutput",
    "gsplat_status",
    "rasterize",
    "rasterize_posed",
    "rasterizer_name",
]
