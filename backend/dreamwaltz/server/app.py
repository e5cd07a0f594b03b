"""The HTTP API (FastAPI): submit, status, events, cancel, preview, result.

Every route but ``/health`` needs ``Authorization: Bearer <token>`` (the schema at
``/openapi.json`` too; ``/docs`` and ``/redoc`` are off). The service binds to localhost by
default; ``dreamwaltz serve --host 0.0.0.0`` exposes it, still token-protected. Requests over
``MAX_BODY_BYTES`` get 413; a request that breaks the job schema (an unknown field, a wrong type,
an impossible value) gets 400 with the reason; ``body`` paths must lie in the allowed folders
(docs/SERVER.md).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..core.errors import DreamWaltzError
from ..core.job import GenerateSpec
from ..core.version import __version__
from .jobs import FINISHED, EngineFactory, JobStore, Runner, Worker

# The request body is the one job schema (core/job.py), validated by pydantic: unknown fields,
# wrong types and impossible values answer 400 with the schema's own messages.
GenerateRequest = pydantic_dataclass(GenerateSpec, config=ConfigDict(extra="forbid"))

MAX_BODY_BYTES = 1 << 20  # a job request is a few hundred bytes
BODY_DIRS_ENV = "DREAMWALTZ_BODY_DIRS"  # folders (os.pathsep-separated) SMPL-X files may be read from


def allowed_body_dirs() -> list[Path]:
    """Folders a request's ``body`` path may point into: DREAMWALTZ_BODY_DIRS, else the home folder.
    ``*`` allows any folder: the add-on's own local backend, which runs as the artist on their
    machine and reads the file they picked wherever it is."""
    raw = os.environ.get(BODY_DIRS_ENV, "")
    if raw.strip() == "*":
        return [Path(os.path.realpath(Path(anchor))) for anchor in _filesystem_roots()]
    dirs = [Path(d).expanduser() for d in raw.split(os.pathsep) if d.strip()] if raw.strip() else [Path.home()]
    return [Path(os.path.realpath(d)) for d in dirs]


def _filesystem_roots() -> list[str]:
    if os.name != "nt":
        return ["/"]
    import string

    return [f"{d}:\\" for d in string.ascii_uppercase if os.path.exists(f"{d}:\\")]


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_big = declared is not None and int(declared) > self.limit
        except ValueError:
            too_big = True
        if too_big:
            return await self._refuse(send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, detail=self._detail())
            return message

        return await self.app(scope, limited, send)

    def _detail(self) -> dict:
        return {
            "code": "too_large",
            "message": f"The request is over the {self.limit >> 10} KiB limit.",
            "hint": "A job request is a few hundred bytes: send the prompt and settings, not files.",
        }

    async def _refuse(self, send):
        body = json.dumps({"detail": self._detail()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _validation_message(errors: Sequence[dict]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if error.get("type") in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "is not a field of a job request"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def create_app(
    jobs_dir: Path,
    token: str,
    runner: Runner,
    start_worker: bool = True,
    body_dirs: Sequence[Path] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    engine: EngineFactory | None = None,
) -> FastAPI:
    """The API over ``jobs_dir``; ``engine(store, runner)`` makes what runs the jobs (default: the
    local one-GPU ``Worker``; ``ray_engine.ray_engine(...)`` for a Ray cluster)."""
    store = JobStore(jobs_dir)
    worker = (engine or Worker)(store, runner)
    app = FastAPI(title="DreamWaltz backend", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.state.store, app.state.worker = store, worker
    body_roots = [Path(os.path.realpath(Path(d).expanduser())) for d in body_dirs] if body_dirs is not None else None

    def require_token(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(
                401,
                detail={
                    "code": "unauthorized",
                    "message": "Missing or wrong token.",
                    "hint": "Copy the token printed by 'dreamwaltz serve' into the add-on preferences.",
                },
            )

    def job_or_404(job_id: str):
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, detail={"code": "not_found", "message": f"No job {job_id!r}.", "hint": ""})
        return job

    @app.exception_handler(DreamWaltzError)
    async def user_error(_request, err: DreamWaltzError):
        return JSONResponse(status_code=400, content={"detail": err.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request, err: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in err.errors()]
        return JSONResponse(
            status_code=400,
            content={
                "detail": {
                    "code": "invalid_request",
                    "message": f"Invalid job request: {_validation_message(errors)}",
                    "hint": "Fix the fields named; docs/SERVER.md lists the request's fields.",
                    "errors": errors,
                }
            },
        )

    def check_body_path(body: str) -> None:
        if body == "open":
            return
        roots = body_roots if body_roots is not None else allowed_body_dirs()
        resolved = Path(os.path.realpath(Path(body).expanduser()))
        inside = any(resolved == root or root in resolved.parents for root in roots)
        if not inside or resolved.suffix.lower() != ".npz":
            # The same answer whether or not the file exists: a client learns nothing of other folders.
            raise DreamWaltzError(
                f"The body path {body!r} is not allowed on this backend.",
                f"Put the SMPL-X .npz in one of the backend's body folders (set by {BODY_DIRS_ENV}, by default the "
                "home folder of the user running it) and give its path there, or choose the open body.",
            )
        if not resolved.is_file():
            raise DreamWaltzError(
                f"The SMPL-X file {body!r} does not exist on the backend's machine.",
                "Choose the open body, or copy your SMPL-X .npz to the backend machine and give its path there.",
            )

    @app.get("/openapi.json", dependencies=[Depends(require_token)], include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.on_event("startup")
    def _start() -> None:
        if start_worker:
            worker.start()

    @app.on_event("shutdown")
    def _stop() -> None:
        worker.stop()

    @app.get("/health")
    def health() -> dict:
        # Reported so the add-on can say whether generation will be fast: torch, CUDA, GPU, whether
        # gsplat's kernels load and the rasterizer (``dreamwaltz doctor``'s report; never waits for
        # gsplat's kernel check, which answers "checking" until done).
        from ..system_report import system_report

        info = system_report(block=False)
        worker.ensure_alive()  # the supervisor's check, on every health probe too
        health = worker.health()
        return {
            "ok": health["alive"] or not start_worker,
            "version": __version__,
            **info,
            "device_name": info["gpu"] or "CPU",
            "worker": health,
        }

    @app.post("/jobs", dependencies=[Depends(require_token)])
    def submit(req: GenerateRequest) -> dict:
        check_body_path(req.body)
        job = store.create(GenerateSpec.from_dict(dataclasses.asdict(req)).to_dict())
        worker.ensure_alive()
        worker.notify()
        return job.state

    @app.get("/jobs", dependencies=[Depends(require_token)])
    def list_jobs() -> list:
        states = store.all_with_states()
        positions = store.queue_positions(states)
        return [
            dict({k: v for k, v in state.items() if k != "traceback"}, queue_position=positions.get(job.id))
            for job, state in states
        ]

    @app.get("/jobs/{job_id}", dependencies=[Depends(require_token)])
    def status(job_id: str) -> dict:
        job = job_or_404(job_id)
        events = job.events()
        state = job.state
        state.pop("traceback", None)
        # 1 = the next queued job to start; None unless queued (reads the other jobs' records only then).
        position = store.queue_positions().get(job_id) if state["status"] == "queued" else None
        return dict(state, last_event=events[-1] if events else None, num_events=len(events), queue_position=position)

    @app.get("/jobs/{job_id}/events", dependencies=[Depends(require_token)])
    def events(job_id: str, after: int = 0) -> list:
        return job_or_404(job_id).events(after)

    @app.post("/jobs/{job_id}/cancel", dependencies=[Depends(require_token)])
    def cancel(job_id: str) -> dict:
        job = job_or_404(job_id)
        if job.state["status"] not in FINISHED:
            worker.cancel(job)
        return job.state

    @app.get("/jobs/{job_id}/preview", dependencies=[Depends(require_token)])
    def preview(job_id: str):
        path = job_or_404(job_id).latest_preview()
        if path is None:
            raise HTTPException(404, detail={"code": "no_preview", "message": "No preview yet.", "hint": ""})
        return FileResponse(path, media_type="image/png")

    @app.get("/jobs/{job_id}/result", dependencies=[Depends(require_token)])
    def result(job_id: str):
        job = job_or_404(job_id)
        if job.state["status"] != "done" or not job.result_path.exists():
            raise HTTPException(
                409, detail={"code": "not_ready", "message": f"The job is {job.state['status']}.", "hint": ""}
            )
        return FileResponse(job.result_path, media_type="application/octet-stream", filename="avatar.h3ga")

    return app
