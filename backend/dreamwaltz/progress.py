"""Structured progress events and cooperative cancellation for long jobs.

Training loops call ``reporter.step(...)`` each iteration; it emits an event (stage, step,
total, loss, ETA, optional preview PNG path) to every sink and raises ``JobCancelled`` once the
cancel token is set, so stages stop at a clean point (after a checkpoint, when they have one).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .core.errors import JobCancelled


@dataclass
class ProgressEvent:
    stage: str  # "setup", "stage1", "stage2", "export", "done", "error", ...
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    message: str = ""
    preview: str | None = None  # path of the latest preview PNG
    time: float = field(default_factory=time.time)
    level: str = "info"  # "warning": the job goes on, but not as asked (e.g. a slower rasterizer)

    def to_dict(self) -> dict:
        return asdict(self)


class CancelToken:
    """Set from any thread (server, signal handler); checked by the training loop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise JobCancelled()


Sink = Callable[[ProgressEvent], None]


class ProgressReporter:
    def __init__(self, sinks: list[Sink] | None = None, cancel: CancelToken | None = None):
        self.sinks = list(sinks or [])
        self.cancel = cancel or CancelToken()
        self._stage_start: dict[str, tuple[float, int]] = {}

    def emit(self, event: ProgressEvent) -> None:
        for sink in self.sinks:
            sink(event)

    def step(
        self,
        stage: str,
        step: int,
        total: int,
        loss: float | None = None,
        preview: str | None = None,
        message: str = "",
    ) -> None:
        """Report progress of ``stage`` (steps counted from 0 or from a resumed step)."""
        now = time.time()
        start_time, start_step = self._stage_start.setdefault(stage, (now, step))
        done = step - start_step
        eta = (now - start_time) / done * (total - step) if done > 0 else None
        self.emit(ProgressEvent(stage, step, total, loss, eta, message, preview))
        self.cancel.raise_if_cancelled()

    def info(self, stage: str, message: str) -> None:
        self.emit(ProgressEvent(stage, message=message))
        self.cancel.raise_if_cancelled()

    def warn(self, stage: str, message: str) -> None:
        self.emit(ProgressEvent(stage, message=message, level="warning"))
        self.cancel.raise_if_cancelled()


def terminal_sink(stream=sys.stderr) -> Sink:
    """A one-line progress bar on a terminal; plain lines when not a TTY."""
    tty = stream.isatty()

    def sink(ev: ProgressEvent) -> None:
        if ev.total:
            frac = min(1.0, ev.step / ev.total)
            bar = "#" * int(frac * 30)
            eta = f" ETA {ev.eta_s:5.0f}s" if ev.eta_s is not None else ""
            loss = f" loss {ev.loss:.4g}" if ev.loss is not None else ""
            line = f"{ev.stage:8s} [{bar:<30s}] {ev.step}/{ev.total}{loss}{eta}"
            if tty:
                stream.write("\r" + line)
                if ev.step >= ev.total:
                    stream.write("\n")
            elif ev.step == ev.total or ev.step % max(1, ev.total // 10) == 0:
                stream.write(line + "\n")
        elif ev.message:
            stream.write(f"{ev.stage}: {'warning: ' if ev.level == 'warning' else ''}{ev.message}\n")
        stream.flush()

    return sink


def jsonl_sink(path) -> Sink:
    """Append events as JSON lines (the job server tails this file)."""

    def sink(ev: ProgressEvent) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(ev.to_dict()) + "\n")

    return sink
