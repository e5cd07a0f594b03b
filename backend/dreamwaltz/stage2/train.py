"""Stage-2 training: canonical pose, then random canonical poses, then random body, hand and
expression poses, each step rendered from a sampled camera and guided by SkelSD (or the oracle).

Checkpoints (every ``checkpoint_every`` steps and on cancel) let a restarted job resume exactly;
progress goes to the reporter with a preview render every ``preview_every`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..body.poses import apose, random_canonical, random_expression, random_pose
from ..conditioning import body_keypoints, draw_openpose, sample_camera, view_prompt
from ..core.camera import orbit_camera
from ..core.errors import JobCancelled
from ..progress import ProgressReporter
from ..render import rasterize
from ..render.rasterizer import RenderOutput
from .densify import FREE_PARAMETERS, DensifyConfig, FreeGaussianRefiner, Optimizers, resize_free
from .model import H3GA

BACKGROUND = (0.5, 0.5, 0.5)  # the paper's constant grey


@dataclass
class Stage2Config:
    steps: int = 60
    resolution: int = 64
    batch: int = 1
    lr_means: float = 1.6e-4 * 5
    lr_scales: float = 5e-3
    lr_rotations: float = 1e-3
    lr_opacity: float = 5e-2
    lr_colors: float = 1e-2
    lr_bound: float = 1e-3
    checkpoint_every: int = 20
    preview_every: int = 20
    face_prob: float = 0.2
    hand_prob: float = 0.1
    # Densification and pruning of the free Gaussians (gsplat's DefaultStrategy); None = off.
    densify: Optional[DensifyConfig] = field(default=None)


def make_optimizer(model: H3GA, cfg: Stage2Config) -> Optimizers:
    free_lr = {"means": cfg.lr_means, "scales": cfg.lr_scales, "quats": cfg.lr_rotations,
               "opacities": cfg.lr_opacity, "colors": cfg.lr_colors}
    per_free = {key: torch.optim.Adam([getattr(model, attr)], lr=free_lr[key], eps=1e-15)
                for key, attr in FREE_PARAMETERS.items()}
    rest = torch.optim.Adam([
        {"params": [model.bound_log_scales], "lr": cfg.lr_scales},
        {"params": [model.bound_quats], "lr": cfg.lr_rotations},
        {"params": [model.bound_opacity], "lr": cfg.lr_opacity},
        {"params": [model.bound_color_logits], "lr": cfg.lr_colors},
        {"params": [model.bound_bary_logits, model.hand_offsets], "lr": cfg.lr_bound},
    ] + ([{"params": list(model.deformation.parameters()), "lr": 1e-3}] if model.deformation is not None else []), eps=1e-15)
    return Optimizers(per_free, rest)


def phase_pose(rng: np.random.Generator, step: int, total: int, expressions: int, kind: str, bank=None):
    """The paper's schedule: canonical, then random canonical, then random poses and expressions."""
    third = max(1, total // 3)
    expression = np.zeros(expressions)
    if step < third:
        pose = apose()
    elif step < 2 * third:
        pose = random_canonical(rng)
    else:
        pose = random_pose(rng, bank)
        expression = random_expression(rng, expressions, kind)
    return pose, expression


def render_output(model: H3GA, pose, expression, camera, device="cpu", deform: bool = True) -> RenderOutput:
    means, cov, colors, opacities = model(torch.as_tensor(pose, dtype=torch.float32, device=device),
                                          torch.as_tensor(expression, dtype=torch.float32, device=device), deform)
    return rasterize(means, cov, opacities, colors, camera, torch.tensor(BACKGROUND, device=device))


def render(model: H3GA, pose, expression, camera, device="cpu", deform: bool = True) -> torch.Tensor:
    return render_output(model, pose, expression, camera, device, deform).image


def save_checkpoint(path: Path, model, optimizer, step, rng, refiner=None):
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "densify": refiner.state_dict() if refiner is not None else None}, tmp)
    tmp.replace(path)


def train_stage2(model: H3GA, guidance, prompt: str, cfg: Stage2Config, reporter: ProgressReporter, workdir: Path,
                 seed: int = 0, device="cpu") -> H3GA:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "stage2.pt"
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    start, state = 0, None
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        resize_free(model, state["model"]["free_means"].shape[0])  # densification changes the count
        model.load_state_dict(state["model"])
    optimizer = make_optimizer(model, cfg)
    refiner = FreeGaussianRefiner(model, optimizer, cfg.densify) if cfg.densify is not None else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if refiner is not None and state.get("densify"):
            refiner.load_state_dict(state["densify"])
        start = state["step"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        reporter.info("stage2", f"Resumed from step {start}.")
    body = model.body
    kind = body.kind
    from ..body.pose_bank import load_pose_bank

    bank = load_pose_bank(model.rest_joints.cpu().numpy())
    faces = body.faces.cpu().numpy()  # exact ray-cast occlusion of hand and face keypoints
    for step in range(start, cfg.steps):
        if reporter.cancel.cancelled:
            save_checkpoint(ckpt, model, optimizer, step, rng, refiner)
            raise JobCancelled()
        images, skeletons, prompts, cameras, poses, renders = [], [], [], [], [], []
        for _ in range(cfg.batch):
            pose, expression = phase_pose(rng, step, cfg.steps, body.num_expressions, kind, bank)
            with torch.no_grad():
                out = body(betas=model.betas[None], full_pose=pose[None],
                           expression=torch.as_tensor(expression, dtype=torch.float32)[None])
            joints, landmarks, vertices = (t[0].cpu().numpy() for t in (out.joints, out.landmarks, out.vertices))
            cam = sample_camera(rng, joints, cfg.resolution, cfg.face_prob, cfg.hand_prob, landmarks=landmarks)
            if getattr(guidance, "needs_skeletons", True):
                kp = body_keypoints(joints, landmarks, vertices, cam.camera, faces=faces)
                skeleton = np.array(draw_openpose(kp), dtype=np.float32)
                skeletons.append(torch.from_numpy(skeleton).permute(2, 0, 1) / 255.0)
            out = render_output(model, pose, expression, cam.camera, device)
            if refiner is not None and out.means2d.requires_grad:
                out.means2d.retain_grad()
                renders.append(out)
            images.append(out.image.permute(2, 0, 1))
            prompts.append(view_prompt(prompt, cam.azimuth, cam.elevation))
            cameras.append(cam.camera)
            poses.append((pose, expression))
        result = guidance(torch.stack(images), skeletons=torch.stack(skeletons) if skeletons else None, prompts=prompts,
                          step_ratio=step / max(1, cfg.steps), cameras=cameras, poses=poses)
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        optimizer.step()
        if refiner is not None and renders:
            # After the optimizer step (gsplat's trainer refines before it): this step's update then
            # also reaches the Gaussians that are about to be cloned or split.
            changed = refiner.after_step(step, renders)
            if changed:
                reporter.info("stage2", f"Densify at step {step}: {changed['before']} -> {changed['after']} free Gaussians.")
        preview = None
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_checkpoint(ckpt, model, optimizer, done, rng, refiner)
        if done % cfg.preview_every == 0 or done == cfg.steps:
            preview = str(save_preview(model, workdir / f"preview_{done:05d}.png", body, device))
        try:
            reporter.step("stage2", done, cfg.steps, loss=float(result.loss.detach()), preview=preview)
        except JobCancelled:
            save_checkpoint(ckpt, model, optimizer, done, rng, refiner)  # a rerun resumes exactly here
            raise
    return model


@torch.no_grad()
def save_preview(model: H3GA, path: Path, body, device="cpu", size: int = 256) -> Path:
    from PIL import Image

    joints = body(betas=model.betas[None]).joints[0].cpu().numpy()
    target = (0.0, float(joints[:, 1].mean()) - 0.1, 0.0)
    views = [render(model, apose(), np.zeros(body.num_expressions), orbit_camera(az, 90, 2.6, target, 50, size, size), device)
             for az in (0, 180)]
    image = torch.cat(views, dim=1).clamp(0, 1).cpu().numpy()
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path
