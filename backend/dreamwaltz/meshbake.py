"""Bake an avatar into a textured, rigged mesh for game engines and avatar apps (issue 31).

Splats do not go through Unity's, Unreal's or a VTubing app's skinned pipelines; a mesh does.

- Geometry: the avatar's own body mesh, its topology kept (the open body: 13,718 vertices, 27,420
  triangles), so skin weights, the face, the hands and the expression shape keys carry over vertex
  for vertex. Each vertex moves along its normal to the avatar's visible surface: where a ray
  coming in along the normal has met half of the splats' opacity; then smoothed over the mesh.
- Texture: a UV atlas by xatlas (the body has no UVs of its own); each texel takes the colour a
  ray coming in along the surface normal sees through the splats (composited as the renderer
  does); unseen texels and the atlas gutters are filled from their neighbours.

Rays rather than rendered views: see ``SplatField``. ``render_baked`` draws the result with the
project's small mesh rasterizer (``render.meshraster``), for the fidelity checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .core.camera import Camera
from .core.color import linear_to_srgb, srgb_to_linear
from .core.h3ga import H3GAAvatar
from .core.posing import pose_avatar, pose_body
from .render.meshraster import cover_triangles, rasterize_mesh

DEFAULT_TEXTURE = 2048
NEIGHBOURS = 24  # splats a ray is composited through, per probe point
MIN_SIGMA = 1e-3  # m: flat splats get this thickness, so their precision is finite
RAY_TEXELS = 1024  # the atlas is ray-cast at most this fine (then upsampled)
TEXEL_RAY = 0.02  # m: texel rays start this far outside the baked surface
MAX_OUT, MAX_IN = 0.12, 0.03  # m: how far a vertex may move out to clothing / in to a slimmer surface
LIFT_HEIGHTS = (0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.010, 0.013, 0.016, 0.02)  # m (silhouette_lift)
GRAZE = 0.04  # m: half the length of a grazing ray, and how far from its point its splats may belong
OWN_RADIUS = 0.03  # m: a ray composites splats whose nearest body vertex is this near its own
# m: the surface goes this much further out. Splat renderers draw the avatar's silhouette about
# 1 px outside the splats' own half-alpha surface (their 0.3 px^2 anti-aliasing filter widens every
# splat seen edge-on): measured 0.9-1.25 px at 192-768 px full-body views. 3 mm brings the mesh's
# silhouette to the splats' at all three sizes (IoU 0.90 -> 0.94, 0.95 -> 0.98, 0.965 -> 0.97).
SILHOUETTE_MARGIN = 0.003
SMOOTHING = 4  # Laplacian passes over the displacement (noise of single views)
PAD_PASSES = 24  # texels grown into the atlas gutters and unseen texels


@dataclass
class BakedMesh:
    """A textured mesh in the avatar's rest pose (zero pose, its own shape), split at UV seams."""

    vertices: np.ndarray  # (V', 3) float32, metres, +Y up, facing +Z (the avatar's space)
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray  # (V', 2) float32, glTF convention: (0, 0) is the texture's top-left
    normals: np.ndarray  # (V', 3) float32
    texture: np.ndarray  # (S, S, 3) uint8, sRGB
    source: np.ndarray  # (V',) int: the body vertex each vertex comes from (weights, shape keys)
    displacement: np.ndarray  # (V',) metres along the body normal
    seconds: dict = field(default_factory=dict)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # area-weighted
    out = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class SplatField:
    """The splats as seen along rays: who is near a point, and what a ray through them composites.

    A ray meets a 3D Gaussian (mean m, precision P) at its closest approach t* = d'P(m - o) / d'Pd,
    with alpha = opacity * exp(-0.5 * (squared Mahalanobis distance of the ray to m)); the Gaussians
    a ray meets, taken from the outside in, composite front to back as in the splat renderer.
    Written here (numpy, a k-d tree for the neighbours) because rendering views with the splat
    rasterizer costs 15-30 s a view for 100k splats on a CPU, and a bake needs dozens.
    """

    def __init__(self, posed, neighbours: int = NEIGHBOURS):
        from scipy.spatial import cKDTree

        self.means = np.asarray(posed.means, np.float64)
        cov = np.asarray(posed.covariances, np.float64) + MIN_SIGMA**2 * np.eye(3)
        self.precision = np.linalg.inv(cov)
        self.opacity = np.asarray(posed.opacities, np.float64)
        self.color = srgb_to_linear(np.asarray(posed.colors, np.float64))  # blended as light
        self.tree = cKDTree(self.means)
        self.k = min(neighbours, len(self.means))

    def near(self, points: np.ndarray) -> np.ndarray:
        """(n, k) indices of the splats nearest each point."""
        _d, idx = self.tree.query(points, k=self.k, workers=-1)
        return idx.reshape(len(points), -1)

    def composite(self, origin, direction, candidates: np.ndarray, length: float, keep=None):
        """Rays from ``origin`` along ``direction`` (unit) over [0, length], through the candidate
        splats (n, c; repeats allowed; ``keep`` (n, c) bool drops some): (depth of the surface: where
        the ray enters a splat's half-opacity ellipsoid or its accumulated alpha passes 0.5, nan if
        neither; total alpha; linear colour (n, 3) of what the ray sees)."""
        rel = self.means[candidates] - origin[:, None]  # (n,c,3)
        P = self.precision[candidates]
        Pd = np.einsum("ncij,nj->nci", P, direction)
        a = np.einsum("nci,ni->nc", Pd, direction)
        b = np.einsum("nci,nci->nc", Pd, rel)
        t = b / a
        d2 = np.einsum("nci,ncij,ncj->nc", rel, P, rel) - b * t
        alpha = np.clip(self.opacity[candidates] * np.exp(-0.5 * np.maximum(d2, 0)), 0, 0.99)
        alpha[(t < 0) | (t > length)] = 0
        if keep is not None:
            alpha[~keep] = 0
        ordered = np.sort(candidates, axis=1)  # a splat found by two queries counts once
        repeat = np.zeros_like(candidates, bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        order = np.argsort(candidates, axis=1)
        np.put_along_axis(alpha, order, np.where(repeat, 0, np.take_along_axis(alpha, order, 1)), 1)
        front = np.argsort(t, axis=1)  # from the ray's origin (outside) inwards
        t, alpha = np.take_along_axis(t, front, 1), np.take_along_axis(alpha, front, 1)
        cand = np.take_along_axis(candidates, front, 1)
        before = np.cumprod(np.concatenate([np.ones((len(t), 1)), 1 - alpha[:, :-1]], 1), axis=1)
        weight = before * alpha
        covered = 1 - before * (1 - alpha)  # accumulated alpha after each splat
        total = covered[:, -1]
        hit = np.argmax(covered >= 0.5, axis=1)
        depth = np.where(total >= 0.5, t[np.arange(len(t)), hit], np.nan)
        # Where the ray enters a splat's half-opacity ellipsoid (o exp(-d^2/2) >= 0.5): what a view
        # from the side shows as the splat's edge. The surface is the outside of their union.
        a_sorted = np.take_along_axis(a, front, 1)
        reach = 2 * np.log(np.maximum(2 * self.opacity[cand], 1e-9)) - np.take_along_axis(d2, front, 1)
        entry = t - np.sqrt(np.maximum(reach, 0) / a_sorted)
        inside = (reach > 0) & (alpha > 0)
        entry = np.where(inside, entry, np.inf).min(1)
        depth = np.fmin(depth, np.where(np.isfinite(entry), np.maximum(entry, 0), np.nan))
        color = np.einsum("nc,nci->ni", weight, self.color[cand]) / np.maximum(weight.sum(1), 1e-9)[:, None]
        return depth, total, color


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _neighbour_mean(values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    total, count = np.zeros_like(values), np.zeros(len(values))
    for a, b in ((0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)):
        np.add.at(total, faces[:, a], values[faces[:, b]])
        np.add.at(count, faces[:, a], 1)
    return total / np.maximum(count, 1)


def surface_displacement(vertices, faces, normals, field: SplatField) -> np.ndarray:
    """Per vertex, metres along its normal to the splats' visible surface: where a ray coming in
    along the normal from MAX_OUT outside has met half its alpha (0 where it never does), lifted to
    the splats' silhouette (``silhouette_lift``), plus SILHOUETTE_MARGIN.

    A ray only composites the splats of its own patch of the body: those whose nearest body vertex
    is near it and faces the same way (between the thighs the ray would otherwise start inside the
    other limb and take its surface for this one's; inside the mouth or the eye sockets it would
    take the face's)."""
    from scipy.spatial import cKDTree

    owner = cKDTree(vertices).query(field.means, workers=-1)[1]
    disp = np.zeros(len(vertices))
    length = MAX_OUT + MAX_IN
    for sl in _chunks(len(vertices), 2048):
        v, n = vertices[sl], normals[sl]
        probes = [v + n * h for h in np.linspace(MAX_OUT, -MAX_IN, 6)]
        candidates = np.concatenate([field.near(p) for p in probes], 1)
        mine = (np.einsum("nci,ni->nc", normals[owner[candidates]], n) > 0.5) & (
            np.linalg.norm(vertices[owner[candidates]] - v[:, None], axis=2) < OWN_RADIUS
        )
        depth, _total, _color = field.composite(v + n * MAX_OUT, -n, candidates, length, keep=mine)
        disp[sl] = np.where(np.isnan(depth), 0.0, MAX_OUT - depth)
    for _ in range(SMOOTHING):
        disp = 0.5 * disp + 0.5 * _neighbour_mean(disp, faces)
    disp = np.clip(disp, -MAX_IN, MAX_OUT)
    surface = vertices + disp[:, None] * normals
    lift = silhouette_lift(surface, normals, owner, vertices, field)
    for _ in range(SMOOTHING):
        lift = 0.5 * lift + 0.5 * _neighbour_mean(lift, faces)
    return np.clip(disp + lift, -MAX_IN, MAX_OUT) + SILHOUETTE_MARGIN


def silhouette_lift(surface, normals, owner, body, field: SplatField) -> np.ndarray:
    """How far above each surface point a ray grazing the surface (along two tangents) still
    gathers half its alpha: where the splats' silhouette lies when the view looks along the
    surface. A layer of splats seen edge-on is opaque beyond any one splat's edge, as a grazing
    ray crosses many of them; the mesh goes there so that its silhouette is theirs."""
    lift = np.zeros(len(surface))
    for sl in _chunks(len(surface), 1024):
        p, n = surface[sl], normals[sl]
        helper = np.where(np.abs(n[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
        t1 = np.cross(n, helper)
        t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
        t2 = np.cross(n, t1)
        reached = np.zeros((len(p), 2))
        for h in LIFT_HEIGHTS:
            top = p + n * h
            candidates = field.near(top)
            mine = (np.einsum("nci,ni->nc", normals[owner[candidates]], n) > 0.0) & (
                np.linalg.norm(body[owner[candidates]] - p[:, None], axis=2) < GRAZE
            )
            for k, t in enumerate((t1, t2)):
                _d, total, _c = field.composite(top - t * GRAZE, t, candidates, 2 * GRAZE, keep=mine)
                reached[:, k] = np.where(total >= 0.5, h, reached[:, k])
        lift[sl] = reached.mean(1)
    return lift


def uv_atlas(vertices: np.ndarray, faces: np.ndarray):
    """xatlas's charts and packing: (vertex map into ``vertices``, faces, UVs in [0, 1])."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices.astype(np.float32), faces.astype(np.uint32))
    chart = xatlas.ChartOptions()
    chart.max_iterations = 1  # the default 4 refines chart boundaries for a few % of packing, 3x the time
    pack = xatlas.PackOptions()
    pack.padding = 4
    pack.bilinear = True
    atlas.generate(chart, pack)
    vmap, new_faces, uvs = atlas[0]
    return vmap.astype(np.int64), new_faces.astype(np.int64), uvs.astype(np.float64)


def bake_texture(vertices, faces, uvs, normals, field: SplatField, size: int) -> np.ndarray:
    """(size, size, 3) uint8 sRGB: each texel the colour a ray coming in along the surface normal
    sees. Rays are cast at up to RAY_TEXELS^2 (the splats' own spacing, ~4 mm for 100k, is coarser
    than that) and the texture upsampled to ``size``."""
    import cv2

    grid = min(size, RAY_TEXELS)
    tri, px, py, bary = cover_triangles(uvs[faces] * grid, grid, grid, max_pairs=16 * grid * grid)
    points = np.einsum("nk,nki->ni", bary, vertices[faces[tri]])
    n = np.einsum("nk,nki->ni", bary, normals[faces[tri]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    colors, seen = np.zeros((len(points), 3)), np.zeros(len(points), bool)
    for sl in _chunks(len(points), 8192):
        p, d = points[sl], n[sl]
        _depth, total, color = field.composite(p + d * TEXEL_RAY, -d, field.near(p), 2 * TEXEL_RAY)
        colors[sl], seen[sl] = color, total > 0.05
    texture = np.zeros((grid, grid, 3))
    filled = np.zeros((grid, grid), bool)
    texture[py[seen], px[seen]] = colors[seen]
    filled[py[seen], px[seen]] = True
    texture = pad_texture(texture, filled)
    if grid != size:
        texture = cv2.resize(texture.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.round(np.clip(linear_to_srgb(texture), 0, 1) * 255).astype(np.uint8)


def pad_texture(texture: np.ndarray, filled: np.ndarray, passes: int = PAD_PASSES) -> np.ndarray:
    """Grow filled texels into their empty neighbours (unseen texels, the atlas gutters) so that
    bilinear and mip-mapped lookups near a seam never read the empty background."""
    import cv2

    texture, filled = texture.copy(), filled.copy()
    kernel = np.ones((3, 3), np.float32)
    for _ in range(passes):
        if filled.all():
            break
        mask = filled.astype(np.float32)
        count = cv2.filter2D(mask, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        grow = (count > 0) & ~filled
        summed = cv2.filter2D(
            (texture * mask[..., None]).astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT
        )
        texture[grow] = summed[grow] / count[grow, None]
        filled |= grow
    if filled.any():
        texture[~filled] = texture[filled].mean(0)
    return texture


def bake_mesh(avatar: H3GAAvatar, texture_size: int = DEFAULT_TEXTURE, device: str = "cpu") -> BakedMesh:
    """The avatar as a textured mesh in its rest pose (see the module's docstring)."""
    seconds = {}
    start = time.perf_counter()
    body = pose_body(avatar)
    rest = body.rest_vertices.astype(np.float64)
    faces = np.asarray(avatar.arrays["body/faces"], np.int64)
    normals = vertex_normals(rest, faces)
    field = SplatField(pose_avatar(avatar))
    seconds["field"] = time.perf_counter() - start

    t = time.perf_counter()
    disp = surface_displacement(rest, faces, normals, field)
    vertices = rest + disp[:, None] * normals
    seconds["geometry"] = time.perf_counter() - t

    t = time.perf_counter()
    vmap, atlas_faces, uvs = uv_atlas(vertices, faces)
    seconds["atlas"] = time.perf_counter() - t

    t = time.perf_counter()
    split_vertices = vertices[vmap]
    split_normals = vertex_normals(vertices, faces)[vmap]
    texture = bake_texture(split_vertices, atlas_faces, uvs, split_normals, field, texture_size)
    seconds["texture"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    return BakedMesh(
        vertices=split_vertices.astype(np.float32),
        faces=atlas_faces.astype(np.int32),
        uvs=uvs.astype(np.float32),
        normals=split_normals.astype(np.float32),
        texture=texture,
        source=vmap,
        displacement=disp[vmap],
        seconds=seconds,
    )


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W, C) image at pixel coordinates (n, 2) (pixel centres at +0.5)."""
    H, W = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, W - 1.001)
    y = np.clip(xy[:, 1] - 0.5, 0, H - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def render_baked(mesh: BakedMesh, camera: Camera, background=(0.5, 0.5, 0.5), supersample: int = 2):
    """(image (H,W,3) sRGB in [0,1], mask (H,W)): the baked mesh, textured, unlit (its texture is
    the avatar's own radiance, as the splats show it), anti-aliased by ``supersample``^2 samples a
    pixel as an engine's MSAA would (the splat renderer anti-aliases too); the mask is where
    coverage is at least half."""
    from dataclasses import replace

    k = max(1, int(supersample))
    K = camera.K.copy()
    K[:2] *= k
    fine = replace(camera, K=K, width=camera.width * k, height=camera.height * k)
    r = rasterize_mesh(mesh.vertices, mesh.faces, fine, max_pairs=64_000_000)
    image = np.tile(np.asarray(background, np.float64), (fine.height, fine.width, 1))
    face = r.face[r.mask]
    uv = np.einsum("nk,nki->ni", r.barycentrics[r.mask], mesh.uvs[mesh.faces[face]].astype(np.float64))
    size = mesh.texture.shape[0]
    image[r.mask] = _sample(mesh.texture.astype(np.float64) / 255.0, uv * size)
    H, W = camera.height, camera.width
    image = image.reshape(H, k, W, k, 3).mean(axis=(1, 3))
    coverage = r.mask.reshape(H, k, W, k).mean(axis=(1, 3))
    return image, coverage >= 0.5
