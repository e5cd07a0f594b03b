"""SMPL-family motion files: AMASS SMPL+H / SMPL-X .npz, per-joint (T,55,3) .npz, flat 265/322 arrays.

Always read with ``allow_pickle=False``; sizes are bounded before arrays are loaded.
Layouts: docs/MOTION.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..arrays import read_npy_file, read_npy_header, read_npz
from ..errors import MotionError
from ..rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .sequence import MotionSequence, check_fps, check_frames

MAX_FILE_BYTES = 2 << 30
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _load(path: Path) -> dict:
    """Arrays of a .npz / .npy motion file: never unpickled, each allocation bounded by its header
    (checked against the data actually there) under the readers' hard ceiling (DREAMWALTZ_MAX_READ_GB)."""
    where = f"'{path.name}'"
    if path.stat().st_size > MAX_FILE_BYTES:
        raise MotionError(f"{where} is over {MAX_FILE_BYTES >> 30} GB.", "Split the motion into shorter clips.")
    if path.stat().st_size == 0:
        raise MotionError(f"{where} is empty.", "Export the motion again.")
    fix = "The file is damaged; re-save it with plain numpy arrays (np.savez)."
    if path.suffix.lower() == ".npy":
        return {"poses": read_npy_file(path, where, "the array", error=MotionError, fix=fix)}
    return read_npz(path, where, error=MotionError, fix=fix, kinds="fiubUS")  # AMASS keeps gender etc. as text


def declared_frames(path: Path):
    """The most frames any 2-D or larger array of a .npz / .npy declares, read from the arrays'
    headers only (nothing decompressed, nothing unpickled); None when the headers cannot be read
    (the full reader then says what is wrong)."""
    import zipfile

    def frames_of(f):
        shape = read_npy_header(f)[0]
        return int(shape[0]) if len(shape) >= 2 else 0

    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as f:
                return frames_of(f)
        with zipfile.ZipFile(path) as zf:
            counts = []
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as f:
                        counts.append(frames_of(f))
            return max(counts, default=None)
    except Exception:  # noqa: BLE001 - any unreadable header: the full reader reports it
        return None


def _scalar(data: dict, *keys, default=None):
    for key in keys:
        if key in data:
            value = np.asarray(data[key])
            if value.dtype.kind in "fiu" and value.size == 1:
                return float(value.reshape(()))
    return default


def read_smpl_motion(
    path, rest_pelvis, up_axis: str = "auto", fps: float | None = None, max_frames=None, frames: slice | None = None
) -> MotionSequence:
    """A motion file as an SMPL-X pose sequence in SMPL-X (Y-up) space; a file of more frames than
    the ceiling (``sequence``) is refused from its arrays' headers, before any array is read.
    ``frames`` (a slice): only those frames are converted."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"'{path}' does not exist.", "Check the path.")
    declared = declared_frames(path)
    if declared is not None:
        check_frames(declared, f"'{path.name}'", max_frames)
    data = _load(path)
    poses = data.get("poses", data.get("motion", data.get("arr_0")))
    if poses is None or poses.dtype.kind not in "fiu":
        raise MotionError(
            f"'{path.name}' has no 'poses' array of numbers.",
            "Supported: AMASS SMPL+H / SMPL-X .npz, (T,55,3) 'poses', and flat (T,265) or (T,322) arrays.",
        )
    if poses.ndim not in (2, 3):
        raise MotionError(
            f"'{path.name}': 'poses' has {poses.ndim} dimensions (shape {poses.shape}); a motion has 2 or 3.",
            "Supported: (T,156) SMPL+H, (T,165) SMPL-X, (T,55,3), (T,265), (T,322).",
        )
    T = poses.shape[0]
    check_frames(T, f"'{path.name}'", max_frames)  # before any copy
    if T == 0:
        raise MotionError(f"'{path.name}' has no frames.", "")
    trans = data.get("trans")
    if frames is not None:  # only the frames asked for are converted (export --pose: one)
        keep = range(T)[frames]
        if len(keep) == 0:
            raise MotionError(
                f"'{path.name}': frames {frames.start}..{frames.stop} are outside the clip (0..{T - 1}).",
                "Choose frames within the clip.",
            )
        if trans is not None and np.shape(trans)[:1] == (T,):
            trans = trans[frames]
        poses, T = poses[frames], len(keep)
    poses = poses.astype(np.float64)
    full = np.zeros((T, 55, 3))
    transl = np.zeros((T, 3))
    expression = None
    z_up = False
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
        raise MotionError(
            f"'{path.name}': poses of shape {poses.shape} match no known layout.",
            "Supported: (T,156) SMPL+H, (T,165) SMPL-X, (T,55,3), (T,265), (T,322).",
        )
    if trans is not None:
        trans = np.asarray(trans, dtype=np.float64)
        if trans.shape != (T, 3):
            raise MotionError(
                f"'{path.name}': 'trans' has shape {trans.shape}, expected ({T}, 3).", "The file is damaged."
            )
        transl = trans.copy()
    if not (np.isfinite(full).all() and np.isfinite(transl).all()):
        raise MotionError(f"'{path.name}' contains NaN or infinite values.", "The file is damaged.")
    if up_axis == "z" or (up_axis == "auto" and z_up):
        # Rotate the world about the rest pelvis so a Z-up capture stands up in Y-up space.
        C = Z_UP_TO_Y_UP
        full[:, 0] = matrix_to_axis_angle(C @ axis_angle_to_matrix(full[:, 0]))
        pelvis = np.asarray(rest_pelvis, dtype=np.float64)
        transl = transl @ C.T + (C @ pelvis - pelvis)
    if fps is not None:
        rate = check_fps(fps, f"'{path.name}': the frame rate asked for")
    else:
        rate = _scalar(data, "mocap_framerate", "mocap_frame_rate", "fps", "frame_rate", default=30.0)
        rate = check_fps(rate, f"'{path.name}': its frame rate ('mocap_framerate')")
    return MotionSequence(rate, full, transl, expression, {}, f"{path.name} ({layout})")
