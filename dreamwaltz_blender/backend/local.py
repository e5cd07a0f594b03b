# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop a backend on this computer (``python -m dreamwaltz serve``) for the add-on."""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import time
from pathlib import Path

from .client import BackendClient, BackendError


class LocalBackend:
    def __init__(self, python: str, port: int, jobs_dir: str | None = None):
        self.python, self.port, self.jobs_dir = python, port, jobs_dir
        self.token = secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 5.0) -> BackendClient:
        return BackendClient(self.url, self.token, timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, wait_s: float = 60.0) -> None:
        if self.running():
            return
        if not self.python or not Path(self.python).is_file():
            raise BackendError(
                f"No backend Python at {self.python!r}.",
                "Use 'Install Backend' in the DreamWaltz preferences, or set 'Backend Python' to the "
                "interpreter of an environment where the dreamwaltz backend is installed.",
                code="no_backend",
            )
        cmd = [self.python, "-m", "dreamwaltz", "serve", "--port", str(self.port)]
        if self.jobs_dir:
            cmd += ["--jobs-dir", self.jobs_dir]
        # The artist's own backend on their own machine: the SMPL-X file they pick may be anywhere.
        env = dict(os.environ, DREAMWALTZ_TOKEN=self.token, PYTHONUNBUFFERED="1", DREAMWALTZ_BODY_DIRS="*")
        log_dir = Path(self.jobs_dir or Path.home() / ".cache" / "dreamwaltz")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "backend.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise BackendError(
                    f"The local backend exited at start-up (code {self.process.returncode}).",
                    f"Its log ({self.log_path}) ends with:\n{tail}",
                    code="backend_died",
                )
            try:
                self.client(timeout=1.0).health()
                return
            except BackendError:
                time.sleep(0.3)
        self.stop()
        raise BackendError(
            f"The local backend did not answer within {wait_s:.0f} s.",
            f"See its log: {self.log_path}",
            code="unreachable",
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


_instance: LocalBackend | None = None


def get(python: str, port: int, jobs_dir: str | None = None) -> LocalBackend:
    """The add-on's one local backend (restarted if its settings changed)."""
    global _instance
    if _instance and (_instance.python, _instance.port, _instance.jobs_dir) != (python, port, jobs_dir):
        _instance.stop()
        _instance = None
    if _instance is None:
        _instance = LocalBackend(python, port, jobs_dir)
    return _instance


def shutdown() -> None:
    global _instance
    if _instance:
        _instance.stop()
        _instance = None


atexit.register(shutdown)


def run_command(args, python=None, missing_hint: str = "Install Backend in the DreamWaltz preferences."):
    """Run ``dreamwaltz ARGS`` with the local backend's Python (the preferences' Backend Python, or
    ``python``) for work only the backend can do (a clean plate, a contact sheet). Returns the
    finished process; a missing backend is a DreamWaltzError naming ``missing_hint``."""
    import subprocess
    from pathlib import Path

    import bpy

    from .. import preferences
    from ..shared import module

    if python is None:
        prefs = preferences.get(bpy.context)
        python = bpy.path.abspath(prefs.python_path) if prefs is not None and prefs.python_path else None
    if not python or not Path(python).is_file():
        raise module("errors").DreamWaltzError("No local backend to run this with.", missing_hint)
    cmd = [str(python), "-m", "dreamwaltz", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def run_for_file(
    args, out, what: str, python=None, missing_hint: str = "Install Backend in the DreamWaltz preferences."
):
    """``run_command`` for a command that writes the file ``out``: returns its path, or raises a
    DreamWaltzError "The backend could not <what>: <its last line>" when it fails or writes nothing."""
    from pathlib import Path

    from ..shared import module

    done = run_command(args, python, missing_hint)
    if done.returncode != 0 or not Path(out).is_file():
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise module("errors").DreamWaltzError(f"The backend could not {what}: {last[:300]}", "")
    return Path(out)
