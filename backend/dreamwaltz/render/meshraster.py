"""A small z-buffer mesh rasterizer (numpy): silhouette, depth, vertex-colour, face and barycentric
images of a mesh.

Stage 1 needs the body mesh's silhouette and depth (body-shape initialisation) and the render of a
vertex-coloured reference (oracle). The conditioning module only has a coarse vertex z-buffer,
and the Gaussian rasterizer renders splats, not triangles; a full mesh renderer (pytorch3d,
nvdiffrast) would be a heavy, CUDA-compiled dependency for a few low-resolution images, so this
is written here: every triangle is expanded to the pixel centres of its bounding box (vectorised),
tested with barycentrics, and the nearest hit per pixel wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.camera import Camera


@dataclass
class MeshRender:
    mask: np.ndarray  # (H,W) bool
    depth: np.ndarray  # (H,W) camera z, 0 where empty
    color: np.ndarray  # (H,W,3) in [0,1], background where empty
    face: np.ndarray  # (H,W) int, -1 where empty
    barycentrics: np.ndarray  # (H,W,3) perspective-correct, of ``face``; 0 where empty


def cover_triangles(tri_xy: np.ndarray, width: int, height: int, max_pairs: int = 4_000_000, ok=None):
    """The pixel centres inside each 2D triangle (pixel units): (triangle, x, y, barycentrics (n,3)).

    Every triangle is expanded to the pixel centres of its bounding box and tested with
    barycentrics (one vectorised pass). Shared by the camera rasterizer below and texture baking,
    which rasterises triangles in UV space."""
    lo = np.floor(tri_xy.min(1) - 0.5).astype(np.int64) + 1  # first pixel centre >= min
    hi = np.floor(tri_xy.max(1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], width - 1)
    hi[:, 1] = np.minimum(hi[:, 1], height - 1)
    ok = (hi >= lo).all(1) if ok is None else ok & (hi >= lo).all(1)
    idx = np.nonzero(ok)[0]
    nx, ny = hi[idx, 0] - lo[idx, 0] + 1, hi[idx, 1] - lo[idx, 1] + 1
    counts = nx * ny
    if counts.sum() > max_pairs:
        raise ValueError("mesh too large on screen for the small rasterizer; render at a lower resolution")
    tri = np.repeat(idx, counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    nxr = np.repeat(nx, counts)
    px = lo[tri, 0] + local % nxr
    py = lo[tri, 1] + local // nxr
    p = np.stack([px + 0.5, py + 0.5], 1)
    a, b, c = tri_xy[tri, 0], tri_xy[tri, 1], tri_xy[tri, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w0 = 1 - w1 - w2
    inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
    return tri[inside], px[inside], py[inside], np.stack([w0, w1, w2], 1)[inside]


def rasterize_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    colors=None,
    background=(0.5, 0.5, 0.5),
    max_pairs: int = 4_000_000,
) -> MeshRender:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    W, H = camera.width, camera.height
    uv, z = camera.project(vertices)
    tri_uv, tri_z = uv[faces], z[faces]  # (F,3,2), (F,3)
    tri, px, py, w = cover_triangles(tri_uv, W, H, max_pairs, ok=(tri_z > 1e-4).all(1))
    # Perspective-correct depth: 1/z interpolates linearly in screen space.
    inv_z = (w / tri_z[tri]).sum(1)
    depth = 1.0 / inv_z
    pix = py * W + px
    order = np.lexsort((depth, pix))
    pix, depth, tri, w, inv_z = pix[order], depth[order], tri[order], w[order], inv_z[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, depth, tri, w, inv_z = pix[first], depth[first], tri[first], w[first], inv_z[first]
    mask = np.zeros(H * W, bool)
    mask[pix] = True
    dimg = np.zeros(H * W)
    dimg[pix] = depth
    fimg = np.full(H * W, -1, np.int64)
    fimg[pix] = tri
    wp = w / tri_z[tri] / inv_z[:, None]  # perspective-correct barycentrics
    bimg = np.zeros((H * W, 3))
    bimg[pix] = wp
    cimg = np.tile(np.asarray(background, np.float64), (H * W, 1))
    if colors is not None:
        cimg[pix] = np.einsum("nk,nkc->nc", wp, np.asarray(colors, np.float64)[faces[tri]])
    return MeshRender(
        mask.reshape(H, W), dimg.reshape(H, W), cimg.reshape(H, W, 3), fimg.reshape(H, W), bimg.reshape(H, W, 3)
    )
