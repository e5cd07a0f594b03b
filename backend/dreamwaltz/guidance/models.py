"""Finding diffusion weights, and building the tiny local models of the ``tiny`` preset.

Real weights are looked up in the user's Hugging Face cache (or a folder they name) and are
never downloaded unless the user runs ``dreamwaltz models download``. Tiny models are built from
small configs with fixed seeds and saved with ``save_pretrained``, then loaded back through the
same ``from_pretrained`` code as real weights, so the tiny preset exercises the real code paths.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..core.errors import WeightsMissingError
from ..core.job import DEFAULT_CONTROLNET, DEFAULT_SD  # noqa: F401  (the loader's defaults)

SD_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
# The files ``DiffusionModules.from_folders`` reads (full-precision safetensors, no variant), as
# Hugging Face Hub patterns: what ``dreamwaltz models download`` fetches and nothing else (SD 1.5's
# repository also holds 4-8 GB single-file checkpoints, the safety checker and fp16/non-EMA copies).
DOWNLOAD_PATTERNS = {
    "Stable Diffusion": [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/*",
        *(
            f"{sub}/{name}"
            for sub in ("unet", "vae")
            for name in ("config.json", "diffusion_pytorch_model.safetensors")
        ),
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
    ],
    "ControlNet": ["config.json", "diffusion_pytorch_model.safetensors"],
}
TINY_VERSION = 3


def cache_dir() -> Path:
    return Path(os.environ.get("DREAMWALTZ_CACHE") or Path.home() / ".cache" / "dreamwaltz")


def resolve(model: str, kind: str) -> Path:
    """A local folder for ``model`` (a folder path or a Hugging Face id already in the cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.startswith("."):
        raise WeightsMissingError(f"The {kind} folder '{model}' does not exist.", "Check the path in the preferences.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - any lookup failure means: not in the cache
        raise WeightsMissingError(
            f"The {kind} weights '{model}' are not on this computer.",
            f"Run 'dreamwaltz models download' (fetches {DEFAULT_SD} and {DEFAULT_CONTROLNET}), or point the "
            "add-on preferences / --sd-model / --controlnet-model at local diffusers folders. "
            "Nothing is downloaded without your say-so.",
        ) from None


def check_sd_layout(path: Path) -> None:
    missing = [s for s in SD_SUBFOLDERS if not (path / s).is_dir()]
    if missing:
        raise WeightsMissingError(
            f"'{path}' is not a Stable Diffusion folder in diffusers layout (no {', '.join(missing)}).",
            "Use an SD 1.x model saved with diffusers (model_index.json and its subfolders).",
        )


def check_openpose_controlnet(path: Path) -> None:
    config = path / "config.json"
    if not config.is_file():
        raise WeightsMissingError(f"'{path}' is not a ControlNet folder (no config.json).", "")
    data = json.loads(config.read_text())
    if data.get("_class_name") != "ControlNetModel":
        raise WeightsMissingError(f"'{path}' holds a {data.get('_class_name')}, not a ControlNet.", "")
    name = (str(path) + json.dumps(data.get("_name_or_path", ""))).lower()
    if "openpose" not in name and not (path / "dreamwaltz_tiny.json").exists() and not data.get("dreamwaltz_openpose"):
        raise WeightsMissingError(
            f"'{path}' does not look like an OpenPose ControlNet; DreamWaltz conditions on skeleton images.",
            f"Use {DEFAULT_CONTROLNET} or another openpose ControlNet (its folder or id should mention 'openpose').",
        )


def tiny_models(root: Path | None = None) -> tuple[Path, Path]:
    """(sd_folder, controlnet_folder) of the tiny random models, built once and cached."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    key = hashlib.sha256(f"tiny-v{TINY_VERSION}".encode()).hexdigest()[:10]
    base = (root or cache_dir()) / "tiny-models" / key
    sd, cn = base / "sd", base / "controlnet"
    if (sd / "model_index.json").exists() and (cn / "config.json").exists():
        return sd, cn
    tmp = base.with_name(base.name + ".part")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 32, 32))
    # A new ControlNet's output convolutions are zero (no effect until trained); the tiny stand-in
    # gets small random ones so the skeleton really changes the prediction, as a trained one does.
    with torch.no_grad():
        for conv in list(controlnet.controlnet_down_blocks) + [
            controlnet.controlnet_mid_block,
            controlnet.controlnet_cond_embedding.conv_out,
        ]:
            conv.weight.normal_(0.0, 0.05)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=64,
    )
    tokenizer_dir = tmp / "sd" / "tokenizer"
    _write_tiny_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=32,
        )
    )
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    unet.save_pretrained(tmp / "sd" / "unet")
    vae.save_pretrained(tmp / "sd" / "vae")
    text.save_pretrained(tmp / "sd" / "text_encoder")
    scheduler.save_pretrained(tmp / "sd" / "scheduler")
    (tmp / "sd" / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "dreamwaltz_tiny": True})
    )
    controlnet.save_pretrained(tmp / "controlnet")
    (tmp / "controlnet" / "dreamwaltz_tiny.json").write_text(json.dumps({"openpose": True, "random_weights": True}))
    base.parent.mkdir(parents=True, exist_ok=True)
    if base.exists():
        import shutil

        shutil.rmtree(base)
    tmp.rename(base)
    return sd, cn


def _write_tiny_tokenizer(folder: Path) -> None:
    """A byte-level CLIP tokenizer with single-character tokens only (no merges): enough to turn
    any prompt into ids, and written locally so no hub is needed."""
    folder.mkdir(parents=True, exist_ok=True)
    # The byte -> printable-character table of byte-level BPE (GPT-2/CLIP): printable bytes map to
    # themselves, the rest to code points from 256 upwards.
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "tokenizer_class": "CLIPTokenizer",
            }
        )
    )
