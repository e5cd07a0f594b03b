"""The paper's training-camera sampler and view-dependent prompts.

Body views: radius 1-2 m, polar elevation 60-120 deg, any azimuth, fov 40-70 deg, looking at a
height jittered between the ankles and the shoulders; face close-ups 20 % of the time; optional
hand close-ups. Azimuth 0 = in front of the body (+Z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.camera import Camera, orbit_camera
from ..core.joints import JOINT_INDEX


@dataclass
class CameraSample:
    camera: Camera
    azimuth: float  # degrees, 0 = front
    elevation: float  # polar degrees, 90 = level
    kind: str  # "body", "face" or "hand"


def sample_camera(
    rng: np.random.Generator,
    joints: np.ndarray,
    size: int = 512,
    face_prob: float = 0.2,
    hand_prob: float = 0.0,
    landmarks: np.ndarray | None = None,
) -> CameraSample:
    """A random training camera around a posed body (joints (55,3), SMPL-X space).

    With ``landmarks`` (89,3) face close-ups look at the centre of the 68 face points and face
    the way the face does; without them they look just above the head joint from the front half."""
    azimuth = float(rng.uniform(-180, 180))
    elevation = float(rng.uniform(60, 120))
    draw = rng.random()
    if draw < face_prob:
        kind, target = "face", joints[JOINT_INDEX["head"]] + np.array([0.0, 0.05, 0.0])
        radius, fov = float(rng.uniform(0.35, 0.6)), float(rng.uniform(40, 55))
        azimuth = float(rng.uniform(-90, 90))  # faces are shown from the front half
        if landmarks is not None:  # ... of where the face points, for turned heads
            face = np.asarray(landmarks)[21:89]
            target = face.mean(axis=0)
            ahead = target - joints[JOINT_INDEX["head"]]
            azimuth = (azimuth + np.degrees(np.arctan2(ahead[0], ahead[2])) + 180) % 360 - 180
    elif draw < face_prob + hand_prob:
        side = "left" if rng.random() < 0.5 else "right"
        kind, target = "hand", joints[JOINT_INDEX[f"{side}_middle1"]]
        radius, fov = float(rng.uniform(0.3, 0.5)), float(rng.uniform(40, 55))
    else:
        kind = "body"
        low, high = joints[JOINT_INDEX["left_ankle"], 1], joints[JOINT_INDEX["left_shoulder"], 1]
        target = np.array([joints[0, 0], rng.uniform(low, high), joints[0, 2]])
        radius, fov = float(rng.uniform(1.0, 2.0)), float(rng.uniform(40, 70))
    camera = orbit_camera(azimuth, elevation, radius, target, fov, size, size)
    return CameraSample(camera, azimuth, elevation, kind)


def view_prompt(prompt: str, azimuth: float, elevation: float = 90.0, kind: str = "body") -> str:
    """DreamFusion-style view phrasing appended to the prompt; close-ups say what the crop shows,
    so the diffusion model draws a face (or a hand) filling the frame, not a whole tiny body."""
    if kind == "face":
        a = (azimuth + 180) % 360 - 180
        side = "front view" if abs(a) <= 30 else "side view"
        return f"a close-up photo of the face of {prompt}, {side}, detailed face"
    if kind == "hand":
        return f"a close-up photo of the hand of {prompt}, detailed fingers"
    if elevation < 30:
        view = "overhead view"
    elif elevation > 150:
        view = "bottom view"
    else:
        a = (azimuth + 180) % 360 - 180
        view = "front view" if abs(a) <= 45 else "back view" if abs(a) >= 135 else "side view"
    return f"{prompt}, {view}"
