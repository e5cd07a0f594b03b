"""Random body poses from real mocap: the bundled CMU clips retargeted onto the body (free for
commercial use), instead of VPoser (research licence)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.motion import TargetSkeleton, load_motion

MOCAP = Path(__file__).resolve().parents[1] / "data" / "mocap"
CLIPS = ("cmu_12_03_walk_cgspeed.bvh", "cmu_02_02_walk_daz.bvh", "makehuman_walk1.bvh")


@lru_cache(maxsize=4)
def _bank(rest_joints_key: bytes, fps: float) -> np.ndarray:
    rest_joints = np.frombuffer(rest_joints_key).reshape(55, 3)
    target = TargetSkeleton.from_joints(rest_joints)
    poses = [load_motion(MOCAP / clip, target, fps=fps, keep_on_ground=False).full_pose[:, 1:22] for clip in CLIPS]
    return np.concatenate(poses)


def load_pose_bank(rest_joints: np.ndarray, fps: float = 10.0) -> np.ndarray:
    """(K,21,3) body poses (joints 1..21) from the bundled clips, for this body's skeleton."""
    return _bank(np.ascontiguousarray(rest_joints, dtype=np.float64).tobytes(), fps)
