#!/usr/bin/env python3
"""One entry point for people and CI (standard library only).

    python build.py setup [--cuda]   create .venv and install pinned dependencies (idempotent)
    python build.py test [ARGS]      set up if needed, run the whole test suite (pytest ARGS)
    python build.py demo [ARGS]      set up if needed, run the main job on the embedded defaults
    python build.py addon            build and validate dist/dreamwaltz_blender-<version>.zip
    python build.py bench [NAME]     run benchmarks (all, or one by name) and print figures
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
# The CPU build is what CI and the tiny preset need; PyPI's plain torch wheel on Linux is a
# multi-GB CUDA build, which is what GPU users want (--cuda).
TORCH_CPU = ["torch==2.13.0+cpu"]
TORCH_CUDA = ["torch==2.13.0"]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAMP = VENV / ".dreamwaltz-setup"


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def version() -> str:
    text = (ROOT / "backend/dreamwaltz/core/version.py").read_text(encoding="utf-8")
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def run(cmd, **kw) -> None:
    cmd = [str(c) for c in cmd]
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def setup_fingerprint(cuda: bool) -> str:
    h = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml", Path(__file__)):
        h.update(path.read_bytes())
    h.update(b"cuda" if cuda else b"cpu")
    h.update(sys.version.encode())
    return h.hexdigest()


def cmd_setup(cuda: bool = False, force: bool = False) -> Path:
    """Create .venv and install everything; quick no-op when nothing changed."""
    if sys.version_info[:2] < (3, 10):
        sys.exit("Python 3.10 or newer is needed (3.11 recommended, as in CI).")
    fingerprint = setup_fingerprint(cuda)
    if not force and venv_python().exists() and STAMP.exists() and STAMP.read_text() == fingerprint:
        return venv_python()
    if not venv_python().exists():
        log(f"creating {VENV}")
        run([sys.executable, "-m", "venv", VENV])
    py = venv_python()
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # torch first and pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build.
    if cuda:
        run(pip + TORCH_CUDA)
    else:
        try:
            run(pip + TORCH_CPU)
        except subprocess.CalledProcessError:
            run(pip + ["--extra-index-url", TORCH_CPU_INDEX] + TORCH_CPU)
    run(pip + ["-r", REQUIREMENTS])
    run(pip + ["--no-deps", "-e", ROOT])
    STAMP.write_text(fingerprint)
    log("environment ready: " + str(py))
    return py


def cmd_test(pytest_args: list[str]) -> int:
    py = cmd_setup()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.call([str(py), "-m", "pytest", *pytest_args], cwd=ROOT, env=env)


def cmd_demo(demo_args: list[str]) -> int:
    py = cmd_setup(cuda="--cuda" in demo_args)
    demo_args = [a for a in demo_args if a != "--cuda"]
    return subprocess.call([str(py), "-m", "dreamwaltz.demo", *demo_args], cwd=ROOT)


def cmd_bench(names: list[str]) -> int:
    py = cmd_setup()
    return subprocess.call([str(py), "-m", "dreamwaltz.bench", *names], cwd=ROOT)


def blender_ext_cli(py: Path) -> Path:
    """Blender's own extension builder/validator, shipped inside the bpy wheel."""
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    matches = sorted(Path(purelib).glob("bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not matches:
        sys.exit(f"Blender's extension tool was not found under {purelib}/bpy; run `python build.py setup`.")
    return matches[-1]


def stage_addon(py: Path, staging: Path) -> None:
    """Lay out the extension's source: add-on + manifest + shared core + the backend wheel."""
    ver = version()
    shutil.copytree(ROOT / "dreamwaltz_blender", staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    manifest = (ROOT / "addon_manifest/blender_manifest.toml").read_text(encoding="utf-8")
    manifest = re.sub(r'(?m)^version = ".*"$', f'version = "{ver}"', manifest)
    (staging / "blender_manifest.toml").write_text(manifest, encoding="utf-8")
    # The pure-numpy core (.h3ga format, skinning, motion) has one definition, in the backend;
    # the extension carries a copy so Blender's Python never needs the backend installed.
    shutil.copytree(ROOT / "backend/dreamwaltz/core", staging / "core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The bundled backend: a wheel data file, installed on demand by "Install backend".
    wheel_dir = staging / "backend_wheel"
    wheel_dir.mkdir()
    run([py, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheel_dir, ROOT])


def cmd_addon() -> Path:
    py = cmd_setup()
    ext = blender_ext_cli(py)
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    zip_path = dist / f"dreamwaltz_blender-{version()}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "dreamwaltz_blender"
        stage_addon(py, staging)
        if zip_path.exists():
            zip_path.unlink()
        run([py, ext, "build", "--source-dir", staging, "--output-filepath", zip_path])
    run([py, ext, "validate", zip_path])
    log(f"extension: {zip_path}")
    return zip_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["setup", "test", "demo", "addon", "bench"])
    args, rest = parser.parse_known_args(argv)
    if args.command == "setup":
        cmd_setup(cuda="--cuda" in rest, force="--force" in rest)
        return 0
    if args.command == "test":
        return cmd_test(rest)
    if args.command == "demo":
        return cmd_demo(rest)
    if args.command == "addon":
        cmd_addon()
        return 0
    return cmd_bench(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
