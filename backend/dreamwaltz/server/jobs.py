"""On-disk job store and the single GPU worker.

Each job is a folder ``<jobs_dir>/<id>/``: ``spec.json`` (what to generate), ``state.json``
(queued / running / done / failed / cancelled, plus the error), ``events.jsonl`` (progress),
``work/`` (checkpoints) and ``result.h3ga``. Everything lives on disk so a restarted server
picks up queued jobs and resumes interrupted ones from their last checkpoint.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..core.errors import DreamWaltzError, JobCancelled, OutOfMemoryError
from ..progress import CancelToken, ProgressEvent, ProgressReporter

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

# runner(spec: dict, reporter, workdir: Path) -> Path of the finished .h3ga
Runner = Callable[[dict, ProgressReporter, Path], Path]


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a killed server never leaves half a state file


@dataclass
class Job:
    id: str
    folder: Path

    @property
    def spec(self) -> dict:
        return json.loads((self.folder / "spec.json").read_text(encoding="utf-8"))

    @property
    def state(self) -> dict:
        return json.loads((self.folder / "state.json").read_text(encoding="utf-8"))

    def set_state(self, **changes) -> None:
        state = self.state
        state.update(changes, updated=time.time())
        _write_json(self.folder / "state.json", state)

    @property
    def result_path(self) -> Path:
        return self.folder / "result.h3ga"

    @property
    def events_path(self) -> Path:
        return self.folder / "events.jsonl"

    def events(self, after: int = 0) -> list[dict]:
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines[after:], start=after):
            try:
                out.append(dict(json.loads(line), index=i))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        return out

    def latest_preview(self) -> Optional[Path]:
        for event in reversed(self.events()):
            if event.get("preview") and Path(event["preview"]).exists():
                return Path(event["preview"])
        return None


class JobStore:
    def __init__(self, jobs_dir: Path):
        self.dir = Path(jobs_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def create(self, spec: dict) -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        folder = self.dir / job_id
        (folder / "work").mkdir(parents=True)
        _write_json(folder / "spec.json", spec)
        _write_json(folder / "state.json", {"id": job_id, "status": "queued", "created": time.time(),
                                            "updated": time.time(), "error": None})
        return Job(job_id, folder)

    def get(self, job_id: str) -> Optional[Job]:
        if not job_id or "/" in job_id or "\\" in job_id or job_id.startswith("."):
            return None
        folder = self.dir / job_id
        return Job(job_id, folder) if (folder / "state.json").exists() else None

    def all(self) -> list[Job]:
        jobs = [Job(p.name, p) for p in self.dir.iterdir() if (p / "state.json").exists()]
        return sorted(jobs, key=lambda j: j.state.get("created", 0))

    def next_pending(self) -> Optional[Job]:
        # Interrupted ("running" in a previous server life) jobs first, then the oldest queued.
        jobs = [j for j in self.all() if j.state["status"] in ACTIVE]
        jobs.sort(key=lambda j: (j.state["status"] != "running", j.state.get("created", 0)))
        return jobs[0] if jobs else None


class Worker:
    """Runs one job at a time (one GPU), in a background thread, in queue order."""

    def __init__(self, store: JobStore, runner: Runner, poll_s: float = 0.2):
        self.store = store
        self.runner = runner
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._current: Optional[tuple[str, CancelToken]] = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="dreamwaltz-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            if self._current:
                self._current[1].cancel()
        if self._thread.is_alive():  # a server made with start_worker=False never started it
            self._thread.join(timeout)

    def notify(self) -> None:
        self._wake.set()

    def cancel(self, job: Job) -> None:
        with self._lock:
            running = self._current and self._current[0] == job.id
            if running:
                self._current[1].cancel()
        if not running and job.state["status"] == "queued":
            job.set_state(status="cancelled", error={"code": "cancelled", "message": "Cancelled before it started.", "hint": ""})

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.next_pending()
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        token = CancelToken()
        with self._lock:
            self._current = (job.id, token)
        resumed = job.state["status"] == "running"
        job.set_state(status="running", started=time.time())

        def sink(event: ProgressEvent) -> None:
            with open(job.events_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event.to_dict()) + "\n")

        reporter = ProgressReporter([sink], token)
        try:
            if resumed:
                reporter.info("setup", "Resuming after a server restart from the last checkpoint.")
            produced = Path(self.runner(job.spec, reporter, job.folder / "work"))
            if produced != job.result_path:
                os.replace(produced, job.result_path)
            job.set_state(status="done", finished=time.time())
            sink(ProgressEvent("done", message="Avatar ready."))
        except JobCancelled as err:
            if self._stop.is_set():  # server shutting down: leave it to resume next time
                job.set_state(status="running")
            else:
                job.set_state(status="cancelled", error=err.to_dict())
                sink(ProgressEvent("cancelled", message=err.message))
        except DreamWaltzError as err:
            job.set_state(status="failed", error=err.to_dict())
            sink(ProgressEvent("error", message=str(err)))
        except Exception as err:  # noqa: BLE001 - a job must never take the server down
            error = classify_unexpected(err)
            job.set_state(status="failed", error=error, traceback=traceback.format_exc())
            sink(ProgressEvent("error", message=error["message"]))
        finally:
            with self._lock:
                self._current = None


def classify_unexpected(err: Exception) -> dict:
    """Turn a crash into a message a user can act on (out of memory gets its own advice)."""
    text = f"{type(err).__name__}: {err}"
    if "out of memory" in text.lower():
        return OutOfMemoryError(
            "The GPU ran out of memory.",
            "Choose the 'preview' preset, turn on memory saving (CPU offload / VAE slicing) in the "
            "add-on preferences, or close other programs using the GPU.",
        ).to_dict()
    return {"code": "internal", "message": f"The backend failed: {text}",
            "hint": "See the job's log in the backend's jobs folder; please report it if it repeats."}
