"""The backend's own render of posed splats, the reference Blender's renders are compared with.

In .venv (Blender 4.2 to 5.0) torch is importable and the backend renders in this process. Blender
5.1 and newer run their tests in Blender's own Python 3.13, which has no torch: there .venv's
Python (``DREAMWALTZ_BACKEND_PYTHON``, set by build.py) renders the same arrays in a subprocess,
through the same ``rasterize_posed``. Run as a script it is that subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_posed_arrays(posed, viewmat, K, width, height, background):
    """(rgb (H, W, 3), alpha (H, W)) of ``posed`` (means, covariances, colors, opacities) seen by
    the camera (viewmat, K, width, height), as ``dreamwaltz.render.rasterizer.rasterize_posed``."""
    arrays = {
        k: np.asarray(getattr(posed, k), dtype=np.float64) for k in ("means", "covariances", "colors", "opacities")
    }
    camera = {
        "viewmat": np.asarray(viewmat, np.float64),
        "K": np.asarray(K, np.float64),
        "size": np.array([width, height]),
        "background": np.asarray(background, np.float64),
    }
    if _have_torch():
        return _render(arrays, camera)
    python = os.environ.get("DREAMWALTZ_BACKEND_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not Path(python).exists():
        raise RuntimeError(f"no torch here and no backend Python at {python}: run `python build.py setup`")
    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(request, **arrays, **camera)
        subprocess.run([python, __file__, str(request), str(result)], check=True)
        with np.load(result) as out:
            return out["rgb"], out["alpha"]


def _render(arrays, camera):
    from dreamwaltz.core.camera import Camera
    from dreamwaltz.render.rasterizer import rasterize_posed

    width, height = (int(v) for v in camera["size"])
    posed = types.SimpleNamespace(**arrays)
    out = rasterize_posed(
        posed, Camera(camera["viewmat"], camera["K"], width, height), background=tuple(camera["background"])
    )
    return out.image.numpy(), out.alpha.numpy()[..., 0]


if __name__ == "__main__":
    with np.load(sys.argv[1]) as data:
        arrays = {k: data[k] for k in ("means", "covariances", "colors", "opacities")}
        camera = {k: data[k] for k in ("viewmat", "K", "size", "background")}
    rgb, alpha = _render(arrays, camera)
    np.savez(sys.argv[2], rgb=rgb, alpha=alpha)
