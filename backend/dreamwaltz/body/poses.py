"""Poses for training and conditioning (numpy, (55,3) axis-angle in smplx full-pose order).

The paper's canonical A-pose, random canonical variants, random body poses (from a pose bank of
real mocap when one is given, otherwise a joint-limit prior), random hands within anatomical
limits, random expressions, and the 50 % canonical mix-up. No VPoser (research licence).
"""

from __future__ import annotations

import numpy as np

from ..core.joints import JOINT_INDEX

DEG = np.pi / 180


def apose() -> np.ndarray:
    """Shoulders +/-45 deg about z (arms down), hips +/-6 deg (legs apart), flat hands."""
    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["left_shoulder"], 2] = -45 * DEG
    pose[JOINT_INDEX["right_shoulder"], 2] = 45 * DEG
    pose[JOINT_INDEX["left_hip"], 2] = 6 * DEG
    pose[JOINT_INDEX["right_hip"], 2] = -6 * DEG
    return pose


def random_canonical(rng: np.random.Generator, spread_deg: float = 8.0) -> np.ndarray:
    """The A-pose with small jitter of the arms and legs (the paper's random canonical poses)."""
    pose = apose()
    for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_elbow", "right_elbow"):
        pose[JOINT_INDEX[name]] += rng.normal(scale=spread_deg * DEG / 2, size=3)
    return pose


# Per-joint limits (degrees, about x, y, z of the SMPL-X joint frame) for the prior.
_LIMITS = {
    "spine1": (20, 15, 15),
    "spine2": (15, 10, 10),
    "spine3": (10, 10, 10),
    "neck": (25, 30, 15),
    "head": (20, 30, 15),
    "left_hip": (45, 20, 25),
    "right_hip": (45, 20, 25),
    "left_knee": (60, 5, 5),
    "right_knee": (60, 5, 5),
    "left_ankle": (20, 10, 10),
    "right_ankle": (20, 10, 10),
    "left_collar": (5, 10, 10),
    "right_collar": (5, 10, 10),
    "left_shoulder": (40, 40, 50),
    "right_shoulder": (40, 40, 50),
    "left_elbow": (10, 60, 10),
    "right_elbow": (10, 60, 10),
    "left_wrist": (20, 20, 30),
    "right_wrist": (20, 20, 30),
}
_ONE_SIDED = {"left_knee": (0, 1), "right_knee": (0, 1), "left_elbow": (1, -1), "right_elbow": (1, 1)}  # axis, sign


def sample_body_pose(rng: np.random.Generator, bank: np.ndarray | None = None) -> np.ndarray:
    """A random body pose: a real pose from ``bank`` (K,21,3) when given, else the joint-limit prior."""
    pose = apose()
    if bank is not None and len(bank):
        pose[1:22] = bank[rng.integers(len(bank))]
        return pose
    for name, (lx, ly, lz) in _LIMITS.items():
        j = JOINT_INDEX[name]
        pose[j] += rng.uniform(-1, 1, 3) * np.array([lx, ly, lz]) * DEG * 0.6
        if name in _ONE_SIDED:
            axis, sign = _ONE_SIDED[name]
            pose[j, axis] = sign * abs(pose[j, axis])
    return pose


def random_hand_pose(rng: np.random.Generator, side: str) -> np.ndarray:
    """(15,3) finger rotations: curls of 0-80 deg towards the palm, a little spread, thumb opposition."""
    sign = -1.0 if side == "left" else 1.0  # fingers point along +-x; curling is about z
    hand = np.zeros((15, 3))
    curl = rng.uniform(0, 1)
    for i, finger in enumerate(("index", "middle", "pinky", "ring", "thumb")):  # smplx hand joint order
        for k in range(3):
            j = i * 3 + k
            if finger == "thumb":
                hand[j, 1] = sign * rng.uniform(0, 40) * DEG * curl
            else:
                hand[j, 2] = sign * curl * rng.uniform(0.6, 1.0) * 80 * DEG
                if k == 0:
                    hand[j, 1] = rng.normal(scale=5) * DEG
    return hand


def random_expression(rng: np.random.Generator, count: int, kind: str = "open") -> np.ndarray:
    """Facial action units are in [0,1] and sparse (open body); SMPL-X expressions are PCA-normal."""
    if kind == "smplx":
        return rng.normal(scale=0.7, size=count)
    values = np.zeros(count)
    active = rng.choice(count, size=min(count, rng.integers(1, 6)), replace=False)
    values[active] = rng.uniform(0.2, 1.0, len(active))
    return values


def random_pose(rng: np.random.Generator, bank=None, canonical_mix: float = 0.5, jaw: bool = True) -> np.ndarray:
    """Stage-2 training pose: with probability ``canonical_mix`` a random canonical pose, else a
    random body pose; both with random hands, jaw and eyes."""
    pose = random_canonical(rng) if rng.random() < canonical_mix else sample_body_pose(rng, bank)
    pose[25:40] = random_hand_pose(rng, "left")
    pose[40:55] = random_hand_pose(rng, "right")
    if jaw:
        pose[JOINT_INDEX["jaw"], 0] = rng.uniform(0, 20) * DEG
    gaze = rng.normal(scale=8, size=2) * DEG
    pose[JOINT_INDEX["left_eye_smplhf"], :2] = pose[JOINT_INDEX["right_eye_smplhf"], :2] = gaze
    return pose
