"""The canonical radiance field: multi-resolution hash encoding + small MLP -> density, albedo;
an occupancy grid that skips empty space; volume rendering on a constant grey background.

Pure PyTorch on purpose: tiny-cuda-nn / nerfacc-style JIT-compiled CUDA extensions are the most
common install failure in this field (they need a matching CUDA toolkit and compiler on the
user's machine), and the same code must train at 32-64 px on a CPU for the tests. Hash encoding
is a gather + trilinear blend, which torch does on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..core.camera import Camera
from ..render.rasterizer import BACKGROUND

_PRIMES = (1, 2654435761, 805459861)


class HashGrid(torch.nn.Module):
    """Multi-resolution hash encoding (Mueller et al. 2022) of points in [0,1]^3."""

    def __init__(
        self, levels: int = 12, features: int = 2, log2_table: int = 15, base_res: int = 16, max_res: int = 1024
    ):
        super().__init__()
        self.table_size = 2**log2_table
        growth = math.exp((math.log(max_res) - math.log(base_res)) / max(1, levels - 1))
        self.resolutions = [int(math.floor(base_res * growth**lv)) for lv in range(levels)]
        self.out_dim = levels * features
        g = torch.Generator().manual_seed(0)
        self.tables = torch.nn.Parameter((torch.rand(levels, self.table_size, features, generator=g) * 2 - 1) * 1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0, 1)
        n, mask = x.shape[0], self.table_size - 1
        out = []
        for lv, res in enumerate(self.resolutions):
            pos = x * res
            p0 = pos.floor()
            f = pos - p0
            i = p0.long()
            # Per-axis corner indices and weights, combined by broadcasting over the 2x2x2 corners.
            cx, cy, cz = (torch.stack([i[:, k], i[:, k] + 1], 1) for k in range(3))
            wx, wy, wz = (torch.stack([1 - f[:, k], f[:, k]], 1) for k in range(3))
            if (res + 1) ** 3 <= self.table_size:  # coarse levels: dense, collision-free
                idx = (
                    cx[:, :, None, None] + (cy * (res + 1))[:, None, :, None] + (cz * (res + 1) ** 2)[:, None, None, :]
                )
            else:
                idx = (
                    (cx * _PRIMES[0])[:, :, None, None]
                    ^ (cy * _PRIMES[1])[:, None, :, None]
                    ^ (cz * _PRIMES[2])[:, None, None, :]
                )
            idx = (idx & mask).reshape(-1)
            w = (wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]).reshape(n, 8, 1)
            out.append((self.tables[lv].index_select(0, idx).reshape(n, 8, -1) * w).sum(1))
        return torch.cat(out, -1)


@dataclass
class FieldConfig:
    levels: int = 12
    features: int = 2
    log2_table: int = 15
    base_res: int = 16
    max_res: int = 1024
    hidden: int = 64
    occupancy_res: int = 32
    pad: float = 0.08  # metres of room around the body for clothes and hair


class RadianceField(torch.nn.Module):
    """Density and albedo in a box around the canonical body (SMPL-X space, metres)."""

    def __init__(self, box_min, box_max, cfg: FieldConfig = FieldConfig()):
        super().__init__()
        self.cfg = cfg
        lo = torch.as_tensor(box_min, dtype=torch.float32) - cfg.pad
        hi = torch.as_tensor(box_max, dtype=torch.float32) + cfg.pad
        self.register_buffer("box_min", lo)
        self.register_buffer("box_max", hi)
        # The encoding uses a cube around the box so that hash cells are isotropic.
        centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2
        self.register_buffer("cube_min", centre - half)
        self.cube_size = 2 * half
        self.encoding = HashGrid(cfg.levels, cfg.features, cfg.log2_table, cfg.base_res, cfg.max_res)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(self.encoding.out_dim, cfg.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(cfg.hidden, cfg.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(cfg.hidden, 4),
        )
        g = cfg.occupancy_res
        self.register_buffer("occupancy", torch.ones(g, g, g))  # density*step estimate per cell (EMA max)
        self.register_buffer("occupied", torch.ones(g, g, g, dtype=torch.bool))

    # -- field -------------------------------------------------------------------------------
    def raw(self, x: torch.Tensor):
        """(log-density, albedo logits) at points (N,3); log-density is the 'raw density'."""
        h = self.mlp(self.encoding((x - self.cube_min) / self.cube_size))
        return h[:, 0] - 1.0, h[:, 1:]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.raw(x)[0].clamp(max=10.0))

    def query(self, x: torch.Tensor):
        raw, rgb = self.raw(x)
        return torch.exp(raw.clamp(max=10.0)), torch.sigmoid(rgb)

    # -- occupancy -----------------------------------------------------------------------------
    def _cells(self, x: torch.Tensor) -> torch.Tensor:
        g = self.cfg.occupancy_res
        u = (x - self.box_min) / (self.box_max - self.box_min)
        return (u * g).long().clamp(0, g - 1)

    def is_occupied(self, x: torch.Tensor) -> torch.Tensor:
        c = self._cells(x)
        inside = ((x >= self.box_min) & (x <= self.box_max)).all(-1)
        return inside & self.occupied[c[..., 0], c[..., 1], c[..., 2]]

    @torch.no_grad()
    def update_occupancy(
        self, step_size: float, decay: float = 0.95, threshold: float = 0.01, generator=None, chunk: int = 65536
    ) -> float:
        """Re-estimate which cells hold matter from the density at jittered cell points; the
        estimate decays so cells that emptied are released, and occupied cells are dilated by one
        so that the surface can still grow. Returns the occupied fraction."""
        g = self.cfg.occupancy_res
        ijk = torch.stack(
            torch.meshgrid(*[torch.arange(g, device=self.box_min.device)] * 3, indexing="ij"), -1
        ).reshape(-1, 3)
        jitter = torch.rand(ijk.shape, generator=generator).to(self.box_min.device)
        x = self.box_min + (ijk + jitter) / g * (self.box_max - self.box_min)
        dens = torch.cat([self.density(x[i : i + chunk]) for i in range(0, len(x), chunk)]).reshape(g, g, g)
        self.occupancy.copy_(torch.maximum(self.occupancy * decay, dens * step_size))
        occ = (self.occupancy > threshold).float()[None, None]
        self.occupied.copy_(F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0)
        return float(self.occupied.float().mean())


# -- rays and volume rendering -----------------------------------------------------------------
def camera_rays(camera: Camera, device="cpu"):
    """Origins and directions (scaled so that t is the camera-space depth z) for every pixel."""
    H, W = camera.height, camera.width
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    pix = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3)
    d_cam = pix @ np.linalg.inv(camera.K).T
    R = camera.viewmat[:3, :3]
    d = d_cam @ R  # R^T d_cam, row-wise
    o = np.broadcast_to(camera.position, d.shape)
    return (
        torch.as_tensor(np.ascontiguousarray(o), dtype=torch.float32, device=device),
        torch.as_tensor(d, dtype=torch.float32, device=device),
    )


def box_intersect(o, d, lo, hi):
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=1e-3)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


@torch.no_grad()
def occupied_span(field: RadianceField, o, d, near, far, hit, probes: int):
    """Narrow each ray's [near, far] to the stretch between its first and last occupied cell.

    The grid lookups are cheap next to the network, and the fixed sample budget then lands on
    matter instead of on the empty air of the box (a box around an A-pose is mostly air): thin
    limbs seen edge-on get several samples instead of one or none.
    """
    u = (torch.arange(probes, device=o.device, dtype=o.dtype) + 0.5) / probes
    t = near[:, None] + (far - near)[:, None] * u
    occ = field.is_occupied(o[:, None] + d[:, None] * t[..., None])
    any_occ = occ.any(1)
    first = torch.where(any_occ, occ.float().argmax(1), torch.zeros_like(near, dtype=torch.long))
    last = torch.where(any_occ, probes - 1 - occ.flip(1).float().argmax(1), torch.full_like(first, probes - 1))
    step = (far - near) / probes
    new_near = torch.maximum(near, t.gather(1, first[:, None])[:, 0] - step)
    new_far = torch.minimum(far, t.gather(1, last[:, None])[:, 0] + step)
    return new_near, torch.maximum(new_far, new_near + 1e-3), hit & any_occ


@dataclass
class VolumeRender:
    color: torch.Tensor  # (R,3)
    alpha: torch.Tensor  # (R,) accumulated opacity
    depth: torch.Tensor  # (R,) expected camera-space depth of the visible surface (where alpha > 0)


@torch.no_grad()
def ray_spans(field: RadianceField, o, d, samples: int):
    """Each ray's [near, far] inside the box, narrowed to its occupied stretch, and whether it meets
    matter at all (no host sync: the tensors stay on the device)."""
    near, far = box_intersect(o, d, field.box_min, field.box_max)
    hit = far > near
    far = torch.where(hit, far, near + 1e-3)
    return occupied_span(field, o, d, near, far, hit, 4 * samples)


def _shade(field: RadianceField, o, d, near, far, samples, jitter, generator=None, noise=None):
    """Colour (without background), alpha and depth of rays that meet matter: ``samples`` points
    each over [near, far]; the network sees every sample and the occupancy grid zeroes the empty
    ones (a compaction to the occupied samples would make the host wait for their count)."""
    R = o.shape[0]
    u = (torch.arange(samples, device=o.device, dtype=o.dtype) + 0.5) / samples
    if jitter:
        if noise is None:  # on the training device (no host-to-device copy per step) unless a CPU generator is given
            noise = torch.rand(R, samples, generator=generator, device=o.device if generator is None else "cpu")
        u = u + (noise.to(o) - 0.5) / samples
    else:
        u = u.expand(R, samples)
    t = near[:, None] + (far - near)[:, None] * u
    pts = o[:, None] + d[:, None] * t[..., None]
    mask = field.is_occupied(pts)
    s, c = field.query(pts.reshape(-1, 3))
    sigma = torch.where(mask, s.reshape(R, samples), 0.0)
    rgb = torch.where(mask[..., None], c.reshape(R, samples, 3), 0.0)
    delta = (far - near)[:, None] / samples * d.norm(dim=-1, keepdim=True)
    a = 1 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1] + 1e-10], 1), 1)
    w = a * trans
    acc = w.sum(1)
    return (w[..., None] * rgb).sum(1), acc, (w * t).sum(1) / acc.clamp(min=1e-6)


def _composite(R: int, rays, parts, background, like) -> VolumeRender:
    """Every ray's colour, alpha and depth: the rays that met matter shaded, the others background."""
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    color = bg.expand(R, 3)
    alpha = depth = like.new_zeros(R)
    if parts:
        rgb, acc, dep = (torch.cat(p) for p in zip(*parts))
        color = color.index_copy(0, rays, rgb + (1 - acc)[:, None] * bg)
        alpha, depth = alpha.index_copy(0, rays, acc), depth.index_copy(0, rays, dep)
    return VolumeRender(color, alpha, depth)


def render_rays(
    field: RadianceField,
    o,
    d,
    samples: int = 48,
    background=BACKGROUND,
    jitter: bool = True,
    generator=None,
) -> VolumeRender:
    """Fixed samples-per-ray budget inside the body's box, on the stretch of each ray that meets
    occupied cells; rays that meet none are background (and draw no jitter). One host sync: the
    number of rays that meet matter."""
    near, far, hit = ray_spans(field, o, d, samples)
    rays = hit.nonzero()[:, 0]
    parts = [_shade(field, o[rays], d[rays], near[rays], far[rays], samples, jitter, generator)] if len(rays) else []
    return _composite(o.shape[0], rays, parts, background, o)


def render_image(
    field: RadianceField,
    camera: Camera,
    samples: int = 48,
    background=BACKGROUND,
    jitter: bool = False,
    chunk: int = 8192,
    generator=None,
):
    """(H,W,3) image, (H,W) alpha, (H,W) depth of the field seen by ``camera``.

    Rays go through the field ``chunk`` at a time. When gradients are wanted each chunk is
    gradient-checkpointed: its samples' activations are dropped after the forward pass and
    recomputed chunk by chunk in the backward pass, so only per-ray outputs stay alive and the
    peak memory grows with ``chunk``, not with the image (the same values and gradients as one
    whole-image pass, for about one more forward pass of compute). The recomputation must draw
    the same jitter: jitter from the global RNG is drawn inside the chunk (checkpoint restores
    the RNG state for the recomputation); jitter from an explicit ``generator`` is drawn before
    the chunk and handed to it, so the generator advances exactly as without checkpointing.
    Which rays meet matter is found first for the whole image (no gradients; grid lookups only),
    and only those rays are shaded: the render's one host sync is their count, however many
    chunks there are (a GPU is not made to wait once per chunk).
    """
    o, d = camera_rays(camera, field.box_min.device)
    grad = torch.is_grad_enabled() and any(p.requires_grad for p in field.parameters())
    spans = [ray_spans(field, o[i : i + chunk], d[i : i + chunk], samples) for i in range(0, len(o), chunk)]
    near, far, hit = (torch.cat(p) for p in zip(*spans))
    rays = hit.nonzero()[:, 0]  # the render's one host sync: how many rays meet matter
    parts = []
    for i in range(0, len(rays), chunk):
        idx = rays[i : i + chunk]
        noise = torch.rand(len(idx), samples, generator=generator) if jitter and generator is not None else None
        args = (field, o[idx], d[idx], near[idx], far[idx], samples, jitter, None, noise)
        if grad:
            parts.append(checkpoint(_shade, *args, use_reentrant=False, preserve_rng_state=True))
        else:
            parts.append(_shade(*args))
    out = _composite(len(o), rays, parts, background, o)
    H, W = camera.height, camera.width
    return out.color.reshape(H, W, 3), out.alpha.reshape(H, W), out.depth.reshape(H, W)
