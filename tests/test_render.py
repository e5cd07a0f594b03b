"""Issues 6 and 14: the rasterizer facade.

The pure-torch rasterizer is checked against a brute-force definition, against gsplat's own
reference torch projection (gsplat is only an oracle here, never imported by the rasterizer), by
gradcheck, and on a GPU against gsplat's kernels. The fallback when gsplat's kernels cannot load
is checked with DREAMWALTZ_DISABLE_GSPLAT.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.core.camera import orbit_camera
from dreamwaltz.render import gsplat_backend, rasterize
from dreamwaltz.render.rasterizer import project

ROOT = Path(__file__).resolve().parents[1]


def scene(n=40, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.6
    A = torch.randn(n, 3, 3, generator=g, dtype=dtype) * 0.04
    cov = A @ A.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=dtype)
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, cov, opac, colors


def brute_force(means, cov, opac, colors, camera, bg):
    """Every Gaussian at every pixel, sorted by depth: the definition, with no tiling."""
    radii, m2d, depths, conics, _ = project(means, cov, camera)
    order = torch.argsort(depths)
    H, W = camera.height, camera.width
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=means.dtype) + 0.5, torch.arange(W, dtype=means.dtype) + 0.5, indexing="ij"
    )
    T = torch.ones(H, W, dtype=means.dtype)
    img = torch.zeros(H, W, 3, dtype=means.dtype)
    for i in order:
        if (radii[i] <= 0).any():
            continue
        dx, dy = xs - m2d[i, 0], ys - m2d[i, 1]
        a, b, c = conics[i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(opac[i] * torch.exp(-sigma), max=0.99)
        alpha = torch.where((sigma >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
        img = img + (alpha * T)[..., None] * colors[i]
        T = T * (1 - alpha)
    return img + T[..., None] * bg


def test_cpu_rasterizer_matches_the_brute_force_definition():
    camera = orbit_camera(20, 80, 1.5, (0, 0, 0), 50, 40, 36)
    means, cov, opac, colors = scene()
    bg = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    out = rasterize(means, cov, opac, colors, camera, bg, backend="torch")
    ref = brute_force(means, cov, opac, colors, camera, bg)
    assert out.image.shape == (36, 40, 3)
    assert torch.abs(out.image - ref).max() < 1e-3, "gaussians overlapping the tile borders by their 3-sigma box"


def test_gradients_are_correct():
    camera = orbit_camera(0, 90, 1.2, (0, 0, 0), 50, 12, 12)
    means, cov, opac, colors = scene(n=4, seed=3)
    means.requires_grad_(True)
    colors.requires_grad_(True)
    opac.requires_grad_(True)
    f = lambda m, o, c: rasterize(m, cov, o, c, camera, torch.zeros(3, dtype=torch.float64), backend="cpu").image.sum()
    assert torch.autograd.gradcheck(f, (means, opac, colors), eps=1e-6, atol=1e-4)


@pytest.mark.gpu
def test_cpu_rasterizer_matches_gsplat_on_a_gpu():
    camera = orbit_camera(20, 80, 1.5, (0, 0, 0), 50, 64, 64)
    means, cov, opac, colors = (t.float().cuda() for t in scene(n=300))
    bg = torch.tensor([0.5, 0.5, 0.5]).cuda()
    gpu = rasterize(means, cov, opac, colors, camera, bg, backend="gsplat").image.cpu()
    cpu = rasterize(means.cpu(), cov.cpu(), opac.cpu(), colors.cpu(), camera, bg.cpu(), backend="cpu").image
    assert torch.abs(gpu - cpu).max() < 1e-3


def gsplat_projection(means, cov, camera, eps2d=0.3):
    """gsplat 1.5's reference torch projection (the oracle)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection

    viewmat = torch.as_tensor(camera.viewmat, dtype=means.dtype)
    K = torch.as_tensor(camera.K, dtype=means.dtype)
    radii, m2d, depths, conics, _ = _fully_fused_projection(
        means, cov, viewmat[None], K[None], camera.width, camera.height, eps2d=eps2d
    )
    return radii[0], m2d[0], depths[0], conics[0]


def dense_composite(radii, m2d, depths, conics, opac, colors, width, height, bg):
    """Every pixel against every on-screen Gaussian at once, sorted by depth: the compositing rule
    written out densely (no tiles, no per-tile culling), fed with gsplat's projection."""
    on = (radii > 0).all(dim=1)
    order = torch.argsort(torch.where(on, depths, torch.full_like(depths, float("inf"))))[: int(on.sum())]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=m2d.dtype) + 0.5, torch.arange(width, dtype=m2d.dtype) + 0.5, indexing="ij"
    )
    dx = xs[None] - m2d[order, 0, None, None]  # (n,H,W)
    dy = ys[None] - m2d[order, 1, None, None]
    a, b, c = (conics[order, k, None, None] for k in range(3))
    sigma = 0.5 * (a * dx**2 + c * dy**2) + b * dx * dy
    alpha = torch.clamp(opac[order, None, None] * torch.exp(-sigma), max=0.99)
    alpha = torch.where((sigma >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
    T = torch.cumprod(1 - alpha, dim=0)
    T_before = torch.cat([torch.ones_like(T[:1]), T[:-1]], dim=0)
    img = torch.einsum("nhw,nc->hwc", alpha * T_before, colors[order])
    return img + T[-1][..., None] * bg, (1 - T[-1])[..., None]


@pytest.mark.parametrize(
    "seed,spread,az,el,size", [(0, 1.0, 20, 80, (40, 36)), (1, 4.0, -70, 95, (64, 48)), (2, 2.5, 180, 60, (33, 57))]
)
def test_projection_matches_gsplats_reference(seed, spread, az, el, size):
    """Means, conics, depths and (integer) radii equal gsplat's reference torch projection,
    including Gaussians culled off screen and behind the camera (spread 4 puts some there)."""
    camera = orbit_camera(az, el, 1.5, (0, 0, 0), 50, *size)
    means, cov, _, _ = scene(n=400, seed=seed)
    means = means * spread
    radii, m2d, depths, conics, _ = project(means, cov, camera)
    g_radii, g_m2d, g_depths, g_conics = gsplat_projection(means, cov, camera)
    assert radii.shape == g_radii.shape == (400, 2) and radii.dtype == g_radii.dtype
    assert torch.equal(radii, g_radii)
    assert 0 < int((radii > 0).all(1).sum()) < 400 or spread == 1.0
    assert torch.allclose(m2d, g_m2d, rtol=0, atol=1e-5)
    assert torch.allclose(depths, g_depths, rtol=0, atol=1e-5)
    assert torch.allclose(conics, g_conics, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_rasterizer_matches_dense_compositing_of_gsplats_projection(dtype):
    """The tiled pure-torch image equals, to 1e-5 per pixel, the dense compositing of gsplat's
    reference projection: projection, tile culling and compositing together."""
    camera = orbit_camera(30, 85, 1.4, (0, 0, 0), 50, 48, 40)
    means, cov, opac, colors = (t.to(dtype) for t in scene(n=200, seed=5))
    bg = torch.tensor([0.2, 0.5, 0.8], dtype=dtype)
    out = rasterize(means, cov, opac, colors, camera, bg, backend="torch")
    ref_img, ref_alpha = dense_composite(*gsplat_projection(means, cov, camera), opac, colors, 48, 40, bg)
    assert out.image.shape == ref_img.shape == (40, 48, 3)
    assert torch.abs(out.image - ref_img).max() < 1e-5
    assert torch.abs(out.alpha - ref_alpha).max() < 1e-5
    assert out.alpha.max() > 0.5  # the scene really covers the picture


def test_auto_on_a_cpu_uses_the_torch_rasterizer_without_a_notice(monkeypatch, caplog):
    monkeypatch.setattr(gsplat_backend, "_notice_given", False)
    assert gsplat_backend.choose_backend("cpu", "auto") == "torch"
    assert gsplat_backend.rasterizer_name("cpu") == "torch"
    assert not [r for r in caplog.records if "gsplat" in r.getMessage()]


def test_disabled_gsplat_falls_back_with_one_notice(monkeypatch, caplog):
    """Kernels made unloadable (DREAMWALTZ_DISABLE_GSPLAT=1): a CUDA run picks the pure-torch
    rasterizer and says so once per process, in plain words with the fix; rendering works."""
    monkeypatch.setenv("DREAMWALTZ_DISABLE_GSPLAT", "1")
    monkeypatch.setattr(gsplat_backend, "_notice_given", False)
    status = gsplat_backend.gsplat_status()
    assert status.usable is False and "DREAMWALTZ_DISABLE_GSPLAT" in status.reason
    with caplog.at_level(logging.WARNING, logger="dreamwaltz.render"):
        for _ in range(3):
            assert gsplat_backend.choose_backend("cuda", "auto") == "torch"
        camera = orbit_camera(0, 90, 1.5, (0, 0, 0), 50, 24, 24)
        means, cov, opac, colors = (t.float() for t in scene(n=30))
        for _ in range(2):
            out = rasterize(means, cov, opac, colors, camera)
            assert torch.isfinite(out.image).all() and out.alpha.max() > 0
    notices = [r.getMessage() for r in caplog.records if r.name == "dreamwaltz.render"]
    assert len(notices) == 1, notices
    assert "pure-torch rasterizer" in notices[0] and "https://docs.gsplat.studio/whl" in notices[0]
    assert "CUDA toolkit" in notices[0]
    with pytest.raises(Exception, match="gsplat cannot render here"):
        gsplat_backend.choose_backend("cuda", "gsplat")


def test_the_torch_rasterizer_imports_nothing_from_gsplat():
    """With gsplat unimportable, the rasterizer module loads, projects and renders."""
    source = (ROOT / "backend" / "dreamwaltz" / "render" / "rasterizer.py").read_text()
    assert not re.search(r"^\s*(import gsplat|from gsplat)", source, re.M)
    code = (
        "import sys; sys.modules['gsplat'] = None\n"
        "import torch\n"
        "from dreamwaltz.core.camera import orbit_camera\n"
        "from dreamwaltz.render import rasterize, gsplat_status\n"
        "from dreamwaltz.render.rasterizer import project\n"
        "cam = orbit_camera(0, 90, 1.5, (0, 0, 0), 50, 20, 20)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "m = (torch.rand(10, 3, generator=g) - 0.5) * 0.5; cov = torch.eye(3).expand(10, 3, 3) * 1e-3\n"
        "project(m, cov, cam)\n"
        "out = rasterize(m, cov, torch.full((10,), 0.8), torch.rand(10, 3, generator=g), cam)\n"
        "assert out.alpha.max() > 0\n"
        "assert not any(k.startswith('gsplat.') for k in sys.modules), [k for k in sys.modules if 'gsplat' in k]\n"
        "print('ok', gsplat_status().usable)\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("DREAMWALTZ_DISABLE_GSPLAT", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok False"


@pytest.mark.gpu
def test_torch_rasterizer_on_cuda_matches_the_cpu():
    """The pure-torch rasterizer runs on CUDA tensors (the fallback when gsplat cannot load)."""
    camera = orbit_camera(20, 80, 1.5, (0, 0, 0), 50, 64, 64)
    means, cov, opac, colors = (t.float() for t in scene(n=300))
    bg = torch.tensor([0.5, 0.5, 0.5])
    gpu = rasterize(means.cuda(), cov.cuda(), opac.cuda(), colors.cuda(), camera, bg.cuda(), backend="torch")
    cpu = rasterize(means, cov, opac, colors, camera, bg, backend="torch")
    assert gpu.image.device.type == "cuda"
    assert torch.abs(gpu.image.cpu() - cpu.image).max() < 1e-4


@pytest.mark.gpu
def test_a_tiny_generation_completes_on_the_torch_rasterizer_when_gsplat_cannot_load(tmp_path):
    """gsplat's kernels made unloadable on a CUDA machine: the job still finishes, with one notice."""
    env = dict(os.environ, DREAMWALTZ_DISABLE_GSPLAT="1")
    out = tmp_path / "k.h3ga"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamwaltz",
            "generate",
            "a knight",
            "--preset",
            "tiny",
            "--device",
            "cuda",
            "--steps",
            "4",
            "--stage1-steps",
            "2",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-3000:]
    notices = [line for line in proc.stderr.splitlines() if "gsplat" in line and "torch" in line.lower()]
    assert len(notices) == 1 and notices[0].startswith("setup: warning: gsplat cannot be used"), proc.stderr[-3000:]
    assert "setup: Rasterizer: DreamWaltz's pure-torch one on CUDA" in proc.stderr


def generate_cli(tmp_path, *flags, timeout=600):
    out = tmp_path / "a.h3ga"
    command = [sys.executable, "-m", "dreamwaltz", "generate", "a knight", "--preset", "tiny", "--out", str(out)]
    return subprocess.run([*command, *flags], capture_output=True, text=True, timeout=timeout), out


def test_rasterizer_gsplat_on_a_cpu_fails_at_once_in_one_line(tmp_path):
    started = time.monotonic()
    proc, out = generate_cli(tmp_path, "--device", "cpu", "--rasterizer", "gsplat", timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and not out.exists()
    assert len(lines) == 1 and lines[0].startswith("error: --rasterizer gsplat needs a CUDA GPU"), proc.stderr
    assert "leave --rasterizer at auto" in lines[0]
    assert not list(tmp_path.rglob("*.pt")), "nothing ran before the refusal"
    assert time.monotonic() - started < 60


def test_a_run_states_its_rasterizer_in_its_log_and_events(tmp_path):
    from dreamwaltz.core.job import GenerateSpec
    from dreamwaltz.pipeline import generate
    from dreamwaltz.progress import ProgressReporter, jsonl_sink

    record = tmp_path / "events.jsonl"
    spec = GenerateSpec(prompt="a knight", preset="tiny", device="cpu", steps=1, stage1_steps=0)
    generate(spec, ProgressReporter([jsonl_sink(record)]), tmp_path / "work")
    events = [json.loads(line) for line in record.read_text().splitlines()]
    stated = [e for e in events if e["message"].startswith("Rasterizer: ")]
    assert len(stated) == 1 and stated[0]["message"] == "Rasterizer: DreamWaltz's pure-torch one (cpu)."
    assert stated[0]["level"] == "info" and events.index(stated[0]) < 2, "stated when the job starts"
    assert not [e for e in events if e["level"] == "warning"], "the CPU rasterizer is no fallback"


@pytest.mark.gpu
def test_rasterizer_gsplat_fails_at_once_when_its_kernels_cannot_load(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWALTZ_DISABLE_GSPLAT", "1")
    proc, out = generate_cli(tmp_path, "--device", "cuda", "--rasterizer", "gsplat", timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and not out.exists()
    assert lines[-1].startswith("error: gsplat cannot render here: turned off by DREAMWALTZ_DISABLE_GSPLAT"), (
        proc.stderr
    )
