"""The guidance interface both training stages use."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class GuidanceOutput:
    loss: torch.Tensor  # scalar; d(loss)/d(images) is the guidance gradient
    info: dict = field(default_factory=dict)


class Guidance:
    """``guidance(images (B,3,H,W) in [0,1], skeletons=(B,3,H,W) in [0,1], prompts=[...],
    step_ratio=0..1, cameras=[...], poses=(B,55,3)) -> GuidanceOutput``."""

    def __call__(
        self, images, *, skeletons=None, prompts=(), step_ratio=0.0, cameras=None, poses=None
    ) -> GuidanceOutput:
        raise NotImplementedError
