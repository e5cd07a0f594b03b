"""Issue 22: generation jobs on a Ray cluster (``dreamwaltz serve --engine ray``).

A local Ray cluster on the CPU stands in for GPU machines: two worker nodes with one ``fake_gpu``
each, so at most two jobs run at once. The jobs are real tiny-preset generations through the HTTP
API; their avatars must equal the local engine's, survive the loss of their node, and stop when
cancelled. Skipped when Ray is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_server import AUTH, TOKEN, wait_for

from dreamwaltz.core.h3ga import read_h3ga
from dreamwaltz.server.app import create_app
from dreamwaltz.server.runner import run_generate_job

ROOT = Path(__file__).resolve().parents[1]
# The tiny preset at its shortest that still checkpoints: stage 1 skipped, a few stage-2 steps.
TINY = {"preset": "tiny", "device": "cpu", "stage1_steps": 0}


def test_the_server_does_not_import_ray_unless_the_ray_engine_is_chosen():
    code = (
        "import sys, dreamwaltz.server.app, dreamwaltz.commands.serve, dreamwaltz.commands.batch, dreamwaltz.cli; "
        "from dreamwaltz.server.engines import engine_factory; engine_factory('local'); print('ray' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "backend"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # Worker processes start from the nodes' environment: they import this checkout's backend.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "backend"), os.environ.get("PYTHONPATH")]))
    small = {"object_store_memory": 100 << 20}
    head = dict(
        small,
        num_cpus=0,
        _system_config={  # notice a lost node within a few seconds
            "health_check_initial_delay_ms": 0,
            "health_check_period_ms": 500,
            "health_check_failure_threshold": 3,
        },
    )
    c = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        c.add_node(num_cpus=1, resources={"fake_gpu": 1}, **small)
    ray.init(address=c.address)
    c.wait_for_nodes()
    c.small = small
    yield c
    ray.shutdown()
    c.shutdown()


def ray_server(jobs: Path):
    from dreamwaltz.server.engines import engine_factory

    engine = engine_factory("ray", gpu_resource="fake_gpu", gpus_per_job=1, max_retries=2)
    return TestClient(create_app(jobs, TOKEN, run_generate_job, engine=engine))


def local_avatars(tmp_path: Path, specs: list[dict]) -> list:
    """The same jobs on the local engine (today's one-GPU worker), with the one CPU thread Ray gives
    a job of one CPU (it sets OMP_NUM_THREADS): on a CPU, float sums depend on the thread count
    (two threads differ by ~2e-3 after four SDS steps), so the reference must use the same."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with TestClient(create_app(tmp_path / "local-jobs", TOKEN, run_generate_job)) as client:
            ids = [client.post("/jobs", json=spec, headers=AUTH).json()["id"] for spec in specs]
            for job_id in ids:
                assert wait_for(client, job_id, ("done", "failed"), timeout=600)["status"] == "done"
    finally:
        torch.set_num_threads(threads)
    return [read_h3ga(tmp_path / "local-jobs" / job_id / "result.h3ga") for job_id in ids]


def assert_same_avatar(a, b):
    assert a.arrays.keys() == b.arrays.keys()
    for name in a.arrays:
        assert np.array_equal(a[name], b[name]), name


def stage2_steps(events: list[dict]) -> list[int]:
    return [e["step"] for e in events if e.get("stage") == "stage2" and e.get("total")]


def fake_gpus_free(ray) -> float:
    return ray.available_resources().get("fake_gpu", 0.0)


@pytest.mark.slow
def test_three_jobs_two_at_a_time_equal_the_local_engines_avatars(cluster, tmp_path):
    specs = [dict(TINY, prompt=f"a dancer number {seed}", seed=seed, steps=4) for seed in (0, 1, 2)]
    running_together, queued_seen = 0, False
    with ray_server(tmp_path / "jobs") as client:
        ids = [client.post("/jobs", json=spec, headers=AUTH).json()["id"] for spec in specs]
        deadline = time.time() + 600
        while time.time() < deadline:
            states = [client.get(f"/jobs/{job_id}", headers=AUTH).json() for job_id in ids]
            statuses = [s["status"] for s in states]
            running_together = max(running_together, statuses.count("running"))
            queued_seen |= (
                any(s["status"] == "queued" and s["queue_position"] == 1 for s in states) and "running" in statuses
            )
            if all(s in ("done", "failed", "cancelled") for s in statuses):
                break
            time.sleep(0.1)
        assert statuses == ["done"] * 3, states
        assert running_together == 2, "two fake GPUs: two jobs at once, never three"
        assert queued_seen, "the third waited in the queue (position 1) while two ran"
        nodes = {s["node_id"] for s in states}
        events = client.get(f"/jobs/{ids[0]}/events", headers=AUTH).json()
        assert stage2_steps(events) == [1, 2, 3, 4], "progress reached the server while the job ran"
        assert client.get(f"/jobs/{ids[0]}/preview", headers=AUTH).status_code == 200
        ray_files = [client.get(f"/jobs/{job_id}/result", headers=AUTH).content for job_id in ids]
        health = client.get("/health").json()["worker"]
    assert health["engine"] == "ray" and health["alive"]
    assert len(nodes) == 2, "the jobs ran on both worker nodes"
    for path, data in zip(("a", "b", "c"), ray_files):
        (tmp_path / f"{path}.h3ga").write_bytes(data)
    ray_avatars = [read_h3ga(tmp_path / f"{p}.h3ga") for p in ("a", "b", "c")]
    for ray_avatar, local_avatar in zip(ray_avatars, local_avatars(tmp_path, specs)):
        assert_same_avatar(ray_avatar, local_avatar)
    assert not np.array_equal(ray_avatars[0]["free/colors"], ray_avatars[1]["free/colors"]), "seeds differ"


@pytest.mark.slow
def test_cancel_stops_the_ray_task_and_leaves_the_job_cancelled(cluster, tmp_path):
    import ray

    with ray_server(tmp_path / "jobs") as client:
        long = [
            client.post("/jobs", json=dict(TINY, prompt=f"a long job {i}", steps=500), headers=AUTH).json()["id"]
            for i in range(3)
        ]
        running, waiting = long[:2], long[2]
        deadline = time.time() + 300
        while time.time() < deadline and not all(
            len(stage2_steps(client.get(f"/jobs/{job_id}/events", headers=AUTH).json())) >= 2 for job_id in running
        ):
            time.sleep(0.1)
        assert [client.get(f"/jobs/{j}", headers=AUTH).json()["status"] for j in long] == [
            "running",
            "running",
            "queued",
        ]
        assert client.post(f"/jobs/{waiting}/cancel", headers=AUTH).json()["status"] == "cancelled", "queued: at once"
        assert fake_gpus_free(ray) == 0
        for job_id in running:
            client.post(f"/jobs/{job_id}/cancel", headers=AUTH)
        for job_id in running:
            state = wait_for(client, job_id, ("cancelled", "done", "failed"), timeout=60)
            assert state["status"] == "cancelled" and state["error"]["code"] == "cancelled", state
        deadline = time.time() + 30
        while time.time() < deadline and fake_gpus_free(ray) < 2:
            time.sleep(0.1)
        assert fake_gpus_free(ray) == 2, "the tasks gave their fake GPUs back: they no longer run"
        sizes = [(tmp_path / "jobs" / job_id / "events.jsonl").stat().st_size for job_id in running]
        time.sleep(2)
        assert [(tmp_path / "jobs" / j / "events.jsonl").stat().st_size for j in running] == sizes, "no progress after"
        assert not (tmp_path / "jobs" / waiting / "attempt.json").exists(), "the cancelled queued job never started"
        assert client.get(f"/jobs/{waiting}", headers=AUTH).json()["status"] == "cancelled"
        for job_id in running:
            assert client.get(f"/jobs/{job_id}/result", headers=AUTH).status_code == 409
            assert stage2_steps(client.get(f"/jobs/{job_id}/events", headers=AUTH).json())[-1] < 500


@pytest.mark.slow
def test_a_restarted_ray_server_resumes_its_jobs_from_their_checkpoints(cluster, tmp_path):
    spec = dict(TINY, prompt="a restart", seed=4, steps=16)
    jobs = tmp_path / "jobs"
    with ray_server(jobs) as client:
        job_id = client.post("/jobs", json=spec, headers=AUTH).json()["id"]
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and max(stage2_steps(client.get(f"/jobs/{job_id}/events", headers=AUTH).json()) or [0]) < 5
        ):
            time.sleep(0.05)
    # The server stopped mid-job (its tasks with it); a new one on the same storage picks the job up.
    assert json.loads((jobs / job_id / "state.json").read_text())["status"] == "running"
    with ray_server(jobs) as client:
        state = wait_for(client, job_id, ("done", "failed", "cancelled"), timeout=300)
        events = client.get(f"/jobs/{job_id}/events", headers=AUTH).json()
    assert state["status"] == "done" and state["attempt"] == 2, state
    resumed = next(i for i, e in enumerate(events) if "Resumed from step" in (e.get("message") or ""))
    step = int(events[resumed]["message"].split("step ")[1].rstrip("."))
    assert step >= 4 and stage2_steps(events[resumed:])[0] == step + 1 and stage2_steps(events)[-1] == 16


@pytest.mark.slow
def test_batch_runs_its_jobs_on_the_ray_engine(cluster, tmp_path):
    from dreamwaltz.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a knight in armor\na dancer\n")
    out = tmp_path / "out"
    args = [
        "batch",
        str(prompts),
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--stage1-steps",
        "0",
        "--seeds",
        "5",
        "--view-size",
        "32",
        "--engine",
        "ray",
        "--ray-address",
        cluster.address,
        "--gpu-resource",
        "fake_gpu",
        "--storage",
        str(tmp_path / "shared" / "jobs"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "batch.json").read_text())
    assert (summary["done"], summary["failed"]) == (2, 0)
    assert summary["previews_rendered"] == 0, "the front/back views were rendered by the jobs, on the workers"
    page = (out / "index.html").read_text()
    for job in summary["jobs"]:
        folder = out / Path(job["avatar"]).parent
        assert folder.resolve().parent == (tmp_path / "shared" / "jobs").resolve(), "the jobs live on --storage"
        assert f'"{Path(job["avatar"]).parent.as_posix()}/front.png"' in page and (folder / "front.png").is_file()
        assert json.loads((folder / "attempt.json").read_text())["attempt"] == 1, "run as a Ray task"
        assert json.loads((folder / "state.json").read_text())["node_id"] in {n.node_id for n in cluster.worker_nodes}
    assert (out / "contact_sheet.png").exists() and (out / "index.html").exists()
    assert main(args) == 0 and json.loads((out / "batch.json").read_text())["skipped"] == 2


@pytest.mark.slow
def test_a_job_whose_node_dies_is_retried_elsewhere_and_resumes_from_its_checkpoint(cluster, tmp_path):
    spec = dict(TINY, prompt="a runner", seed=3, steps=16)  # a checkpoint every 4 steps
    jobs = tmp_path / "jobs"
    with ray_server(jobs) as client:
        job_id = client.post("/jobs", json=spec, headers=AUTH).json()["id"]
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and max(stage2_steps(client.get(f"/jobs/{job_id}/events", headers=AUTH).json()) or [0]) < 5
        ):
            time.sleep(0.05)
        first = json.loads((jobs / job_id / "attempt.json").read_text())
        victim = next(n for n in cluster.worker_nodes if n.node_id == first["node_id"])
        cluster.remove_node(victim, allow_graceful=False)  # the machine is gone mid-job
        try:
            state = wait_for(client, job_id, ("done", "failed", "cancelled"), timeout=600)
            events = client.get(f"/jobs/{job_id}/events", headers=AUTH).json()
        finally:
            cluster.add_node(num_cpus=1, resources={"fake_gpu": 1}, **cluster.small)  # for the tests after this one
        result = client.get(f"/jobs/{job_id}/result", headers=AUTH).content
    assert state["status"] == "done", state
    assert state["attempt"] == 2, "Ray ran it again after the node was lost"
    resumed = next(i for i, e in enumerate(events) if "Resumed from step" in (e.get("message") or ""))
    step = int(events[resumed]["message"].split("step ")[1].rstrip("."))
    assert step >= 4, "the retry started from a checkpoint"
    assert stage2_steps(events[resumed:])[0] == step + 1 and stage2_steps(events)[-1] == 16, (
        "steps did not restart at 0"
    )
    assert "attempt 2" in " ".join(e.get("message") or "" for e in events)
    (tmp_path / "r.h3ga").write_bytes(result)
    assert_same_avatar(read_h3ga(tmp_path / "r.h3ga"), local_avatars(tmp_path, [spec])[0])  # nothing was lost
