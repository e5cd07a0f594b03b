"""Issue 16: the job server under faults and hostile requests. Damaged records, crashing jobs and a
dead worker never stall the queue; the schema is strict; bodies are bounded; paths are confined."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_server import AUTH, TOKEN, CheckpointingRunner, wait_for

from dreamwaltz.server.app import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(tmp_path):
    runner = CheckpointingRunner(steps=5, step_s=0.005)
    app = create_app(tmp_path / "jobs", TOKEN, runner, body_dirs=[tmp_path / "bodies"])
    with TestClient(app) as client:
        yield client, runner, app, tmp_path


def submit(client, **fields):
    response = client.post("/jobs", json={"prompt": "a knight", **fields}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_damaged_state_files_neither_break_the_list_nor_stop_the_queue(tmp_path):
    jobs = tmp_path / "jobs"
    for name, content in (
        ("20000101-000000-empty", ""),
        ("20000101-000001-junk", "{not json"),
        ("20000101-000002-list", "[1, 2]"),
        ("20000101-000003-nostatus", '{"id": "x", "status": "maybe"}'),
    ):
        (jobs / name / "work").mkdir(parents=True)
        (jobs / name / "state.json").write_text(content)
    # A queued job whose spec is damaged, queued before the good one.
    bad = jobs / "20000101-000004-badspec"
    (bad / "work").mkdir(parents=True)
    (bad / "spec.json").write_text("")
    (bad / "state.json").write_text(json.dumps({"id": bad.name, "status": "queued", "created": 1.0, "error": None}))
    runner = CheckpointingRunner(steps=3, step_s=0.001)
    with TestClient(create_app(jobs, TOKEN, runner)) as client:
        listed = client.get("/jobs", headers=AUTH)
        assert listed.status_code == 200
        good = submit(client)
        assert wait_for(client, good, ("done", "failed"))["status"] == "done", "the queue went on"
        states = {s["id"]: s for s in client.get("/jobs", headers=AUTH).json()}
        assert client.get("/health").json()["worker"]["alive"]
    for name in ("20000101-000000-empty", "20000101-000001-junk", "20000101-000002-list", "20000101-000003-nostatus"):
        assert states[name]["status"] == "failed" and states[name]["error"]["code"] == "corrupt_record", states[name]
        assert "damaged" in states[name]["error"]["message"]
    assert states[bad.name]["status"] == "failed" and "spec.json" in states[bad.name]["error"]["message"]


def test_a_job_that_raises_anything_fails_alone_and_the_next_job_runs(tmp_path):
    calls = []

    def runner(spec, reporter, workdir):
        calls.append(spec["prompt"])
        if spec["prompt"] == "exit":
            raise SystemExit(3)  # not even an Exception
        if spec["prompt"] == "boom":
            raise KeyError("boom")
        out = workdir / "a.h3ga"
        out.write_bytes(b"ok")
        return out

    with TestClient(create_app(tmp_path / "jobs", TOKEN, runner)) as client:
        ids = [submit(client, prompt=p) for p in ("exit", "boom", "fine")]
        states = [wait_for(client, i, ("done", "failed")) for i in ids]
        health = client.get("/health").json()
    assert [s["status"] for s in states] == ["failed", "failed", "done"]
    assert "SystemExit" in states[0]["error"]["message"]
    assert health["worker"]["alive"] and health["ok"]


def test_a_dead_worker_is_restarted_and_health_says_so(service):
    client, runner, app, _ = service
    worker = app.state.worker
    worker._stop.set()  # end the current thread (and its supervisor), as a crash would
    worker._wake.set()
    worker._thread.join(5)
    assert not worker.alive
    worker._stop.clear()
    job = submit(client)  # submitting revives it
    assert wait_for(client, job, ("done", "failed"))["status"] == "done"
    health = client.get("/health").json()
    assert health["worker"]["alive"] and health["worker"]["restarts"] >= 1


def test_the_schema_routes_need_the_token_and_the_docs_are_off(service):
    client = service[0]
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers=AUTH).status_code == 200
    for route in ("/docs", "/redoc"):
        assert client.get(route).status_code in (401, 404)
        assert client.get(route, headers=AUTH).status_code == 404


def test_an_oversized_body_gets_413(service):
    client = service[0]
    big = {"prompt": "x" * (2 << 20)}
    response = client.post("/jobs", json=big, headers=AUTH)
    assert response.status_code == 413 and "limit" in response.json()["detail"]["message"]

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b" " * (64 << 10)

    response = client.post("/jobs", content=chunks(), headers=dict(AUTH, **{"content-type": "application/json"}))
    assert response.status_code == 413
    assert not list((service[3] / "jobs").iterdir()), "nothing was stored"


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"prompt": "x", "colour": "red"}, "colour: is not a field"),
        ({"prompt": "x", "seed": 2**80}, "seed must be a whole number"),
        ({"prompt": "x", "seed": -1}, "seed must be a whole number"),
        ({"prompt": "x", "device": "../../bogus"}, "Unknown device"),
        ({"prompt": "x", "betas": [0.0] * 100_000}, "betas"),
        ({"prompt": "x", "betas": [1e300]}, "betas"),
        ({"prompt": "x", "steps": 10**12}, "steps"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x", "negative_prompt": "y" * 5000}, "negative prompt"),
    ],
)
def test_unknown_fields_and_impossible_values_are_a_400_with_the_reason(service, fields, expected):
    client = service[0]
    response = client.post("/jobs", json=fields, headers=AUTH)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail["code"] == "invalid_request" and expected.lower() in detail["message"].lower(), detail


def test_body_paths_outside_the_allowed_folders_are_not_allowed_whether_or_not_they_exist(service):
    client, _, _, tmp_path = service
    (tmp_path / "bodies").mkdir()
    outside = tmp_path / "secret" / "SMPLX_NEUTRAL.npz"
    outside.parent.mkdir()
    outside.write_bytes(b"PK")
    link = tmp_path / "bodies" / "link.npz"
    link.symlink_to(outside)
    answers = []
    for path in (
        outside,
        tmp_path / "secret" / "missing.npz",
        link,
        tmp_path / "bodies" / ".." / "secret" / "SMPLX_NEUTRAL.npz",
        Path("/etc/passwd"),
    ):
        response = client.post("/jobs", json={"prompt": "x", "body": str(path)}, headers=AUTH)
        assert response.status_code == 400 and "not allowed" in response.json()["detail"]["message"], response.text
        answers.append(response.json()["detail"]["message"].replace(str(path), "PATH"))
    assert len(set(answers)) == 1, "the answer does not depend on whether the file exists"
    missing = client.post(
        "/jobs", json={"prompt": "x", "body": str(tmp_path / "bodies" / "SMPLX_MALE.npz")}, headers=AUTH
    )
    assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]["message"]
    (tmp_path / "bodies" / "SMPLX_MALE.npz").write_bytes(b"PK")
    assert (
        client.post(
            "/jobs", json={"prompt": "x", "body": str(tmp_path / "bodies" / "SMPLX_MALE.npz")}, headers=AUTH
        ).status_code
        == 200
    )


def test_job_folders_are_private(service):
    client, _, app, tmp_path = service
    job = submit(client)
    folder = tmp_path / "jobs" / job
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "work").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "state.json").stat().st_mode) & 0o077 == 0


KILLED_SERVER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from dreamwaltz.server.jobs import JobStore, Worker

    def runner(spec, reporter, workdir):
        ckpt = workdir / "ckpt.json"
        step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
        while step < 100000:
            time.sleep(0.01)
            step += 1
            ckpt.write_text(json.dumps({"step": step}))
            reporter.step("stage2", step, 100000)

    store = JobStore(Path(sys.argv[1]))
    store.create({"prompt": "killed mid-job"})
    Worker(store, runner).start()
    time.sleep(600)
""")


def test_a_server_killed_with_sigkill_mid_job_resumes_it(tmp_path):
    jobs = tmp_path / "jobs"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "backend"))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SERVER, str(jobs)], env=env)
    try:
        deadline = time.time() + 60
        ckpts = []
        while time.time() < deadline:
            ckpts = list(jobs.glob("*/work/ckpt.json"))
            if ckpts and json.loads(ckpts[0].read_text() or '{"step": 0}')["step"] >= 10:
                break
            time.sleep(0.05)
        assert ckpts, "the job never started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    job_id = ckpts[0].parents[1].name
    assert json.loads((jobs / job_id / "state.json").read_text())["status"] == "running"
    runner = CheckpointingRunner(steps=20, step_s=0.001)
    with TestClient(create_app(jobs, TOKEN, runner)) as client:
        state = wait_for(client, job_id, ("done", "failed"))
    assert state["status"] == "done" and runner.started_at[0] >= 10, (state, runner.started_at)


def test_many_clients_and_a_flood_of_bad_requests_leave_the_server_serving(service):
    client, _, _, _ = service
    errors = []

    def hammer():
        try:
            for _ in range(10):
                assert (
                    client.post(
                        "/jobs", content=b"{", headers=dict(AUTH, **{"content-type": "application/json"})
                    ).status_code
                    == 400
                )
                assert client.post("/jobs", json=[1, 2], headers=AUTH).status_code == 400
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert wait_for(client, submit(client), ("done",))["status"] == "done"


def test_the_addon_s_own_local_backend_reads_a_body_file_from_any_folder(monkeypatch, tmp_path):
    """DREAMWALTZ_BODY_DIRS=* (what the add-on's local launcher sets): the artist's own file,
    wherever they keep it, on their own machine."""
    from dreamwaltz.server.app import allowed_body_dirs

    monkeypatch.setenv("DREAMWALTZ_BODY_DIRS", "*")
    roots = allowed_body_dirs()
    anywhere = Path(os.path.realpath(tmp_path / "SMPLX_NEUTRAL.npz"))
    assert any(root in anywhere.parents for root in roots)
    monkeypatch.delenv("DREAMWALTZ_BODY_DIRS")
    assert allowed_body_dirs() == [Path(os.path.realpath(Path.home()))]
    source = (Path(__file__).parents[1] / "dreamwaltz_blender/backend/local.py").read_text()
    assert 'DREAMWALTZ_BODY_DIRS="*"' in source
