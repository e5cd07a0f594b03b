"""Issue 14: ``dreamwaltz doctor`` through the real entry point (``python -m dreamwaltz``)."""

from __future__ import annotations

import json
import os
import sys

from cli_helpers import cli


def doctor(*args, env_extra=None, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("DREAMWALTZ_DISABLE_GSPLAT", None)
    env.update(env_extra or {})
    return cli("doctor", *args, env=env)


def test_doctor_json_reports_the_machine(tmp_path):
    proc = doctor("--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    import gsplat
    import torch

    from dreamwaltz.core.version import __version__

    assert info["dreamwaltz"] == __version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["torch"] == torch.__version__
    assert info["cuda"] is False and info["gpu"] is None and info["gpu_memory_gib"] is None
    assert "cuda_version" in info
    assert info["gsplat"]["version"] == gsplat.__version__
    assert info["gsplat"]["usable"] is False and "no CUDA" in info["gsplat"]["reason"]
    assert info["rasterizer"].startswith("torch")
    # An empty Hugging Face cache: both default weights are reported missing, nothing downloaded.
    assert info["weights"]["sd"]["model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert info["weights"]["controlnet"]["model"] == "lllyasviel/control_v11p_sd15_openpose"
    assert info["weights"]["sd"]["present"] is False and info["weights"]["controlnet"]["present"] is False
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


def test_doctor_finds_configured_folders_and_says_why_gsplat_is_off(tmp_path):
    sd = tmp_path / "my-sd"
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (sd / sub).mkdir(parents=True)
    cn = tmp_path / "my-openpose-controlnet"
    cn.mkdir()
    (cn / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    proc = doctor(
        "--json",
        "--sd-model",
        sd,
        "--controlnet-model",
        cn,
        tmp_path=tmp_path,
        env_extra={"DREAMWALTZ_DISABLE_GSPLAT": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["weights"]["sd"] == {"model": str(sd), "present": True, "path": str(sd), "problem": ""}
    assert info["weights"]["controlnet"]["present"] is True
    assert info["gsplat"]["usable"] is False and "DREAMWALTZ_DISABLE_GSPLAT" in info["gsplat"]["reason"]


def test_doctor_text_output(tmp_path):
    proc = doctor(tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ("dreamwaltz", "python", "torch", "CUDA", "GPU", "gsplat", "rasterizer", "SD weights", "ControlNet"):
        assert any(line.startswith(label) for line in out.splitlines()), (label, out)
    assert "dreamwaltz models download" in out


def test_health_reports_the_same_system_facts(tmp_path, monkeypatch):
    """The add-on's Check Backend reads /health: it carries doctor's torch/CUDA/gsplat/rasterizer."""
    from fastapi.testclient import TestClient

    from dreamwaltz.server.app import create_app

    monkeypatch.setenv("DREAMWALTZ_DISABLE_GSPLAT", "1")
    client = TestClient(create_app(tmp_path / "jobs", "secret", runner=lambda *a, **k: None, start_worker=False))
    info = client.get("/health").json()
    import torch

    assert info["ok"] is True and info["torch"] == torch.__version__
    assert info["cuda"] is torch.cuda.is_available() and info["device_name"]
    assert info["gsplat"]["usable"] is False and "DREAMWALTZ_DISABLE_GSPLAT" in info["gsplat"]["reason"]
    assert info["rasterizer"].startswith("torch")
