"""The frame ceiling of motion files: one limit for BVH and SMPL-family files, checked from the
file's header before its frames are read, so an oversized file is refused before it is allocated.

Raise it per call (``load_motion(..., max_frames=N)``, ``api.apply_motion(..., max_frames=N)``,
the CLI's ``--max-frames N``) or for every reader with the environment variable
``DREAMWALTZ_MAX_FRAMES``. Retargeting holds about ``BYTES_PER_FRAME + BYTES_PER_JOINT_FRAME * J``
bytes per frame (measured peak, tracemalloc, on 21- and 59-joint BVH clips: 30-35 kB a frame), so
the default ceiling of 100,000 frames (55 minutes at 30 fps) needs about 3 GB.
"""

from __future__ import annotations

import os

from ..errors import MotionError

MAX_FRAMES_ENV = "DREAMWALTZ_MAX_FRAMES"
DEFAULT_MAX_FRAMES = 100_000
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
