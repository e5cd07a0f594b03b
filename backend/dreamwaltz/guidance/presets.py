"""Guidance settings (one preset's numbers live in ``dreamwaltz.presets``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GuidanceConfig:
    resolution: int = 512  # the diffusion model's input size; renders are resized to it
    guidance_scale: float = 50.0  # classifier-free guidance, as in the paper
    t_range: tuple = (0.02, 0.98)  # t ~ U[t_min, t_max] of the 1000 training timesteps
    conditioning_scale: float = 1.0  # ControlNet residual scale
    weighting: str = "uniform"  # w(t): uniform (the paper's), sds (1 - alpha_bar) or snr
    models: str = "diffusion"  # "diffusion": Stable Diffusion + ControlNet; "tiny": random tiny models (tests)

    def options(self) -> dict:
        """The SDS settings (what ``SDSGuidance`` takes); ``models`` picks the networks instead."""
        options = asdict(self)
        del options["models"]
        return options


NEGATIVE_PROMPT = (
    "lowres, blurry, deformed, extra limbs, missing fingers, bad hands, bad anatomy, "
    "cropped, out of frame, text, watermark"
)
