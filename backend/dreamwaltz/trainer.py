"""The one training loop both stages run: resume, cancel, checkpoints, previews, progress, and
the watch on non-finite guidance steps.

A stage supplies only what differs (``TrainingStage``): one optimisation step, its state for the
checkpoint, and a preview image. A step's random choices of pose and camera come from
``conditioning.prefetch.step_rng(seed, step)`` (made ahead of time by worker threads); everything
else random (SDS noise and timesteps, density-guidance points) from the global generators, whose
states (Python, numpy, torch CPU and every CUDA device) the checkpoints hold with the stage's
state and the step, so a job killed at step k and restarted continues exactly.

The loop makes no host sync per step on a GPU: losses and the count of non-finite steps stay on
the device and are read every ``log_every`` steps (and at checkpoints, previews and the end).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .conditioning.prefetch import Prefetcher
from .core.errors import DreamWaltzError, JobCancelled
from .progress import ProgressReporter


class NonFiniteGuidanceError(DreamWaltzError):
    code = "non_finite"


@dataclass
class StepResult:
    loss: torch.Tensor  # detached scalar, on the training device
    nonfinite: torch.Tensor | None = None  # 0-d bool: the guidance gradient had NaN/inf (and was dropped)


class TrainingStage(Protocol):
    name: str  # "stage1" or "stage2": the progress events' stage

    condition_workers: int | None  # threads making conditions ahead (None: half the cores, 2-8)

    def make_conditions(self, step: int): ...  # any thread, any order: a pure function of the step

    def train_step(self, step: int, conditions) -> StepResult: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def save_preview(self, done: int) -> Path | None: ...


@dataclass
class LoopConfig:
    steps: int
    checkpoint_every: int
    preview_every: int
    log_every: int = 1
    # A job stops when this share of its steps so far (after ``nonfinite_grace`` steps), or this
    # many in a row, had a non-finite guidance gradient: fp16 overflow or a broken model, not noise.
    nonfinite_share: float = 0.05
    nonfinite_run: int = 10
    nonfinite_grace: int = 20


def rng_state() -> dict:
    legacy = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy_global": {
            "key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)),
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore ``rng_state()``'s states, wherever the checkpoint's tensors were loaded to: a load
    with ``map_location="cuda"`` puts them on the GPU, where ``.numpy()`` and the generators'
    setters (which take CPU ByteTensors) refuse them."""
    random.setstate(_tuples(state["python"]))
    legacy = state["numpy_global"]
    key = torch.as_tensor(legacy["key"]).to("cpu", torch.int64).numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, int(legacy["pos"]), int(legacy["has_gauss"]), float(legacy["gauss"])))
    torch.set_rng_state(_byte_tensor(state["torch"]))
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_byte_tensor(s) for s in state["torch_cuda"]])


def _byte_tensor(value) -> torch.Tensor:
    """A generator state as the setters take it: a contiguous CPU uint8 tensor."""
    return torch.as_tensor(value).to("cpu", torch.uint8).contiguous()


def _tuples(value):
    """random.setstate needs the tuples back that a checkpoint may have turned into lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class Trainer:
    def __init__(
        self,
        stage: TrainingStage,
        config: LoopConfig,
        reporter: ProgressReporter,
        checkpoint: Path,
        seed: int = 0,
        device="cpu",
        resume: bool = True,
    ):
        self.stage, self.config, self.reporter = stage, config, reporter
        self.checkpoint, self.device, self.resume = Path(checkpoint), torch.device(device), resume
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=self.device)  # steps so far
        self.nonfinite_streak = torch.zeros((), dtype=torch.int64, device=self.device)
        self.step = self._start = 0
        self.wall_s, self.steps_run = 0.0, 0
        self.conditions: Prefetcher | None = None

    def save(self, step: int) -> None:
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(
            {
                "stage": self.stage.state_dict(),
                "step": step,
                "rng": rng_state(),
                "nonfinite": [int(self.nonfinite), int(self.nonfinite_streak)],
            },
            tmp,
        )
        tmp.replace(self.checkpoint)

    def load(self) -> int:
        state = torch.load(self.checkpoint, weights_only=True, map_location=self.device)
        self.stage.load_state_dict(state["stage"])
        set_rng_state(state["rng"])  # moves the generator states back to the CPU as uint8
        self.nonfinite.fill_(state["nonfinite"][0])
        self.nonfinite_streak.fill_(state["nonfinite"][1])
        return int(state["step"])

    def run(self) -> None:
        started = time.perf_counter()
        try:
            self._run()
        finally:
            if self.conditions is not None:
                self.conditions.close()
            self.wall_s, self.steps_run = time.perf_counter() - started, self.step + 1 - self._start

    def stats(self) -> dict:
        """Host-side figures of the last ``run``: milliseconds per step of the whole step, of making
        the conditions (in worker threads), and of the loop waiting for them, and the share of the
        step time spent waiting (what a GPU would idle for)."""
        steps = max(1, self.steps_run)
        out = {"steps": self.steps_run, "step_ms": 1000 * self.wall_s / steps}
        conditions = self.conditions
        if conditions is not None:
            out.update(
                condition_ms=1000 * conditions.busy_s / max(1, conditions.steps),
                wait_ms=1000 * conditions.waited_s / max(1, conditions.steps),
                wait_share=conditions.waited_s / max(self.wall_s, 1e-9),
            )
        return out

    def _run(self) -> None:
        cfg, name = self.config, self.stage.name
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        start = self._start = 0
        if self.resume and self.checkpoint.exists():
            start = self._start = self.load()
            self.reporter.info(name, f"Resumed from step {start}.")
        self.conditions = Prefetcher(self.stage.make_conditions, start, cfg.steps, self.stage.condition_workers)
        for step in range(start, cfg.steps):
            self.step = step
            if self.reporter.cancel.cancelled:
                self.save(step)
                raise JobCancelled()
            result = self.stage.train_step(step, self.conditions.get(step))
            if result.nonfinite is not None:
                bad = result.nonfinite.to(torch.int64)
                self.nonfinite += bad
                self.nonfinite_streak.mul_(bad).add_(bad)
            done = step + 1
            checkpoint = done % cfg.checkpoint_every == 0 or done == cfg.steps
            preview = done % cfg.preview_every == 0 or done == cfg.steps
            if not (checkpoint or preview or done % cfg.log_every == 0):
                continue
            self._check_nonfinite(done, start)  # before saving: a failed run keeps its last good checkpoint
            if checkpoint:
                self.save(done)
            path = self.stage.save_preview(done) if preview else None
            message = f"{int(self.nonfinite)} non-finite guidance steps dropped" if int(self.nonfinite) else ""
            try:
                self.reporter.step(
                    name, done, cfg.steps, loss=float(result.loss), preview=str(path) if path else None, message=message
                )
            except JobCancelled:
                self.save(done)  # a rerun resumes exactly here
                raise

    def _check_nonfinite(self, done: int, start: int) -> None:
        cfg = self.config
        count, streak = int(self.nonfinite), int(self.nonfinite_streak)
        too_many = done - start > cfg.nonfinite_grace and count > cfg.nonfinite_share * done
        if streak >= cfg.nonfinite_run or too_many:
            raise NonFiniteGuidanceError(
                f"{self.stage.name}: {count} of {done} steps ({streak} in a row) had a non-finite (NaN or inf) "
                f"guidance gradient, so the job stopped instead of training on nothing.",
                "Run with --precision fp32 (or bf16 on an Ampere or newer GPU): fp16 overflows in SDS; if it "
                "persists, check the diffusion weights.",
            )
