"""Stage-1 training: SkelSD on the canonical (A-pose) radiance field.

Each step renders the field from the paper's camera sampler (body views and face close-ups, at
the preset's progressive resolution), draws the skeleton image of the canonical pose for that
camera, asks the guidance (SD + ControlNet SDS, or the oracle) for its loss with a view-dependent
prompt, and adds the hand/face density guidance. The shared ``Trainer`` runs the loop: checkpoints
(field, optimiser, every RNG state), resume, cancel, previews and progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..conditioning import body_keypoints, draw_openpose, sample_camera, view_prompt
from ..conditioning.prefetch import skeleton_tensor, skeletons_to, step_rng
from ..core.camera import orbit_camera
from ..progress import ProgressReporter
from ..trainer import LoopConfig, StepResult, Trainer
from .body import CanonicalBody, body_initialised_field, canonical_body, new_field
from .density import margin_loss, region_points
from .export import export_points
from .field import RadianceField, render_image
from .presets import Stage1Config

CHECKPOINT = "stage1.pt"


@dataclass
class Stage1Result:
    field: RadianceField
    points: torch.Tensor  # (P,3) canonical A-pose, SMPL-X space
    colors: torch.Tensor  # (P,3) albedo in [0,1]
    densities: torch.Tensor  # (P,)
    body: CanonicalBody
    checkpoint: Path


# Bytes a gradient-checkpointed chunk holds per ray sample at its peak: a bound from `bench memory`
# (the paper's stage-1 step peaked at 1.30 GiB with chunks of 4,096 rays x 128 samples, every
# sample in an occupied cell, field and optimiser included; docs/BENCHMARKS.md).
CHUNK_BYTES_PER_SAMPLE = 2_700
MAX_RENDER_CHUNK = 1 << 18


def render_chunk_for(free_bytes: int | None, samples: int, configured: int) -> int:
    """Rays per chunk of a training render: the preset's without a GPU (``free_bytes`` None); on
    CUDA as many as a quarter of the free memory holds (a power of two, from the preset's up to
    262,144): fewer chunks, fewer kernel launches, on a large card."""
    if free_bytes is None:
        return configured
    rays = free_bytes // 4 // (samples * CHUNK_BYTES_PER_SAMPLE)
    fitting = 1 << max(0, int(rays).bit_length() - 1)
    return int(min(MAX_RENDER_CHUNK, max(configured, fitting)))


def make_optimizer(field: RadianceField, cfg: Stage1Config) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        [
            {"params": field.encoding.parameters(), "lr": cfg.lr_encoding},
            {"params": field.mlp.parameters(), "lr": cfg.lr_mlp},
        ],
        betas=(0.9, 0.99),
        eps=1e-15,
    )


def step_size(field: RadianceField, cfg: Stage1Config) -> float:
    return float((field.box_max - field.box_min).norm()) / cfg.samples


def training_views(
    cb: CanonicalBody,
    rng,
    cfg: Stage1Config,
    size: int,
    prompt: str,
    needs_skeletons: bool,
    pin: bool = False,
    skeleton_size: int | None = None,
):
    """One view's camera (rendering at ``size``), skeleton image and prompt. The skeleton is drawn
    at ``skeleton_size`` (the diffusion model's resolution, as the official implementation draws
    it): drawn at the 64-256 px render size, its limbs were under a pixel wide before the
    ControlNet's upsampling."""
    cam = sample_camera(rng, cb.joints, size, cfg.face_prob, cfg.hand_prob)
    skeleton = None
    if needs_skeletons:
        view = cam.camera.resized(skeleton_size, skeleton_size) if skeleton_size else cam.camera
        skeleton = skeleton_tensor(draw_openpose(body_keypoints(cb.joints, cb.landmarks, cb.vertices, view)), pin)
    return cam, skeleton, view_prompt(prompt, cam.azimuth, cam.elevation, cam.kind)


class Stage1Training:
    """Stage 1's part of the shared training loop: one SkelSD step on the canonical field."""

    name = "stage1"

    def __init__(
        self,
        field: RadianceField,
        cb: CanonicalBody,
        guidance,
        prompt: str,
        cfg: Stage1Config,
        workdir: Path,
        seed: int = 0,
    ):
        self.field, self.cb, self.guidance, self.prompt, self.cfg, self.workdir = (
            field,
            cb,
            guidance,
            prompt,
            cfg,
            workdir,
        )
        self.seed = seed
        self.optimizer = make_optimizer(field, cfg)
        self.device = field.box_min.device
        self.needs_skeletons = getattr(guidance, "needs_skeletons", True)
        self.skeleton_size = getattr(guidance, "resolution", None)  # the ControlNet's input size
        free = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else None
        self.render_chunk = render_chunk_for(free, cfg.samples, cfg.render_chunk)  # once, when training starts
        self.pose = torch.as_tensor(cb.pose, dtype=torch.float32)
        self.condition_workers = cfg.condition_workers

    def make_conditions(self, step: int) -> list:
        """The batch's cameras, skeleton images and prompts of ``step`` (any thread, any order)."""
        rng = step_rng(self.seed, step)
        size = self.cfg.size_at(step)
        pin = self.device.type == "cuda"
        return [
            training_views(self.cb, rng, self.cfg, size, self.prompt, self.needs_skeletons, pin, self.skeleton_size)
            for _ in range(self.cfg.batch)
        ]

    def train_step(self, step: int, views) -> StepResult:
        cfg, field = self.cfg, self.field
        if step % cfg.occupancy_every == 0:
            field.update_occupancy(step_size(field, cfg))
        images = [
            render_image(field, cam.camera, cfg.samples, jitter=True, chunk=self.render_chunk)[0].permute(2, 0, 1)
            for cam, _, _ in views
        ]
        skeletons = None
        if self.needs_skeletons:
            skeletons = skeletons_to([sk for _, sk, _ in views], self.device)
        result = self.guidance(
            torch.stack(images),
            skeletons=skeletons,
            prompts=[text for _, _, text in views],
            step_ratio=step / max(1, cfg.steps),
            cameras=[cam.camera for cam, _, _ in views],
            poses=self.pose[None].expand(cfg.batch, -1, -1),
        )
        loss = result.loss
        if cfg.density_weight > 0:
            inside, outside = region_points(self.cb, cfg.density_points, cfg.density_offset, None)
            loss = loss + cfg.density_weight * margin_loss(
                field, inside, outside, cfg.log_density_in, cfg.log_density_out
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return StepResult(loss.detach(), result.info.get("nonfinite"))

    def state_dict(self) -> dict:
        return {"field": self.field.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.field.load_state_dict(state["field"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save_preview(self, done: int) -> Path:
        return save_preview(self.field, self.cb, self.workdir / f"stage1_preview_{done:05d}.png", self.cfg)


def train_stage1(
    field: RadianceField,
    cb: CanonicalBody,
    guidance,
    prompt: str,
    cfg: Stage1Config,
    reporter: ProgressReporter,
    workdir: Path,
    seed: int = 0,
    resume: bool = True,
    stats: dict | None = None,
) -> RadianceField:
    """Train; ``stats``, when given, receives the host-side figures of the run (``Trainer.stats``)."""
    workdir = Path(workdir)
    stage = Stage1Training(field, cb, guidance, prompt, cfg, workdir, seed)
    loop = LoopConfig(cfg.steps, cfg.checkpoint_every, cfg.preview_every, cfg.log_every)
    trainer = Trainer(stage, loop, reporter, workdir / CHECKPOINT, seed, field.box_min.device, resume)
    trainer.run()
    if stats is not None:
        stats.update(trainer.stats())
    return field


@torch.no_grad()
def save_preview(field: RadianceField, cb: CanonicalBody, path: Path, cfg: Stage1Config) -> Path:
    from PIL import Image

    size = cfg.preview_size
    centre = (cb.vertices.min(0) + cb.vertices.max(0)) / 2
    views = [render_image(field, orbit_camera(az, 90, 2.6, centre, 50, size, size), cfg.samples)[0] for az in (0, 180)]
    image = torch.cat(views, dim=1).clamp(0, 1).cpu().numpy()
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path


def run_stage1(
    spec,
    body_model,
    guidance,
    reporter: ProgressReporter | None = None,
    workdir: Path = Path("."),
    resume: bool = True,
    config: Stage1Config | None = None,
    cache_dir: Path | None = None,
    device=None,
) -> Stage1Result:
    """The pipeline's entry point. ``spec`` needs ``prompt``, ``preset``, ``seed`` and ``betas``
    (the pipeline's GenerateSpec); ``config`` is the preset's stage-1 settings."""
    reporter = reporter or ProgressReporter()
    if config is None:  # presets are resolved once, by the pipeline, and handed down
        raise ValueError("run_stage1 needs the preset's Stage1Config (dreamwaltz.presets.stage1_config)")
    cfg = config
    seed = int(getattr(spec, "seed", 0))
    betas = np.zeros(body_model.num_betas, np.float32)
    given = list(getattr(spec, "betas", []) or [])[: body_model.num_betas]
    betas[: len(given)] = given
    device = device or body_model.faces.device
    cb = canonical_body(body_model, betas)
    ckpt = Path(workdir) / CHECKPOINT
    if resume and ckpt.exists():
        field = new_field(cb, cfg).to(device)  # the checkpoint holds the whole field
    else:
        field = body_initialised_field(cb, cfg, cache_dir, seed, reporter, device)
    train_stage1(field, cb, guidance, spec.prompt, cfg, reporter, workdir, seed, resume)
    points, colors, densities = export_points(
        field, cfg.export_threshold, cfg.export_resolution, shell=cfg.export_shell
    )
    reporter.info("stage1", f"Stage 1 done: {len(points)} points for stage 2.")
    return Stage1Result(field, points, colors, densities, cb, ckpt)
