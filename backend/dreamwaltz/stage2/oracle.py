"""Oracle reconstruction for stage 2: a reference avatar the stage must recover without diffusion.

The reference is the open body wearing a procedural multi-coloured outfit (trousers, shirt,
sleeves, a cap; skin elsewhere) with painted detail on the parts the mesh-bound Gaussians carry
(each finger its own colour, lips and eyes), as its own H3GA with a different random placement of
Gaussians. The oracle guidance pulls the trainee's renders towards the reference's under the same
camera, pose and expression. PSNR is then measured on held-out views, held-out poses, and
close-ups of the hands and the face (the training sampler's close-up cameras, another seed) under
held-out finger poses and expressions; and the gap between the trained model's renders and the
exported file's (what Blender and ``dreamwaltz render`` show).
"""

from __future__ import annotations

import tempfile
import time
from typing import NamedTuple

import numpy as np
import torch

from ..body import BodyModel
from ..body.poses import apose, random_expression, random_pose
from ..conditioning import sample_camera
from ..core.camera import orbit_camera
from ..core.h3ga import read_h3ga, write_h3ga
from ..core.joints import JOINT_INDEX, JOINT_NAMES
from ..core.posing import pose_avatar
from ..guidance import OracleGuidance
from ..progress import ProgressReporter
from ..render import rasterize_posed, srgb_to_linear
from ..render.rasterizer import BACKGROUND
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


# Painted detail by the joint that moves a mesh-bound Gaussian's triangle most.
DETAIL = {
    "thumb": (0.85, 0.2, 0.2),
    "index": (0.2, 0.65, 0.25),
    "middle": (0.2, 0.3, 0.85),
    "ring": (0.9, 0.75, 0.1),
    "pinky": (0.65, 0.2, 0.75),
    "jaw": (0.7, 0.1, 0.2),
    "eye": (0.1, 0.1, 0.25),
}


def detail_colors(body: BodyModel, triangles: torch.Tensor, base: np.ndarray) -> np.ndarray:
    weights = body.skin_weights[body.faces[triangles]].sum(1)  # (M,55)
    colors = base.copy()
    for i, joint in enumerate(weights.argmax(1).tolist()):
        for key, color in DETAIL.items():
            if key in JOINT_NAMES[joint]:
                colors[i] = color
    return colors


def reference_avatar(body: BodyModel, num_free: int, seed: int = 100) -> H3GA:
    ref = H3GA(body, num_free=num_free, num_bound=num_free // 3, seed=seed)
    with torch.no_grad():
        joints = body().joints[0].numpy()
        # The outfit is designed in display colours; the model holds linear light.
        as_logits = lambda display: torch.logit(
            srgb_to_linear(torch.as_tensor(display, dtype=torch.float32)).clamp(0.02, 0.98)
        )
        ref.free_color_logits.copy_(as_logits(outfit_colors(ref.free_means.numpy(), joints)))
        v = body().rest_vertices[0].numpy()[body.faces[ref.bound_faces].numpy()].mean(1)
        bound = detail_colors(body, ref.bound_faces, outfit_colors(v, joints))
        ref.bound_color_logits.copy_(as_logits(bound))
        ref.free_log_scales.fill_(float(ref.free_log_scales.mean()) - 0.2)
    return ref


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


class OracleScores(NamedTuple):
    view: float  # held-out views, canonical pose (dB)
    pose: float  # held-out body poses
    hands: float  # hand close-ups under held-out finger poses
    face: float  # face close-ups under held-out expressions
    export_gap: float  # |PSNR(model) - PSNR(exported file)| over all of the above (dB)
    initial: float  # held-out views before training
    seconds: float


def held_out_set(body: BodyModel, size: int, seed: int = 7) -> dict:
    """(pose, expression, camera) per kind, from seeds training never uses."""
    rng = np.random.default_rng(seed)
    target = (0.0, float(body().joints[0, :, 1].mean()) - 0.1, 0.0)
    views = [
        (apose(), np.zeros(body.num_expressions), orbit_camera(az, el, 2.6, target, 50, size, size))
        for az, el in ((35, 85), (-110, 95), (160, 80), (-20, 100))
    ]
    poses = [
        (
            random_pose(rng, canonical_mix=0.0),
            random_expression(rng, body.num_expressions, body.kind),
            orbit_camera(float(rng.uniform(-60, 60)), 90, 2.6, target, 50, size, size),
        )
        for _ in range(4)
    ]
    close = {"hands": [], "face": []}
    for kind in close:
        for _ in range(4):
            pose = random_pose(rng, canonical_mix=1.0)  # arms near the A-pose, fingers and jaw random
            expression = random_expression(rng, body.num_expressions, body.kind)
            with torch.no_grad():
                out = body(
                    full_pose=torch.as_tensor(pose, dtype=torch.float32)[None],
                    expression=torch.as_tensor(expression, dtype=torch.float32)[None],
                )
            joints, landmarks = out.joints[0].numpy(), out.landmarks[0].numpy()
            face, hand = (1.0, 0.0) if kind == "face" else (0.0, 1.0)
            camera = sample_camera(rng, joints, size, face, hand, landmarks=landmarks).camera
            close[kind].append((pose, expression, camera))
    return {"view": views, "pose": poses, **close}


@torch.no_grad()
def evaluate(model: H3GA, reference: H3GA, body: BodyModel, size: int, seed: int = 7, deform: bool = False) -> dict:
    """PSNR per kind of held-out render; ``file`` adds the exported file's PSNR over all of them."""
    items = held_out_set(body, size, seed)
    scores = {
        kind: float(
            np.mean([psnr(render(model, p, e, c, deform=deform), render(reference, p, e, c)) for p, e, c in kind_items])
        )
        for kind, kind_items in items.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        avatar = read_h3ga(write_h3ga(f"{tmp}/a.h3ga", model.export()))
    file_render = lambda p, e, c: rasterize_posed(pose_avatar(avatar, p, expression=e), c, background=BACKGROUND).image
    everything = [item for kind_items in items.values() for item in kind_items]
    model_psnr = [psnr(render(model, p, e, c, deform=deform), render(reference, p, e, c)) for p, e, c in everything]
    file_psnr = [psnr(file_render(p, e, c), render(reference, p, e, c)) for p, e, c in everything]
    scores["export_gap"] = float(abs(np.mean(model_psnr) - np.mean(file_psnr)))
    return scores


def run_oracle_stage2(steps: int = 120, size: int = 48, num_free: int = 3000, seed: int = 0, **config) -> OracleScores:
    """Train against the oracle; return the held-out scores."""
    started = time.time()
    body = BodyModel.load("open")
    reference = reference_avatar(body, num_free)
    model = H3GA(body, num_free=num_free, num_bound=num_free // 3, seed=seed)

    def reference_render(cameras, poses):
        return torch.stack([render(reference, p, e, c).permute(2, 0, 1) for c, (p, e) in zip(cameras, poses)])

    initial = evaluate(model, reference, body, size)["view"]
    cfg = Stage2Config(
        **{
            **dict(
                steps=steps,
                resolution=size,
                batch=2,
                checkpoint_every=10**9,
                preview_every=10**9,
                lr_colors=0.05,
                lr_opacity=0.05,
            ),
            **config,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        train_stage2(model, OracleGuidance(reference_render), "oracle", cfg, ProgressReporter(), tmp, seed=seed)
    s = evaluate(model, reference, body, size, deform=cfg.deforming(cfg.steps - 1))
    return OracleScores(s["view"], s["pose"], s["hands"], s["face"], s["export_gap"], initial, time.time() - started)
