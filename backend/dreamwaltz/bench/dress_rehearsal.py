"""Dress rehearsal: the paper preset's real shapes through the whole job, a few steps each.

SD-1.5-size networks with random weights (``bench guidance``'s, the compute and memory of the
real ones) in the precision a real run would use (bf16), the
paper preset's field, render sizes (stage 1 at 64, 256 and 512 px in three steps), batch,
Gaussian counts (stage 2 through its three phases: canonical, random canonical, random poses
with expressions), the body initialisation cut to 200 small steps, the hand-over of stage 1's
points to stage 2 at the paper's counts, then the export. Every shape,
dtype and device path of a real run executes once; a crash here is a crash a GPU user would
meet hours into a run. On two CPU cores it takes tens of minutes; DREAMWALTZ_REHEARSAL_BATCH=1
keeps it within a small machine's memory (the per-view shapes stay the paper's).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def main():
    from ..core.h3ga import read_h3ga
    from ..core.job import GenerateSpec
    from ..pipeline import generate
    from ..presets import get_preset
    from ..progress import ProgressReporter, terminal_sink
    from .guidance import sd15_guidance

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # What `--precision auto` picks on a GPU that runs the paper preset; DREAMWALTZ_REHEARSAL_DTYPE
    # (float32, bfloat16, float16) to rehearse another.
    default = "bfloat16" if device == "cpu" or torch.cuda.is_bf16_supported() else "float32"
    dtype = getattr(torch, os.environ.get("DREAMWALTZ_REHEARSAL_DTYPE", default))
    paper = get_preset("paper")
    batch = int(os.environ.get("DREAMWALTZ_REHEARSAL_BATCH", paper.stage2.batch))
    preset = replace(
        paper,
        # The body initialisation short and small (200 steps at 64 px, as the tiny preset's)
        # but long enough to give the field the body's density: the hand-over to stage 2
        # at the paper's counts (inverse skinning, neighbourhood shapes, exact binding,
        # hands and face left to the mesh) must run too.
        stage1=replace(
            paper.stage1,
            steps=3,
            batch=batch,
            init_steps=200,
            init_size=64,
            init_rays=1024,
            checkpoint_every=2,
            preview_every=3,
            schedule=((0.0, 64), (1 / 3, 256), (2 / 3, 512)),
            log_every=1,
        ),
        stage2=replace(paper.stage2, steps=3, batch=batch, checkpoint_every=2, preview_every=3, log_every=1),
    )
    print(f"{device}, {dtype}: paper shapes, batch {batch}, SD-1.5-size random networks", flush=True)
    started = time.perf_counter()
    guidance = sd15_guidance(device, dtype)
    spec = GenerateSpec(prompt="a knight in armor", preset="paper", device=device, seed=0)
    events = []
    with tempfile.TemporaryDirectory() as tmp:
        out = generate(
            spec, ProgressReporter([terminal_sink(), events.append]), Path(tmp), preset=preset, guidance=guidance
        )
        avatar = read_h3ga(out)
        free, bound = avatar.num_free, avatar.num_bound
    handed_over = not any("starts from the body surface" in e.message for e in events)
    seconds = time.perf_counter() - started
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "see bench memory"
    print(
        f"rehearsal ran: stage 1 {preset.stage1.steps} steps (64/256/512 px), stage 2 {preset.stage2.steps} steps "
        f"at {preset.stage2.resolution} px, {free:,} + {bound:,} Gaussians exported, peak {peak}"
    )
    print(
        f"stage 1 -> stage 2 hand-over at the paper's counts: {'ran' if handed_over else 'NOT run (no stage-1 points)'}"
    )
    print(f"dress_rehearsal_ok={int(handed_over)} seconds={seconds:.0f} batch={batch}")
