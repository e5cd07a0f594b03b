"""Oracle reconstruction for stage 1: a reference avatar the stage must recover without diffusion.

The reference is the open body in the canonical A-pose wearing a procedural multi-coloured
outfit (the same outfit as the stage-2 oracle: blue trousers, red shirt, white sleeves, green cap,
skin elsewhere) as vertex colours, rendered by the mesh rasterizer on the grey background. The
oracle guidance pulls the field's renders towards it under the same cameras; PSNR is measured on
held-out views that training never saw.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..body import BodyModel
from ..guidance import build_guidance
from ..progress import ProgressReporter
from ..render.meshraster import rasterize_mesh
from ..stage2.oracle import outfit_colors
from .body import CanonicalBody, body_initialised_field, canonical_body, held_out_cameras
from .field import BACKGROUND, render_image
from .presets import Stage1Config
from .train import train_stage1


def outfit_vertex_colors(body: BodyModel, cb: CanonicalBody) -> np.ndarray:
    with torch.no_grad():
        rest = body(betas=torch.zeros(1, body.num_betas))
    return outfit_colors(rest.rest_vertices[0].numpy(), rest.joints[0].numpy())


def reference_renderer(cb: CanonicalBody, colors: np.ndarray):
    def render(cameras, poses=None):
        return torch.stack(
            [
                torch.as_tensor(
                    rasterize_mesh(cb.vertices, cb.faces, c, colors, BACKGROUND).color, dtype=torch.float32
                ).permute(2, 0, 1)
                for c in cameras
            ]
        )

    return render


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * np.log10(1.0 / max(float(torch.mean((a - b) ** 2)), 1e-12)))


@torch.no_grad()
def held_out_psnr(field, cb: CanonicalBody, reference, size: int, samples: int) -> float:
    scores = []
    for cam in held_out_cameras(cb, size):
        image = render_image(field, cam, samples)[0].permute(2, 0, 1)
        scores.append(psnr(image.clamp(0, 1), reference([cam])[0]))
    return float(np.mean(scores))


def run_oracle_stage1(steps: int = 150, size: int = 48, seed: int = 0, cache_dir: Path | None = None, **overrides):
    """Train against the oracle; return (held-out PSNR, PSNR right after body init, seconds)."""
    started = time.time()
    body = BodyModel.load("open")
    cb = canonical_body(body)
    reference = reference_renderer(cb, outfit_vertex_colors(body, cb))
    cfg = replace(
        Stage1Config(),  # the tiny preset's numbers
        steps=steps,
        schedule=((0.0, size),),
        face_prob=0.2,
        hand_prob=0.0,
        batch=2,
        checkpoint_every=10**9,
        preview_every=10**9,
        **overrides,
    )
    field = body_initialised_field(cb, cfg, cache_dir, seed)
    initial = held_out_psnr(field, cb, reference, size, cfg.samples)
    guidance = build_guidance("oracle", reference_render=reference)
    with tempfile.TemporaryDirectory() as tmp:
        train_stage1(field, cb, guidance, "oracle", cfg, ProgressReporter(), tmp, seed=seed)
    final = held_out_psnr(field, cb, reference, size, cfg.samples)
    return final, initial, time.time() - started
