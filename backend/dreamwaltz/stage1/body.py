"""The canonical (A-pose) body that anchors stage 1: its mesh, its hand and face regions, and
the body-shape initialisation of the field (silhouette + depth of the mesh; no diffusion),
cached per body shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..body.poses import apose
from ..core.camera import orbit_camera
from ..core.joints import JOINT_INDEX, JOINT_NAMES
from ..render.meshraster import rasterize_mesh
from .density import margin_loss
from .field import RadianceField, camera_rays, render_rays

HAND_JOINTS = [
    i for i, n in enumerate(JOINT_NAMES) if any(f in n for f in ("index", "middle", "ring", "pinky", "thumb"))
]
FACE_JOINTS = [JOINT_INDEX[n] for n in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")]
SKIN = (0.78, 0.6, 0.5)


@dataclass
class CanonicalBody:
    vertices: np.ndarray  # (V,3) A-pose at the avatar's betas
    faces: np.ndarray  # (F,3)
    normals: np.ndarray  # (V,3)
    joints: np.ndarray  # (55,3)
    landmarks: np.ndarray  # (89,3)
    hand_vertices: np.ndarray  # indices
    face_vertices: np.ndarray
    pose: np.ndarray  # (55,3)
    key: str  # hash of the body model data + betas


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def canonical_body(body, betas=None) -> CanonicalBody:
    betas_t = torch.zeros(body.num_betas) if betas is None else torch.as_tensor(np.asarray(betas, np.float32))
    pose = apose()
    with torch.no_grad():
        out = body(
            betas=betas_t[None].to(body.faces.device),
            full_pose=torch.as_tensor(pose, dtype=torch.float32, device=body.faces.device)[None],
        )
    v = out.vertices[0].cpu().double().numpy()
    f = body.faces.cpu().numpy()
    w = body.skin_weights.cpu().numpy()
    digest = hashlib.sha256()
    for arr in (body.template_vertices, body.shape_dirs, body.faces, body.skin_weights):
        digest.update(np.ascontiguousarray(arr.cpu().numpy()).tobytes())
    digest.update(np.ascontiguousarray(betas_t.numpy(), np.float32).tobytes())
    return CanonicalBody(
        v,
        f,
        vertex_normals(v, f),
        out.joints[0].cpu().double().numpy(),
        out.landmarks[0].cpu().double().numpy(),
        np.nonzero(w[:, HAND_JOINTS].sum(1) > 0.5)[0],
        np.nonzero(w[:, FACE_JOINTS].sum(1) > 0.5)[0],
        pose,
        digest.hexdigest()[:20],
    )


def new_field(cb: CanonicalBody, cfg) -> RadianceField:
    return RadianceField(cb.vertices.min(0), cb.vertices.max(0), cfg.field)


def init_cameras(cb: CanonicalBody, count: int, size: int, rng: np.random.Generator):
    """Views for body initialisation: whole-body orbits plus the training sampler's close-ups."""
    from ..conditioning import sample_camera

    centre = (cb.vertices.min(0) + cb.vertices.max(0)) / 2
    cams = []
    for i in range(count):
        if i % 3 == 2:
            cams.append(sample_camera(rng, cb.joints, size, face_prob=0.4, hand_prob=0.4).camera)
        else:
            cams.append(
                orbit_camera(float(rng.uniform(-180, 180)), float(rng.uniform(60, 120)), 2.6, centre, 50, size, size)
            )
    return cams


def held_out_cameras(cb: CanonicalBody, size: int):
    centre = (cb.vertices.min(0) + cb.vertices.max(0)) / 2
    return [
        orbit_camera(az, el, 2.3, centre, 45, size, size) for az, el in ((20, 88), (-75, 100), (150, 80), (-160, 95))
    ]


def fit_body(field: RadianceField, cb: CanonicalBody, cfg, seed: int = 0, reporter=None) -> RadianceField:
    """Fit the field to the body mesh: rendered alpha to its silhouette, expected depth to its
    depth, albedo to a neutral skin tone (so SkelSD starts from the body, not from noise)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    device = field.box_min.device
    os, ds, masks, depths = [], [], [], []
    for cam in init_cameras(cb, cfg.init_views, cfg.init_size, rng):
        r = rasterize_mesh(cb.vertices, cb.faces, cam)
        o, d = camera_rays(cam, device)
        os.append(o), ds.append(d)
        masks.append(torch.as_tensor(r.mask.reshape(-1), dtype=torch.float32))
        depths.append(torch.as_tensor(r.depth.reshape(-1), dtype=torch.float32))
    o, d, mask, depth = torch.cat(os), torch.cat(ds), torch.cat(masks).to(device), torch.cat(depths).to(device)
    skin = torch.tensor(SKIN, device=device)
    opt = torch.optim.Adam(
        [
            {"params": field.encoding.parameters(), "lr": cfg.init_lr},
            {"params": field.mlp.parameters(), "lr": cfg.init_lr / 5},
        ],
        eps=1e-15,
    )
    step_size = float((field.box_max - field.box_min).norm()) / cfg.samples
    keep = np.setdiff1d(np.arange(len(cb.vertices)), cb.hand_vertices)
    verts = torch.as_tensor(cb.vertices[keep], dtype=torch.float32, device=device)
    normals = torch.as_tensor(cb.normals[keep], dtype=torch.float32, device=device)
    for step in range(cfg.init_steps):
        if step % cfg.occupancy_every == 0 and step >= cfg.occupancy_every:
            field.update_occupancy(step_size, generator=gen)
        idx = torch.randint(len(o), (cfg.init_rays,), generator=gen).to(device)
        out = render_rays(field, o[idx], d[idx], cfg.samples, generator=gen)
        m = mask[idx]
        acc = out.alpha.clamp(1e-4, 1 - 1e-4)
        loss = torch.nn.functional.binary_cross_entropy(acc, m)
        loss = loss + 0.5 * ((out.depth - depth[idx]).abs() * m).sum() / m.sum().clamp(min=1)
        target = m[:, None] * skin + (1 - m[:, None]) * 0.5
        loss = loss + 0.1 * (out.color - target).pow(2).mean()
        # Depth made 3D: a thin shell just under the mesh is dense, one 0.4-2 cm outside it empty
        # (converges much faster than silhouettes alone). Not on the hands: finger gaps are the
        # job of the hand/face density guidance during training.
        pick = torch.randint(len(verts), (cfg.init_rays,), generator=gen).to(device)
        r = torch.rand(cfg.init_rays, 1, generator=gen).to(device)
        inside = verts[pick] - normals[pick] * (0.001 + 0.007 * r)
        outside = verts[pick] + normals[pick] * (0.004 + 0.016 * r)
        loss = loss + margin_loss(field, inside, outside, cfg.log_density_in, cfg.log_density_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reporter is not None and (step + 1) % 50 == 0:
            reporter.step("stage1-init", step + 1, cfg.init_steps, loss=float(loss.detach()))
    field.update_occupancy(step_size, decay=0.0, generator=gen)
    return field


def init_cache_path(cache_dir: Path, cb: CanonicalBody, cfg) -> Path:
    fc = cfg.field
    tag = f"{cb.key}-{fc.levels}x{fc.features}x{fc.log2_table}-{fc.max_res}-{fc.occupancy_res}-{cfg.init_steps}-{cfg.init_size}-{cfg.init_rays}-{cfg.samples}"
    return Path(cache_dir) / "stage1-body-init" / f"{tag}.pt"


def body_initialised_field(
    cb: CanonicalBody, cfg, cache_dir: Path | None = None, seed: int = 0, reporter=None, device="cpu"
) -> RadianceField:
    """A field fitted to the body, loaded from the cache when this body shape was fitted before."""
    if cache_dir is None:
        from ..guidance.models import cache_dir as default_cache

        cache_dir = default_cache()
    path = init_cache_path(cache_dir, cb, cfg)
    field = new_field(cb, cfg).to(device)
    if path.exists():
        try:
            field.load_state_dict(torch.load(path, weights_only=True, map_location=device))
            if reporter is not None:
                reporter.info("stage1", "Body initialisation loaded from the cache.")
            return field
        except Exception:  # a damaged cache entry is refitted, never trusted
            pass
    if reporter is not None:
        reporter.info("stage1", "Fitting the field to the body shape (silhouette and depth; cached for next time).")
    torch.manual_seed(seed)
    fit_body(field, cb, cfg, seed, reporter)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(field.state_dict(), tmp)
    tmp.replace(path)
    return field
