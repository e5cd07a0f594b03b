"""On-disk job store, the execution-engine interface and the single GPU worker (the ``local`` engine).

Each job is a folder ``<jobs_dir>/<id>/``: ``spec.json`` (what to generate), ``state.json``
(queued / running / done / failed / cancelled, plus the error), ``events.jsonl`` (progress),
``work/`` (checkpoints) and ``result.h3ga``. Everything lives on disk so a restarted server
picks up queued jobs and resumes interrupted ones from their last checkpoint.

An engine runs the store's active jobs (``Engine``): ``Worker`` here, one job at a time in a thread
of the server (``dreamwaltz serve``'s default), or ``ray_engine.RayEngine``, each job a Ray task on
a cluster (``--engine ray``). The server and ``dreamwaltz batch`` only talk to this interface.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..core.errors import DreamWaltzError, JobCancelled, OutOfMemoryError
from ..progress import CancelToken, ProgressEvent, ProgressReporter

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

# runner(spec: dict, reporter, workdir: Path) -> Path of the finished .h3ga
Runner = Callable[[dict, ProgressReporter, Path], Path]


class Engine(Protocol):
    """What runs the jobs of a ``JobStore``: every job the store holds as queued (or running, from a
    previous life) is run to done / failed / cancelled, updating its state.json and events.jsonl."""

    def start(self) -> None: ...  # begin running the store's active jobs in the background

    def stop(self) -> None: ...  # stop; jobs still running are left "running", to resume next start

    def notify(self) -> None: ...  # a job was added: look now rather than at the next poll

    def cancel(self, job: Job) -> None: ...  # queued: cancelled at once; running: stopped, then cancelled

    def ensure_alive(self) -> bool: ...  # restart the engine's loop if it died (True if it had to)

    def health(self) -> dict: ...  # {"alive", "restarts", "running_job", "last_crash", ...}


# engine_factory(store, runner) -> Engine
EngineFactory = Callable[["JobStore", Runner], Engine]


MAX_RECORD_BYTES = 16 << 20  # spec.json / state.json: a few kB normally


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=1))
        f.flush()
        os.fsync(f.fileno())  # a kill -9 or power cut never leaves an empty state file behind the rename
    os.replace(tmp, path)  # atomic: a killed server never leaves half a state file


class CorruptRecord(Exception):
    """A job's spec.json or state.json is empty, damaged or not what this server writes."""

    def error(self) -> dict:
        """The job's error field for a damaged record (both engines report it so)."""
        return corrupt_record_error(str(self))


def corrupt_record_error(reason: str) -> dict:
    return {
        "code": "corrupt_record",
        "message": f"The job's record was damaged: {reason}.",
        "hint": "Submit the job again; the queue has moved on.",
    }


def _read_json(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise CorruptRecord(f"{path.name} is {path.stat().st_size} bytes, far larger than a job record")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CorruptRecord(f"{path.name} cannot be read ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise CorruptRecord(f"{path.name} holds {type(data).__name__}, not a job record")
    return data


@dataclass
class Job:
    id: str
    folder: Path

    @property
    def spec(self) -> dict:
        return _read_json(self.folder / "spec.json")

    @property
    def state(self) -> dict:
        """The job's state; a damaged state.json is replaced by a failed record saying why."""
        path = self.folder / "state.json"
        try:
            state = _read_json(path)
            if state.get("status") not in ACTIVE + FINISHED:
                raise CorruptRecord(f"state.json has no valid status ({str(state.get('status'))[:40]!r})")
            if not isinstance(state.get("created", 0), (int, float)):
                raise CorruptRecord("state.json has no valid creation time")
            return state
        except CorruptRecord as err:
            return self._mark_corrupt(str(err))

    def _mark_corrupt(self, reason: str) -> dict:
        try:
            created = (self.folder / "state.json").stat().st_mtime
        except OSError:
            created = time.time()
        state = {
            "id": self.id,
            "status": "failed",
            "created": created,
            "updated": time.time(),
            "error": corrupt_record_error(reason),
        }
        try:
            _write_json(self.folder / "state.json", state)
        except OSError:
            pass  # a read-only folder: report it failed all the same
        return state

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

    def append_event(self, event: ProgressEvent) -> None:
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_dict()) + "\n")

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

    def latest_preview(self) -> Path | None:
        for event in reversed(self.events()):
            # Relative paths are the job folder's: a Ray worker may mount shared storage elsewhere.
            if event.get("preview") and (self.folder / event["preview"]).exists():
                return self.folder / event["preview"]
        return None


class JobStore:
    def __init__(self, jobs_dir: Path):
        self.dir = Path(jobs_dir)
        if not self.dir.exists():
            self.dir.mkdir(parents=True, mode=0o700)

    def create(self, spec: dict, job_id: str | None = None) -> Job:
        """A new queued job; ``job_id`` (a plain folder name) names it, else a time-stamped id."""
        job_id = job_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        folder = self.dir / job_id
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # private whatever the umask: prompts, bodies and results are the user's
        (folder / "work").mkdir(mode=0o700)
        _write_json(folder / "spec.json", spec)
        _write_json(
            folder / "state.json",
            {"id": job_id, "status": "queued", "created": time.time(), "updated": time.time(), "error": None},
        )
        return Job(job_id, folder)

    def get(self, job_id: str) -> Job | None:
        if not job_id or "/" in job_id or "\\" in job_id or job_id.startswith("."):
            return None
        folder = self.dir / job_id
        return Job(job_id, folder) if (folder / "state.json").exists() else None

    def all(self) -> list[Job]:
        return [job for job, _ in self.all_with_states()]

    def all_with_states(self) -> list[tuple[Job, dict]]:
        """Every job with its state, oldest first; damaged records come back as failed ones."""
        jobs = []
        for p in self.dir.iterdir():
            if not p.name.startswith(".") and (p / "state.json").exists():
                job = Job(p.name, p)
                jobs.append((job, job.state))
        return sorted(jobs, key=lambda js: js[1].get("created", 0))

    def pending(self, states: list[tuple[Job, dict]] | None = None) -> list[Job]:
        """Active jobs in the order they run: interrupted ("running" in a previous server life)
        ones first, then queued ones, oldest first."""
        jobs = [(j, s) for j, s in (self.all_with_states() if states is None else states) if s["status"] in ACTIVE]
        jobs.sort(key=lambda js: (js[1]["status"] != "running", js[1].get("created", 0)))
        return [j for j, _ in jobs]

    def next_pending(self) -> Job | None:
        jobs = self.pending()
        return jobs[0] if jobs else None

    def queue_positions(self, states: list[tuple[Job, dict]] | None = None) -> dict[str, int]:
        """Each queued job's place among the queued ones: 1 = the next to start."""
        states = self.all_with_states() if states is None else states
        queued = sorted((s.get("created", 0), j.id) for j, s in states if s["status"] == "queued")
        return {job_id: i for i, (_, job_id) in enumerate(queued, start=1)}


class Worker:
    """Runs one job at a time (one GPU), in a background thread, in queue order."""

    def __init__(self, store: JobStore, runner: Runner, poll_s: float = 0.2):
        self.store = store
        self.runner = runner
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._current: tuple[str, CancelToken] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = False
        self.restarts = 0
        self.last_crash: str | None = None
        self.heartbeat = time.time()

    def start(self, supervise_s: float = 1.0) -> None:
        self._started = True
        self._thread = threading.Thread(target=self._loop, name="dreamwaltz-worker", daemon=True)
        self._thread.start()
        threading.Thread(target=self._supervise, args=(supervise_s,), name="dreamwaltz-supervisor", daemon=True).start()

    def _supervise(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.ensure_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_alive(self) -> bool:
        """The supervisor: restart the worker thread if it died (True if it had to)."""
        with self._lock:
            if not self._started or self._stop.is_set() or self.alive:
                return False
            self.restarts += 1
            self._thread = threading.Thread(target=self._loop, name="dreamwaltz-worker", daemon=True)
            self._thread.start()
            return True

    def health(self) -> dict:
        current = self._current
        return {
            "alive": self.alive,
            "restarts": self.restarts,
            "running_job": current[0] if current else None,
            "last_crash": self.last_crash,
            "loop_age_s": round(time.time() - self.heartbeat, 1),  # grows during a job
            "engine": "local",
        }

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            if self._current:
                self._current[1].cancel()
        if self.alive:  # a server made with start_worker=False never started it
            self._thread.join(timeout)

    def notify(self) -> None:
        self._wake.set()

    def cancel(self, job: Job) -> None:
        with self._lock:
            running = self._current and self._current[0] == job.id
            if running:
                self._current[1].cancel()
        if not running and job.state["status"] == "queued":
            job.set_state(
                status="cancelled", error={"code": "cancelled", "message": "Cancelled before it started.", "hint": ""}
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.time()
            job = None
            try:
                job = self.store.next_pending()
                if job is None:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()
                    continue
                self._run(job)
            except BaseException as err:  # noqa: BLE001 - one bad job or record never stops the queue (SystemExit too)
                self.last_crash = f"{type(err).__name__}: {str(err)[:200]}"
                if job is not None:
                    try:
                        job.set_state(
                            status="failed",
                            error={
                                "code": "internal",
                                "message": f"The job could not be run: {self.last_crash}",
                                "hint": "Submit it again; the queue has moved on.",
                            },
                            traceback=traceback.format_exc(),
                        )
                    except Exception:  # noqa: BLE001 - the record itself is unwritable
                        self._skip(job)
                self._stop.wait(self.poll_s)  # never spin on a fault that repeats

    def _skip(self, job: Job) -> None:
        """A job whose record cannot even be marked failed: move it aside so the queue goes on."""
        try:
            os.replace(job.folder, job.folder.with_name(f".broken-{job.id}"))
        except OSError:
            pass

    def _run(self, job: Job) -> None:
        token = CancelToken()
        with self._lock:
            self._current = (job.id, token)
        try:
            self._run_current(job, token)
        finally:
            with self._lock:
                self._current = None

    def _run_current(self, job: Job, token: CancelToken) -> None:
        resumed = job.state["status"] == "running"
        job.set_state(status="running", started=time.time())

        reporter = ProgressReporter([job.append_event], token)
        if resumed:
            reporter.info("setup", "Resuming after a server restart from the last checkpoint.")
        outcome = run_attempt(job, self.runner, reporter)
        if outcome["status"] == "cancelled" and self._stop.is_set():  # shutting down: resume next time
            job.set_state(status="running")
            return
        record_outcome(job, outcome)


def run_attempt(job: Job, runner: Runner, reporter: ProgressReporter) -> dict:
    """One attempt at ``job`` (either engine): ``{"status": "done" | "cancelled" | "failed",
    "error"?: {code, message, hint}, "traceback"?}``. A damaged record, a DreamWaltzError and an
    unexpected crash (classified) all fail the job; nothing escapes to take a server or worker down."""
    try:
        produced = Path(runner(job.spec, reporter, job.folder / "work"))
        if produced != job.result_path:
            os.replace(produced, job.result_path)
        return {"status": "done"}
    except JobCancelled as err:
        return {"status": "cancelled", "error": err.to_dict()}
    except CorruptRecord as err:
        return {"status": "failed", "error": err.error()}
    except DreamWaltzError as err:
        return {"status": "failed", "error": err.to_dict()}
    except Exception as err:  # noqa: BLE001 - reported as the job's failure
        return {"status": "failed", "error": classify_unexpected(err), "traceback": traceback.format_exc()}


def record_outcome(job: Job, outcome: dict) -> None:
    """An attempt's outcome as the job's state and its last event (either engine)."""
    status = outcome["status"]
    extra = {"traceback": outcome["traceback"]} if "traceback" in outcome else {}
    job.set_state(status=status, error=outcome.get("error"), finished=time.time(), **extra)
    error = outcome.get("error") or {}
    if status == "done":
        message = "Avatar ready."
    elif status == "cancelled":
        message = error.get("message", "")
    else:  # what failed and what to do, as the error's own text reads
        message = f"{error.get('message', '')} {error.get('hint', '')}".strip()
    job.append_event(ProgressEvent({"done": "done", "cancelled": "cancelled"}.get(status, "error"), message=message))


def classify_unexpected(err: Exception) -> dict:
    """Turn a crash into a message a user can act on (out of memory gets its own advice)."""
    text = f"{type(err).__name__}: {err}"
    if "out of memory" in text.lower():
        return OutOfMemoryError(
            "The GPU ran out of memory.",
            "Choose the 'preview' preset, turn on memory saving (CPU offload / VAE slicing) in the "
            "add-on preferences, or close other programs using the GPU.",
        ).to_dict()
    return {
        "code": "internal",
        "message": f"The backend failed: {text}",
        "hint": "See the job's log in the backend's jobs folder; please report it if it repeats.",
    }
