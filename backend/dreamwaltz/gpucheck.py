"""``python -m dreamwaltz.gpucheck --wheels DIR --out OUT [--cpu-rehearsal]``: the first check of
the backend on a bare CUDA machine, in minutes (docs/GPU.md).

The machine has PyTorch with CUDA (2.4 or newer, whatever it holds: nothing is pinned) and the
packages such machines usually have; nothing can be downloaded. ``python build.py gpu-wheels DIR``
(on any machine with pip) collects the rest; this installs them with no index into a temporary
folder put on ``sys.path``, then, each part timed and its failure recorded rather than fatal:

1. doctor: torch, CUDA, GPU, gsplat's kernels (built here if they are not: the probe compiles);
2. ``pytest -m gpu`` on the checkout's tests;
3. an SDS step with SD-1.5-size random networks in the guidance's precision (bf16 on Ampere+);
4. one stage-1 step and one stage-2 step at the paper preset's resolution and batch;
5. a resume on the device: a stage-2 run cancelled at step k and resumed ends with the
   parameters of an uninterrupted run;
6. a tiny generation end to end on the device (which rasterizer it used, from its own log; the
   rehearsal skips its stage 1, whose body initialisation takes minutes on a CPU);
7. host syncs of a stage-1 training render at two chunk sizes (they must not grow with chunks).

``--cpu-rehearsal`` runs the same script on a CPU at tiny sizes (the tiny preset, the tiny
diffusion models): what CI runs. Writes ``OUT/gpucheck.json`` (its last fields: sds_step_ms,
sds_peak_gib, stage1_step_ms, stage1_peak_gib, stage2_step_ms, stage2_peak_gib, resume_equal,
rasterizer) and ``OUT/gpucheck.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

GIB = 2**30
ROOT = Path(__file__).resolve().parents[2]  # the checkout (tests/ beside backend/)
LAST_FIELDS = (
    "sds_step_ms",
    "sds_peak_gib",
    "stage1_step_ms",
    "stage1_peak_gib",
    "stage2_step_ms",
    "stage2_peak_gib",
    "resume_equal",
    "rasterizer",
)


def install(wheels: Path, target: Path) -> list[str]:
    """The wheels into ``target`` (no index, no dependencies), which goes first on ``sys.path``."""
    found = sorted(str(w) for w in Path(wheels).glob("*.whl"))
    if not found:
        raise SystemExit(f"{wheels} holds no wheels: run `python build.py gpu-wheels {wheels}` on a machine with pip")
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--no-index", "--no-deps", "--target", str(target), *found], check=True)
    sys.path.insert(0, str(target))
    # Subprocesses (pytest) see the same: this checkout's dreamwaltz first, then the wheels.
    here = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([here, str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return [Path(w).name for w in found]


def measured(device: str, fn, repeats: int, own_peak: bool = False) -> tuple[dict, float, float]:
    """``fn(device)``'s result, its seconds (the last of ``repeats`` runs: the first warms caches
    and autotuners up) and the peak GiB of that run (CUDA's allocation peak; 0 on a CPU)."""
    import torch

    from .bench.memory import reset_peak

    info, seconds = {}, 0.0
    for _ in range(repeats):
        if device == "cuda" and not own_peak:
            reset_peak(device)
        info = fn(device)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = info["seconds"]
    peak = torch.cuda.max_memory_allocated() / GIB if device == "cuda" else 0.0
    return info, seconds, peak


def sds_step(device: str, rehearsal: bool, repeats: int) -> dict:
    """An SDS step and its backward to the renders: SD-1.5-size random networks in the guidance's
    precision (``bench guidance``'s), the tiny models in a rehearsal; built once, stepped
    ``repeats`` times, the last timed; the peak counts from the built networks on."""
    import torch

    from .bench.memory import reset_peak, sds_dtype

    if rehearsal:
        from .guidance import build_guidance

        guidance, what = build_guidance("sds", "tiny", device=device), "the tiny models"
    else:
        from .bench.guidance import sd15_guidance

        dtype = sds_dtype(device)
        guidance, what = sd15_guidance(device, dtype), f"SD-1.5-size random weights, {str(dtype)[6:]}"
    size = guidance.resolution
    seconds = 0.0
    for _ in range(repeats):
        reset_peak(device)
        images = torch.rand(1, 3, size, size, device=device, requires_grad=True)
        skeletons = torch.rand(1, 3, size, size, device=device)
        start = time.perf_counter()
        guidance(images, skeletons=skeletons, prompts=["a knight in armor, front view"]).loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {"what": f"SDS step, {what}, {size} px, batch 1", "seconds": seconds}


def stage_step(stage: str, device: str, preset: str) -> dict:
    from .bench import memory
    from .presets import get_preset

    p = get_preset(preset)
    if stage == "stage1":
        return memory.stage1_step(device, preset, p.stage1.batch)
    return memory.stage2_step(device, preset, p.stage2.batch)


def resume_equal(device: str, workdir: Path) -> bool:
    """A short stage-2 run cancelled at step 3 and resumed equals the same run uninterrupted."""
    import torch

    from .body import BodyModel
    from .core.errors import JobCancelled
    from .guidance import build_guidance
    from .progress import ProgressReporter
    from .stage2 import H3GA, Stage2Config, train_stage2

    body = BodyModel.load("open").to(device)
    guidance = build_guidance("sds", "tiny", resolution=32, device=device)
    cfg = Stage2Config(steps=6, resolution=32, batch=1, checkpoint_every=4, preview_every=10**9)

    def run(folder, reporter):
        model = H3GA(body, num_free=300, num_bound=100, seed=0).to(device)
        train_stage2(model, guidance, "a knight", cfg, reporter, workdir / folder, seed=0, device=device)
        return model

    straight = run("straight", ProgressReporter())
    reporter = ProgressReporter()
    reporter.sinks.append(lambda e: reporter.cancel.cancel() if e.stage == "stage2" and e.step == 3 else None)
    try:
        run("resumed", reporter)
        return False  # the cancel did not stop it: nothing was resumed
    except JobCancelled:
        pass
    events = []
    resumed = run("resumed", ProgressReporter([events.append]))
    if not any("Resumed from step 3" in e.message for e in events):
        return False
    return all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))


def tiny_generation(device: str, workdir: Path, stage1_steps: int) -> dict:
    from .core.job import GenerateSpec
    from .pipeline import generate
    from .progress import ProgressReporter

    events = []
    spec = GenerateSpec(prompt="a knight", preset="tiny", device=device, steps=2, stage1_steps=stage1_steps, seed=0)
    start = time.perf_counter()
    path = generate(spec, ProgressReporter([events.append]), workdir)
    stated = [e.message for e in events if e.message.startswith("Rasterizer: ")]
    warnings = [e.message for e in events if e.level == "warning"]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "result": path.name,
        "rasterizer": stated[0] if stated else "",
        "warnings": warnings,
    }


def stage1_host_syncs(device: str) -> dict:
    """Host syncs of one stage-1 training render + backward at two chunk sizes: counted reads of
    device values (any device) and, on CUDA, the synchronising calls CUDA's debug mode reports."""

    from .bench.memory import body_occupancy
    from .body import BodyModel
    from .core.camera import orbit_camera
    from .hostsync import HostSyncCounter, cuda_sync_warnings
    from .presets import stage1_config
    from .stage1 import canonical_body
    from .stage1.body import new_field
    from .stage1.field import render_image

    cfg = stage1_config("tiny")
    cb = canonical_body(BodyModel.load("open"))
    field = new_field(cb, cfg).to(device)
    body_occupancy(field, cb)
    size = 64
    camera = orbit_camera(0.0, 90.0, 2.6, tuple(float(x) for x in cb.joints[0]), 50, size, size)
    out = {}
    for chunk in (size * size, size * size // 16):
        counter, warned = HostSyncCounter(), []
        if device == "cuda":
            with cuda_sync_warnings() as warned, counter:
                render_image(field, camera, cfg.samples, jitter=True, chunk=chunk)[0].mean().backward()
        else:
            with counter:
                render_image(field, camera, cfg.samples, jitter=True, chunk=chunk)[0].mean().backward()
        out[f"chunks_{-(-size * size // chunk)}"] = {"reads": counter.total, "cuda_sync_warnings": len(warned)}
    return out


def pytest_gpu(timeout: int) -> dict:
    tests = ROOT / "tests"
    if not tests.is_dir():
        return {"ran": False, "summary": f"no tests folder at {tests}"}
    files = sorted(str(f) for f in tests.glob("test_*.py") if "mark.gpu" in f.read_text(encoding="utf-8"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ran": True, "ok": False, "summary": f"over the {timeout} s limit"}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return {"ran": True, "ok": proc.returncode == 0, "summary": lines[-1] if lines else proc.stderr[-300:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dreamwaltz.gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="the folder `python build.py gpu-wheels` filled")
    parser.add_argument("--out", type=Path, required=True, help="where gpucheck.json and gpucheck.md go")
    parser.add_argument("--cpu-rehearsal", action="store_true", help="the same script on a CPU at tiny sizes")
    parser.add_argument("--pytest-timeout", type=int, default=240)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": "cpu-rehearsal" if args.cpu_rehearsal else "gpu",
    }
    timings: dict = {}
    errors: dict = {}
    began = time.perf_counter()

    def part(name, fn):
        start = time.perf_counter()
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - a failed part is recorded; the others still run
            errors[name] = f"{type(err).__name__}: {err}"[:500]
            report.setdefault("tracebacks", {})[name] = traceback.format_exc()[-2000:]
            return None
        finally:
            timings[name] = round(time.perf_counter() - start, 1)

    with tempfile.TemporaryDirectory(prefix="dreamwaltz-gpucheck-") as tmp:
        tmp = Path(tmp)
        report["wheels"] = part("install", lambda: install(args.wheels, tmp / "site"))
        import torch

        if not args.cpu_rehearsal and not torch.cuda.is_available():
            raise SystemExit("No CUDA GPU is visible to PyTorch: run with --cpu-rehearsal, or on the GPU machine.")
        device = "cpu" if args.cpu_rehearsal else "cuda"
        preset = "tiny" if args.cpu_rehearsal else "paper"
        report["device"], report["preset"] = device, preset
        from .system_report import system_report

        report["doctor"] = part("doctor", system_report)
        report["pytest_gpu"] = part("pytest_gpu", lambda: pytest_gpu(args.pytest_timeout))
        repeats = 1 if args.cpu_rehearsal else 2
        sds = part("sds", lambda: measured(device, lambda d: sds_step(d, args.cpu_rehearsal, repeats), 1, True))
        stage1 = part("stage1", lambda: measured(device, lambda d: stage_step("stage1", d, preset), repeats))
        stage2 = part("stage2", lambda: measured(device, lambda d: stage_step("stage2", d, preset), repeats))
        resumed = part("resume", lambda: resume_equal(device, tmp / "resume"))
        generation = part(
            "generation", lambda: tiny_generation(device, tmp / "generation", 0 if args.cpu_rehearsal else 2)
        )
        report["host_syncs_stage1_render"] = part("host_syncs", lambda: stage1_host_syncs(device))
    report["generation"] = generation
    for name, result in (("sds", sds), ("stage1", stage1), ("stage2", stage2)):
        report[f"{name}_what"] = result[0]["what"] if result else None
    report["timings_s"], report["errors"] = timings, errors
    report["total_s"] = round(time.perf_counter() - began, 1)
    for name, result in (("sds", sds), ("stage1", stage1), ("stage2", stage2)):
        report[f"{name}_step_ms"] = round(result[1] * 1000, 1) if result else None
        report[f"{name}_peak_gib"] = round(result[2], 2) if result else None
    report["resume_equal"] = resumed
    report["rasterizer"] = (generation or {}).get("rasterizer") or None
    report = {**{k: v for k, v in report.items() if k not in LAST_FIELDS}, **{k: report[k] for k in LAST_FIELDS}}
    (args.out / "gpucheck.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (args.out / "gpucheck.md").write_text(markdown(report), encoding="utf-8")
    print(f"gpucheck: {args.out / 'gpucheck.json'} ({len(errors)} part(s) failed: {', '.join(errors) or 'none'})")
    return 1 if errors or resumed is not True else 0


def markdown(r: dict) -> str:
    d = r.get("doctor") or {}
    rows = [
        ("mode", r["mode"]),
        ("date", r["started"]),
        ("torch / CUDA", f"{d.get('torch')} / {d.get('cuda_version')}"),
        ("GPU", d.get("gpu") or "none"),
        ("gsplat", json.dumps(d.get("gsplat"))),
        ("pytest -m gpu", (r.get("pytest_gpu") or {}).get("summary")),
    ]
    for name in ("sds", "stage1", "stage2"):
        rows.append((r.get(f"{name}_what") or name, f"{r[f'{name}_step_ms']} ms, peak {r[f'{name}_peak_gib']} GiB"))
    rows += [
        ("resume equal", r["resume_equal"]),
        ("tiny generation", json.dumps(r.get("generation"))),
        ("stage-1 render host syncs", json.dumps(r.get("host_syncs_stage1_render"))),
        ("rasterizer", r["rasterizer"]),
        ("seconds per part", json.dumps(r["timings_s"])),
        ("failed parts", json.dumps(r["errors"])),
    ]
    lines = ["# DreamWaltz GPU check", "", "| what | result |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
