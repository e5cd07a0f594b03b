"""SMPL-family motion files: AMASS SMPL+H / SMPL-X .npz, per-joint (T,55,3) .npz, flat 265/322 arrays.

Always read with ``allow_pickle=False``; sizes are bounded before arrays are loaded.
Layouts: docs/MOTION.md.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import MotionError
from ..rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .retarget import MotionSequence

MAX_FRAMES = 1_000_000
MAX_FILE_BYTES = 2 << 30
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _load(path: Path) -> dict:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise MotionError(f"'{path.name}' is over {MAX_FILE_BYTES >> 30} GB.", "Split the motion into shorter clips.")
    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as f:
                return {"poses": np.load(f, allow_pickle=False)}
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
        if total > 4 * MAX_FILE_BYTES:
            raise MotionError(f"'{path.name}' unpacks to {total >> 20} MB.", "The file is damaged or hostile.")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except MotionError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise MotionError(f"'{path.name}' stores Python objects (pickle), which are never loaded.",
                              "Re-save it with plain numpy arrays (np.savez).") from None
        raise MotionError(f"'{path.name}' is not a readable numpy file ({err}).", "The file is damaged.") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise MotionError(f"'{path.name}' is not a readable numpy file ({err}).", "The file is damaged or truncated.") from None


def _scalar(data: dict, *keys, default=None):
    for key in keys:
        if key in data:
            value = np.asarray(data[key])
            if value.dtype.kind in "fiu" and value.size == 1:
                return float(value.reshape(()))
    return default


def read_smpl_motion(path, rest_pelvis, up_axis: str = "auto", fps: Optional[float] = None) -> MotionSequence:
    """A motion file as an SMPL-X pose sequence in SMPL-X (Y-up) space."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"'{path}' does not exist.", "Check the path.")
    data = _load(path)
    poses = np.asarray(data.get("poses", data.get("motion", data.get("arr_0"))))
    if poses is None or poses.dtype.kind not in "fiu":
        raise MotionError(f"'{path.name}' has no 'poses' array of numbers.",
                          "Supported: AMASS SMPL+H / SMPL-X .npz, (T,55,3) 'poses', and flat (T,265) or (T,322) arrays.")
    poses = poses.astype(np.float64)
    T = poses.shape[0] if poses.ndim >= 2 else 0
    if T == 0:
        raise MotionError(f"'{path.name}' has no frames.", "")
    if T > MAX_FRAMES:
        raise MotionError(f"'{path.name}' has {T} frames, over the {MAX_FRAMES} limit.", "Split the clip.")
    full = np.zeros((T, 55, 3))
    transl = np.zeros((T, 3))
    expression = None
    z_up = False
    trans = data.get("trans")
    if poses.ndim == 3 and poses.shape[1:] == (55, 3):
        layout = "per-joint (T,55,3)"
        full = poses
    elif poses.ndim == 2 and poses.shape[1] == 165:
        layout, z_up = "AMASS SMPL-X", True
        full = poses.reshape(T, 55, 3)
    elif poses.ndim == 2 and poses.shape[1] == 156:
        layout, z_up = "AMASS SMPL+H", True
        p = poses.reshape(T, 52, 3)
        full[:, :22] = p[:, :22]
        full[:, 25:55] = p[:, 22:52]
    elif poses.ndim == 2 and poses.shape[1] == 265:
        layout = "flat 265"
        full[:, 22], full[:, 23], full[:, 24] = poses[:, 0:3], poses[:, 3:6], poses[:, 6:9]
        full[:, 0] = poses[:, 9:12]
        full[:, 1:22] = poses[:, 12:75].reshape(T, 21, 3)
        full[:, 25:55] = poses[:, 75:165].reshape(T, 30, 3)
        expression = poses[:, 165:265]
    elif poses.ndim == 2 and poses.shape[1] == 322:
        layout = "Motion-X 322"
        full[:, 0] = poses[:, 0:3]
        full[:, 1:22] = poses[:, 3:66].reshape(T, 21, 3)
        full[:, 25:55] = poses[:, 66:156].reshape(T, 30, 3)
        full[:, 22] = poses[:, 156:159]
        expression = poses[:, 159:209]
        trans = poses[:, 309:312]
    else:
        raise MotionError(f"'{path.name}': poses of shape {poses.shape} match no known layout.",
                          "Supported: (T,156) SMPL+H, (T,165) SMPL-X, (T,55,3), (T,265), (T,322).")
    if trans is not None:
        trans = np.asarray(trans, dtype=np.float64)
        if trans.shape != (T, 3):
            raise MotionError(f"'{path.name}': 'trans' has shape {trans.shape}, expected ({T}, 3).", "The file is damaged.")
        transl = trans.copy()
    if not (np.isfinite(full).all() and np.isfinite(transl).all()):
        raise MotionError(f"'{path.name}' contains NaN or infinite values.", "The file is damaged.")
    if up_axis == "z" or (up_axis == "auto" and z_up):
        # Rotate the world about the rest pelvis so a Z-up capture stands up in Y-up space.
        C = Z_UP_TO_Y_UP
        full[:, 0] = matrix_to_axis_angle(C @ axis_angle_to_matrix(full[:, 0]))
        pelvis = np.asarray(rest_pelvis, dtype=np.float64)
        transl = transl @ C.T + (C @ pelvis - pelvis)
    rate = fps or _scalar(data, "mocap_framerate", "mocap_frame_rate", "fps", "frame_rate", default=30.0)
    return MotionSequence(rate, full, transl, expression, {}, f"{path.name} ({layout})")
