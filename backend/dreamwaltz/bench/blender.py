"""Blender import time and per-frame splat evaluation for 10k, 100k and 300k splats."""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def main():
    import bpy
    import addon_utils  # Blender's module: importable once bpy is

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ..core.h3ga import write_h3ga
    from ..core.testing import make_test_avatar

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10_000, 100_000, 300_000):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            addon_utils.enable("dreamwaltz_blender", default_set=True, handle_error=None)
            from dreamwaltz_blender import api

            path = write_h3ga(Path(tmp) / f"a{n}.h3ga", make_test_avatar(num_free=n - n // 10, num_bound=n // 10, seed=1))
            start = time.perf_counter()
            avatar = api.import_avatar(str(path))
            bpy.context.view_layer.update()
            import_s = time.perf_counter() - start
            rng = np.random.default_rng(0)
            times = []
            for _ in range(5):
                api.set_pose(avatar, rng.normal(scale=0.3, size=(55, 3)))
                start = time.perf_counter()
                bpy.context.view_layer.update()
                api.evaluated_splats(avatar)
                times.append(time.perf_counter() - start)
            frame_ms = 1000 * float(np.median(times))
            results[n] = (import_s, frame_ms)
            print(f"{n:>7} splats: import {import_s:6.2f} s, frame {frame_ms:7.1f} ms (pose + evaluate + read back)", flush=True)
    print(f"import_s_100k={results[100_000][0]:.2f} frame_ms_100k={results[100_000][1]:.1f}")
