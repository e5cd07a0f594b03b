"""One generation job: body -> guidance -> (stage 1) -> stage 2 -> .h3ga, resumable and cancellable.

Stage 1 (the canonical NeRF, issue 5) is not built yet: stage 2 starts from Gaussians on the body
surface instead of the NeRF's density points. Everything else follows the paper's stage 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from .core.errors import DreamWaltzError
from .core.h3ga import write_h3ga
from .progress import ProgressReporter

# Per preset: stage-2 steps, render size, batch, numbers of free and mesh-bound Gaussians.
PRESETS = {
    "tiny": {"steps": 40, "resolution": 64, "batch": 1, "num_free": 3000, "num_bound": 1000},
    "preview": {"steps": 3000, "resolution": 512, "batch": 4, "num_free": 60000, "num_bound": 10000},
    "paper": {"steps": 15000, "resolution": 512, "batch": 4, "num_free": 100000, "num_bound": 20000},
}


@dataclass
class GenerateSpec:
    prompt: str
    negative_prompt: str = ""
    preset: str = "tiny"
    body: str = "open"
    gender: str = "neutral"
    betas: list = field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    sd_model: Optional[str] = None
    controlnet_model: Optional[str] = None
    steps: Optional[int] = None  # override the preset's step count

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DreamWaltzError("CUDA was requested but no NVIDIA GPU is visible to PyTorch.",
                              "Install a CUDA build of PyTorch (python build.py setup --cuda), or use --device cpu with the tiny preset.")
    return name


def generate(spec: GenerateSpec, reporter: ProgressReporter, workdir: Path, out: Optional[Path] = None) -> Path:
    import numpy as np
    import torch

    from .body import BodyModel
    from .guidance import build_guidance
    from .guidance.presets import NEGATIVE_PROMPT
    from .stage2 import H3GA, Stage2Config, train_stage2

    if not spec.prompt.strip():
        raise DreamWaltzError("The prompt is empty.", "Describe the avatar, e.g. 'a knight in armor'.")
    if spec.preset not in PRESETS:
        raise DreamWaltzError(f"Unknown preset {spec.preset!r}.", "Choose tiny, preview or paper.")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = pick_device(spec.device)
    settings = PRESETS[spec.preset]
    reporter.info("setup", f"Loading the body ({spec.body}) and the {spec.preset} diffusion models on {device}.")
    body = BodyModel.load(spec.body, gender=spec.gender).to(device)
    betas = np.zeros(body.num_betas)
    betas[: min(len(spec.betas), body.num_betas)] = spec.betas[: body.num_betas]
    guidance = build_guidance("sds", spec.preset, spec.sd_model, spec.controlnet_model, device=device,
                              negative_prompt=spec.negative_prompt or NEGATIVE_PROMPT)
    torch.manual_seed(spec.seed)
    model = H3GA(body, num_free=settings["num_free"], num_bound=settings["num_bound"], betas=betas, seed=spec.seed).to(device)
    cfg = Stage2Config(steps=spec.steps or settings["steps"], resolution=settings["resolution"], batch=settings["batch"],
                       checkpoint_every=max(1, (spec.steps or settings["steps"]) // 4),
                       preview_every=max(1, (spec.steps or settings["steps"]) // 4))
    train_stage2(model, guidance, spec.prompt, cfg, reporter, workdir, seed=spec.seed, device=device)
    avatar = model.export(prompt=spec.prompt, negative_prompt=spec.negative_prompt, seed=spec.seed, preset=spec.preset,
                          gender=spec.gender)
    preview = sorted(workdir.glob("preview_*.png"))
    if preview:
        avatar.previews["front_back.png"] = preview[-1].read_bytes()
    path = write_h3ga(out or workdir / "avatar.h3ga", avatar)
    reporter.info("export", f"Wrote {path}.")
    return path


def generate_from_request(spec: dict, reporter: ProgressReporter, workdir: Path) -> Path:
    """The job server's entry point."""
    return generate(GenerateSpec.from_dict(spec), reporter, workdir)
