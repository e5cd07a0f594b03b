"""Issue 21: the web viewer (three.js + Spark) in headless Chromium plays an exported animated .glb:
its silhouette matches the backend's render of the same pose and camera, and the animation advances.
Issue 31: it works out of the box (the JavaScript shipped in the package: no tools/web/node_modules),
plays mesh exports too, frames the whole clip and reports its frame time."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from browser import Browser, chromium_path

from dreamwaltz.core.camera import Camera, intrinsics, look_at
from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.motion import TargetSkeleton, load_motion
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.core.testing import make_test_avatar

ROOT = Path(__file__).resolve().parents[1]
WALK = ROOT / "backend" / "dreamwaltz" / "data" / "mocap" / "cmu_12_03_walk_cgspeed.bvh"
W, H, FOV = 384, 512, 40.0
EYE, TARGET = (0.4, 0.1, 3.0), (0.0, -0.15, 0.0)
FRAMES = (100, 160)
READY = "window.dreamwaltzViewer && window.dreamwaltzViewer.ready"


@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    b = Browser(W, H)
    yield b
    b.close()


@pytest.fixture(scope="module")
def no_node_modules(tmp_path_factory):
    """Serve as from a fresh checkout or an installed backend: no DREAMWALTZ_WEB_MODULES and no
    tools/web/node_modules; the page must get its JavaScript from the package's own copy."""
    from dreamwaltz.commands import view

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(view.MODULES_ENV, raising=False)
        mp.setattr(view, "CHECKOUT_MODULES", tmp_path_factory.mktemp("no-node-modules") / "node_modules")
        roots = view.web_modules()
        assert all(root.is_relative_to(view.VENDORED) for root in roots.values()), roots
        yield


def serve(glb: Path):
    from dreamwaltz.commands import view

    server = view.make_server(glb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory, browser, no_node_modules):
    tmp = tmp_path_factory.mktemp("viewer")
    avatar = make_test_avatar(num_free=1500, num_bound=300, seed=2)
    path = write_h3ga(tmp / "a.h3ga", avatar)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamwaltz",
            "export",
            path,
            "--format",
            "glb",
            "--motion",
            WALK,
            "--frames",
            f"{FRAMES[0]}:{FRAMES[1]}",
            "--out",
            tmp / "walk.glb",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    server, url = serve(tmp / "walk.glb")
    yield avatar, url, browser, tmp / "walk.glb"
    server.shutdown()
    server.server_close()


def png_gray(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64) / 255.0


def camera_query() -> str:
    return f"eye={','.join(map(str, EYE))}&target={','.join(map(str, TARGET))}&fov={FOV}"


def test_viewer_silhouette_matches_the_backend_render_of_the_same_pose(served):
    import torch

    from dreamwaltz.render.rasterizer import rasterize

    avatar, url, browser, _ = served
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    for k, skinning in ((0, "gpu"), (37, "gpu"), (37, "cpu")):  # Spark's GPU skinning, and the CPU's
        t = k / seq.fps
        browser.goto(f"{url}?t={t!r}&ui=0&mask=1&skinning={skinning}&{camera_query()}", READY)
        assert browser.evaluate("window.dreamwaltzStats.skinning") == skinning
        time.sleep(1.5)  # Spark sorts and draws asynchronously
        shot = png_gray(browser.screenshot())
        posed = pose_avatar(avatar, seq.full_pose[FRAMES[0] + k], transl=seq.transl[FRAMES[0] + k])
        camera = Camera(look_at(EYE, TARGET), intrinsics(FOV, W, H), W, H)
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
        ref = (
            rasterize(
                f(posed.means),
                f(posed.covariances),
                f(posed.opacities),
                f(np.ones_like(posed.colors)),
                camera,
                background=f(np.zeros(3)),
                backend="torch",
            )
            .alpha[..., 0]
            .numpy()
        )
        a, b = shot > 0.5, ref > 0.5
        iou = (a & b).sum() / max((a | b).sum(), 1)
        print(f"frame {FRAMES[0] + k} ({skinning}): silhouette IoU {iou:.3f} ({b.sum()} reference pixels)")
        assert b.sum() > 2000  # the avatar fills a good part of the view
        assert iou >= 0.9


def test_viewer_plays_the_animation(served):
    _, url, browser, _ = served
    browser.goto(f"{url}?ui=0&{camera_query()}", "window.dreamwaltzViewer && window.dreamwaltzViewer.ready")
    time.sleep(1.0)
    t0, first = browser.evaluate("window.dreamwaltzViewer.time()"), png_gray(browser.screenshot())
    time.sleep(0.2)
    t1, second = browser.evaluate("window.dreamwaltzViewer.time()"), png_gray(browser.screenshot())
    assert t1 != t0  # the clock runs (it wraps at the clip's end)
    assert np.abs(first - second).mean() > 1e-3  # and the avatar moved on screen


def test_view_refuses_a_file_that_is_not_a_glb(tmp_path):
    bad = tmp_path / "a.glb"
    bad.write_text("not a glb")
    out = subprocess.run(
        [sys.executable, "-m", "dreamwaltz", "view", bad, "--no-browser"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "not a .glb" in out.stderr and "Traceback" not in out.stderr
    from dreamwaltz.core.gltf import GlbBuilder

    b = GlbBuilder()  # a valid .glb with a plain point cloud and no splats
    b.gltf["meshes"].append(
        {"primitives": [{"attributes": {"POSITION": b.accessor(np.zeros((2, 3)), "VEC3", bounds=True)}, "mode": 0}]}
    )
    b.write(bad)
    out = subprocess.run(
        [sys.executable, "-m", "dreamwaltz", "view", bad, "--no-browser"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "no Gaussian splats" in out.stderr


def bright_pixels(png: bytes) -> int:
    return int((png_gray(png) > 0.1).sum())


def mesh_glb(path: Path, walk: float = 0.0) -> Path:
    """A tiny skinned, textured mesh export and no splats: a 0.4 m x 2 m x 0.4 m column on two joints
    (hips at the origin, spine at 1 m), the hips walking ``walk`` metres along x over the 1 s clip
    while the spine bends."""
    from PIL import Image

    from dreamwaltz.core.gltf import ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER, UNSIGNED_BYTE, UNSIGNED_SHORT, GlbBuilder

    corners = [(-0.2, -0.2), (0.2, -0.2), (0.2, 0.2), (-0.2, 0.2)]
    rings = np.linspace(0.0, 2.0, 5)
    pos = np.array([(x, y, z) for y in rings for x, z in corners], np.float32)
    uv = np.array([(c / 4, y / 2) for y in rings for c in range(4)], np.float32)
    spine = np.clip(pos[:, 1] - 0.5, 0.0, 1.0)  # 0 below 0.5 m, 1 above 1.5 m
    weights = np.stack([1 - spine, spine, 0 * spine, 0 * spine], 1).astype(np.float32)
    joints = np.tile(np.array([0, 1, 0, 0], np.uint8), (len(pos), 1))
    tris = []
    for r in range(len(rings) - 1):
        for c in range(4):
            a, b, d, e = 4 * r + c, 4 * r + (c + 1) % 4, 4 * (r + 1) + c, 4 * (r + 1) + (c + 1) % 4
            tris += [(a, d, b), (b, d, e)]
    tris += [(0, 1, 2), (0, 2, 3), (16, 18, 17), (16, 19, 18)]  # caps
    g = GlbBuilder()
    attributes = {
        "POSITION": g.accessor(pos, "VEC3", target=ARRAY_BUFFER, bounds=True),
        "TEXCOORD_0": g.accessor(uv, "VEC2", target=ARRAY_BUFFER),
        "JOINTS_0": g.accessor(joints, "VEC4", UNSIGNED_BYTE, target=ARRAY_BUFFER),
        "WEIGHTS_0": g.accessor(weights, "VEC4", target=ARRAY_BUFFER),
    }
    indices = g.accessor(np.array(tris), "SCALAR", UNSIGNED_SHORT, target=ELEMENT_ARRAY_BUFFER)
    png = io.BytesIO()  # a checker texture
    Image.fromarray(
        np.kron([[1, 0], [0, 1]], np.ones((8, 8)))[..., None].repeat(3, 2).astype(np.uint8) * 200 + 40
    ).save(png, "PNG")
    while len(g.blob) % 4:
        g.blob.append(0)
    g.gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(g.blob), "byteLength": len(png.getvalue())})
    g.blob += png.getvalue()
    g.gltf["images"] = [{"bufferView": len(g.gltf["bufferViews"]) - 1, "mimeType": "image/png"}]
    g.gltf["samplers"] = [{}]
    g.gltf["textures"] = [{"source": 0, "sampler": 0}]
    g.gltf["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0}}]
    g.mesh("column", [{"attributes": attributes, "indices": indices, "material": 0, "mode": 4}])
    hips = g.node(name="hips", children=[1])
    g.node(name="spine", translation=[0.0, 1.0, 0.0])
    ibm = np.stack([np.eye(4), np.eye(4)]).astype(np.float32)
    ibm[1, 1, 3] = -1.0  # the spine's inverse bind: down 1 m
    skin = {"joints": [0, 1], "inverseBindMatrices": g.accessor(ibm.transpose(0, 2, 1), "MAT4"), "skeleton": hips}
    g.gltf["skins"] = [skin]
    body = g.node(name="column", mesh=0, skin=0)
    g.gltf["scenes"][0]["nodes"] = [hips, body]
    times = g.accessor(np.array([0.0, 0.5, 1.0]), "SCALAR", bounds=True)
    steps = g.accessor(np.array([[0, 0, 0], [walk / 2, 0, 0], [walk, 0, 0]]), "VEC3")
    half = np.sin(np.radians(15)), np.cos(np.radians(15))
    bends = g.accessor(np.array([[0, 0, 0, 1], [0, 0, half[0], half[1]], [0, 0, 0, 1]]), "VEC4")
    g.gltf["animations"] = [
        {
            "name": "walk",
            "samplers": [{"input": times, "output": steps}, {"input": times, "output": bends}],
            "channels": [
                {"sampler": 0, "target": {"node": 0, "path": "translation"}},
                {"sampler": 1, "target": {"node": 1, "path": "rotation"}},
            ],
        }
    ]
    return g.write(path)


@pytest.fixture(scope="module")
def mesh_served(tmp_path_factory, browser, no_node_modules):
    tmp = tmp_path_factory.mktemp("mesh")
    server, url = serve(mesh_glb(tmp / "column.glb", walk=2.0))
    yield url, browser
    server.shutdown()
    server.server_close()


def test_viewer_plays_a_mesh_export(mesh_served):
    url, browser = mesh_served
    browser.goto(f"{url}?ui=0", READY)
    stats = browser.evaluate("window.dreamwaltzStats")
    assert stats["kind"] == "mesh" and stats["splats"] == 0 and stats["duration"] == pytest.approx(1.0)
    time.sleep(0.5)
    t0, first = browser.evaluate("window.dreamwaltzViewer.time()"), browser.screenshot()
    time.sleep(0.3)
    t1, second = browser.evaluate("window.dreamwaltzViewer.time()"), browser.screenshot()
    print(f"mesh: {bright_pixels(first)} lit pixels, frame_ms={browser.evaluate('window.dreamwaltzStats.frameMs')}")
    assert bright_pixels(first) > 500 and bright_pixels(second) > 500  # the textured, lit column shows
    assert t1 != t0 and np.abs(png_gray(first) - png_gray(second)).mean() > 1e-3  # and walks
    assert browser.evaluate("window.dreamwaltzStats.frameMs") > 0  # the page reports its frame time
    assert browser.evaluate("document.getElementById('stats').textContent") == ""  # no overlay with ui=0
    browser.goto(url, READY)
    time.sleep(0.6)
    assert browser.evaluate("document.getElementById('stats').textContent").startswith("frame_ms=")


def test_viewer_frames_the_whole_clip_of_a_walking_mesh(mesh_served):
    url, browser = mesh_served
    for t in (0.0, 1.0):  # the column at the start and the end of its 2 m walk, default camera
        browser.goto(f"{url}?ui=0&mask=1&t={t}", READY)
        lo, hi = (
            np.array(v)
            for v in browser.evaluate("[window.dreamwaltzStats.bounds.min, window.dreamwaltzStats.bounds.max]")
        )
        assert lo[0] <= -0.19 and hi[0] >= 2.19 and lo[1] <= 0.01 and hi[1] >= 1.95  # the whole path
        time.sleep(0.3)
        mask = png_gray(browser.screenshot()) > 0.5
        assert mask.sum() > 500
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())  # inside the frame


def test_viewer_frames_the_whole_walk_of_a_splat_avatar(served):
    avatar, url, browser, _ = served
    browser.goto(f"{url}?ui=0", READY)
    stats = browser.evaluate("window.dreamwaltzStats")
    assert stats["kind"] == "splats" and stats["splats"] == 1800 and stats["skinning"] == "gpu"
    lo, hi = np.array(stats["bounds"]["min"]), np.array(stats["bounds"]["max"])
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    for frame in range(FRAMES[0], FRAMES[1], 10):  # every posed centre through the clip lies inside
        means = pose_avatar(avatar, seq.full_pose[frame], transl=seq.transl[frame]).means
        assert (means.min(0) >= lo - 0.02).all() and (means.max(0) <= hi + 0.02).all(), frame
    first = pose_avatar(avatar, seq.full_pose[FRAMES[0]], transl=seq.transl[FRAMES[0]]).means
    assert ((hi - lo) - np.ptp(first, 0)).max() > 0.2  # wider than the first frame alone: the walk moves
    time.sleep(1.0)
    assert stats["poseMs"] > 0 and browser.evaluate("window.dreamwaltzStats.frameMs") > 0
    for t in (0.0, stats["duration"]):  # the default camera keeps the avatar whole at both ends of the walk
        browser.goto(f"{url}?ui=0&mask=1&t={t}", READY)
        time.sleep(1.5)  # Spark sorts and draws asynchronously
        mask = png_gray(browser.screenshot()) > 0.5
        assert mask.sum() > 1000
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()), t


def test_view_serves_from_an_installed_package_without_node_modules(served, tmp_path):
    """`dreamwaltz view` from a copy of the backend package alone (no checkout around it)."""
    _, _, browser, glb = served
    from dreamwaltz.commands import view

    site = tmp_path / "site"
    shutil.copytree(view.VIEWER.parent, site / "dreamwaltz", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != view.MODULES_ENV}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dreamwaltz", "view", glb, "--no-browser"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" at ", 1)[1].split()[0]
        browser.goto(f"{url}?ui=0&mask=1", READY)
        assert browser.evaluate("window.dreamwaltzStats.kind") == "splats"
        time.sleep(1.5)  # Spark sorts and draws asynchronously
        assert (png_gray(browser.screenshot()) > 0.5).sum() > 2000  # the avatar shows
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_shipped_javascript_is_whole_and_pinned():
    """Every module the viewer imports resolves inside viewer/vendor (through index.html's import map),
    and the vendored versions are the ones tools/web pins (python build.py vendor-web refreshes them)."""
    import json
    import re

    from dreamwaltz.commands import view

    imports = json.loads(
        re.search(r'<script type="importmap">(.*?)</script>', (view.VIEWER / "index.html").read_text(), re.S)[1]
    )
    imports = imports["imports"]

    def resolve(spec: str, base: Path) -> Path:
        if spec.startswith("."):
            return (base.parent / spec).resolve()
        prefix = max((k for k in imports if spec == k or (k.endswith("/") and spec.startswith(k))), key=len)
        return (view.VIEWER / imports[prefix] / spec[len(prefix) :]).resolve()

    todo, seen = [view.VIEWER / "viewer.js"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        assert path.is_file() and path.is_relative_to(view.VIEWER), path
        for spec in re.findall(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]""", path.read_text(), re.M):
            todo.append(resolve(spec, path))
    assert any("spark.module.js" in p.name for p in seen) and any(p.name == "GLTFLoader.js" for p in seen)
    versions = (view.VENDORED / "VERSIONS.md").read_text()
    pins = json.loads((ROOT / "tools" / "web" / "package.json").read_text())["dependencies"]
    for package, version in pins.items():
        assert f"{package} {version} (MIT" in versions
    for name in view.VENDOR:
        assert "MIT License" in (view.VENDORED / name / "LICENSE").read_text()
    assert not list(view.VENDORED.rglob("*.map"))


def test_web_modules_env_overrides_and_says_when_wrong(tmp_path, monkeypatch):
    from dreamwaltz.commands import view
    from dreamwaltz.core.errors import DreamWaltzError

    monkeypatch.delenv(view.MODULES_ENV, raising=False)
    assert view.web_modules() == {name: view.VENDORED / name for name in view.VENDOR}
    for name, package in view.VENDOR.items():  # a development node_modules
        (tmp_path / package / view.ENTRY[name]).parent.mkdir(parents=True)
        (tmp_path / package / view.ENTRY[name]).write_text("")
    monkeypatch.setenv(view.MODULES_ENV, str(tmp_path))
    assert view.web_modules() == {name: tmp_path / package for name, package in view.VENDOR.items()}
    monkeypatch.setenv(view.MODULES_ENV, str(tmp_path / "nothing"))
    with pytest.raises(DreamWaltzError, match="holds no three"):
        view.web_modules()
