"""Issue 8: the job service (token, queue, events, cancel, resume after a restart)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dreamwaltz.server.app import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CheckpointingRunner:
    """A stand-in for the pipeline with the same contract: steps, checkpoints, resume, cancel."""

    def __init__(self, steps: int = 40, step_s: float = 0.02):
        self.steps, self.step_s = steps, step_s
        self.started_at: list[int] = []

    def __call__(self, spec: dict, reporter, workdir: Path) -> Path:
        ckpt = workdir / "ckpt.json"
        step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
        self.started_at.append(step)
        while step < self.steps:
            time.sleep(self.step_s)
            step += 1
            ckpt.write_text(json.dumps({"step": step}))
            reporter.step("stage1", step, self.steps, loss=1.0 / step)
        out = workdir / "avatar.h3ga"
        out.write_bytes(f"avatar for {spec['prompt']}".encode())
        return out


def wait_for(client, job_id, statuses, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/jobs/{job_id}", headers=AUTH).json()
        if state["status"] in statuses:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {state}")


@pytest.fixture
def service(tmp_path):
    runner = CheckpointingRunner()
    app = create_app(tmp_path / "jobs", TOKEN, runner)
    with TestClient(app) as client:
        yield client, runner, app


def test_requests_without_the_token_are_refused(service):
    client, _, _ = service
    assert client.get("/jobs").status_code == 401
    assert (
        client.post("/jobs", json={"prompt": "a knight"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    body = client.get("/jobs").json()["detail"]
    assert "token" in body["message"].lower() and body["hint"]
    assert client.get("/health").json()["ok"] is True  # health needs no token


def test_job_runs_reports_progress_and_returns_the_result(service):
    client, _, _ = service
    job = client.post("/jobs", json={"prompt": "a knight in armor", "preset": "tiny"}, headers=AUTH).json()
    state = wait_for(client, job["id"], ("done", "failed"))
    assert state["status"] == "done", state
    events = client.get(f"/jobs/{job['id']}/events", headers=AUTH).json()
    steps = [e["step"] for e in events if e["stage"] == "stage1"]
    assert steps == list(range(1, 41)), "every progress step reaches the client, in order"
    assert events[-1]["stage"] == "done"
    later = client.get(f"/jobs/{job['id']}/events?after=30", headers=AUTH).json()
    assert [e["index"] for e in later][0] == 30, "polling can continue from the last event seen"
    assert client.get(f"/jobs/{job['id']}/result", headers=AUTH).content == b"avatar for a knight in armor"


def test_bad_requests_say_what_is_wrong(service):
    client, _, _ = service
    empty = client.post("/jobs", json={"prompt": "   "}, headers=AUTH)
    assert empty.status_code == 400 and "prompt is empty" in empty.text
    preset = client.post("/jobs", json={"prompt": "x", "preset": "ultra"}, headers=AUTH)
    assert preset.status_code == 400 and "tiny, preview, paper" in preset.text
    precision = client.post("/jobs", json={"prompt": "x", "precision": "fp8"}, headers=AUTH)
    assert precision.status_code == 400 and "auto, fp16, bf16, fp32" in precision.text
    body = client.post("/jobs", json={"prompt": "x", "body": "/nowhere/SMPLX_NEUTRAL.npz"}, headers=AUTH)
    assert body.status_code == 400 and "not allowed" in body.json()["detail"]["message"]
    body = client.post(
        "/jobs", json={"prompt": "x", "body": str(Path.home() / "nowhere" / "SMPLX_NEUTRAL.npz")}, headers=AUTH
    )
    assert body.status_code == 400 and "does not exist" in body.json()["detail"]["message"]
    assert client.get("/jobs/../../etc", headers=AUTH).status_code == 404


def test_one_job_at_a_time_in_queue_order_and_cancel(service):
    client, runner, _ = service
    runner.steps, runner.step_s = 60, 0.02
    first = client.post("/jobs", json={"prompt": "first"}, headers=AUTH).json()
    second = client.post("/jobs", json={"prompt": "second"}, headers=AUTH).json()
    third = client.post("/jobs", json={"prompt": "third"}, headers=AUTH).json()
    wait_for(client, first["id"], ("running",))
    assert client.get(f"/jobs/{second['id']}", headers=AUTH).json()["status"] == "queued"
    assert client.post(f"/jobs/{third['id']}/cancel", headers=AUTH).json()["status"] == "cancelled"
    client.post(f"/jobs/{first['id']}/cancel", headers=AUTH)
    cancelled = wait_for(client, first["id"], ("cancelled", "done"))
    assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "cancelled"
    assert client.get(f"/jobs/{first['id']}/result", headers=AUTH).status_code == 409
    assert wait_for(client, second["id"], ("done",))["status"] == "done"
    assert client.get(f"/jobs/{third['id']}", headers=AUTH).json()["status"] == "cancelled", "cancelled jobs never run"
    assert len(runner.started_at) == 2


def test_a_restarted_server_resumes_an_interrupted_job_from_its_checkpoint(tmp_path):
    runner = CheckpointingRunner(steps=200, step_s=0.01)
    app = create_app(tmp_path / "jobs", TOKEN, runner)
    with TestClient(app) as client:
        job = client.post("/jobs", json={"prompt": "resumable"}, headers=AUTH).json()
        deadline = time.time() + 10
        while time.time() < deadline and len(client.get(f"/jobs/{job['id']}/events", headers=AUTH).json()) < 20:
            time.sleep(0.02)
    # The server has shut down mid-job; a new one on the same folder picks it up.
    assert json.loads((tmp_path / "jobs" / job["id"] / "state.json").read_text())["status"] == "running"
    runner2 = CheckpointingRunner(steps=200, step_s=0.001)
    with TestClient(create_app(tmp_path / "jobs", TOKEN, runner2)) as client:
        assert wait_for(client, job["id"], ("done",))["status"] == "done"
        events = client.get(f"/jobs/{job['id']}/events", headers=AUTH).json()
    assert runner2.started_at[0] >= 20, "resumed from the checkpoint, not from scratch"
    assert any("Resuming" in (e.get("message") or "") for e in events)


def test_failures_are_reported_with_advice(tmp_path):
    def out_of_memory(spec, reporter, workdir):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with TestClient(create_app(tmp_path / "jobs", TOKEN, out_of_memory)) as client:
        job = client.post("/jobs", json={"prompt": "big"}, headers=AUTH).json()
        state = wait_for(client, job["id"], ("failed",))
    assert state["error"]["code"] == "out_of_memory"
    assert "preview" in state["error"]["hint"]


def test_health_answers_while_gsplat_is_being_checked(service, monkeypatch):
    """The probe holds its lock for as long as gsplat compiles its kernels (minutes, on a GPU):
    /health answers all the same ("checking" on a GPU; the CPU answer on a CPU)."""
    from dreamwaltz.render import gsplat_backend

    client, _, _ = service
    monkeypatch.setattr(gsplat_backend, "_probe_result", None)  # not checked yet in this process
    with gsplat_backend._probe_lock:  # a job's check, compiling
        started = time.monotonic()
        info = client.get("/health").json()
        assert time.monotonic() - started < 5
    assert info["ok"] is True
    if info["cuda"]:
        assert info["gsplat"]["usable"] is None and info["rasterizer"] == "checking"
    else:
        assert info["rasterizer"].startswith("torch")
