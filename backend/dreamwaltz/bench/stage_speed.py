"""Training speed of both stages and the render speed of an avatar.

On CUDA: SD-1.5-size guidance with random weights in bf16 (the compute of the real models, see
``bench guidance``), the paper preset's field, Gaussian counts and batch; stage 1 at 64, 256 and
512 px, stage 2 at 512 px, and frames per second of the avatar posed and rendered at 1024x1024 by
gsplat, with peak GPU memory for each. On a CPU: the same code with the tiny preset (tiny models,
small renders, the project's own rasterizer), which is what a CPU-only machine can do.

Iterations per second are timed between progress events after two warm-up steps, so set-up,
the body initialisation (shortened to 200 steps here) and compilation are not counted.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

WARMUP, TIMED = 2, 5


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> str:
    if device != "cuda":
        return "n/a on CPU"
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


class StepClock:
    """A progress sink that notes when each training step finished."""

    def __init__(self, stage: str):
        self.stage, self.times = stage, []

    def __call__(self, event) -> None:
        if event.stage == self.stage and event.total:
            self.times.append(time.perf_counter())

    def its(self) -> float:
        timed = self.times[WARMUP:]
        return (len(timed) - 1) / (timed[-1] - timed[0])


def guidance_for(device: str):
    if device == "cuda":
        from .guidance import sd15_guidance

        return sd15_guidance("cuda", torch.bfloat16)
    from ..guidance import build_guidance

    return build_guidance("sds", "tiny")


def stage1_speed(device: str, guidance, body, sizes, preset: str, workdir: Path):
    from ..presets import stage1_config as stage1_preset
    from ..progress import ProgressReporter
    from ..stage1 import body_initialised_field, canonical_body
    from ..stage1.train import train_stage1

    cb = canonical_body(body, np.zeros(body.num_betas))
    base = replace(stage1_preset(preset), init_steps=200, checkpoint_every=10**9, preview_every=10**9, log_every=1)
    field = body_initialised_field(cb, base, workdir / "init", 0, ProgressReporter(), device)
    for size in sizes:
        cfg = replace(base, steps=WARMUP + TIMED, schedule=((0.0, size),))
        clock = StepClock("stage1")
        _reset_peak(device)
        stats = {}
        train_stage1(
            field,
            cb,
            guidance,
            "a knight in armor",
            cfg,
            ProgressReporter([clock]),
            workdir / f"s1-{size}",
            resume=False,
            stats=stats,
        )
        print(
            f"stage 1, {preset} preset, {size} px, batch {cfg.batch}: {clock.its():.2f} it/s, "
            f"peak memory {_peak_gib(device)}; {host_side(stats)}",
            flush=True,
        )
    return stats


def stage2_speed(device: str, guidance, body, preset: str, workdir: Path):
    from ..presets import stage2_config
    from ..progress import ProgressReporter
    from ..stage2 import H3GA, train_stage2

    cfg = stage2_config(preset, steps=WARMUP + TIMED, checkpoint_every=10**9, preview_every=10**9, log_every=1)
    model = H3GA(body, num_free=cfg.num_free, num_bound=cfg.num_bound).to(device)
    clock = StepClock("stage2")
    _reset_peak(device)
    stats = {}
    train_stage2(
        model, guidance, "a knight in armor", cfg, ProgressReporter([clock]), workdir / "s2", device=device, stats=stats
    )
    print(
        f"stage 2, {preset} preset, {cfg.resolution} px, batch {cfg.batch}, "
        f"{model.num_free:,} + {len(model.bound_faces):,} Gaussians: {clock.its():.2f} it/s, "
        f"peak memory {_peak_gib(device)}; {host_side(stats)}",
        flush=True,
    )
    return model, stats


def host_side(stats: dict) -> str:
    """The conditions' host-side cost per step and how much of the step the loop waited for them
    (on a GPU: the share of time the GPU would idle; on a CPU the workers share the cores)."""
    return (
        f"host-side conditions {stats['condition_ms']:.1f} ms/step (worker threads), loop waited "
        f"{stats['wait_ms']:.1f} ms/step = {100 * stats['wait_share']:.1f} % of {stats['step_ms']:.0f} ms"
    )


@torch.no_grad()
def render_fps(device: str, model, size: int = 1024, frames: int = 10) -> float:
    """Pose the exported avatar by random poses and render it, as `dreamwaltz render` does."""
    from ..body.poses import random_pose
    from ..core.camera import orbit_camera
    from ..core.posing import pose_avatar
    from ..render import rasterize_posed

    avatar = model.export()
    rng = np.random.default_rng(0)
    camera = orbit_camera(30, 90, 2.6, (0.0, 0.0, 0.0), 50, size, size)

    def frame():
        rasterize_posed(pose_avatar(avatar, random_pose(rng)), camera, device)

    frame()
    _reset_peak(device)
    start = time.perf_counter()
    for _ in range(frames):
        frame()
    if device == "cuda":
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


def main():
    from ..body import BodyModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset, sizes = ("paper", (64, 256, 512)) if device == "cuda" else ("tiny", (32, 64))
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"{where}: {'SD-1.5-size random weights, bf16' if device == 'cuda' else 'tiny models, fp32'}", flush=True)
    body = BodyModel.load("open").to(device)
    guidance = guidance_for(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        s1 = stage1_speed(device, guidance, body, sizes, preset, work)
        model, s2 = stage2_speed(device, guidance, body, preset, work)
    fps = render_fps(device, model)
    print(
        f"render at 1024x1024, {model.num_free + len(model.bound_faces):,} Gaussians (posing included): "
        f"{fps:.2f} frames/s, peak memory {_peak_gib(device)}"
    )
    print(
        f"render_fps_1024={fps:.2f} stage1_host_ms={s1['condition_ms']:.1f} stage1_wait_share={s1['wait_share']:.3f} "
        f"stage2_host_ms={s2['condition_ms']:.1f} stage2_wait_share={s2['wait_share']:.3f}"
    )
