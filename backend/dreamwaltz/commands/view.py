"""``dreamwaltz view A.glb``: serve the web viewer (three.js + Spark) on localhost and open it."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "view"
HELP = "Play an exported .glb (dreamwaltz export --format glb) in the web viewer, served on localhost"
VIEWER = Path(__file__).resolve().parents[1] / "viewer"
# The pinned three.js and Spark: tools/web in a checkout (`npm ci` there), or DREAMWALTZ_WEB_MODULES.
MODULES_ENV = "DREAMWALTZ_WEB_MODULES"
VENDOR = {"three": "three", "spark": "@sparkjsdev/spark"}


def add_arguments(p):
    p.add_argument("glb", type=Path, help="a .glb written by `dreamwaltz export --format glb`")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--no-browser", action="store_true", help="only serve; print the address")


def node_modules() -> Path:
    from ..core.errors import DreamWaltzError

    candidates = [Path(os.environ[MODULES_ENV])] if os.environ.get(MODULES_ENV) else []
    candidates.append(Path(__file__).resolve().parents[3] / "tools" / "web" / "node_modules")
    for folder in candidates:
        if all((folder / package / "package.json").is_file() for package in VENDOR.values()):
            return folder
    raise DreamWaltzError(
        "The viewer's three.js and Spark are not installed.",
        f"Run `npm ci` in tools/web of a DreamWaltz checkout, or set {MODULES_ENV} to a node_modules "
        "folder holding three and @sparkjsdev/spark.",
    )


def make_server(glb: Path, port: int = 0):
    """A threading HTTP server on 127.0.0.1 serving the viewer, /avatar.glb and the vendored modules."""
    import http.server
    import mimetypes

    modules = node_modules()
    roots = {f"/vendor/{name}/": modules / package for name, package in VENDOR.items()}
    glb = glb.resolve()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            target = None
            if path in ("/", "/index.html"):
                target = VIEWER / "index.html"
            elif path == "/viewer.js":
                target = VIEWER / "viewer.js"
            elif path == "/avatar.glb":
                target = glb
            else:
                for prefix, root in roots.items():
                    if path.startswith(prefix):
                        candidate = (root / path[len(prefix) :]).resolve()
                        if candidate.is_relative_to(root.resolve()):  # nothing outside the package
                            target = candidate
            if target is None or not target.is_file():
                self.send_error(404)
                return
            body = target.read_bytes()
            kind = (
                "text/javascript"
                if target.suffix in (".js", ".mjs")
                else (
                    "model/gltf-binary"
                    if target.suffix == ".glb"
                    else mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                )
            )
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def run(args) -> int:
    from ..core.errors import InvalidFileError
    from ..core.gltf import has_splats, read_glb

    if not args.glb.is_file():
        raise InvalidFileError(f"'{args.glb}' does not exist.", "Give the path of a .glb file.")
    if not has_splats(read_glb(args.glb)[0]):
        raise InvalidFileError(
            f"'{args.glb.name}' has no Gaussian splats (KHR_gaussian_splatting).",
            "Export one: dreamwaltz export A.h3ga --format glb --out A.glb",
        )
    server = make_server(args.glb, args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"serving {args.glb.name} at {url} (Ctrl+C stops)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
