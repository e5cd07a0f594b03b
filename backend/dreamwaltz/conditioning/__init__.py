"""Skeleton conditioning for SkelSD: keypoints from the posed body, OpenPose images, cameras, prompts."""

from .cameras import CameraSample, sample_camera, view_prompt
from .keypoints import Keypoints, body_keypoints, ray_visible_mask
from .openpose import draw_openpose
from .skeleton import posed_keypoints, skeleton_batch, skeleton_image, to_tensor

__all__ = [
    "CameraSample",
    "Keypoints",
    "body_keypoints",
    "draw_openpose",
    "posed_keypoints",
    "ray_visible_mask",
    "sample_camera",
    "skeleton_batch",
    "skeleton_image",
    "to_tensor",
    "view_prompt",
]
