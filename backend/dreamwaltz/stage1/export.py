"""``nerf -> points``: the stage-1 field sampled on a grid, points above a density threshold with
their albedo, in the canonical A-pose (SMPL-X space). Stage 2 starts its free Gaussians here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .field import RadianceField


@torch.no_grad()
def export_points(
    field: RadianceField,
    threshold: float = 20.0,
    resolution: int = 96,
    chunk: int = 65536,
    shell: float | None = None,
    min_neighbours: int = 12,
):
    """(points (P,3), colors (P,3), densities (P,)) as float32 tensors on the field's device.
    ``resolution`` is the grid size along the box's longest side.

    ``shell`` (metres) keeps only the points within that distance of empty space, and drops
    isolated specks (fewer than ``min_neighbours`` dense cells in their 5x5x5 neighbourhood):
    what stage 2 needs. Splats deep inside the avatar are never seen (this matters on the fine
    grids of the preview and paper presets; on the tiny preset's 2 cm grid nearly every dense cell
    is within 3 cm of empty space), and specks become floaters once animated."""
    lo, hi = field.box_min, field.box_max
    step = float((hi - lo).max()) / resolution
    axes = [torch.arange(float(lo[k]) + step / 2, float(hi[k]), step, device=lo.device) for k in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep_p, keep_c, keep_d = [], [], []
    for i in range(0, len(grid), chunk):
        x = grid[i : i + chunk]
        x = x[field.is_occupied(x)]
        if not len(x):
            continue
        dens, rgb = field.query(x)
        m = dens > threshold
        keep_p.append(x[m]), keep_c.append(rgb[m]), keep_d.append(dens[m])
    if not keep_p:
        z = torch.zeros(0, 3, device=lo.device)
        return z, z.clone(), torch.zeros(0, device=lo.device)
    points, colors, dens = torch.cat(keep_p), torch.cat(keep_c), torch.cat(keep_d)
    if shell is not None:
        cells = torch.round((points - lo) / step - 0.5).long()
        keep = surface_cells(cells, [len(a) for a in axes], max(1, round(shell / step)), min_neighbours)
        points, colors, dens = points[keep], colors[keep], dens[keep]
    return points, colors, dens


def surface_cells(cells: torch.Tensor, shape, shell_cells: int, min_neighbours: int) -> torch.Tensor:
    """Mask of the dense grid cells ``cells`` (P,3) that lie within ``shell_cells`` of an empty cell
    and have at least ``min_neighbours`` dense cells in their 5x5x5 neighbourhood."""
    dense = torch.zeros(shape, device=cells.device)
    dense[cells[:, 0], cells[:, 1], cells[:, 2]] = 1.0
    grid = dense[None, None]
    k = 2 * shell_cells + 1
    # Outside the grid counts as empty: pad with zeros before looking for empty neighbours.
    near_empty = F.max_pool3d(F.pad(1 - grid, (shell_cells,) * 6, value=1.0), k, stride=1)[0, 0] > 0
    neighbours = F.avg_pool3d(F.pad(grid, (2,) * 6), 5, stride=1)[0, 0] * 125
    at = (cells[:, 0], cells[:, 1], cells[:, 2])
    return near_empty[at] & (neighbours[at] >= min_neighbours + 1)  # +1: the cell itself


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
    nearest = (
        torch.cat([torch.cdist(pts[i : i + chunk], verts).argmin(1) for i in range(0, len(pts), chunk)])
        if len(pts)
        else torch.zeros(0, dtype=torch.long)
    )
    T = torch.einsum("nk,kij->nij", body.skin_weights[nearest].float(), A)
    homo = torch.cat([pts, torch.ones(len(pts), 1, device=pts.device)], 1)
    return torch.linalg.solve(T, homo[..., None])[..., :3, 0]


@torch.no_grad()
def local_shapes(points, neighbours: int = 16, chunk: int = 1024, min_ratio: float = 0.2):
    """Starting scales (P,3) and rotations (P,4, wxyz) of Gaussians at ``points`` (P,3) from the shape
    of their neighbourhood: the principal axes and spreads of the ``neighbours`` nearest points.

    On a surface this gives flat discs lying in it, along a thin part (a strap, a finger of cloth)
    needles along it, in a volume round blobs. Each scale is at least ``min_ratio`` of the largest,
    so a flat neighbourhood does not start infinitely thin. Numpy in, numpy out."""
    import numpy as np

    from ..core.rotations import matrix_to_quaternion

    pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    k = min(neighbours, len(pts))
    scales, rotations = [], []
    for i in range(0, len(pts), chunk):
        x = pts[i : i + chunk]
        idx = torch.cdist(x, pts).topk(k, largest=False).indices  # (c,k), the point itself included
        local = pts[idx] - pts[idx].mean(1, keepdim=True)
        cov = local.transpose(1, 2) @ local / max(1, k - 1)
        eigenvalues, axes = torch.linalg.eigh(cov)  # ascending; columns are the axes
        spread = eigenvalues.clamp(min=0).sqrt()
        spread = torch.maximum(spread, min_ratio * spread[:, -1:]).clamp(min=1e-4)
        axes = axes * torch.where(torch.det(axes) < 0, -1.0, 1.0)[:, None, None]  # a rotation, not a reflection
        scales.append(spread)
        rotations.append(axes)
    if not scales:
        return np.zeros((0, 3), np.float32), np.zeros((0, 4), np.float32)
    quats = matrix_to_quaternion(torch.cat(rotations).numpy().astype(np.float64))
    return torch.cat(scales).numpy(), quats.astype(np.float32)
