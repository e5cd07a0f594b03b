"""Guidance for the training stages: SDS with SD + ControlNet (diffusers), or the oracle."""

from __future__ import annotations

from .base import Guidance, GuidanceOutput
from .models import DEFAULT_CONTROLNET, DEFAULT_SD, resolve, tiny_models
from .oracle import OracleGuidance
from .presets import NEGATIVE_PROMPT

__all__ = ["Guidance", "GuidanceOutput", "OracleGuidance", "build_guidance"]


def build_guidance(
    kind: str = "sds",
    preset: str = "tiny",
    sd_model: str | None = None,
    controlnet_model: str | None = None,
    device="cpu",
    dtype=None,
    reference_render=None,
    negative_prompt: str = NEGATIVE_PROMPT,
    **options,
) -> Guidance:
    if kind == "oracle":
        if reference_render is None:
            raise ValueError("oracle guidance needs reference_render(cameras, poses)")
        return OracleGuidance(reference_render, **options)
    from ..presets import get_preset
    from .sds import SDSGuidance

    config = get_preset(preset).guidance
    settings = config.options()
    if config.models == "tiny":
        sd_path, cn_path = tiny_models()
    else:
        sd_path = resolve(sd_model or DEFAULT_SD, "Stable Diffusion")
        cn_path = resolve(controlnet_model or DEFAULT_CONTROLNET, "ControlNet")
    settings.update(options)
    return SDSGuidance.from_folders(
        sd_path, cn_path, device=device, dtype=dtype, negative_prompt=negative_prompt, **settings
    )
