"""Issue 8 end to end: Blender's Generate operator against a real local backend (tiny preset),
cancel, and a killed server resuming its job from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from conftest import BACKEND_PYTHON

from dreamwaltz_blender.backend.client import BackendClient

pytestmark = pytest.mark.blender


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_backend(addon, tmp_path):
    import bpy

    from dreamwaltz_blender.backend import local

    prefs = bpy.context.preferences.addons["dreamwaltz_blender"].preferences
    prefs.backend_mode, prefs.python_path = "LOCAL", BACKEND_PYTHON
    prefs.local_port, prefs.cache_dir, prefs.device = free_port(), str(tmp_path / "jobs"), "cpu"
    yield prefs
    local.shutdown()


def pump(bpy, until, timeout=1500.0):
    """Background Blender runs no timers: poll the job the way the timer would."""
    from dreamwaltz_blender import jobs

    settings = bpy.context.scene.dreamwaltz
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        active = jobs.poll_job(bpy.context, jobs.connect(bpy.context))
        seen.append((settings.job_stage, settings.job_step, settings.job_total, settings.job_progress))
        if until(settings) or not active:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state {settings.job_status} {settings.job_stage} {settings.job_step}")


def test_generate_operator_runs_a_real_backend_job_and_imports_the_avatar(local_backend):
    import bpy

    scene = bpy.context.scene
    scene.cursor.location = (2.0, 0.0, 0.0)
    scene.dreamwaltz.prompt = "a knight in armor"
    scene.dreamwaltz.preset = "tiny"
    assert bpy.ops.dreamwaltz.generate() == {"FINISHED"}
    assert scene.dreamwaltz.job_status in ("queued", "running") and scene.dreamwaltz.job_id
    seen = pump(bpy, lambda s: s.job_status in ("done", "failed"))
    assert scene.dreamwaltz.job_status == "done", scene.dreamwaltz.job_error
    steps = [s for stage, s, total, _ in seen if stage == "stage2" and total]
    assert steps and steps == sorted(steps), "progress reached the panel properties in order"
    # The last poll may land after the job moved on to exporting: the step counter must still be full.
    assert (scene.dreamwaltz.job_step, scene.dreamwaltz.job_total) == (40, 40)
    assert scene.dreamwaltz.job_progress == pytest.approx(1.0)
    assert bpy.data.images.get("DreamWaltz Preview") is not None, "the preview render is shown"
    rigs = [o for o in bpy.data.objects if o.get("dreamwaltz_role") == "armature"]
    assert len(rigs) == 1 and rigs[0]["dreamwaltz_prompt"] == "a knight in armor"
    assert abs(rigs[0].data.bones["pelvis"].head_local.x - 2.0) < 0.05, "imported at the 3D cursor"


def test_cancel_stops_the_backend_job_and_leaves_the_scene_unchanged(local_backend):
    import bpy

    scene = bpy.context.scene
    scene.dreamwaltz.prompt = "a dancer"
    scene.dreamwaltz.preset = "tiny"
    before = len(bpy.data.objects)
    assert bpy.ops.dreamwaltz.generate() == {"FINISHED"}
    pump(bpy, lambda s: s.job_stage == "stage2" and s.job_step >= 2)
    assert bpy.ops.dreamwaltz.cancel() == {"FINISHED"}
    pump(bpy, lambda s: s.job_status in ("cancelled", "done", "failed"), timeout=600)
    assert scene.dreamwaltz.job_status == "cancelled"
    assert len(bpy.data.objects) == before


def test_a_killed_server_resumes_its_job_from_the_checkpoint(tmp_path):
    port, token = free_port(), "t0ken"
    env = dict(os.environ, DREAMWALTZ_TOKEN=token, PYTHONUNBUFFERED="1")
    cmd = [BACKEND_PYTHON, "-m", "dreamwaltz", "serve", "--port", str(port), "--jobs-dir", str(tmp_path / "jobs")]

    def start():
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = BackendClient(f"http://127.0.0.1:{port}", token, timeout=10)
        for _ in range(200):
            try:
                client.health()
                return proc, client
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        raise AssertionError("server did not start")

    proc, client = start()
    try:
        job = client.submit({"prompt": "a runner", "preset": "tiny", "device": "cpu"})
        deadline = time.time() + 1200
        while time.time() < deadline:  # wait for a checkpoint (every 10 steps of 40)
            if (tmp_path / "jobs" / job["id"] / "work" / "stage2.pt").exists():
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    state = json.loads((tmp_path / "jobs" / job["id"] / "state.json").read_text())
    assert state["status"] == "running", "killed mid-job"
    proc, client = start()
    try:
        deadline = time.time() + 1500
        while client.status(job["id"])["status"] not in ("done", "failed") and time.time() < deadline:
            time.sleep(0.3)
        assert client.status(job["id"])["status"] == "done"
        events = client.events(job["id"])
        messages = " ".join(e.get("message") or "" for e in events)
        assert "Resuming after a server restart" in messages and "Resumed from step" in messages
        resumed_at = next(
            i
            for i, e in enumerate(events)
            if e.get("stage") == "stage2" and "Resumed from step" in (e.get("message") or "")
        )
        step = int(events[resumed_at]["message"].split("step ")[1].rstrip("."))
        assert step >= 10, "a checkpoint was used"
        after = [e["step"] for e in events[resumed_at:] if e.get("stage") == "stage2" and e.get("total")]
        assert after[0] == step + 1 and after[-1] == 40, "training continued from the checkpoint, not from zero"
        assert client.download_result(job["id"], tmp_path / "a.h3ga").stat().st_size > 0
    finally:
        proc.terminate()
        proc.wait(10)
