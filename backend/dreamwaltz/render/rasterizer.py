"""``rasterize``: differentiable 3D Gaussian splatting, gsplat on CUDA, pure torch on CPU.

On CPU the projection is gsplat's own pure-torch reference (``_fully_fused_projection``: EWA
projection, 0.3 px low-pass ``eps2d``, radii); the compositing is written here because gsplat's
torch compositing needs CUDA or nerfacc. It follows gsplat's rules: front to back by depth,
alpha = min(0.99, opacity * exp(-sigma)), fragments below 1/255 skipped, colour weights
alpha * T with T the transmittance before the fragment. Work is split into 16x16 tiles, each
seeing only the Gaussians whose 3-sigma box overlaps it, so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..core.camera import Camera

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99


@dataclass
class RenderOutput:
    image: torch.Tensor  # (H,W,3)
    alpha: torch.Tensor  # (H,W,1)
    # Screen-space means as used by the compositing: call ``means2d.retain_grad()`` before the
    # backward pass to read their gradient (densification); ``.grad.reshape(-1, 2)`` is per Gaussian.
    means2d: Optional[torch.Tensor] = None
    radii: Optional[torch.Tensor] = None  # (N,2) pixels; 0 = not on screen


def camera_tensors(camera: Camera, device, dtype=torch.float32):
    viewmat = torch.as_tensor(camera.viewmat, dtype=dtype, device=device)
    K = torch.as_tensor(camera.K, dtype=dtype, device=device)
    return viewmat, K


def rasterize(means, covariances, opacities, colors, camera: Camera, background=None, backend: str = "auto",
              eps2d: float = 0.3) -> RenderOutput:
    """Render Gaussians (means (N,3), covariances (N,3,3), opacities (N,) in [0,1], colours (N,3))."""
    device = means.device
    bg = torch.zeros(3, device=device) if background is None else torch.as_tensor(background, dtype=means.dtype, device=device)
    use_gsplat = backend == "gsplat" or (backend == "auto" and device.type == "cuda")
    if use_gsplat:
        return _rasterize_gsplat(means, covariances, opacities, colors, camera, bg, eps2d)
    return _rasterize_cpu(means, covariances, opacities, colors, camera, bg, eps2d)


def rasterize_posed(posed, camera: Camera, device="cpu", background=(0.5, 0.5, 0.5)) -> RenderOutput:
    """Render a ``core.posing.PosedSplats`` (numpy, from the exported file's evaluator)."""
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    return rasterize(t(posed.means), t(posed.covariances), t(posed.opacities), t(posed.colors), camera, t(background))


def _rasterize_gsplat(means, covariances, opacities, colors, camera, bg, eps2d):
    from gsplat import rasterization

    viewmat, K = camera_tensors(camera, means.device)
    rendered, alpha, info = rasterization(means, None, None, opacities, colors, viewmat[None], K[None], camera.width,
                                          camera.height, backgrounds=bg[None], covars=covariances, eps2d=eps2d,
                                          packed=False)
    return RenderOutput(rendered[0], alpha[0], info["means2d"], _radii_xy(info["radii"][0]))


def _radii_xy(radii: torch.Tensor) -> torch.Tensor:
    """(N,2) radii whatever gsplat's version returns ((N,) before 1.5)."""
    return radii[:, None].expand(-1, 2) if radii.ndim == 1 else radii


def project(means, covariances, camera: Camera, eps2d: float = 0.3):
    """gsplat's torch projection: radii (N,2) or (N,), means2d (N,2), depths (N,), conics (N,3)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection

    viewmat, K = camera_tensors(camera, means.device, means.dtype)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covariances, viewmat[None], K[None],
                                                                camera.width, camera.height, eps2d=eps2d)
    return radii[0], means2d[0], depths[0], conics[0]


def _rasterize_cpu(means, covariances, opacities, colors, camera, bg, eps2d):
    W, H = camera.width, camera.height
    radii, means2d, depths, conics = project(means, covariances, camera, eps2d)
    if radii.ndim == 2:
        rx, ry = radii[:, 0], radii[:, 1]
    else:
        rx = ry = radii
    visible = (rx > 0) & (ry > 0)
    order = torch.argsort(depths.detach() + (~visible) * 1e10)
    order = order[visible[order]]
    m2d, con, op, col = means2d[order], conics[order], opacities[order], colors[order]
    rx, ry = rx[order].to(m2d.dtype), ry[order].to(m2d.dtype)
    image = torch.zeros(H, W, 3, dtype=means.dtype, device=means.device)
    alpha_out = torch.zeros(H, W, 1, dtype=means.dtype, device=means.device)
    rows = []
    for ty in range(0, H, TILE):
        row = []
        for tx in range(0, W, TILE):
            th, tw = min(TILE, H - ty), min(TILE, W - tx)
            md = m2d.detach()
            hit = ((md[:, 0] + rx >= tx) & (md[:, 0] - rx <= tx + tw) & (md[:, 1] + ry >= ty) & (md[:, 1] - ry <= ty + th))
            idx = torch.nonzero(hit).squeeze(1)
            ys, xs = torch.meshgrid(torch.arange(ty, ty + th, device=means.device, dtype=means.dtype) + 0.5,
                                    torch.arange(tx, tx + tw, device=means.device, dtype=means.dtype) + 0.5, indexing="ij")
            if len(idx) == 0:
                row.append(torch.cat([bg.expand(th, tw, 3), torch.zeros(th, tw, 1, dtype=means.dtype)], dim=-1))
                continue
            dx = xs.reshape(1, -1) - m2d[idx, 0:1]
            dy = ys.reshape(1, -1) - m2d[idx, 1:2]
            c = con[idx]
            sigma = 0.5 * (c[:, 0:1] * dx * dx + c[:, 2:3] * dy * dy) + c[:, 1:2] * dx * dy
            alpha = torch.clamp(op[idx, None] * torch.exp(-sigma), max=ALPHA_MAX)
            alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
            transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]], dim=0), dim=0)
            weights = alpha * transmittance  # (n, P)
            rgb = weights.T @ col[idx]  # (P,3)
            acc = weights.sum(0)[:, None]
            rgb = rgb + (1 - acc) * bg
            row.append(torch.cat([rgb, acc], dim=-1).reshape(th, tw, 4))
        rows.append(torch.cat(row, dim=1))
    out = torch.cat(rows, dim=0)
    return RenderOutput(out[..., :3], out[..., 3:], means2d, _radii_xy(radii))
