"""Stage-1 training: SkelSD on the canonical (A-pose) radiance field.

Each step renders the field from the paper's camera sampler (body views and face close-ups, at
the preset's progressive resolution), draws the skeleton image of the canonical pose for that
camera, asks the guidance (SD + ControlNet SDS, or the oracle) for its loss with a view-dependent
prompt, and adds the hand/face density guidance. Checkpoints (every ``checkpoint_every`` steps and
on cancel) hold the field, the optimiser and every RNG state, so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..conditioning import body_keypoints, draw_openpose, sample_camera, view_prompt
from ..core.camera import orbit_camera
from ..core.errors import JobCancelled
from ..progress import ProgressReporter
from .body import CanonicalBody, body_initialised_field, canonical_body, new_field
from .density import margin_loss, region_points
from .export import export_points
from .field import RadianceField, render_image
from .presets import Stage1Config, preset

CHECKPOINT = "stage1.pt"


@dataclass
class Stage1Result:
    field: RadianceField
    points: torch.Tensor  # (P,3) canonical A-pose, SMPL-X space
    colors: torch.Tensor  # (P,3) albedo in [0,1]
    densities: torch.Tensor  # (P,)
    body: CanonicalBody
    checkpoint: Path


def make_optimizer(field: RadianceField, cfg: Stage1Config) -> torch.optim.Optimizer:
    return torch.optim.Adam([{"params": field.encoding.parameters(), "lr": cfg.lr_encoding},
                             {"params": field.mlp.parameters(), "lr": cfg.lr_mlp}], betas=(0.9, 0.99), eps=1e-15)


def save_checkpoint(path: Path, field, optimizer, step: int, rng: np.random.Generator) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"field": field.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)


def step_size(field: RadianceField, cfg: Stage1Config) -> float:
    return float((field.box_max - field.box_min).norm()) / cfg.samples


def training_views(cb: CanonicalBody, rng, cfg: Stage1Config, size: int, prompt: str, needs_skeletons: bool):
    cam = sample_camera(rng, cb.joints, size, cfg.face_prob, cfg.hand_prob)
    skeleton = None
    if needs_skeletons:
        kp = body_keypoints(cb.joints, cb.landmarks, cb.vertices, cam.camera)
        skeleton = torch.from_numpy(np.array(draw_openpose(kp), dtype=np.float32)).permute(2, 0, 1) / 255.0
    return cam, skeleton, view_prompt(prompt, cam.azimuth, cam.elevation)


def train_stage1(field: RadianceField, cb: CanonicalBody, guidance, prompt: str, cfg: Stage1Config,
                 reporter: ProgressReporter, workdir: Path, seed: int = 0, resume: bool = True) -> RadianceField:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / CHECKPOINT
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimizer = make_optimizer(field, cfg)
    start = 0
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location=field.box_min.device)
        field.load_state_dict(state["field"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        reporter.info("stage1", f"Resumed from step {start}.")
    device = field.box_min.device
    needs_skeletons = getattr(guidance, "needs_skeletons", True)
    pose = torch.as_tensor(cb.pose, dtype=torch.float32)
    for step in range(start, cfg.steps):
        if reporter.cancel.cancelled:
            save_checkpoint(ckpt, field, optimizer, step, rng)
            raise JobCancelled()
        if step % cfg.occupancy_every == 0:
            field.update_occupancy(step_size(field, cfg))
        size = cfg.size_at(step)
        images, skeletons, prompts, cameras = [], [], [], []
        for _ in range(cfg.batch):
            cam, skeleton, text = training_views(cb, rng, cfg, size, prompt, needs_skeletons)
            image, _, _ = render_image(field, cam.camera, cfg.samples, jitter=True, chunk=cfg.render_chunk)
            images.append(image.permute(2, 0, 1))
            if skeleton is not None:
                skeletons.append(skeleton.to(device))
            prompts.append(text)
            cameras.append(cam.camera)
        result = guidance(torch.stack(images), skeletons=torch.stack(skeletons) if skeletons else None, prompts=prompts,
                          step_ratio=step / max(1, cfg.steps), cameras=cameras, poses=pose[None].expand(cfg.batch, -1, -1))
        loss = result.loss
        if cfg.density_weight > 0:
            inside, outside = region_points(cb, cfg.density_points, cfg.density_offset, None)
            loss = loss + cfg.density_weight * margin_loss(field, inside, outside, cfg.log_density_in, cfg.log_density_out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        preview = None
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_checkpoint(ckpt, field, optimizer, done, rng)
        if done % cfg.preview_every == 0 or done == cfg.steps:
            preview = str(save_preview(field, cb, workdir / f"stage1_preview_{done:05d}.png", cfg))
        try:
            reporter.step("stage1", done, cfg.steps, loss=float(loss.detach()), preview=preview)
        except JobCancelled:
            save_checkpoint(ckpt, field, optimizer, done, rng)  # a rerun resumes exactly here
            raise
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


def run_stage1(spec, body_model, guidance, reporter: Optional[ProgressReporter] = None, workdir: Path = Path("."),
               resume: bool = True, config: Optional[Stage1Config] = None, cache_dir: Optional[Path] = None,
               device=None) -> Stage1Result:
    """The pipeline's entry point. ``spec`` needs ``prompt``, ``preset``, ``seed`` and ``betas``
    (the pipeline's GenerateSpec); ``config`` overrides the preset's settings."""
    reporter = reporter or ProgressReporter()
    cfg = config or preset(getattr(spec, "preset", "tiny"))
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
    points, colors, densities = export_points(field, cfg.export_threshold, cfg.export_resolution, shell=cfg.export_shell)
    reporter.info("stage1", f"Stage 1 done: {len(points)} points for stage 2.")
    return Stage1Result(field, points, colors, densities, cb, ckpt)
