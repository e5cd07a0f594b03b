"""Gaussian rasterization with one API: gsplat's kernels on CUDA when they load, the project's
own pure-torch rasterizer everywhere else (see ``rasterizer`` and ``gsplat_backend``)."""

from .gsplat_backend import GsplatStatus, gsplat_status, rasterizer_name
from .rasterizer import RenderOutput, rasterize, rasterize_posed

__all__ = ["GsplatStatus", "RenderOutput", "gsplat_status", "rasterize", "rasterize_posed", "rasterizer_name"]
