"""Issue 21: the web viewer (three.js + Spark, pinned in tools/web) in headless Chromium plays an
exported animated .glb: its silhouette matches the backend's render of the same pose and camera,
and the animation advances."""

from __future__ import annotations

import io
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


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from dreamwaltz.commands import view
    from dreamwaltz.core.errors import DreamWaltzError

    try:
        view.node_modules()
    except DreamWaltzError as err:
        pytest.skip(str(err))
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
    server = view.make_server(tmp / "walk.glb")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser = Browser(W, H)
    yield avatar, f"http://127.0.0.1:{server.server_address[1]}/", browser
    browser.close()
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

    avatar, url, browser = served
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    for k in (0, 37):
        t = k / seq.fps
        browser.goto(
            f"{url}?t={t!r}&ui=0&mask=1&{camera_query()}", "window.dreamwaltzViewer && window.dreamwaltzViewer.ready"
        )
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
        print(f"frame {FRAMES[0] + k}: silhouette IoU {iou:.3f} ({b.sum()} reference pixels)")
        assert b.sum() > 2000  # the avatar fills a good part of the view
        assert iou >= 0.9


def test_viewer_plays_the_animation(served):
    _, url, browser = served
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
