"""``nerf -> points``: the stage-1 field sampled on a grid, points above a density threshold with
their albedo, in the canonical A-pose (SMPL-X space). Stage 2 starts its free Gaussians here."""

from __future__ import annotations

import torch

from .field import RadianceField


@torch.no_grad()
def export_points(field: RadianceField, threshold: float = 20.0, resolution: int = 96, chunk: int = 65536):
    """(points (P,3), colors (P,3), densities (P,)) as float32 tensors on the field's device.
    ``resolution`` is the grid size along the box's longest side."""
    lo, hi = field.box_min, field.box_max
    step = float((hi - lo).max()) / resolution
    axes = [torch.arange(float(lo[k]) + step / 2, float(hi[k]), step, device=lo.device) for k in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep_p, keep_c, keep_d = [], [], []
    for i in range(0, len(grid), chunk):
        x = grid[i:i + chunk]
        x = x[field.is_occupied(x)]
        if not len(x):
            continue
        dens, rgb = field.query(x)
        m = dens > threshold
        keep_p.append(x[m]), keep_c.append(rgb[m]), keep_d.append(dens[m])
    if not keep_p:
        z = torch.zeros(0, 3, device=lo.device)
        return z, z.clone(), torch.zeros(0, device=lo.device)
    return torch.cat(keep_p), torch.cat(keep_c), torch.cat(keep_d)
