"""Gaussian rasterization with one API: gsplat on CUDA, the project's own compositing on CPU."""

from .rasterizer import RenderOutput, rasterize, rasterize_posed

__all__ = ["RenderOutput", "rasterize", "rasterize_posed"]
