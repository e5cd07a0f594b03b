"""The ``ray`` engine: each job a Ray task on a cluster (``dreamwaltz serve --engine ray``).

The job folders live on storage every node mounts at the same path (``--storage``). A task runs
the same runner as the local engine on its job folder: checkpoints go to ``work/``, progress and
preview paths to ``events.jsonl`` (which the server reads as it grows), the avatar to
``result.h3ga``. The server alone writes ``state.json``. A task asks for ``amount`` of a Ray
resource (``GPU`` by default: Ray then sets CUDA_VISIBLE_DEVICES; any custom resource name works
for labelled or CPU-only clusters), so Ray decides where and how many jobs run at once.

When a task's worker process or node dies, Ray runs it again (``max_retries``) on a node that has
the resource; the new attempt finds the job's checkpoints on the shared storage and resumes from
the last one. Cancelling interrupts the task (and kills its worker if it does not stop).

This module imports ``ray``: only ``engines.engine_factory("ray")`` imports it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import ray
from ray.exceptions import RayError, TaskCancelledError

from ..core.errors import DreamWaltzError, JobCancelled
from ..progress import ProgressEvent, ProgressReporter
from .jobs import ACTIVE, CorruptRecord, Job, JobStore, Runner, Worker, _read_json, _write_json, record_outcome
from .jobs import run_attempt as run_job_attempt

ATTEMPT_FILE = "attempt.json"  # written by each attempt of a job's task: which try, on which node
FORCE_CANCEL_AFTER_S = 15.0  # a task that ignores the interrupt this long has its worker killed


def run_attempt(folder: str, runner: Runner) -> dict:
    """One attempt at one job, on a Ray worker. Returns {"status", "error"?, "traceback"?}; only a
    dead worker or node (which Ray retries) or a cancel ends it otherwise."""
    job = Job(Path(folder).name, Path(folder))
    try:
        attempt = int(_read_json(job.folder / ATTEMPT_FILE).get("attempt", 0)) + 1
    except (CorruptRecord, TypeError, ValueError):
        attempt = 1
    node = ray.util.get_node_ip_address()
    _write_json(
        job.folder / ATTEMPT_FILE,
        {
            "attempt": attempt,
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": node,
            "pid": os.getpid(),
            "started": time.time(),
        },
    )

    def sink(event: ProgressEvent) -> None:
        if event.preview:  # relative to the job folder: the server may mount the storage elsewhere
            try:
                event.preview = Path(event.preview).resolve().relative_to(job.folder.resolve()).as_posix()
            except ValueError:
                pass
        job.append_event(event)

    reporter = ProgressReporter([sink])
    reporter.info(
        "setup",
        f"Running on node {node} (attempt {attempt})"
        + (": resuming from the last checkpoint." if attempt > 1 else "."),
    )
    return run_job_attempt(job, runner, reporter)


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (None: $RAY_ADDRESS, else start Ray on this machine);
    True when this call made the connection (its owner shuts it down)."""
    if ray.is_initialized():
        return False
    try:
        _probe(address)
        ray.init(address=address, namespace="dreamwaltz")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as err:
        raise DreamWaltzError(
            f"Cannot join the Ray cluster at {address or '$RAY_ADDRESS'}: {str(err).splitlines()[0][:200]}",
            "Start one with 'ray start --head' (docs/CLUSTER.md), then give --ray-address HOST:6379 "
            "(or 'auto' on one of its nodes).",
        ) from None
    return True


def _probe(address: str | None) -> None:
    """Fail in seconds on a head that does not answer (ray.init retries it for minutes)."""
    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()


def resource_warning(resource: str, amount: float) -> str | None:
    """Why jobs would wait forever, if the cluster has less of the resource than a job asks for."""
    try:
        total = ray.cluster_resources().get(resource, 0.0)
    except Exception:  # noqa: BLE001 - a health probe never fails on this
        return None
    if total >= amount:
        return None
    return (
        f"The Ray cluster has {total:g} {resource} but a job asks for {amount:g}: jobs stay queued until a node "
        f"with it joins (--gpu-resource / --gpus-per-job; docs/CLUSTER.md)."
    )


class RayEngine(Worker):
    """Submits every active job of the store as a Ray task and records how each one ends. The
    thread, its supervisor and the health report are the local ``Worker``'s; the loop differs."""

    def __init__(
        self,
        store: JobStore,
        runner: Runner,
        address: str | None = None,
        resource: str = "GPU",
        amount: float = 1.0,
        max_retries: int = 3,
        cpus: float = 1.0,
        poll_s: float = 0.2,
        scan_s: float = 1.0,
        owns_ray: bool = False,
    ):
        super().__init__(store, runner, poll_s)
        self.address, self.resource, self.amount = address, resource, amount
        self.max_retries, self.cpus, self.scan_s = max_retries, cpus, scan_s
        self._tasks: dict[str, ray.ObjectRef] = {}
        self._attempts: dict[str, float] = {}  # attempt.json's mtime last seen, per job in flight
        self._cancelling: dict[str, float] = {}
        self._remote = None
        self._options: dict = {}
        self._owns_ray = owns_ray  # this engine's connection: stop() shuts it down
        self._next_scan = 0.0

    # -- connection ------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._owns_ray = connect(self.address) or self._owns_ray
        options = {"max_retries": self.max_retries, "retry_exceptions": False, "num_cpus": self.cpus}
        if self.resource == "GPU":
            options["num_gpus"] = self.amount  # Ray also sets the task's CUDA_VISIBLE_DEVICES
        elif self.resource == "CPU":  # a CPU-only cluster: the job's share is its CPUs
            options["num_cpus"] = self.amount
        else:
            options["resources"] = {self.resource: self.amount}
        self._options = options
        self._remote = ray.remote(run_attempt)

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.time()
            try:
                if self._remote is None:
                    self._connect()
                if self._wake.is_set() or time.time() >= self._next_scan:
                    self._wake.clear()
                    self._submit_pending()
                    self._next_scan = time.time() + self.scan_s
                self._collect()
                self._track_attempts()
                self._escalate_cancels()
            except BaseException as err:  # noqa: BLE001 - a bad record or a Ray hiccup never stops the queue
                self.last_crash = f"{type(err).__name__}: {str(err)[:200]}"
                self._stop.wait(self.poll_s)

    def _submit_pending(self) -> None:
        for job in self.store.pending():
            if job.id in self._tasks:
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    if job.state["status"] not in ACTIVE:  # cancelled meanwhile
                        continue
                    job.spec  # noqa: B018 - a damaged spec fails here, not on a worker
                except CorruptRecord as err:
                    job.set_state(status="failed", error=err.error())
                    continue
                name = f"dreamwaltz {job.id}"  # what Ray's dashboard lists
                task = self._remote.options(name=name, **self._options)
                self._tasks[job.id] = task.remote(str(job.folder.resolve()), self.runner)

    def _collect(self) -> None:
        refs = list(self._tasks.values())
        if not refs:
            self._wake.wait(self.poll_s)
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.poll_s)
        ready = set(ready)
        for job_id, ref in list(self._tasks.items()):
            if ref in ready:
                self._finish(job_id, ref)

    def _finish(self, job_id: str, ref) -> None:
        try:
            outcome = ray.get(ref)
        except TaskCancelledError:
            outcome = {"status": "cancelled", "error": JobCancelled().to_dict()}
        except RayError as err:  # its worker or node died more often than retried, or Ray itself failed
            if job_id in self._cancelling:  # killed by a forced cancel
                outcome = {"status": "cancelled", "error": JobCancelled().to_dict()}
            else:
                outcome = {
                    "status": "failed",
                    "error": {
                        "code": "worker_lost",
                        "message": f"The job's Ray worker was lost {self.max_retries + 1} times "
                        f"({type(err).__name__}: {str(err)[:200]}).",
                        "hint": "Check the cluster (ray status, Ray's dashboard) and submit the job again; a rerun of "
                        "'dreamwaltz batch' resumes its jobs from their last checkpoints.",
                    },
                }
        with self._lock:
            self._tasks.pop(job_id, None)
            self._attempts.pop(job_id, None)
            cancelled = self._cancelling.pop(job_id, None) is not None
        job = self.store.get(job_id)
        if job is None or job.state["status"] not in ACTIVE:  # cancelled before it started
            return
        if cancelled and outcome["status"] == "failed":
            outcome = {"status": "cancelled", "error": JobCancelled().to_dict()}
        record_outcome(job, outcome)

    def _track_attempts(self) -> None:
        """A job is "running" from the moment an attempt starts on a node (and says which)."""
        for job_id in list(self._tasks):
            job = self.store.get(job_id)
            path = job.folder / ATTEMPT_FILE if job else None
            try:
                mtime = path.stat().st_mtime if path else None
            except OSError:
                continue
            if mtime is None or self._attempts.get(job_id) == mtime:
                continue
            try:
                attempt = _read_json(path)
            except CorruptRecord:
                continue
            self._attempts[job_id] = mtime
            with self._lock:
                if job_id in self._tasks and job.state["status"] in ACTIVE:
                    job.set_state(
                        status="running",
                        started=attempt.get("started"),
                        attempt=attempt.get("attempt"),
                        node=attempt.get("node_ip"),
                        node_id=attempt.get("node_id"),
                    )

    def _escalate_cancels(self) -> None:
        for job_id, since in list(self._cancelling.items()):
            ref = self._tasks.get(job_id)
            if ref is not None and time.time() - since > FORCE_CANCEL_AFTER_S:
                ray.cancel(ref, force=True)
                self._cancelling[job_id] = float("inf")  # once

    # -- the Engine interface ------------------------------------------------------------------
    def cancel(self, job: Job) -> None:
        with self._lock:
            ref = self._tasks.get(job.id)
            if ref is not None:
                self._cancelling.setdefault(job.id, time.time())
            if job.state["status"] == "queued":  # not started: cancelled now (its task leaves Ray's queue)
                job.set_state(
                    status="cancelled",
                    error={"code": "cancelled", "message": "Cancelled before it started.", "hint": ""},
                )
        if ref is not None:
            ray.cancel(ref, force=False)  # a running task is interrupted (KeyboardInterrupt in the job)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop submitting and interrupt the tasks in flight: their jobs stay "running" and resume
        from their checkpoints when an engine starts on this storage again."""
        self._stop.set()
        self._wake.set()
        if self.alive:
            self._thread.join(timeout)
        refs = list(self._tasks.values())
        for ref in refs:
            ray.cancel(ref, force=False)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
        self._tasks.clear()
        if self._owns_ray:
            ray.shutdown()

    def health(self) -> dict:
        running = [job_id for job_id in list(self._tasks) if job_id in self._attempts]
        return {
            "alive": self.alive,
            "restarts": self.restarts,
            "running_job": running[0] if running else None,
            "running_jobs": running,
            "in_ray": len(self._tasks),
            "last_crash": self.last_crash,
            "loop_age_s": round(time.time() - self.heartbeat, 1),
            "engine": "ray",
            "resource": {self.resource: self.amount},
            "ray_address": self.address,
            "warning": resource_warning(self.resource, self.amount) if self._remote is not None else None,
        }
