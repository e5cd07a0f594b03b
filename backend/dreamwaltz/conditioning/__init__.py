"""Skeleton conditioning for SkelSD: keypoints from the posed body, OpenPose images, cameras, prompts."""

from .cameras import CameraSample, sample_camera, view_prompt
from .keypoints import Keypoints, body_keypoints
from .openpose import draw_openpose

__all__ = ["CameraSample", "Keypoints", "body_keypoints", "draw_openpose", "sample_camera", "view_prompt"]
