"""One call from a posed body and a camera to the skeleton image the ControlNet sees.

This is what the NeRF and H3GA stages call per training view: numpy images for inspection, a
torch batch (B,3,H,W) in [0,1] for the guidance. torch is imported only by the batch helper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.camera import Camera
from .keypoints import Keypoints, body_keypoints
from .openpose import draw_openpose


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def posed_keypoints(output, camera: Camera, faces, index: int = 0, occlusion: bool = True) -> Keypoints:
    """Keypoints of item ``index`` of a ``BodyOutput`` (or any object with joints (B,55,3),
    landmarks (B,89,3), vertices (B,V,3)) seen by ``camera``; ``faces`` = ``BodyModel.faces``."""
    return body_keypoints(
        _numpy(output.joints[index]),
        _numpy(output.landmarks[index]),
        _numpy(output.vertices[index]),
        camera,
        occlusion=occlusion,
        faces=_numpy(faces),
    )


def skeleton_image(output, camera: Camera, faces, index: int = 0, hands: bool = True, face: bool = True) -> np.ndarray:
    """(H,W,3) uint8 RGB OpenPose skeleton image of one posed body under one camera."""
    return draw_openpose(posed_keypoints(output, camera, faces, index), hands=hands, face=face)


def to_tensor(images: Sequence[np.ndarray], device="cpu"):
    """uint8 (H,W,3) images -> float32 torch tensor (B,3,H,W) in [0,1], as the ControlNet takes."""
    import torch

    batch = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def skeleton_batch(output, cameras: Sequence[Camera], faces, device="cpu", hands: bool = True, face: bool = True):
    """Skeleton images of a batch: item i of ``output`` under ``cameras[i]`` -> (B,3,H,W) in [0,1]."""
    images = [skeleton_image(output, cam, faces, i, hands, face) for i, cam in enumerate(cameras)]
    return to_tensor(images, device)
