"""``dreamwaltz view A.glb``: serve the web viewer (three.js + Spark) on localhost and open it: splat
exports (KHR_gaussian_splatting) and mesh exports (skinned, textured triangles) alike."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "view"
HELP = "Play an exported .glb (splats or a mesh) in the web viewer, served on localhost"
VIEWER = Path(__file__).resolve().parents[1] / "viewer"
# three.js and Spark: the built files shipped in viewer/vendor/<name>/ (`python build.py vendor-web`
# refreshes them); DREAMWALTZ_WEB_MODULES (a node_modules folder) overrides them for development,
# and tools/web/node_modules of a checkout (`npm ci` there) stands in should the shipped copy be gone.
MODULES_ENV = "DREAMWALTZ_WEB_MODULES"
VENDOR = {"three": "three", "spark": "@sparkjsdev/spark"}
# A file each copy must hold, relative to the package's folder.
ENTRY = {"three": "build/three.module.js", "spark": "dist/spark.module.js"}
VENDORED = VIEWER / "vendor"
CHECKOUT_MODULES = Path(__file__).resolve().parents[3] / "tools" / "web" / "node_modules"


def add_arguments(p):
    p.add_argument("glb", type=Path, help="a .glb written by `dreamwaltz export --format glb|mesh-glb`")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--no-browser", action="store_true", help="only serve; print the address")


def web_modules() -> dict[str, Path]:
    """Where /vendor/<name>/ is served from, for each of VENDOR's names."""
    from ..core.errors import DreamWaltzError

    def complete(roots: dict[str, Path]) -> bool:
        return all((roots[name] / ENTRY[name]).is_file() for name in VENDOR)

    env = os.environ.get(MODULES_ENV)
    if env:
        roots = {name: Path(env) / package for name, package in VENDOR.items()}
        if complete(roots):
            return roots
        raise DreamWaltzError(
            f"{MODULES_ENV}={env} holds no three and @sparkjsdev/spark.",
            "Point it at a node_modules folder with both (`npm ci` in tools/web), or unset it to use the "
            "copy shipped with DreamWaltz.",
        )
    for roots in (
        {name: VENDORED / name for name in VENDOR},
        {name: CHECKOUT_MODULES / package for name, package in VENDOR.items()},
    ):
        if complete(roots):
            return roots
    raise DreamWaltzError(
        f"The viewer's three.js and Spark are missing from {VENDORED}.",
        "Reinstall DreamWaltz, or in a checkout run `python build.py vendor-web` after `npm ci` in tools/web.",
    )


def make_server(glb: Path, port: int = 0):
    """A threading HTTP server on 127.0.0.1 serving the viewer, /avatar.glb and the vendored modules."""
    import http.server
    import mimetypes

    roots = {f"/vendor/{name}/": root for name, root in web_modules().items()}
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


def has_triangles(gltf: dict) -> bool:
    """A mesh the viewer draws with three.js (a mesh export): a primitive of triangles (mode 4, the default)."""
    return any(p.get("mode", 4) == 4 for m in gltf.get("meshes", []) for p in m.get("primitives", []))


def run(args) -> int:
    from ..core.errors import InvalidFileError
    from ..core.gltf import has_splats, read_glb

    if not args.glb.is_file():
        raise InvalidFileError(f"'{args.glb}' does not exist.", "Give the path of a .glb file.")
    gltf = read_glb(args.glb)[0]
    if not has_splats(gltf) and not has_triangles(gltf):
        raise InvalidFileError(
            f"'{args.glb.name}' has no Gaussian splats (KHR_gaussian_splatting) and no triangle mesh.",
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
