"""Issue 22: a queued job's place in the queue, in the job JSON and on the add-on's panel."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from test_server import AUTH, TOKEN, CheckpointingRunner, wait_for

from dreamwaltz.server.app import create_app


def test_queued_jobs_report_their_place_in_the_queue(tmp_path):
    runner = CheckpointingRunner(steps=400, step_s=0.01)
    with TestClient(create_app(tmp_path / "jobs", TOKEN, runner)) as client:
        ids = [client.post("/jobs", json={"prompt": f"job {i}"}, headers=AUTH).json()["id"] for i in range(3)]
        wait_for(client, ids[0], ("running",))
        states = [client.get(f"/jobs/{job_id}", headers=AUTH).json() for job_id in ids]
        assert [s["queue_position"] for s in states] == [None, 1, 2]
        assert [s["queue_position"] for s in client.get("/jobs", headers=AUTH).json()] == [None, 1, 2]
        client.post(f"/jobs/{ids[1]}/cancel", headers=AUTH)
        assert client.get(f"/jobs/{ids[2]}", headers=AUTH).json()["queue_position"] == 1, "moves up"
        for job_id in ids:
            client.post(f"/jobs/{job_id}/cancel", headers=AUTH)


@pytest.mark.blender
def test_the_panel_shows_a_queued_jobs_place(addon, tmp_path):
    import bpy
    import uvicorn

    from dreamwaltz_blender import jobs
    from dreamwaltz_blender.backend.client import BackendClient
    from dreamwaltz_blender.panel import job_bar_text

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(tmp_path / "jobs", TOKEN, CheckpointingRunner(steps=400, step_s=0.01)),
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        client = BackendClient(f"http://127.0.0.1:{port}", TOKEN)
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        first, second = client.submit({"prompt": "first"}), client.submit({"prompt": "second"})
        settings = bpy.context.scene.dreamwaltz
        settings.job_id, settings.job_status = second["id"], "queued"
        assert jobs.poll_job(bpy.context, client) is True
        assert settings.job_queue_position == 1 and job_bar_text(settings) == "queued, position 1"
        client.cancel(first["id"])
        deadline = time.time() + 20
        while settings.job_status != "running" and time.time() < deadline:
            jobs.poll_job(bpy.context, client)
            time.sleep(0.05)
        assert settings.job_queue_position == 0 and not job_bar_text(settings).startswith("queued")
        client.cancel(second["id"])
    finally:
        server.should_exit = True
        thread.join(10)
