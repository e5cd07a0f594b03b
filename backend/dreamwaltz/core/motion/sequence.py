"""A motion, as every reader returns it (``MotionSequence``), and the limits every reader checks:
a plausible frame rate, and the frame ceiling.

The frame ceiling of motion files: one limit for BVH and SMPL-family files, checked from the
file's header before its frames are read, so an oversized file is refused before it is allocated.

Raise it per call (``load_motion(..., max_frames=N)``, ``api.apply_motion(..., max_frames=N)``,
the CLI's ``--max-frames N``) or for every reader with the environment variable
``DREAMWALTZ_MAX_FRAMES``. Retargeting holds about ``BYTES_PER_FRAME + BYTES_PER_JOINT_FRAME * J``
bytes per frame (measured peak, tracemalloc, on 21- and 59-joint BVH clips: 30-35 kB a frame), so
the default ceiling of 100,000 frames (55 minutes at 30 fps) needs about 3 GB.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import MotionError

MIN_FPS, MAX_FPS = 0.1, 10_000.0  # as BVH's frame times (1e-4 to 10 s)

MAX_FRAMES_ENV = "DREAMWALTZ_MAX_FRAMES"
DEFAULT_MAX_FRAMES = 100_000
# The hard ceiling of any frame count a file may declare (track files, a scene's frame range): far
# beyond real footage (a day at 12 fps), it bounds what a hostile file can make us allocate.
HARD_MAX_FRAMES = 1_000_000
BYTES_PER_FRAME = 26_000  # the SMPL-X side: world/local rotations, forward kinematics, ground pass
BYTES_PER_JOINT_FRAME = 200  # the source side: per joint world rotations and positions


def frame_ceiling(max_frames=None) -> int:
    """``max_frames`` if given, else ``DREAMWALTZ_MAX_FRAMES``, else the default."""
    raw = max_frames if max_frames is not None else os.environ.get(MAX_FRAMES_ENV, "").strip() or None
    if raw is None:
        return DEFAULT_MAX_FRAMES
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        source = f"{MAX_FRAMES_ENV}={raw!r}" if max_frames is None else f"max_frames={raw!r}"
        raise MotionError(f"{source} is not a number of frames.", "Give a whole number such as 200000.")
    return value


def memory_needed(frames: int, joints: int = 55) -> int:
    """About how many bytes retargeting ``frames`` frames of a ``joints``-joint skeleton holds at its peak."""
    return int(frames) * (BYTES_PER_FRAME + BYTES_PER_JOINT_FRAME * int(joints))


def check_frames(frames: int, where: str, max_frames=None, joints: int = 55) -> None:
    """Refuse (one line) a motion of more than the ceiling's frames, naming the option that raises it."""
    ceiling = frame_ceiling(max_frames)
    if frames > ceiling:
        gb = memory_needed(frames, joints) / 1e9
        raise MotionError(
            f"{where} has {frames:,} frames, over the ceiling of {ceiling:,} frames.",
            f"Split the clip, or raise the ceiling with max_frames={frames} (CLI: --max-frames {frames}; "
            f"or the environment variable {MAX_FRAMES_ENV}={frames}), which needs about {gb:.1f} GB of memory.",
        )


def check_fps(fps, what: str) -> float:
    """``fps`` as a float if it is a plausible frame rate, else a MotionError naming ``what``."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not (MIN_FPS <= value <= MAX_FPS):  # also refuses NaN
        raise MotionError(
            f"{what} is {fps!r}, not a frame rate ({MIN_FPS:g} to {MAX_FPS:g} fps).",
            "Fix the file's frame rate (e.g. 30), or give the rate explicitly.",
        )
    return value


@dataclass
class MotionSequence:
    fps: float
    full_pose: np.ndarray  # (T,55,3) axis-angle, smplx order, SMPL-X space
    transl: np.ndarray  # (T,3) SMPL-X space: posed pelvis = rest pelvis + transl
    expression: np.ndarray | None = None  # (T,E)
    mapping: dict = field(default_factory=dict)
    source: str = ""
    notes: list = field(default_factory=list)
    # A retargeted skeleton clip: the source's axes (rows: its left, up, forward) and the scale that
    # bring its joints into the avatar's space, e.g. to draw the source beside the avatar.
    source_basis: np.ndarray | None = None
    source_scale: float = 1.0

    @property
    def num_frames(self) -> int:
        return int(self.full_pose.shape[0])
