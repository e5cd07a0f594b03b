#!/usr/bin/env python3
"""One entry point for people and CI (standard library only).

python build.py setup [--cuda|--cpu]
                                 create .venv and install pinned dependencies (idempotent); the
                                 PyTorch flavour (CPU by default) stays until another flag switches
python build.py test [ARGS]      set up if needed, run the whole test suite (pytest ARGS)
python build.py test --blender 4.2|4.5|5.0|5.3 [ARGS]
                                 the Blender-marked tests (-m blender) on that Blender version
python build.py test --all-blenders [ARGS]
                                 the Blender-marked tests on every supported version, in turn
python build.py demo [ARGS]      set up if needed, run the main job on the embedded defaults
python build.py addon            build and validate dist/dreamwaltz_blender-<version>.zip
python build.py bench [NAME]     run benchmarks (all, or one by name) and print figures
python build.py gpu-wheels DIR   download the wheels the GPU check needs on a bare CUDA machine (docs/GPU.md)
python build.py vendor-web       refresh the web viewer's shipped three.js and Spark (backend/dreamwaltz/viewer/vendor)
                                 from tools/web/node_modules (npm ci there first)
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
import time
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
# `gpu-wheels DIR`: every wheel `python -m dreamwaltz.gpucheck` needs on a bare CUDA machine besides
# what such a machine holds (torch >= 2.4, numpy, transformers, accelerate, safetensors,
# huggingface_hub, tokenizers, regex, requests, filelock, Pillow, packaging, PyYAML, tqdm;
# docs/GPU.md). Pinned in requirements.txt where it pins them; their own dependencies here.
GPU_WHEELS = ["diffusers", "smplx", "gsplat", "pytest"]
GPU_WHEEL_DEPS = [
    "jaxtyping==0.3.11",  # gsplat's
    "wadler-lindig==0.1.8",
    "ninja==1.13.2",  # gsplat compiles its kernels with it
    "rich==15.0.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
    "pygments==2.21.0",
    "importlib-metadata==10.2.0",  # diffusers'
    "zipp==4.1.2",
    "pluggy==1.7.0",  # pytest's
    "iniconfig==2.3.1",
]
GPU_WHEELS_MAX_BYTES = 50 << 20
# Every Blender the add-on claims (the manifest's blender_version_min is the oldest), as the bpy
# wheel tested for it (the latest patch release on PyPI). .venv has the one pinned in
# requirements.txt; each other version gets .venv-blender-<version>. Where the wheel is for .venv's
# Python (3.11: 4.2 to 5.0) that venv holds only the bpy wheel plus a .pth that adds .venv's
# site-packages after its own (one set of every other pinned dependency; the venv's bpy shadows
# .venv's). Blender 5.1 and newer ship bpy for Python 3.13 only: their venv is made by that Python,
# with requirements-blender-py313.txt (what the Blender tests import) and the checkout's backend
# package on its path (the pure-numpy core; torch stays in .venv).
BLENDERS = {"4.2": "4.2.23", "4.5": "4.5.15", "5.0": "5.0.1", "5.3": "5.3.0"}
BLENDER_PYTHON = {"5.3": "3.13"}  # where bpy's wheel needs another Python than .venv's
BLENDER_PY313_REQUIREMENTS = ROOT / "requirements-blender-py313.txt"
DEFAULT_BLENDER = "5.0"


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
    """The stamp's text: the PyTorch flavour first, in words (``cuda`` or ``cpu``, so a later
    command can keep it), then a digest of everything the environment was built from."""
    h = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml", Path(__file__)):
        h.update(path.read_bytes())
    h.update(b"cuda" if cuda else b"cpu")
    h.update(sys.version.encode())
    return f"{'cuda' if cuda else 'cpu'} {h.hexdigest()}"


def installed_flavour() -> bool | None:
    """Whether .venv was set up with the CUDA PyTorch (True), the CPU one (False), or neither is
    known (None: no stamp and no torch). The stamp says so; a stamp from before it did is read
    from the installed torch's version (``+cpu`` is the CPU wheel)."""
    if STAMP.exists():
        word = STAMP.read_text().split(" ", 1)[0]
        if word in ("cuda", "cpu"):
            return word == "cuda"
    found = sorted(VENV.glob("lib*/python*/site-packages/torch-*.dist-info")) + sorted(
        VENV.glob("Lib/site-packages/torch-*.dist-info")
    )
    return None if not found else "+cpu" not in found[-1].name


def cmd_setup(cuda: bool | None = None, force: bool = False) -> Path:
    """Create .venv and install everything; quick no-op when nothing changed. ``cuda`` None (every
    command but an explicit ``setup --cuda``/``--cpu``) keeps the PyTorch flavour .venv has: a
    ``test``, ``bench`` or ``demo`` after ``setup --cuda`` must not put the CPU build back."""
    if sys.version_info[:2] < (3, 10):  # noqa: UP036 (build.py runs under any python3)
        sys.exit("Python 3.10 or newer is needed (3.11 recommended, as in CI).")
    if cuda is None:
        cuda = bool(installed_flavour())
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
    if cuda:  # gsplat compiles its CUDA kernels on first use: here (doctor checks them), not mid-run
        log("building gsplat's CUDA kernels (minutes, once) and checking the set-up")
        run([py, "-m", "dreamwaltz", "doctor"])
    STAMP.write_text(fingerprint)
    log(f"environment ready ({'CUDA' if cuda else 'CPU'} PyTorch): {py}")
    return py


def cmd_gpu_wheels(dest: Path) -> int:
    """Download the GPU check's wheels into ``dest`` (any Python with pip; nothing is installed):
    the pinned versions, binary wheels only, no dependencies resolved (torch and the rest come
    from the CUDA machine), plus a wheel of this project."""
    text = REQUIREMENTS.read_text(encoding="utf-8")
    pins = []
    for name in GPU_WHEELS:
        match = re.search(rf"(?mi)^{re.escape(name)}==(\S+)", text)
        if match is None:
            sys.exit(f"requirements.txt pins no version of {name}: add `{name}==...` there")
        pins.append(f"{name}=={match.group(1)}")
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(pip + ["download", "-q", "--no-deps", "--only-binary=:all:", "-d", dest, *pins, *GPU_WHEEL_DEPS])
    run(pip + ["wheel", "-q", "--no-deps", "-w", dest, ROOT])
    wheels = sorted(dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        log(f"{wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    log(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB in {dest}")
    if total > GPU_WHEELS_MAX_BYTES:
        sys.exit(f"{dest} holds {total / 2**20:.1f} MiB of wheels, over the {GPU_WHEELS_MAX_BYTES >> 20} MiB limit")
    return 0


def pinned_bpy() -> str:
    match = re.search(r"(?m)^bpy==(\S+)", REQUIREMENTS.read_text(encoding="utf-8"))
    return match.group(1)


def purelib(py: Path) -> str:
    return subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def blender_venv(blender: str) -> Path:
    return ROOT / f".venv-blender-{blender}"


def find_python(version: str) -> Path:
    """An interpreter for Python `version` (e.g. "3.13"): on PATH, or one pyenv installed."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"), reverse=True)
    candidates += [Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        found = subprocess.run(
            [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if found.returncode == 0 and found.stdout.strip() == version:
            return Path(candidate)
    sys.exit(f"Blender's bpy for this version needs Python {version}, which was not found: install python{version}.")


def cmd_setup_blender(blender: str) -> Path:
    """The Python environment whose bpy is Blender `blender` (4.2, 4.5, 5.0, 5.3); made on first use."""
    base = cmd_setup()
    wheel = BLENDERS[blender]
    if wheel == pinned_bpy():
        return base
    venv = blender_venv(blender)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = venv / ".dreamwaltz-setup"
    other_python = BLENDER_PYTHON.get(blender)
    if other_python:
        fingerprint = (
            f"bpy=={wheel} on Python {other_python} with "
            + hashlib.sha256(BLENDER_PY313_REQUIREMENTS.read_bytes()).hexdigest()
        )
    else:
        fingerprint = f"bpy=={wheel} on {STAMP.read_text()}"
    if py.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return py
    if venv.exists():
        shutil.rmtree(venv)
    if other_python:
        log(f"creating {venv} (bpy=={wheel} on Python {other_python})")
        run([find_python(other_python), "-m", "venv", venv])
        (venv / ".gitignore").write_text("*\n", encoding="utf-8")
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        run(pip + [f"bpy=={wheel}", "-r", BLENDER_PY313_REQUIREMENTS])
        # The checkout's backend package (its pure-numpy core imports without torch), as an
        # editable install would put it, without installing the backend's dependencies.
        (Path(purelib(py)) / "dreamwaltz_checkout.pth").write_text(str(ROOT / "backend") + "\n", encoding="utf-8")
    else:
        log(f"creating {venv} (bpy=={wheel}; everything else from {VENV})")
        run([base, "-m", "venv", "--without-pip", venv])
        (venv / ".gitignore").write_text("*\n", encoding="utf-8")  # as Python 3.13's venv does
        site = Path(purelib(py))
        site.mkdir(parents=True, exist_ok=True)
        # .venv's pip installs the one wheel into the new venv's site-packages; bpy's own
        # dependencies (numpy, requests, zstandard, cython) are .venv's pinned ones.
        run(
            [base, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps"]
            + ["--target", site, f"bpy=={wheel}"]
        )
        # addsitedir, not a plain path line: it also runs .venv's own .pth files (the editable
        # dreamwaltz install) and appends, so this venv's bpy comes first on sys.path.
        (site / "dreamwaltz_base_env.pth").write_text(
            f"import site; site.addsitedir({purelib(base)!r})\n", encoding="utf-8"
        )
    found = subprocess.run(
        [str(py), "-c", "import bpy; print(bpy.app.version_string)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=venv,
    ).stdout.strip()
    if not found.startswith(wheel.rsplit(".", 1)[0]):
        sys.exit(f"{venv} imports Blender {found}, not {wheel}")
    stamp.write_text(fingerprint)
    log(f"environment ready: {py} (Blender {found})")
    return py


def run_blender_tests(blender: str, pytest_args: list[str]) -> tuple[int, float]:
    py = cmd_setup_blender(blender)
    # Tests whose reference is the backend's own render (torch) ask .venv's Python for it where
    # Blender's Python is another one (tests/backend_reference.py).
    env = dict(os.environ, PYTHONUNBUFFERED="1", DREAMWALTZ_BACKEND_PYTHON=str(venv_python()))
    log(f"Blender {blender}: pytest -m blender {' '.join(pytest_args)}")
    start = time.monotonic()
    code = subprocess.call([str(py), "-m", "pytest", "-m", "blender", *pytest_args], cwd=ROOT, env=env)
    return code, time.monotonic() - start


WEB = ROOT / "tools" / "web"


def setup_web() -> None:
    """The pinned JavaScript in tools/web (the Khronos glTF validator for the export tests; the web
    viewer's three.js and Spark, which `vendor-web` copies into the package), when npm is here;
    without it the validator tests skip and say why (the viewer uses its shipped copy)."""
    npm = shutil.which("npm")
    if npm is None:
        log("npm not found: the glTF validator tests will skip (apt-get install nodejs npm)")
        return
    digest = hashlib.sha256((WEB / "package-lock.json").read_bytes()).hexdigest()
    stamp = WEB / "node_modules" / ".dreamwaltz-lock"
    if stamp.exists() and stamp.read_text() == digest:
        return
    try:
        run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB)
    except subprocess.CalledProcessError:
        log("npm ci in tools/web failed: the glTF validator tests will skip")
        return
    stamp.write_text(digest)


# The built files the web viewer imports (viewer.js, Spark and three's addons), shipped with the
# backend package so that `dreamwaltz view` needs no npm: package -> the files under it.
WEB_VENDOR = {
    "three": [
        "LICENSE",
        "build/three.module.js",
        "build/three.core.js",
        "examples/jsm/controls/OrbitControls.js",
        "examples/jsm/loaders/GLTFLoader.js",
        "examples/jsm/postprocessing/Pass.js",
        "examples/jsm/utils/BufferGeometryUtils.js",
        "examples/jsm/utils/SkeletonUtils.js",
    ],
    "@sparkjsdev/spark": ["LICENSE", "dist/spark.module.js"],
}
VIEWER_VENDOR = ROOT / "backend" / "dreamwaltz" / "viewer" / "vendor"


def cmd_vendor_web() -> int:
    """Copy WEB_VENDOR from tools/web/node_modules (the versions package-lock.json pins) into the
    backend's viewer/vendor/<name>/, and write VERSIONS.md there."""
    import json

    modules = WEB / "node_modules"
    lines = [
        "# The web viewer's vendored JavaScript",
        "",
        "Refreshed by `python build.py vendor-web` from tools/web/node_modules (pinned by",
        "tools/web/package-lock.json): only the built files the viewer imports, each package's LICENSE",
        "beside them. No source maps.",
        "",
    ]
    for package, files in WEB_VENDOR.items():
        meta = json.loads((modules / package / "package.json").read_text())
        dest = VIEWER_VENDOR / package.split("/")[-1]
        shutil.rmtree(dest, ignore_errors=True)
        for name in files:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(modules / package / name, dest / name)
        lines.append(
            f"- `{dest.name}/`: {package} {meta['version']} ({meta['license']} licence, `{dest.name}/LICENSE`)"
        )
        log(f"vendored {package} {meta['version']} into {dest.relative_to(ROOT)}")
    (VIEWER_VENDOR / "VERSIONS.md").write_text("\n".join(lines) + "\n")
    return 0


def cmd_test(pytest_args: list[str]) -> int:
    blenders: list[str] = []
    rest: list[str] = []
    args = iter(pytest_args)
    for arg in args:
        if arg == "--all-blenders":
            blenders = list(BLENDERS)
        elif arg == "--blender" or arg.startswith("--blender="):
            value = arg.split("=", 1)[1] if "=" in arg else next(args, "")
            if value not in BLENDERS:
                sys.exit(f"--blender takes one of {', '.join(BLENDERS)} (got {value!r})")
            blenders.append(value)
        else:
            rest.append(arg)
    if not blenders:  # the whole suite on the pinned Blender, as CI has always run it
        py = cmd_setup()
        setup_web()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        lint = run_lint(py)  # style and layers first; the suite runs either way
        code = subprocess.call([str(py), "-m", "pytest", *rest], cwd=ROOT, env=env)
        return code or lint
    results = [(b, *run_blender_tests(b, rest)) for b in dict.fromkeys(blenders)]
    for blender, code, seconds in results:
        log(
            f"Blender {blender} (bpy {BLENDERS[blender]}): {'passed' if code == 0 else f'FAILED (exit {code})'}"
            f" in {seconds:.0f} s"
        )
    return next((code for _, code, _ in results if code != 0), 0)


def run_lint(py: Path) -> int:
    """ruff (lint and format) and import-linter's layer contracts (pyproject.toml); 0 when all pass."""
    bindir = py.parent
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # the add-on package, beside the editable backend
    checks = {
        "ruff check": [py, "-m", "ruff", "check", "--no-cache", "."],
        "ruff format --check": [py, "-m", "ruff", "format", "--check", "--no-cache", "."],
        "lint-imports": [bindir / ("lint-imports.exe" if os.name == "nt" else "lint-imports"), "--no-cache"],
    }
    failed = []
    for name, check in checks.items():
        log("$ " + " ".join(str(c) for c in check))
        if subprocess.call([str(c) for c in check], cwd=ROOT, env=env) != 0:
            failed.append(name)
    if failed:
        log("lint FAILED: " + ", ".join(failed))
    return 1 if failed else 0


def cmd_demo(demo_args: list[str]) -> int:
    py = cmd_setup(cuda=True if "--cuda" in demo_args else None)
    demo_args = [a for a in demo_args if a != "--cuda"]
    return subprocess.call([str(py), "-m", "dreamwaltz.demo", *demo_args], cwd=ROOT)


def cmd_bench(names: list[str]) -> int:
    """Benchmarks in .venv; `--blender V` runs them in that Blender's environment (bench blender)."""
    blender = None
    if "--blender" in names:
        i = names.index("--blender")
        blender = names[i + 1] if i + 1 < len(names) else ""
        if blender not in BLENDERS:
            sys.exit(f"--blender takes one of {', '.join(BLENDERS)} (got {blender!r})")
        names = names[:i] + names[i + 2 :]
    py = cmd_setup_blender(blender) if blender else cmd_setup()
    env = dict(os.environ, DREAMWALTZ_BACKEND_PYTHON=str(venv_python()))
    return subprocess.call([str(py), "-m", "dreamwaltz.bench", *names], cwd=ROOT, env=env)


def blender_ext_cli(py: Path) -> Path:
    """Blender's own extension builder/validator, shipped inside the bpy wheel."""
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
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
    shutil.copytree(
        ROOT / "backend/dreamwaltz/core", staging / "core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
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
    parser.add_argument("command", choices=["setup", "test", "demo", "addon", "bench", "gpu-wheels", "vendor-web"])
    args, rest = parser.parse_known_args(argv)
    if args.command == "setup":
        cuda = True if "--cuda" in rest else False if "--cpu" in rest else None
        cmd_setup(cuda=cuda, force="--force" in rest)
        return 0
    if args.command == "test":
        return cmd_test(rest)
    if args.command == "demo":
        return cmd_demo(rest)
    if args.command == "addon":
        cmd_addon()
        return 0
    if args.command == "vendor-web":
        return cmd_vendor_web()
    if args.command == "gpu-wheels":
        if len(rest) != 1:
            sys.exit("usage: python build.py gpu-wheels DIR (the folder to download the GPU check's wheels into)")
        return cmd_gpu_wheels(Path(rest[0]))
    return cmd_bench(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
