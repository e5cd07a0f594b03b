"""Oracle reconstruction for stage 2: a reference avatar the stage must recover without diffusion.

The reference is the open body wearing a procedural multi-coloured outfit (trousers, shirt,
sleeves, a cap; skin elsewhere), as its own H3GA with a different random placement of Gaussians.
The oracle guidance pulls the trainee's renders towards the reference's under the same camera,
pose and expression; PSNR is then measured on held-out views and held-out poses.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..body import BodyModel
from ..body.poses import apose, random_expression, random_pose
from ..core.camera import orbit_camera
from ..core.joints import JOINT_INDEX
from ..guidance import OracleGuidance
from ..progress import ProgressReporter
from .model import H3GA
from .train import Stage2Config, render, train_stage2

SKIN = (0.78, 0.6, 0.5)


def outfit_colors(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Colours by body region of rest-pose points: blue trousers, red shirt, white sleeves, green cap."""
    y, x = points[:, 1], np.abs(points[:, 0])
    colors = np.tile(np.array(SKIN), (len(points), 1))
    hips, neck = joints[JOINT_INDEX["pelvis"], 1], joints[JOINT_INDEX["neck"], 1]
    knee = joints[JOINT_INDEX["left_knee"], 1]
    shoulder_x = joints[JOINT_INDEX["left_shoulder"], 0]
    colors[(y < hips + 0.05) & (y > knee - 0.25)] = (0.1, 0.2, 0.7)
    torso = (y >= hips + 0.05) & (y < neck - 0.02) & (x < shoulder_x + 0.02)
    colors[torso] = (0.75, 0.1, 0.1)
    colors[(x >= shoulder_x) & (x < shoulder_x + 0.2) & (y > neck - 0.2)] = (0.9, 0.9, 0.9)
    colors[y > joints[JOINT_INDEX["head"], 1] + 0.1] = (0.1, 0.6, 0.2)
    return colors


def reference_avatar(body: BodyModel, num_free: int, seed: int = 100) -> H3GA:
    ref = H3GA(body, num_free=num_free, num_bound=num_free // 3, seed=seed)
    with torch.no_grad():
        joints = body().joints[0].numpy()
        ref.free_color_logits.copy_(torch.logit(torch.as_tensor(outfit_colors(ref.free_means.numpy(), joints), dtype=torch.float32).clamp(0.02, 0.98)))
        v = body().rest_vertices[0].numpy()[body.faces[ref.bound_faces].numpy()].mean(1)
        ref.bound_color_logits.copy_(torch.logit(torch.as_tensor(outfit_colors(v, joints), dtype=torch.float32).clamp(0.02, 0.98)))
        ref.free_log_scales.fill_(float(ref.free_log_scales.mean()) - 0.2)
    return ref


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def evaluate(model: H3GA, reference: H3GA, body: BodyModel, size: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    target = (0.0, float(body().joints[0, :, 1].mean()) - 0.1, 0.0)
    views = [(apose(), np.zeros(body.num_expressions), orbit_camera(az, el, 2.6, target, 50, size, size))
             for az, el in ((35, 85), (-110, 95), (160, 80), (-20, 100))]
    poses = [(random_pose(rng, canonical_mix=0.0), random_expression(rng, body.num_expressions, body.kind),
              orbit_camera(float(rng.uniform(-60, 60)), 90, 2.6, target, 50, size, size)) for _ in range(4)]
    score = lambda items: float(np.mean([psnr(render(model, p, e, c), render(reference, p, e, c)) for p, e, c in items]))
    return score(views), score(poses)


def run_oracle_stage2(steps: int = 120, size: int = 48, num_free: int = 3000, seed: int = 0):
    """Train against the oracle; return (view PSNR, pose PSNR, initial view PSNR, seconds)."""
    started = time.time()
    body = BodyModel.load("open")
    reference = reference_avatar(body, num_free)
    model = H3GA(body, num_free=num_free, num_bound=num_free // 3, seed=seed)

    def reference_render(cameras, poses):
        return torch.stack([render(reference, p, e, c).permute(2, 0, 1) for c, (p, e) in zip(cameras, poses)])

    initial = evaluate(model, reference, body, size)[0]
    cfg = Stage2Config(steps=steps, resolution=size, batch=2, checkpoint_every=10**9, preview_every=10**9,
                       lr_colors=0.05, lr_opacity=0.05)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        train_stage2(model, OracleGuidance(reference_render), "oracle", cfg, ProgressReporter(), tmp, seed=seed)
    view, pose = evaluate(model, reference, body, size)
    return view, pose, initial, time.time() - started
