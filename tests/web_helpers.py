"""The pinned JavaScript of tools/web in tests: the Khronos glTF Validator (node) and a local
HTTP server for pages that import three.js and friends from tools/web/node_modules (no network)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "tools" / "web"
NODE_MODULES = WEB / "node_modules"


def validator_or_skip() -> list[str]:
    """The command that validates .glb files (tools/web/validate.cjs), or skip the test."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs npm), so the Khronos glTF Validator cannot run")
    if not (NODE_MODULES / "gltf-validator").is_dir():
        pytest.skip("the pinned gltf-validator is not installed: run `npm ci` in tools/web")
    return ["node", str(WEB / "validate.cjs")]


def validate(files) -> list[dict]:
    """The validator's report (JSON) for each file, in order."""
    files = [str(f) for f in files]
    out = subprocess.run(validator_or_skip() + files, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert len(reports) == len(files)
    return reports


def node_modules_or_skip(*packages: str) -> Path:
    """tools/web/node_modules holding ``packages`` (``npm ci`` in tools/web), or skip the test."""
    missing = [p for p in packages if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `npm ci` in tools/web")
    return NODE_MODULES


class StaticServer:
    """Serves ``directory`` and tools/web/node_modules (under /node_modules/) on 127.0.0.1."""

    def __init__(self, directory: Path):
        directory = Path(directory).resolve()
        modules = NODE_MODULES.resolve()

        class Handler(http.server.SimpleHTTPRequestHandler):
            extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

            def log_message(self, *args):  # quiet
                pass

            def translate_path(self, path):
                path = path.split("?", 1)[0].split("#", 1)[0]
                if path.startswith("/node_modules/"):
                    target = (modules / path[len("/node_modules/") :]).resolve()
                    return str(target) if target.is_relative_to(modules) else str(directory / "missing")
                return super().translate_path(path)

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
