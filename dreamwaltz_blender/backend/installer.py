# SPDX-License-Identifier: GPL-3.0-or-later
"""Install the bundled backend into a virtual environment the user chooses (stdlib only, no bpy).

Steps: create a venv from a base Python (Blender's own by default: nothing is written inside
Blender, the venv has its own site-packages), install torch (CUDA or CPU build, or reuse an existing
environment's), install the backend wheel that ships inside the extension, then verify that it
imports (with gsplat, one of its dependencies) and whether CUDA is visible. Every line of output
goes to a log the UI shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TORCH_INDEXES = {
    "cuda": "https://download.pytorch.org/whl/cu128",
    "cpu": "https://download.pytorch.org/whl/cpu",
}
EXTENSION_DIR = Path(__file__).resolve().parents[1]


class InstallError(Exception):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(f"{message} {hint}".strip())
        self.message, self.hint = message, hint


@dataclass
class InstallOptions:
    target: Path  # the folder to create the environment in
    torch: str = "cuda"  # "cuda", "cpu", or "existing" (already importable, e.g. via reuse_site_packages)
    base_python: str | None = None  # default: the Python running this code (Blender's)
    wheel_dir: Path | None = None  # default: the backend wheel bundled in the extension
    offline: bool = False  # install only from wheel_dir (no network at all)
    reuse_site_packages: str | None = None  # an existing environment's site-packages to reuse


@dataclass
class InstallStatus:
    step: str = "idle"
    done: bool = False
    ok: bool = False
    error: str = ""
    log: list = field(default_factory=list)
    python: str = ""
    cuda: bool | None = None


def venv_python(target: Path) -> Path:
    return Path(target) / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def bundled_wheel_dir() -> Path:
    return EXTENSION_DIR / "backend_wheel"


def base_interpreter() -> str:
    """A real interpreter path: inside Blender, sys.executable is the Python binary it bundles."""
    return getattr(sys, "_base_executable", None) or sys.executable


def install(
    options: InstallOptions, status: InstallStatus, say: Callable[[str], None] = lambda line: None
) -> InstallStatus:
    def log(line: str) -> None:
        status.log.append(line)
        say(line)

    def run(step: str, cmd: list) -> str:
        status.step = step
        log(f"== {step}")
        log("$ " + " ".join(str(c) for c in cmd))
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = []
        for line in proc.stdout:
            output.append(line.rstrip())
            log(line.rstrip())
        if proc.wait() != 0:
            raise InstallError(f"'{step}' failed (exit code {proc.returncode}).", "See the log above for the reason.")
        return "\n".join(output)

    try:
        target = Path(options.target).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        wheel_dir = Path(options.wheel_dir or bundled_wheel_dir())
        wheels = sorted(wheel_dir.glob("dreamwaltz-*.whl"))
        if not wheels:
            raise InstallError(
                f"No backend wheel in {wheel_dir}.",
                "Reinstall the extension, or build one with 'python build.py addon'.",
            )
        py = venv_python(target)
        if not py.exists():
            run("Create environment", [options.base_python or base_interpreter(), "-m", "venv", target / "venv"])
        if options.reuse_site_packages:
            purelib = subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            Path(purelib, "dreamwaltz_reuse.pth").write_text(str(options.reuse_site_packages) + "\n")
            log(f"Reusing packages from {options.reuse_site_packages}")
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
        if options.offline:
            pip += ["--no-index", "--find-links", wheel_dir]
        if options.torch in TORCH_INDEXES and not options.offline:
            run(
                f"Install PyTorch ({options.torch.upper()})",
                pip + ["torch", "--index-url", TORCH_INDEXES[options.torch]],
            )
        # With a reused environment its packages are the dependencies; the verify step checks them.
        deps = ["--no-deps"] if options.reuse_site_packages else []
        links = [] if options.offline else ["--find-links", wheel_dir]
        run("Install DreamWaltz backend", pip + links + deps + [wheels[-1]])
        # gsplat is a dependency of the wheel; importing it does not compile its CUDA kernels
        # (``dreamwaltz doctor`` says whether they load; the backend falls back when they don't).
        out = run(
            "Verify",
            [
                py,
                "-c",
                "import json, torch, gsplat, dreamwaltz; print(json.dumps({'version': dreamwaltz.__version__, "
                "'cuda': torch.cuda.is_available(), 'gsplat': gsplat.__version__}))",
            ],
        )
        info = json.loads(out.strip().splitlines()[-1])
        status.python, status.cuda, status.ok = str(py), bool(info["cuda"]), True
        log(
            f"Backend {info['version']} installed (gsplat {info['gsplat']}); "
            f"CUDA {'available' if info['cuda'] else 'NOT available (CPU only)'}."
        )
    except InstallError as err:
        status.error = str(err)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        status.error = f"Installing the backend failed: {err}"
    finally:
        status.step, status.done = ("done" if status.ok else "failed"), True
    return status


def install_in_background(options: InstallOptions) -> tuple[InstallStatus, threading.Thread]:
    status = InstallStatus()
    thread = threading.Thread(target=install, args=(options, status), daemon=True, name="dreamwaltz-install")
    thread.start()
    return status, thread


def current_site_packages() -> str:
    return sysconfig.get_paths()["purelib"]
