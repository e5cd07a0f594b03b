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


@torch.no_grad()
def points_to_rest(points: torch.Tensor, body, betas=None, pose=None, chunk: int = 4096) -> torch.Tensor:
    """Canonical (A-pose) points -> the body's rest pose (zero pose, same betas), by inverting the
    skinning transform of each point's nearest A-pose vertex (what stage 2 binds its free
    Gaussians with). A vertex maps exactly to its rest position."""
    from ..body.poses import apose

    betas = torch.zeros(body.num_betas) if betas is None else torch.as_tensor(betas, dtype=torch.float32)
    pose = torch.as_tensor(apose() if pose is None else pose, dtype=torch.float32)
    out = body(betas=betas[None], full_pose=pose[None])
    verts, A = out.vertices[0].float(), out.skinning_transforms[0].float()
    pts = points.float().to(verts.device)
    nearest = torch.cat([torch.cdist(pts[i:i + chunk], verts).argmin(1) for i in range(0, len(pts), chunk)]) if len(pts) else \
        torch.zeros(0, dtype=torch.long)
    T = torch.einsum("nk,kij->nij", body.skin_weights[nearest].float(), A)
    homo = torch.cat([pts, torch.ones(len(pts), 1, device=pts.device)], 1)
    return torch.linalg.solve(T, homo[..., None])[..., :3, 0]
