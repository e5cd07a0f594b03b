"""Hand and face density guidance: the paper's margin loss on raw density.

Points just inside the body's hand and face surfaces (vertices whose skin weights belong to the
finger or head/jaw/eye joints, moved in along the normal) must stay dense, points just outside
them (moved out along the normal) must stay empty. SDS alone blurs fingers together and
smears faces; this pins their geometry to the body model's."""

from __future__ import annotations

import numpy as np
import torch


def region_points(cb, count: int, offset: float, generator: torch.Generator):
    """(inside (N,3), outside (N,3)): random hand/face vertices moved in / out along their normals."""
    verts = np.concatenate([cb.hand_vertices, cb.face_vertices])
    pick = verts[torch.randint(len(verts), (count,), generator=generator).numpy()]
    v = torch.as_tensor(cb.vertices[pick], dtype=torch.float32)
    n = torch.as_tensor(cb.normals[pick], dtype=torch.float32)
    inner = v - n * (offset * 0.5)
    # Outside points spread from ``offset`` to 2.5x it, so gaps between fingers empty across their width.
    outer = v + n * offset * (1 + 1.5 * torch.rand(count, 1, generator=generator))
    return inner, outer


def margin_loss(field, inside: torch.Tensor, outside: torch.Tensor, log_in: float, log_out: float) -> torch.Tensor:
    raw_in, _ = field.raw(inside.to(field.box_min.device))
    raw_out, _ = field.raw(outside.to(field.box_min.device))
    return torch.relu(log_in - raw_in).mean() + torch.relu(raw_out - log_out).mean()
