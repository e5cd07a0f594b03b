"""Issue 6: the rasterizer facade (CPU path checked against a brute-force reference; GPU vs gsplat)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwaltz.core.camera import orbit_camera
from dreamwaltz.render import rasterize
from dreamwaltz.render.rasterizer import project


def scene(n=40, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.6
    A = torch.randn(n, 3, 3, generator=g, dtype=dtype) * 0.04
    cov = A @ A.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=dtype)
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, cov, opac, colors


def brute_force(means, cov, opac, colors, camera, bg):
    """Every Gaussian at every pixel, sorted by depth: the definition, with no tiling."""
    radii, m2d, depths, conics = project(means, cov, camera)
    order = torch.argsort(depths)
    H, W = camera.height, camera.width
    ys, xs = torch.meshgrid(torch.arange(H, dtype=means.dtype) + 0.5, torch.arange(W, dtype=means.dtype) + 0.5, indexing="ij")
    T = torch.ones(H, W, dtype=means.dtype)
    img = torch.zeros(H, W, 3, dtype=means.dtype)
    for i in order:
        if (radii[i] <= 0).any():
            continue
        dx, dy = xs - m2d[i, 0], ys - m2d[i, 1]
        a, b, c = conics[i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(opac[i] * torch.exp(-sigma), max=0.99)
        alpha = torch.where((sigma >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
        img = img + (alpha * T)[..., None] * colors[i]
        T = T * (1 - alpha)
    return img + T[..., None] * bg


def test_cpu_rasterizer_matches_the_brute_force_definition():
    camera = orbit_camera(20, 80, 1.5, (0, 0, 0), 50, 40, 36)
    means, cov, opac, colors = scene()
    bg = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    out = rasterize(means, cov, opac, colors, camera, bg, backend="cpu")
    ref = brute_force(means, cov, opac, colors, camera, bg)
    assert out.image.shape == (36, 40, 3)
    assert torch.abs(out.image - ref).max() < 1e-3, "gaussians overlapping the tile borders by their 3-sigma box"


def test_gradients_are_correct():
    camera = orbit_camera(0, 90, 1.2, (0, 0, 0), 50, 12, 12)
    means, cov, opac, colors = scene(n=4, seed=3)
    means.requires_grad_(True)
    colors.requires_grad_(True)
    opac.requires_grad_(True)
    f = lambda m, o, c: rasterize(m, cov, o, c, camera, torch.zeros(3, dtype=torch.float64), backend="cpu").image.sum()
    assert torch.autograd.gradcheck(f, (means, opac, colors), eps=1e-6, atol=1e-4)


@pytest.mark.gpu
def test_cpu_rasterizer_matches_gsplat_on_a_gpu():
    camera = orbit_camera(20, 80, 1.5, (0, 0, 0), 50, 64, 64)
    means, cov, opac, colors = (t.float().cuda() for t in scene(n=300))
    bg = torch.tensor([0.5, 0.5, 0.5]).cuda()
    gpu = rasterize(means, cov, opac, colors, camera, bg, backend="gsplat").image.cpu()
    cpu = rasterize(means.cpu(), cov.cpu(), opac.cpu(), colors.cpu(), camera, bg.cpu(), backend="cpu").image
    assert torch.abs(gpu - cpu).max() < 1e-3
