"""``rasterize``: differentiable 3D Gaussian splatting; gsplat's kernels on CUDA when they load,
the project's own pure-torch rasterizer everywhere else (CPU, or CUDA without gsplat's kernels).

The pure-torch rasterizer imports nothing from gsplat and runs on any torch device. It follows
the same conventions as gsplat 1.5 so either backend gives the same image:

- projection (``project``): EWA splatting. World -> camera with ``viewmat``; the pinhole
  projection's Jacobian at the camera-space mean, its x/z and y/z clamped to 30 % of the half
  field of view beyond the image edges (so Gaussians far off screen keep sane footprints);
  2D covariance J W Sigma W^T J^T plus a ``eps2d`` (0.3 px) low-pass on the diagonal; conic =
  its inverse; per-axis radii ceil(3.33 sqrt(diagonal)) px; Gaussians nearer than 0.01, beyond
  1e10 or whose box misses the image get radius 0 (culled).
- compositing: front to back by depth, alpha = min(0.99, opacity * exp(-sigma)), fragments
  below 1/255 skipped, colour weights alpha * T with T the transmittance before the fragment.
  Work is split into 16x16 tiles, each seeing only the Gaussians whose radius box overlaps it,
  so memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from ..core.camera import Camera
from . import gsplat_backend

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
RADIUS_SIGMAS = 3.33  # gsplat 1.5's box half-size, in standard deviations per axis
FRUSTUM_MARGIN = 0.3  # the Jacobian's x/z, y/z clamp: this fraction of tan(half fov) beyond the edges


@dataclass
class RenderOutput:
    image: torch.Tensor  # (H,W,3)
    alpha: torch.Tensor  # (H,W,1)
    # Screen-space means as used by the compositing: call ``means2d.retain_grad()`` before the
    # backward pass to read their gradient (densification); ``.grad.reshape(-1, 2)`` is per Gaussian.
    means2d: torch.Tensor | None = None
    radii: torch.Tensor | None = None  # (N,2) pixels; 0 = not on screen


def camera_tensors(camera: Camera, device, dtype=torch.float32):
    viewmat = torch.as_tensor(camera.viewmat, dtype=dtype, device=device)
    K = torch.as_tensor(camera.K, dtype=dtype, device=device)
    return viewmat, K


def rasterize(
    means,
    covariances,
    opacities,
    colors,
    camera: Camera,
    background=None,
    backend: str = "auto",
    eps2d: float = 0.3,
    antialiased: bool = False,
    linear_light: bool = False,
) -> RenderOutput:
    """Render Gaussians (means (N,3), covariances (N,3,3), opacities (N,) in [0,1], colours (N,3)).

    ``backend``: "auto" (gsplat on CUDA when its kernels load, else pure torch, with one notice),
    "gsplat" (gsplat or an error), "torch" (pure torch on the tensors' device; "cpu" is an alias).
    ``antialiased``: gsplat's antialiased mode (see ``project``). ``linear_light``: the colours and
    background are linear light, blended as such (as Blender and any renderer blend light), and
    the image returned is display-encoded (sRGB): what the diffusion model and a PNG take.
    """
    device = means.device
    if background is None:
        bg = torch.zeros(3, dtype=means.dtype, device=device)
    else:
        bg = torch.as_tensor(background, dtype=means.dtype, device=device)
    if gsplat_backend.choose_backend(device.type, backend) == "gsplat":
        viewmat, K = camera_tensors(camera, device)
        image, alpha, means2d, radii = gsplat_backend.render(
            means, covariances, opacities, colors, viewmat, K, camera.width, camera.height, bg, eps2d, antialiased
        )
        out = RenderOutput(image, alpha, means2d, radii)
    else:
        out = _rasterize_torch(means, covariances, opacities, colors, camera, bg, eps2d, antialiased)
    if linear_light:
        out.image = linear_to_srgb(out.image)
    return out


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """The sRGB EOTF on tensors (core/color.py has it for numpy: the file side)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB encoding on tensors; the clamp keeps the unused branch's gradient finite at 0."""
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


# How avatars are rendered: by the trainer (stage 2), by ``rasterize_posed`` (dreamwaltz render,
# the oracle, the tests that compare with Blender). Linear light, because Blender and every
# renderer an avatar is finished in blend light linearly: an avatar trained in display values
# changes colour wherever splats overlap (issue 23: 20 dB -> 30 dB against Cycles). Antialiased,
# because Blender draws the Gaussian itself and filters pixels on its own: the classic mode's
# 0.3 px^2 blur would make thin splats bigger in training than anywhere else.
AVATAR_RENDER = {"antialiased": True, "linear_light": True}
BACKGROUND = (0.5, 0.5, 0.5)  # the paper's constant grey, behind both stages' training renders


def rasterize_posed(posed, camera: Camera, device="cpu", background=(0.5, 0.5, 0.5), **options) -> RenderOutput:
    """Render a ``core.posing.PosedSplats`` (numpy, from the exported file's evaluator) as the trainer
    renders avatars (``AVATAR_RENDER``; ``options`` override it, as ``rasterize``'s). Colours and
    background are display values, as ``posed`` holds them; with ``linear_light`` they are blended
    as linear light and the image is display-encoded again."""
    options = {**AVATAR_RENDER, **options}
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    colors, bg = t(posed.colors), t(background)
    if options.get("linear_light"):
        colors, bg = srgb_to_linear(colors), srgb_to_linear(bg)
    return rasterize(t(posed.means), t(posed.covariances), t(posed.opacities), colors, camera, bg, **options)


def project(means, covariances, camera: Camera, eps2d: float = 0.3, antialiased: bool = False):
    """EWA projection in pure torch.

    Returns radii (N,2) int32 pixels (0 = culled), means2d (N,2) pixels, depths (N,) camera z,
    conics (N,3) = the upper triangle (a, b, c) of the inverse 2D covariance, and the opacity
    factor (N,): 1, or with ``antialiased`` sqrt(det(cov2d) / det(cov2d + eps2d I)) as gsplat's
    "antialiased" mode (Mip-Splatting's 2D filter): the blur then keeps the splat's total weight
    instead of adding to it, so a thin splat is not drawn bigger than it is.
    """
    viewmat, K = camera_tensors(camera, means.device, means.dtype)
    W, H = camera.width, camera.height
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ R.T + t  # camera space
    cov = R @ covariances @ R.T
    x, y, z = p.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    # d(u, v)/d(x, y, z) of u = fx x/z + cx, v = fy y/z + cy, taken at a point pulled back inside
    # a slightly widened frustum.
    margin_x, margin_y = FRUSTUM_MARGIN * 0.5 * W / fx, FRUSTUM_MARGIN * 0.5 * H / fy
    xz = torch.clamp(x / z, min=-(cx / fx + margin_x), max=(W - cx) / fx + margin_x)
    yz = torch.clamp(y / z, min=-(cy / fy + margin_y), max=(H - cy) / fy + margin_y)
    zero = torch.zeros_like(z)
    J = torch.stack(
        [torch.stack([fx / z, zero, -fx * xz / z], dim=-1), torch.stack([zero, fy / z, -fy * yz / z], dim=-1)], dim=-2
    )  # (N,2,3)
    cov2d = J @ cov @ J.transpose(-1, -2)
    a = cov2d[:, 0, 0] + eps2d
    c = cov2d[:, 1, 1] + eps2d
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    det = a * c - b * b
    det_safe = torch.clamp(det, min=1e-10)
    if antialiased:
        det_raw = cov2d[:, 0, 0] * cov2d[:, 1, 1] - b * b
        compensation = torch.sqrt(torch.clamp(det_raw / det_safe, min=0.0))
    else:
        compensation = torch.ones_like(det)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    radii = torch.ceil(RADIUS_SIGMAS * torch.sqrt(torch.stack([a, c], dim=-1))).detach()
    m = means2d.detach()
    keep = ((det > 0) & (z > NEAR_PLANE) & (z < FAR_PLANE)).detach()
    keep &= (
        (m[:, 0] + radii[:, 0] > 0)
        & (m[:, 0] - radii[:, 0] < W)
        & (m[:, 1] + radii[:, 1] > 0)
        & (m[:, 1] - radii[:, 1] < H)
    )
    radii = torch.where(keep[:, None], radii, torch.zeros_like(radii)).int()
    return radii, means2d, z, conics, compensation


def _composite_tile(pixels, m2d, con, op, col, bg):
    """Front-to-back compositing of depth-sorted Gaussians over a tile's pixel centres (P,2):
    (P,4) colour and alpha, by gsplat's rules."""
    dx = pixels[None, :, 0] - m2d[:, 0:1]
    dy = pixels[None, :, 1] - m2d[:, 1:2]
    sigma = 0.5 * (con[:, 0:1] * dx * dx + con[:, 2:3] * dy * dy) + con[:, 1:2] * dx * dy
    alpha = torch.clamp(op[:, None] * torch.exp(-sigma), max=ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]], dim=0), dim=0)
    weights = alpha * transmittance  # (n, P)
    rgb = weights.T @ col  # (P,3)
    acc = weights.sum(0)[:, None]
    return torch.cat([rgb + (1 - acc) * bg, acc], dim=-1)


def _rasterize_torch(means, covariances, opacities, colors, camera, bg, eps2d, antialiased):
    W, H = camera.width, camera.height
    device, dtype = means.device, means.dtype
    radii, means2d, depths, conics, compensation = project(means, covariances, camera, eps2d, antialiased)
    opacities = opacities * compensation
    rx, ry = radii[:, 0], radii[:, 1]
    visible = (rx > 0) & (ry > 0)
    order = torch.argsort(torch.where(visible, depths.detach(), torch.full_like(depths, math.inf)), stable=True)
    order = order[visible[order]]
    m2d, con, op, col = means2d[order], conics[order], opacities[order], colors[order]
    rx, ry = rx[order].to(dtype), ry[order].to(dtype)
    md = m2d.detach()
    rows = []
    for ty in range(0, H, TILE):
        row = []
        for tx in range(0, W, TILE):
            th, tw = min(TILE, H - ty), min(TILE, W - tx)
            hit = (
                (md[:, 0] + rx >= tx) & (md[:, 0] - rx <= tx + tw) & (md[:, 1] + ry >= ty) & (md[:, 1] - ry <= ty + th)
            )
            idx = torch.nonzero(hit).squeeze(1)
            if len(idx) == 0:
                row.append(
                    torch.cat([bg.expand(th, tw, 3), torch.zeros(th, tw, 1, dtype=dtype, device=device)], dim=-1)
                )
                continue
            ys, xs = torch.meshgrid(
                torch.arange(ty, ty + th, device=device, dtype=dtype) + 0.5,
                torch.arange(tx, tx + tw, device=device, dtype=dtype) + 0.5,
                indexing="ij",
            )
            pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
            tile_args = (pixels, m2d[idx], con[idx], op[idx], col[idx], bg)
            if torch.is_grad_enabled() and any(a.requires_grad for a in tile_args):
                # Keep only the tile's pixels for the backward pass and recompute its (Gaussians x
                # pixels) terms there: memory then grows with the image, not with the overlap
                # (a 512 px view of 120k Gaussians kept about 3 GiB of them).
                out = checkpoint(_composite_tile, *tile_args, use_reentrant=False)
            else:
                out = _composite_tile(*tile_args)
            row.append(out.reshape(th, tw, 4))
        rows.append(torch.cat(row, dim=1))
    out = torch.cat(rows, dim=0)
    return RenderOutput(out[..., :3], out[..., 3:], means2d, radii)
