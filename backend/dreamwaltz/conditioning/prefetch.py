"""Condition images made ahead of time, so the GPU never waits for the CPU.

A training step's conditioning (pose, camera, occlusion-culled keypoints, the skeleton image the
ControlNet sees, the view prompt) does not depend on the model being trained, only on the step.
Each step draws it from its own generator, ``step_rng(seed, step)``, so any worker can make any
step's conditions in any order, a resumed run makes exactly the same ones, and nothing about the
producer needs to go into a checkpoint.

``Prefetcher(make, start, stop, workers)`` keeps up to ``depth`` future steps in flight on a thread
pool (by default half the CPU cores, 2 to 8) (the ray casting is numpy, the drawing PIL, the body forward torch on the CPU: all release
the GIL for most of their time) and hands them to the loop in step order. It measures how long
the loop waited for it (``waited_s``) and how long the work took (``busy_s``), for the speed bench.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


def auto_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(2, min(8, cores // 2))


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator of one step's conditioning: a pure function of (seed, step, stream)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), int(stream)])


class Prefetcher(Generic[T]):
    def __init__(self, make: Callable[[int], T], start: int, stop: int, workers: int | None = None, depth: int = 8):
        """``workers``: threads (0 = make each step's conditions inline); None = half the CPU cores,
        2 to 8 (a stage-2 batch of 4 views costs about a quarter of a second of CPU per step)."""
        self.make, self.stop, self.depth = make, stop, max(1, depth)
        self.workers = auto_workers() if workers is None else max(0, workers)
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="dreamwaltz-conditions") if self.workers else None
        )
        self._futures: dict[int, Future] = {}
        self._next = start
        self._lock = threading.Lock()
        self.waited_s = 0.0  # time the training loop spent waiting for conditions
        self.busy_s = 0.0  # time spent making them (in workers or inline)
        self.steps = 0

    def _timed(self, step: int) -> T:
        started = time.perf_counter()
        try:
            return self.make(step)
        finally:
            with self._lock:
                self.busy_s += time.perf_counter() - started

    def _fill(self, upto: int) -> None:
        while self._next < min(upto, self.stop):
            self._futures[self._next] = self._pool.submit(self._timed, self._next)
            self._next += 1

    def get(self, step: int) -> T:
        """The conditions of ``step`` (steps are asked for in increasing order)."""
        self.steps += 1
        started = time.perf_counter()
        try:
            if self._pool is None:
                return self._timed(step)
            for old in [s for s in self._futures if s < step]:  # a skipped step (should not happen)
                self._futures.pop(old).cancel()
            if step not in self._futures:
                self._next = max(self._next, step)
                if self._next == step:
                    self._fill(step + 1)
                else:
                    self._futures[step] = self._pool.submit(self._timed, step)
            self._fill(step + 1 + self.depth)
            return self._futures.pop(step).result()
        finally:
            self.waited_s += time.perf_counter() - started

    def close(self) -> None:
        if self._pool is not None:
            for future in self._futures.values():
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def skeleton_tensor(image, pin: bool = False):
    """A drawn skeleton (PIL image) as the (3,H,W) float tensor in [0,1] the ControlNet takes;
    ``pin`` puts it in pinned memory so the copy to the GPU does not wait."""
    import torch

    tensor = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 255.0
    return tensor.pin_memory() if pin else tensor


def skeletons_to(skeletons, device):
    """A step's skeleton images as one batch on ``device``. Stacked straight into pinned memory
    when they were pinned (``torch.stack`` alone makes an unpinned batch, whose copy to the GPU
    makes the host wait), so the copy overlaps the step."""
    import torch

    out = None
    if skeletons[0].is_pinned():
        out = torch.empty((len(skeletons), *skeletons[0].shape), dtype=skeletons[0].dtype).pin_memory()
    return torch.stack(list(skeletons), out=out).to(device, non_blocking=True)
