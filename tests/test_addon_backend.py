"""Issue 8, the add-on side: install the backend, start it, clear errors when it can't be reached."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from dreamwaltz_blender.backend import installer
from dreamwaltz_blender.backend.client import BackendClient, BackendError

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed_backend(tmp_path_factory) -> installer.InstallStatus:
    """The installer run offline: the backend wheel from a local folder, dependencies reused."""
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    options = installer.InstallOptions(
        target=tmp_path_factory.mktemp("backend-env"),
        torch="existing",
        offline=True,
        wheel_dir=wheels,
        reuse_site_packages=sysconfig.get_paths()["purelib"],
    )
    return installer.install(options, installer.InstallStatus())


def test_install_backend_creates_a_working_environment(installed_backend):
    status = installed_backend
    assert status.ok, status.error + "\n" + "\n".join(status.log[-30:])
    assert status.cuda is False  # this machine has no GPU, and the log says so
    assert any("CPU only" in line for line in status.log)
    where = subprocess.run(
        [status.python, "-c", "import dreamwaltz; print(dreamwaltz.__file__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert str(Path(status.python).parents[1]) in where, f"the backend came from {where}, not the new environment"
    # gsplat comes with the backend, and the new environment's doctor says what it can do.
    doctor = subprocess.run(
        [status.python, "-m", "dreamwaltz", "doctor", "--json"], capture_output=True, text=True, timeout=300
    )
    assert doctor.returncode == 0, doctor.stderr[-2000:]
    import json

    info = json.loads(doctor.stdout)
    assert info["gsplat"]["version"] and info["rasterizer"] and info["torch"]


def test_installer_reports_a_missing_wheel(tmp_path):
    status = installer.install(
        installer.InstallOptions(target=tmp_path / "env", wheel_dir=tmp_path, offline=True), installer.InstallStatus()
    )
    assert not status.ok and status.done and "No backend wheel" in status.error


def test_the_addon_starts_the_installed_backend(addon, installed_backend, tmp_path):
    import bpy

    from dreamwaltz_blender.backend import local

    prefs = bpy.context.preferences.addons["dreamwaltz_blender"].preferences
    prefs.backend_mode, prefs.python_path = "LOCAL", installed_backend.python
    prefs.local_port, prefs.cache_dir = free_port(), str(tmp_path / "jobs")
    try:
        assert bpy.ops.dreamwaltz.check_backend() == {"FINISHED"}
        assert "ready on CPU" in bpy.context.scene.dreamwaltz.backend_status
    finally:
        local.shutdown()


def test_a_missing_backend_python_says_how_to_fix_it(addon):
    import bpy

    prefs = bpy.context.preferences.addons["dreamwaltz_blender"].preferences
    prefs.backend_mode, prefs.python_path = "LOCAL", "/nowhere/python"
    with pytest.raises(RuntimeError, match="Install Backend"):
        bpy.ops.dreamwaltz.check_backend()


def test_an_empty_prompt_is_refused_before_contacting_the_backend(addon):
    import bpy

    bpy.context.scene.dreamwaltz.prompt = "   "
    with pytest.raises(RuntimeError, match="prompt is empty"):
        bpy.ops.dreamwaltz.generate()
    assert bpy.context.scene.dreamwaltz.job_id == ""


def test_a_remote_url_that_does_not_answer_fails_within_seconds():
    silent = socket.socket()  # accepts connections, never answers: the worst kind of backend
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        client = BackendClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "token", timeout=2.0)
        start = time.monotonic()
        with pytest.raises(BackendError) as err:
            client.health(timeout=2.0)
        assert time.monotonic() - start < 10
        assert err.value.code == "unreachable" and "does not answer" in err.value.message
        closed = BackendClient(f"http://127.0.0.1:{free_port()}", "token")
        with pytest.raises(BackendError, match="does not answer"):
            closed.status("job")
    finally:
        silent.close()


def test_remote_backends_are_not_contacted_without_online_access():
    with pytest.raises(BackendError) as err:
        BackendClient("http://gpu-box.example:8765", "token", online_access=False)
    assert err.value.code == "offline" and "online access" in err.value.message.lower()
    BackendClient("http://127.0.0.1:8765", "token", online_access=False)  # localhost is always fine


def test_the_panel_and_preferences_options_reach_the_job_request(addon):
    """What an artist ticks (Densify, GPU memory, precision) is what the backend is asked for."""
    import bpy

    from dreamwaltz.server.app import GenerateRequest
    from dreamwaltz_blender import jobs

    settings = bpy.context.scene.dreamwaltz
    settings.prompt, settings.densify = "a knight", True
    prefs = bpy.context.preferences.addons["dreamwaltz_blender"].preferences
    prefs.cpu_offload, prefs.vae_slicing, prefs.precision = True, True, "bf16"
    spec = jobs.job_spec(bpy.context)
    assert (spec["densify"], spec["cpu_offload"], spec["vae_slicing"], spec["precision"]) == (True, True, True, "bf16")
    request = GenerateRequest(**spec)  # the server accepts exactly what the add-on sends
    assert request.densify and request.cpu_offload and request.vae_slicing and request.precision == "bf16"


def test_the_cli_the_server_and_the_addon_make_the_same_job_from_the_same_settings(addon, tmp_path, monkeypatch):
    """One job schema: the same settings typed in the panel, on the command line or sent to the
    server give the same job; and all three share one default preset."""
    import bpy
    from fastapi.testclient import TestClient

    import dreamwaltz.pipeline as pipeline
    from dreamwaltz.cli import main
    from dreamwaltz.core.job import DEFAULT_PRESET, GenerateSpec
    from dreamwaltz.server.app import create_app
    from dreamwaltz_blender import jobs

    settings = bpy.context.scene.dreamwaltz
    assert settings.bl_rna.properties["preset"].default == DEFAULT_PRESET
    settings.prompt, settings.preset, settings.seed, settings.densify = "  a knight in armor ", "paper", 7, True
    settings.betas = [0.5, -1.0] + [0.0] * (len(settings.betas) - 2)
    prefs = bpy.context.preferences.addons["dreamwaltz_blender"].preferences
    prefs.precision, prefs.cpu_offload, prefs.sds_weighting, prefs.device = "bf16", True, "sds", "cuda"
    from_addon = jobs.job_spec(bpy.context)

    seen = []
    monkeypatch.setattr(pipeline, "generate", lambda spec, reporter, workdir, out=None: seen.append(spec) or out)
    betas = [str(b) for b in from_addon["betas"]]
    assert (
        main(
            [
                "generate",
                "a knight in armor",
                "--preset",
                "paper",
                "--seed",
                "7",
                "--densify",
                "--cpu-offload",
                "--precision",
                "bf16",
                "--sds-weighting",
                "sds",
                "--device",
                "cuda",
                "--betas",
                *betas,
                "--sd-model",
                prefs.sd_model,
                "--controlnet-model",
                prefs.controlnet_model,
                "--out",
                str(tmp_path / "k.h3ga"),
            ]
        )
        == 0
    )
    assert main(["generate", "x", "--out", str(tmp_path / "d.h3ga")]) == 0
    from_cli, cli_default = seen[0].to_dict(), seen[1]

    app = create_app(tmp_path / "jobs", "t", runner=lambda *a, **k: None, start_worker=False)
    with TestClient(app) as client:
        auth = {"Authorization": "Bearer t"}
        first = client.post("/jobs", json=from_addon, headers=auth).json()["id"]
        second = client.post("/jobs", json={"prompt": "x"}, headers=auth).json()["id"]
    from_server, server_default = app.state.store.get(first).spec, app.state.store.get(second).spec

    assert from_addon == from_cli == from_server
    assert from_cli["sds_weighting"] == "sds" and from_cli["prompt"] == "a knight in armor"
    assert server_default["preset"] == cli_default.preset == GenerateSpec(prompt="x").preset == DEFAULT_PRESET
