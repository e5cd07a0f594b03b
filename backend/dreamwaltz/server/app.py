"""The HTTP API (FastAPI): submit, status, events, cancel, preview, result.

Every route but ``/health`` needs ``Authorization: Bearer <token>``. The service binds to
localhost by default; ``dreamwaltz serve --host 0.0.0.0`` exposes it, still token-protected.
"""

from __future__ import annotations

import dataclasses
import hmac
from pathlib import Path
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..core.errors import DreamWaltzError
from ..core.job import GenerateSpec
from ..core.version import __version__
from .jobs import FINISHED, JobStore, Runner, Worker


# The request body is the one job schema (core/job.py), validated by pydantic: wrong types and
# values answer 422 with the schema's own messages.
GenerateRequest = pydantic_dataclass(GenerateSpec)


def create_app(jobs_dir: Path, token: str, runner: Runner, start_worker: bool = True) -> FastAPI:
    store = JobStore(jobs_dir)
    worker = Worker(store, runner)
    app = FastAPI(title="DreamWaltz backend", version=__version__)
    app.state.store, app.state.worker = store, worker

    def require_token(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, detail={"code": "unauthorized", "message": "Missing or wrong token.",
                                             "hint": "Copy the token printed by 'dreamwaltz serve' into the add-on preferences."})

    def job_or_404(job_id: str):
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, detail={"code": "not_found", "message": f"No job {job_id!r}.", "hint": ""})
        return job

    @app.exception_handler(DreamWaltzError)
    async def user_error(_request, err: DreamWaltzError):
        return JSONResponse(status_code=400, content={"detail": err.to_dict()})

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
        from ..commands.doctor import system_report

        info = system_report(block=False)
        return {"ok": True, "version": __version__, **info, "device_name": info["gpu"] or "CPU"}

    @app.post("/jobs", dependencies=[Depends(require_token)])
    def submit(req: GenerateRequest) -> dict:
        if req.body != "open" and not Path(req.body).is_file():
            raise DreamWaltzError(
                f"The SMPL-X file {req.body!r} does not exist on the backend's machine.",
                "Choose the open body, or copy your SMPL-X .npz to the backend machine and give its path there.",
            )
        job = store.create(GenerateSpec.from_dict(dataclasses.asdict(req)).to_dict())
        worker.notify()
        return job.state

    @app.get("/jobs", dependencies=[Depends(require_token)])
    def list_jobs() -> list:
        return [j.state for j in store.all()]

    @app.get("/jobs/{job_id}", dependencies=[Depends(require_token)])
    def status(job_id: str) -> dict:
        job = job_or_404(job_id)
        events = job.events()
        state = job.state
        state.pop("traceback", None)
        return dict(state, last_event=events[-1] if events else None, num_events=len(events))

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
            raise HTTPException(409, detail={"code": "not_ready", "message": f"The job is {job.state['status']}.", "hint": ""})
        return FileResponse(job.result_path, media_type="application/octet-stream", filename="avatar.h3ga")

    return app
