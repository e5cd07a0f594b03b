"""Oracle guidance: what a denoiser would do if it knew the answer (for testing without weights).

With x_t = sqrt(a) x + sqrt(1-a) eps and a denoiser whose clean-image estimate x0_hat is the
reference render, its noise prediction is eps_hat = (x_t - sqrt(a) x0_hat) / sqrt(1-a), so
eps_hat - eps = sqrt(a)/sqrt(1-a) (x - x0_hat). SDS with weight w(t) therefore pulls x towards
the reference with gradient w(t) sqrt(a/(1-a)) (x - x_ref); in image space (no VAE), with the
time weighting folded into one scale, the gradient is simply (x - x_ref).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import Guidance, GuidanceOutput


class OracleGuidance(Guidance):
    needs_skeletons = False  # it knows the answer; no conditioning image is drawn for it

    def __init__(self, reference_render: Callable, scale: float = 1.0):
        self.reference_render = reference_render
        self.scale = scale

    def __call__(
        self, images, *, skeletons=None, prompts=(), step_ratio=0.0, cameras=None, poses=None
    ) -> GuidanceOutput:
        with torch.no_grad():
            reference = self.reference_render(cameras, poses).to(images)
        grad = self.scale * (images - reference)
        loss = 0.5 * (images - (images - grad).detach()).pow(2).sum() / images.shape[0]
        return GuidanceOutput(loss, {"error": float((images.detach() - reference).abs().mean())})
