"""Stable Diffusion 1.5 + ControlNet 1.1 at their real sizes, with random weights.

The benchmark needs the compute of real weights without the weights (none may be fetched in a
test or a benchmark): the networks are built from SD 1.5's published configuration, so the time
and memory of an SDS step are those of the real models. Random outputs are meaningless, which is
fine for timing. On the ``meta`` device nothing is allocated, which lets a CPU test check that the
configuration really is SD 1.5's (its parameter counts) in well under a second.
"""

from __future__ import annotations

import torch

from .sds import DiffusionModules

# SD 1.5's published sizes (v1-inference.yaml / the diffusers configs of the released weights).
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
)
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    sample_size=512,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)
SD15_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=768,
)
# Published parameter counts of the released checkpoints, for the test that the configs match.
SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480, "controlnet": 361_279_120}


def sd15_random_modules(device="cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> DiffusionModules:
    """SD 1.5-size UNet, VAE, CLIP text encoder and OpenPose-size ControlNet with random weights.

    The tokenizer and scheduler are the tiny models' (same scheduler as SD 1.5; the byte-level
    tokenizer gives ids well inside CLIP's vocabulary), so nothing is read from the network.
    """
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .models import tiny_models

    device = torch.device(device)
    if device.type != "meta":
        torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=device.type != "meta")
    sd, _ = tiny_models()
    for module in (unet, vae, text, controlnet):
        # nn.Module.to, not diffusers' override: that one warns about fp32-only modules even when
        # there are none (these configs have none).
        torch.nn.Module.to(module, dtype)
    return DiffusionModules(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=CLIPTokenizer.from_pretrained(sd / "tokenizer"),
        controlnet=controlnet,
        scheduler=DDPMScheduler.from_pretrained(sd, subfolder="scheduler"),
    )
