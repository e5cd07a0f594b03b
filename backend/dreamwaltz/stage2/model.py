"""The Hybrid 3D Gaussian Avatar (H3GA) in torch: free Gaussians skinned by LBS, and mesh-bound
Gaussians on the hands and face that live on the posed, shaped, expressed body triangles.

The forward pass is the torch twin of ``core/posing.py`` (the exported file's reference
evaluator): the same skinning of means and covariances, the same triangle frames, so what is
trained is what Blender shows (a test checks they agree on the exported file).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from smplx.lbs import batch_rigid_transform, batch_rodrigues

from ..body import BodyModel
from ..core.color import COLOR_SPACE_LINEAR
from ..core.color import srgb_to_linear as srgb_to_linear_np
from ..core.h3ga import SKIN_TOP_K, H3GAAvatar, new_manifest
from ..core.joints import JOINT_INDEX, JOINT_NAMES
from ..core.rotations import quaternion_matrix_entries
from ..render import srgb_to_linear

HAND_JOINTS = [
    i
    for i, n in enumerate(JOINT_NAMES)
    if "wrist" in n or any(f in n for f in ("index", "middle", "ring", "pinky", "thumb"))
]
FACE_JOINTS = [JOINT_INDEX[n] for n in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")]


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    q = F.normalize(q, dim=-1)
    return torch.stack(quaternion_matrix_entries(*q.unbind(-1)), -1).reshape(q.shape[:-1] + (3, 3))


def triangle_frames(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    v0, v1, v2 = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    e1 = F.normalize(v1 - v0, dim=-1)
    n = F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1)
    e2 = torch.cross(n, e1, dim=-1)
    return torch.stack([e1, e2, n], dim=-1)


class PoseDeformation(torch.nn.Module):
    """Pose-dependent offsets of free Gaussians (position and log-scale) from a Fourier encoding of
    the rest mean and the body pose. Zero at the start. An armature cannot reproduce it, so stage 2
    trains it early (it absorbs pose-dependent wrinkles while the avatar forms) and fine-tunes the
    last part of the run without it (``Stage2Config.deform_until``): what is exported is exactly
    what was optimised last."""

    def __init__(self, frequencies: int = 4, hidden: int = 64):
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(frequencies) * np.pi)
        width = 3 + 6 * frequencies + 21 * 3
        self.net = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 6))
        torch.nn.init.zeros_(self.net[2].weight)
        torch.nn.init.zeros_(self.net[2].bias)

    def forward(self, means: torch.Tensor, full_pose: torch.Tensor):
        x = means[:, :, None] * self.freqs
        encoding = torch.cat([means, torch.sin(x).flatten(1), torch.cos(x).flatten(1)], 1)
        body = full_pose.reshape(55, 3)[1:22].reshape(1, 63).expand(len(means), 63)
        out = self.net(torch.cat([encoding, body], 1))
        return 0.01 * torch.tanh(out[:, :3]), 0.1 * torch.tanh(out[:, 3:])


class _RestSurface(NamedTuple):
    """The rest-pose body (on the CPU) that the starting Gaussians are placed on."""

    body: BodyModel
    vertices: torch.Tensor  # (V, 3) shaped by the model's betas
    faces: torch.Tensor  # (F, 3)
    areas: torch.Tensor  # (F,)
    part_triangles: torch.Tensor  # (F,) bool: hands and face, the mesh-bound Gaussians' triangles


class _FreeStart(NamedTuple):
    """Where the free Gaussians start, bound to a body triangle each."""

    means: torch.Tensor  # (N, 3)
    colors: torch.Tensor  # (N, 3) display values
    bind: torch.Tensor  # (N,) triangle
    bary: torch.Tensor  # (N, 3) barycentric coordinates in it
    densities: torch.Tensor | None = None  # stage 1's, when it gave them
    scales: torch.Tensor | None = None
    quats: torch.Tensor | None = None
    dropped: int = 0  # stage-1 points dropped near the hands and face


def _free_on_surface(surface: _RestSurface, num_free: int, g: torch.Generator, seed: int):
    """Free Gaussians on the body surface away from hands and face, just outside it, skin-coloured:
    (means, colours, triangles, barycentric coordinates)."""
    v, faces = surface.vertices, surface.faces
    bind = torch.multinomial(surface.areas * ~surface.part_triangles, num_free, replacement=True, generator=g)
    # numpy, not torch.distributions: that one draws from the global RNG and ignores ``seed``.
    bary = torch.as_tensor(np.random.default_rng(seed).dirichlet((2.0, 2.0, 2.0), num_free), dtype=torch.float32)
    normal = triangle_frames(v, faces[bind])[:, :, 2]
    means = torch.einsum("nc,nci->ni", bary, v[faces[bind]]) + normal * 0.004
    colors = torch.tensor([0.78, 0.6, 0.5]).repeat(num_free, 1)  # skin, not the grey background
    return means, colors, bind, bary


def _free_at_stage1_points(
    surface: _RestSurface, points, colors, densities, scales, quats, part_margin: float
) -> _FreeStart:
    """Free Gaussians at stage 1's points, bound to their nearest triangle; those within
    ``part_margin`` of the hands' and face's triangles (or inside them) are dropped."""
    means = torch.as_tensor(points, dtype=torch.float32)
    n = len(means)
    colors = torch.as_tensor(colors if colors is not None else np.full((n, 3), 0.5), dtype=torch.float32)
    as_tensor = lambda a: None if a is None else torch.as_tensor(a, dtype=torch.float32)
    densities, scales, quats = as_tensor(densities), as_tensor(scales), as_tensor(quats)
    bind, bary, distance, outside = nearest_triangles(means, surface.vertices, surface.faces)
    keep = ~(surface.part_triangles[bind] & ((distance < part_margin) | ~outside))
    densities, scales, quats = (None if t is None else t[keep] for t in (densities, scales, quats))
    return _FreeStart(means[keep], colors[keep], bind[keep], bary[keep], densities, scales, quats, int((~keep).sum()))


class H3GA(torch.nn.Module):
    def __init__(
        self,
        body: BodyModel,
        num_free: int = 4000,
        num_bound: int = 1000,
        init_points: np.ndarray | None = None,
        init_colors: np.ndarray | None = None,
        betas=None,
        seed: int = 0,
        pose_deformation: bool = True,
        init_densities: np.ndarray | None = None,
        init_scales: np.ndarray | None = None,
        init_quats: np.ndarray | None = None,
        part_margin: float = 0.01,
    ):
        """``init_*``: stage-1 points (rest pose) with their colours, densities, scales and rotations;
        without them free Gaussians start on the body surface. Free points within ``part_margin``
        metres of the hands' and face's surface (or inside it) are dropped: the mesh-bound Gaussians
        carry those parts, as in the paper, so fingers and lips follow the mesh exactly."""
        super().__init__()
        self.body = body
        device = body.faces.device
        # The start is built on the CPU (seeded CPU generators, identical on every machine) and the
        # finished model moved to the body's device at the end. One generator, drawn from in this
        # order: free Gaussians' triangles (on the surface), bound Gaussians' triangles, their
        # barycentric logits.
        body = body if device.type == "cpu" else copy.deepcopy(body).cpu()
        g = torch.Generator().manual_seed(seed)
        surface = self._init_rest_surface(body, betas)
        if init_points is None:
            # (init_densities without init_points are used as given, as they always were)
            start = _FreeStart(*_free_on_surface(surface, num_free, g, seed), densities=init_densities)
        else:
            start = _free_at_stage1_points(
                surface, init_points, init_colors, init_densities, init_scales, init_quats, part_margin
            )
        self.dropped_near_parts = start.dropped
        self._init_free_gaussians(surface, start, smooth_skin=init_points is not None)
        self._init_bound_gaussians(surface, num_bound, g)
        self._init_hand_offsets(surface)
        self._init_deformation(seed, pose_deformation)
        self.to(device)

    def _init_rest_surface(self, body: BodyModel, betas) -> _RestSurface:
        """The ``betas`` and ``rest_joints`` buffers, and the shaped rest body to start on."""
        betas = torch.zeros(body.num_betas) if betas is None else torch.as_tensor(betas, dtype=torch.float32)
        self.register_buffer("betas", betas)
        with torch.no_grad():
            rest = body(betas=betas[None])
        v = rest.rest_vertices[0]
        faces = body.faces
        self.register_buffer("rest_joints", rest.rest_joints[0])
        weights = body.skin_weights
        part = (weights[:, HAND_JOINTS].sum(1) > 0.5) | (weights[:, FACE_JOINTS].sum(1) > 0.5)
        areas = torch.linalg.norm(
            torch.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]], dim=-1), dim=-1
        )
        return _RestSurface(body, v, faces, areas, part[faces].all(dim=1))

    def _init_free_gaussians(self, surface: _RestSurface, start: _FreeStart, smooth_skin: bool) -> None:
        """Free Gaussians: skinned by their triangle's weights (smoothed far from the skin for stage-1
        points), sized by the average spacing, shaped and made opaque by stage 1 where it says."""
        v, faces, skin_weights = surface.vertices, surface.faces, surface.body.skin_weights
        means, bind, bary = start.means, start.bind, start.bary
        skin = torch.einsum("nc,ncj->nj", bary, skin_weights[faces[bind]])
        if smooth_skin:
            skin = smooth_far_skin_weights(
                means, torch.einsum("nc,nci->ni", bary, v[faces[bind]]), skin, v, skin_weights
            )
        w, j = torch.topk(skin, SKIN_TOP_K, dim=1)
        self.register_buffer("free_bind", bind)
        self.register_buffer("free_bary", bary)
        self.register_buffer("free_skin_joints", j)
        self.register_buffer("free_skin_weights", w / w.sum(1, keepdim=True))
        spacing = float(torch.sqrt(surface.areas.sum() / max(1, len(means)))) * 0.6
        self.free_means = torch.nn.Parameter(means.clone())
        scales = torch.full((len(means), 3), spacing) if start.scales is None else start.scales
        # From stage 1's local structure: its shape and orientation, no larger than a few spacings
        # (a sparse neighbourhood would otherwise start a floater the size of a limb).
        self.free_log_scales = torch.nn.Parameter(scales.clamp(1e-4, 3 * spacing).log())
        quats = start.quats
        self.free_quats = torch.nn.Parameter(
            F.normalize(quats, dim=-1) if quats is not None else torch.tensor([1.0, 0, 0, 0]).repeat(len(means), 1)
        )
        if start.densities is None:
            opacity = torch.full((len(means),), 2.0)
        else:  # stage 1's volume density (1/m) over a Gaussian's thickness (~2 sigma) -> alpha
            alpha = 1 - torch.exp(-start.densities * 2 * spacing)
            opacity = torch.logit(alpha.clamp(0.05, 0.99))
        self.free_opacity = torch.nn.Parameter(opacity)
        # Stage 1 renders display values; this model holds linear light (render.AVATAR_RENDER).
        self.free_color_logits = torch.nn.Parameter(torch.logit(srgb_to_linear(start.colors).clamp(0.02, 0.98)))

    def _init_bound_gaussians(self, surface: _RestSurface, num_bound: int, g: torch.Generator) -> None:
        """Mesh-bound Gaussians: several per hand and face triangle, flat on it, skin-coloured."""
        v, faces, areas = surface.vertices, surface.faces, surface.areas
        tri = torch.nonzero(surface.part_triangles).squeeze(1)
        # Area-weighted: the MakeHuman face and hands are densely meshed, so "k per triangle" would
        # put tens of thousands of Gaussians there; a budget spread by area is even on the skin.
        bound_faces = tri[torch.multinomial(areas[tri], num_bound, replacement=True, generator=g)]
        self.register_buffer("bound_faces", bound_faces)
        self.bound_bary_logits = torch.nn.Parameter(torch.randn(len(bound_faces), 3, generator=g) * 0.3)
        edge = torch.linalg.norm(v[faces[bound_faces, 1]] - v[faces[bound_faces, 0]], dim=-1).clamp(min=1e-4)
        self.bound_log_scales = torch.nn.Parameter(torch.stack([edge.log(), edge.log(), (edge * 0.1).log()], -1) - 0.5)
        self.bound_quats = torch.nn.Parameter(torch.tensor([1.0, 0, 0, 0]).repeat(len(bound_faces), 1))
        self.bound_opacity = torch.nn.Parameter(torch.full((len(bound_faces),), 2.0))
        self.bound_color_logits = torch.nn.Parameter(
            torch.logit(srgb_to_linear(torch.tensor([0.78, 0.6, 0.5]))).repeat(len(bound_faces), 1)
        )

    def _init_hand_offsets(self, surface: _RestSurface) -> None:
        """Learnable hand shape: per-vertex offsets on hand vertices, baked into the exported template."""
        weights = surface.body.skin_weights
        self.register_buffer("hand_mask", (weights[:, HAND_JOINTS].sum(1) > 0.5).float()[:, None])
        self.hand_offsets = torch.nn.Parameter(torch.zeros_like(surface.vertices))

    def _init_deformation(self, seed: int, enabled: bool) -> None:
        self.deformation = None
        if enabled:
            with torch.random.fork_rng(devices=[]):  # its initial weights follow ``seed``, not the caller's RNG
                torch.manual_seed(seed)
                self.deformation = PoseDeformation()

    @property
    def num_free(self) -> int:
        return self.free_means.shape[0]

    def forward(self, full_pose: torch.Tensor, expression: torch.Tensor | None = None, deform: bool = True):
        """Posed means (N+M,3), covariances (N+M,3,3), colours, opacities in SMPL-X space.

        ``deform=False`` gives exactly the exported file's model (what Blender shows)."""
        body = self.body
        rest = (
            body.template_vertices
            + torch.einsum("vcb,b->vc", body.shape_dirs, self.betas)
            + self.hand_offsets * self.hand_mask
        )
        if expression is not None and body.num_expressions:
            rest = rest + torch.einsum("vce,e->vc", body.expression_dirs, expression)
        rot = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(1, 55, 3, 3)
        _, A = batch_rigid_transform(rot, self.rest_joints[None], body._parents, dtype=rest.dtype)
        A = A[0]
        T = torch.einsum("vk,kij->vij", body.skin_weights, A)
        posed = torch.einsum("vij,vj->vi", T[:, :3, :3], rest) + T[:, :3, 3]

        # Free: shape/expression displacement of the bind point, then their own LBS.
        template_rest = body.template_vertices + torch.einsum("vcb,b->vc", body.shape_dirs, self.betas)
        delta = rest - template_rest - self.hand_offsets * self.hand_mask
        corners = delta[body.faces[self.free_bind]]
        means = self.free_means + torch.einsum("nc,nci->ni", self.free_bary, corners)
        log_scales = self.free_log_scales
        if deform and self.deformation is not None:
            d_means, d_scales = self.deformation(self.free_means, full_pose)
            means, log_scales = means + d_means, log_scales + d_scales
        M = torch.einsum("nk,nkij->nij", self.free_skin_weights, A[self.free_skin_joints])
        L = M[:, :3, :3]
        free_means = torch.einsum("nij,nj->ni", L, means) + M[:, :3, 3]
        R = quat_to_matrix(self.free_quats)
        S = torch.exp(log_scales)
        root = L @ R * S[:, None, :]
        free_cov = root @ root.transpose(1, 2)

        # Bound: on the posed triangles, in their frames.
        faces = body.faces[self.bound_faces]
        bary = torch.softmax(self.bound_bary_logits, -1)
        bound_means = torch.einsum("mc,mci->mi", bary, posed[faces])
        frames = triangle_frames(posed, faces)
        Rb = frames @ quat_to_matrix(self.bound_quats) * torch.exp(self.bound_log_scales)[:, None, :]
        bound_cov = Rb @ Rb.transpose(1, 2)
        means = torch.cat([free_means, bound_means])
        cov = torch.cat([free_cov, bound_cov])
        colors = torch.sigmoid(torch.cat([self.free_color_logits, self.bound_color_logits]))
        opacities = torch.sigmoid(torch.cat([self.free_opacity, self.bound_opacity]))
        return means, cov, colors, opacities

    @torch.no_grad()
    def export(
        self,
        prompt: str = "",
        negative_prompt: str = "",
        seed: int = 0,
        preset: str = "",
        gender: str = "neutral",
        deformation: bool = False,
    ) -> H3GAAvatar:
        """The avatar as a .h3ga (colours and opacities baked; hand shape baked into the template).

        ``deformation``: also write the pose-dependent network as ``deform/*``. Off by default: the
        trainer fine-tunes without it at the end, so the file's armature model is what was optimised."""
        body = self.body
        template = body.template_vertices + self.hand_offsets * self.hand_mask
        f = lambda t: t.detach().cpu().numpy()
        arrays = {
            "rig/betas": f(self.betas),
            "rig/rest_joints": f(self.rest_joints),  # the joints it was trained with
            "rig/joint_regressor": f(body.joint_regressor),
            "body/template_vertices": f(template),
            "body/faces": f(body.faces).astype(np.int32),
            "body/skin_weights": f(body.skin_weights),
            "body/shape_dirs": f(body.shape_dirs),
            "body/expression_dirs": f(body.expression_dirs),
            "free/means": f(self.free_means),
            "free/log_scales": f(self.free_log_scales),
            "free/quats": f(F.normalize(self.free_quats, dim=-1)),
            "free/opacity_logits": f(self.free_opacity),
            "free/colors": f(torch.sigmoid(self.free_color_logits)),
            "free/skin_joints": f(self.free_skin_joints).astype(np.int32),
            "free/skin_weights": f(self.free_skin_weights),
            "free/bind_faces": f(self.free_bind).astype(np.int32),
            "free/bind_barycentrics": f(self.free_bary),
            "bound/faces": f(self.bound_faces).astype(np.int32),
            "bound/barycentrics": f(torch.softmax(self.bound_bary_logits, -1)),
            "bound/log_scales": f(self.bound_log_scales),
            "bound/quats": f(F.normalize(self.bound_quats, dim=-1)),
            "bound/opacity_logits": f(self.bound_opacity),
            "bound/colors": f(torch.sigmoid(self.bound_color_logits)),
        }
        if deformation and self.deformation is not None:  # backend-only extra, ignored by Blender
            for name, tensor in self.deformation.net.state_dict().items():
                arrays[f"deform/mlp_{name.replace('.', '_')}"] = f(tensor)
        # The body's colours in the file's colour space too: its own are display values.
        display = (
            body.vertex_colors
            if body.vertex_colors is not None
            else np.tile([[0.8, 0.62, 0.52]], (body.num_vertices, 1))
        )
        arrays["body/vertex_colors"] = srgb_to_linear_np(display).astype(np.float32)
        manifest = new_manifest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            preset=preset,
            color_space=COLOR_SPACE_LINEAR,
            body_kind=body.kind,
            gender=gender,
            licensed_smplx_data=body.licensed,
            shape_names=body.shape_names,
            expression_names=body.expression_names,
        )
        return H3GAAvatar(manifest, arrays)


def smooth_far_skin_weights(
    points,
    anchors,
    skin,
    vertices,
    vertex_weights,
    near: float = 0.02,
    far: float = 0.06,
    neighbours: int = 16,
    chunk: int = 4096,
):
    """Skin weights of points away from the surface, blended towards the inverse-distance average of
    their nearest body vertices: 0 % at ``near`` metres from their bind point, 100 % from ``far``.

    One triangle's weights are right on the skin but arbitrary deep inside a limb or off a loose
    garment, where the nearest triangle may belong to a neighbouring part; averaging over the
    neighbourhood makes such points move like the body around them."""
    dist = torch.linalg.norm(points - anchors, dim=1)
    blend = ((dist - near) / (far - near)).clamp(0, 1)
    far_ones = torch.nonzero(blend > 0).squeeze(1)
    if len(far_ones) == 0:
        return skin
    out = skin.clone()
    for i in range(0, len(far_ones), chunk):
        idx = far_ones[i : i + chunk]
        d, nearest = torch.cdist(points[idx], vertices).topk(neighbours, largest=False)
        w = 1.0 / d.clamp(min=1e-4)
        average = torch.einsum("pk,pkj->pj", w / w.sum(1, keepdim=True), vertex_weights[nearest])
        out[idx] = (1 - blend[idx, None]) * skin[idx] + blend[idx, None] * average
    return out


def closest_points_on_triangles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """Barycentrics (...,3) of the point of each triangle (a, b, c) nearest to ``p``, exactly: the
    projection onto the plane when it falls inside, else the nearest point of the three edges."""
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    denom = (d00 * d11 - d01 * d01).clamp(min=1e-20)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    inside = torch.stack([1 - v - w, v, w], -1)
    t_ab = (d20 / d00.clamp(min=1e-20)).clamp(0, 1)
    t_ac = (d21 / d11.clamp(min=1e-20)).clamp(0, 1)
    bc = c - b
    t_bc = (((p - b) * bc).sum(-1) / (bc * bc).sum(-1).clamp(min=1e-20)).clamp(0, 1)
    zero = torch.zeros_like(t_ab)
    options = torch.stack(
        [
            inside,
            torch.stack([1 - t_ab, t_ab, zero], -1),
            torch.stack([1 - t_ac, zero, t_ac], -1),
            torch.stack([zero, 1 - t_bc, t_bc], -1),
        ],
        -2,
    )  # (...,4,3)
    points = (
        options[..., 0:1] * a[..., None, :] + options[..., 1:2] * b[..., None, :] + options[..., 2:3] * c[..., None, :]
    )
    dist = torch.linalg.norm(points - p[..., None, :], dim=-1)
    dist[..., 0] = torch.where((inside >= 0).all(-1), dist[..., 0], torch.full_like(dist[..., 0], float("inf")))
    best = dist.argmin(-1)
    return torch.gather(options, -2, best[..., None, None].expand(*best.shape, 1, 3))[..., 0, :], dist.min(-1).values


def nearest_triangles(
    points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, candidates: int = 32, chunk: int = 2048
):
    """For each point: the triangle of the surface nearest to it by exact point-to-triangle distance,
    the barycentrics of its nearest point there, that distance, and whether the point lies on the
    outer side of the triangle.

    The exact distance is taken over the ``candidates`` triangles with the nearest centroids (a
    neighbouring finger's triangles are among them, so a point on a finger binds to that finger,
    not to a neighbour with a closer centre); in chunks of points, so memory stays bounded."""
    centroids = vertices[faces].mean(1)
    k = min(candidates, len(faces))
    binds, barys, dists, outs = [], [], [], []
    for i in range(0, len(points), chunk):
        p = points[i : i + chunk]
        near = torch.cdist(p, centroids).topk(k, largest=False).indices  # (c,k)
        tri = vertices[faces[near]]  # (c,k,3,3)
        bary, dist = closest_points_on_triangles(
            p[:, None].expand(-1, k, -1), tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
        )
        best = dist.argmin(1)
        rows = torch.arange(len(p))
        bind = near[rows, best]
        a, b, c = (vertices[faces[bind, j]] for j in range(3))
        closest = torch.einsum("nc,nci->ni", bary[rows, best], torch.stack([a, b, c], 1))
        normal = torch.cross(b - a, c - a, dim=-1)
        binds.append(bind), barys.append(bary[rows, best]), dists.append(dist[rows, best])
        outs.append(((p - closest) * normal).sum(-1) >= 0)
    if not binds:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    return torch.cat(binds), torch.cat(barys), torch.cat(dists), torch.cat(outs)
