"""Stage-2 training: canonical pose, then random canonical poses, then random body, hand and
expression poses, each step rendered from a sampled camera and guided by SkelSD (or the oracle).

The shared ``Trainer`` runs the loop (checkpoints with every RNG state, resume, cancel, previews,
progress); ``Stage2Training`` is one step. The free means' learning rate decays exponentially, and
the pose-dependent deformation network is switched off for the last part of the run so that the
exported avatar is what was optimised last (see ``Stage2Config.deform_until``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..body.poses import apose, random_canonical, random_expression, random_pose
from ..conditioning import body_keypoints, draw_openpose, sample_camera, view_prompt
from ..conditioning.cameras import CameraSample
from ..conditioning.prefetch import skeleton_tensor, skeletons_to, step_rng
from ..core.camera import orbit_camera
from ..progress import ProgressReporter
from ..render import AVATAR_RENDER, rasterize, srgb_to_linear
from ..render.rasterizer import BACKGROUND, RenderOutput
from ..trainer import LoopConfig, StepResult, Trainer
from .config import Stage2Config
from .densify import FREE_PARAMETERS, FreeGaussianRefiner, Optimizers, resize_free
from .model import H3GA


def make_optimizer(model: H3GA, cfg: Stage2Config) -> Optimizers:
    free_lr = {
        "means": cfg.lr_means,
        "scales": cfg.lr_scales,
        "quats": cfg.lr_rotations,
        "opacities": cfg.lr_opacity,
        "colors": cfg.lr_colors,
    }
    per_free = {
        key: torch.optim.Adam([getattr(model, attr)], lr=free_lr[key], eps=1e-15)
        for key, attr in FREE_PARAMETERS.items()
    }
    rest = torch.optim.Adam(
        [
            {"params": [model.bound_log_scales], "lr": cfg.lr_scales},
            {"params": [model.bound_quats], "lr": cfg.lr_rotations},
            {"params": [model.bound_opacity], "lr": cfg.lr_opacity},
            {"params": [model.bound_color_logits], "lr": cfg.lr_colors},
            {"params": [model.bound_bary_logits, model.hand_offsets], "lr": cfg.lr_bound},
        ]
        + (
            [{"params": list(model.deformation.parameters()), "lr": cfg.lr_deformation}]
            if model.deformation is not None
            else []
        ),
        eps=1e-15,
    )
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
    means, cov, colors, opacities = model(
        torch.as_tensor(pose, dtype=torch.float32, device=device),
        torch.as_tensor(expression, dtype=torch.float32, device=device),
        deform,
    )
    background = srgb_to_linear(torch.tensor(BACKGROUND, device=device))  # the model's colours are linear light
    return rasterize(means, cov, opacities, colors, camera, background, **AVATAR_RENDER)


def render(model: H3GA, pose, expression, camera, device="cpu", deform: bool = True) -> torch.Tensor:
    return render_output(model, pose, expression, camera, device, deform).image


@dataclass
class ViewConditions:
    """What one training view is conditioned on; made ahead of time, on the CPU."""

    pose: np.ndarray
    expression: np.ndarray
    camera: CameraSample
    skeleton: torch.Tensor | None  # (3,H,W) in [0,1], or None when the guidance needs none
    prompt: str


class Stage2Training:
    """Stage 2's part of the shared training loop: one SkelSD step of the H3GA under a sampled pose."""

    name = "stage2"

    def __init__(
        self,
        model: H3GA,
        guidance,
        prompt: str,
        cfg: Stage2Config,
        reporter: ProgressReporter,
        workdir: Path,
        device="cpu",
        seed: int = 0,
    ):
        from ..body.pose_bank import load_pose_bank

        self.model, self.guidance, self.prompt, self.cfg, self.seed = model, guidance, prompt, cfg, seed
        self.reporter, self.workdir, self.device = reporter, workdir, torch.device(device)
        self.bank = load_pose_bank(model.rest_joints.cpu().numpy())
        self.faces = model.body.faces.cpu().numpy()  # exact ray-cast occlusion of hand and face keypoints
        # The conditions are made on the CPU (worker threads), from a CPU copy of the body.
        self.cpu_body = model.body if model.body.faces.device.type == "cpu" else copy.deepcopy(model.body).cpu()
        self.cpu_betas = model.betas.detach().cpu()
        self.needs_skeletons = getattr(guidance, "needs_skeletons", True)
        self.condition_workers = cfg.condition_workers
        self._make_optimizers()

    def _make_optimizers(self) -> None:
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.refiner = FreeGaussianRefiner(self.model, self.optimizer, self.cfg.densify) if self.cfg.densify else None

    def make_conditions(self, step: int) -> list:
        """The batch's poses, cameras, skeleton images and prompts of ``step`` (any thread, any order)."""
        cfg, body = self.cfg, self.cpu_body
        rng = step_rng(self.seed, step)
        views = []
        for _ in range(cfg.batch):
            pose, expression = phase_pose(rng, step, cfg.steps, body.num_expressions, body.kind, self.bank)
            with torch.no_grad():
                out = body(
                    betas=self.cpu_betas[None],
                    full_pose=pose[None],
                    expression=torch.as_tensor(expression, dtype=torch.float32)[None],
                )
            joints, landmarks, vertices = (t[0].numpy() for t in (out.joints, out.landmarks, out.vertices))
            cam = sample_camera(rng, joints, cfg.resolution, cfg.face_prob, cfg.hand_prob, landmarks=landmarks)
            skeleton = None
            if self.needs_skeletons:
                kp = body_keypoints(joints, landmarks, vertices, cam.camera, faces=self.faces)
                skeleton = skeleton_tensor(draw_openpose(kp), pin=self.device.type == "cuda")
            views.append(
                ViewConditions(
                    pose, expression, cam, skeleton, view_prompt(self.prompt, cam.azimuth, cam.elevation, cam.kind)
                )
            )
        return views

    def train_step(self, step: int, views: list) -> StepResult:
        cfg, model = self.cfg, self.model
        for group in self.optimizer.per_free["means"].param_groups:
            group["lr"] = cfg.lr_means_at(step)
        deform = cfg.deforming(step)
        images, renders = [], []
        for view in views:
            out = render_output(model, view.pose, view.expression, view.camera.camera, self.device, deform)
            if self.refiner is not None and out.means2d.requires_grad:
                out.means2d.retain_grad()
                renders.append(out)
            images.append(out.image.permute(2, 0, 1))
        skeletons = None
        if self.needs_skeletons:
            skeletons = skeletons_to([v.skeleton for v in views], self.device)
        result = self.guidance(
            torch.stack(images),
            skeletons=skeletons,
            prompts=[v.prompt for v in views],
            step_ratio=step / max(1, cfg.steps),
            cameras=[v.camera.camera for v in views],
            poses=[(v.pose, v.expression) for v in views],
        )
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        self.optimizer.step()
        if self.refiner is not None and renders:
            # After the optimizer step (gsplat's trainer refines before it): this step's update then
            # also reaches the Gaussians that are about to be cloned or split.
            changed = self.refiner.after_step(step, renders)
            if changed:
                self.reporter.info(
                    "stage2", f"Densify at step {step}: {changed['before']} -> {changed['after']} free Gaussians."
                )
        return StepResult(result.loss.detach(), result.info.get("nonfinite"))

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "densify": self.refiner.state_dict() if self.refiner is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        resize_free(self.model, state["model"]["free_means"].shape[0])  # densification changes the count
        self.model.load_state_dict(state["model"])
        self._make_optimizers()  # bound to the resized parameters
        self.optimizer.load_state_dict(state["optimizer"])
        if self.refiner is not None and state.get("densify"):
            self.refiner.load_state_dict(state["densify"])

    def save_preview(self, done: int) -> Path:
        return save_preview(self.model, self.workdir / f"preview_{done:05d}.png", self.model.body, self.device)


def train_stage2(
    model: H3GA,
    guidance,
    prompt: str,
    cfg: Stage2Config,
    reporter: ProgressReporter,
    workdir: Path,
    seed: int = 0,
    device="cpu",
    resume: bool = True,
    stats: dict | None = None,
) -> H3GA:
    """Train; ``stats``, when given, receives the host-side figures of the run (``Trainer.stats``)."""
    workdir = Path(workdir)
    stage = Stage2Training(model, guidance, prompt, cfg, reporter, workdir, device, seed)
    loop = LoopConfig(cfg.steps, cfg.checkpoint_every, cfg.preview_every, cfg.log_every)
    trainer = Trainer(stage, loop, reporter, workdir / "stage2.pt", seed, device, resume)
    trainer.run()
    if stats is not None:
        stats.update(trainer.stats())
    return model


@torch.no_grad()
def save_preview(model: H3GA, path: Path, body, device="cpu", size: int = 256) -> Path:
    from PIL import Image

    joints = body(betas=model.betas[None]).joints[0].cpu().numpy()
    target = (0.0, float(joints[:, 1].mean()) - 0.1, 0.0)
    views = [
        render(
            model, apose(), np.zeros(body.num_expressions), orbit_camera(az, 90, 2.6, target, 50, size, size), device
        )
        for az in (0, 180)
    ]
    image = torch.cat(views, dim=1).clamp(0, 1).cpu().numpy()
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path
