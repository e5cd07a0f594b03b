"""One generation job: body -> guidance -> stage 1 (canonical NeRF) -> stage 2 (H3GA) -> .h3ga.

Resumable (each stage checkpoints in its own folder of ``workdir``) and cancellable.
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

PRECISIONS = {"auto": None, "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


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
    # For 12-24 GB cards: each network visits the GPU only for its own forward; the VAE encodes
    # one render at a time. Slower, same result.
    cpu_offload: bool = False
    vae_slicing: bool = False
    # Diffusion networks' precision: auto = fp16 on CUDA, fp32 on CPU; bf16 needs an Ampere or newer GPU.
    precision: str = "auto"
    # Stage 2 grows free Gaussians where detail is missing and prunes transparent ones (gsplat's
    # 3DGS rules), up to twice the preset's count.
    densify: bool = False
    steps: Optional[int] = None  # override the preset's stage-2 step count
    # Stage 1 (the canonical NeRF) steps: None = the preset's count; 0 skips stage 1, and stage 2
    # then starts from the body surface.
    stage1_steps: Optional[int] = None

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
    if spec.precision not in PRECISIONS:
        raise DreamWaltzError(f"Unknown precision {spec.precision!r}.", f"Choose {', '.join(PRECISIONS)}.")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = pick_device(spec.device)
    settings = PRESETS[spec.preset]
    reporter.info("setup", f"Loading the body ({spec.body}) and the {spec.preset} diffusion models on {device}.")
    body = BodyModel.load(spec.body, gender=spec.gender).to(device)
    betas = np.zeros(body.num_betas)
    betas[: min(len(spec.betas), body.num_betas)] = spec.betas[: body.num_betas]
    guidance = build_guidance("sds", spec.preset, spec.sd_model, spec.controlnet_model, device=device,
                              negative_prompt=spec.negative_prompt or NEGATIVE_PROMPT,
                              cpu_offload=spec.cpu_offload, vae_slicing=spec.vae_slicing,
                              dtype=getattr(torch, PRECISIONS[spec.precision]) if PRECISIONS[spec.precision] else None)
    torch.manual_seed(spec.seed)
    init_points, init_colors, init_densities = stage1_points(spec, body, guidance, reporter, workdir, betas,
                                                             settings["num_free"], device)
    model = H3GA(body, num_free=settings["num_free"], num_bound=settings["num_bound"], betas=betas, seed=spec.seed,
                 init_points=init_points, init_colors=init_colors, init_densities=init_densities).to(device)
    steps = spec.steps or settings["steps"]
    cfg = Stage2Config(steps=steps, resolution=settings["resolution"], batch=settings["batch"],
                       checkpoint_every=max(1, steps // 4), preview_every=max(1, steps // 4),
                       densify=densify_schedule(steps, settings["num_free"]) if spec.densify else None)
    train_stage2(model, guidance, spec.prompt, cfg, reporter, workdir, seed=spec.seed, device=device)
    avatar = model.export(prompt=spec.prompt, negative_prompt=spec.negative_prompt, seed=spec.seed, preset=spec.preset,
                          gender=spec.gender)
    preview = sorted(workdir.glob("preview_*.png"))
    if preview:
        avatar.previews["front_back.png"] = preview[-1].read_bytes()
    path = write_h3ga(out or workdir / "avatar.h3ga", avatar)
    reporter.info("export", f"Wrote {path}.")
    return path


def densify_schedule(steps: int, num_free: int):
    """3DGS's rhythm scaled to the run: refine every 1/150 of it (at least every 10 steps, so the
    gradient statistics cover several views) from 1/30 to half way (the paper preset: every 100
    steps from 500 to 7500), growing to at most twice the preset's count."""
    from .stage2.densify import DensifyConfig

    start, every = max(1, steps // 30), max(steps // 150, min(10, steps // 4), 1)
    # grow_grad2d 0.01, not 3DGS's 0.0002: that was set for a per-pixel mean photometric loss, and an
    # SDS loss summed over the latents gives far larger screen gradients (score-distillation
    # Gaussian generators such as DreamGaussian use 0.01). Unmeasured with real weights here.
    return DensifyConfig(start=start, every=every, stop=max(start + every + 1, steps // 2), max_free=2 * num_free,
                         grow_grad2d=0.01)


def stage1_points(spec: GenerateSpec, body, guidance, reporter, workdir: Path, betas, count: int, device):
    """Stage 1, then its density points moved to the rest pose: where stage 2's free Gaussians start,
    with their colours and densities (None, None, None: start from the body surface)."""
    import numpy as np

    from .stage1 import preset as stage1_preset
    from .stage1 import run_stage1
    from .stage1.export import points_to_rest

    if spec.stage1_steps == 0:
        reporter.info("stage1", "Stage 1 skipped (--stage1-steps 0): stage 2 starts from the body surface.")
        return None, None, None
    overrides = {} if spec.stage1_steps is None else {"steps": spec.stage1_steps}
    result = run_stage1(spec, body, guidance, reporter, workdir / "stage1", config=stage1_preset(spec.preset, **overrides),
                        device=device)
    if len(result.points) < count // 4:
        reporter.info("stage1", f"Stage 1 left only {len(result.points)} points: stage 2 starts from the body surface.")
        return None, None, None
    rng = np.random.default_rng(spec.seed)
    pick = rng.choice(len(result.points), size=count, replace=len(result.points) < count)
    points = points_to_rest(result.points[pick], body, betas).cpu().numpy()
    return points, result.colors[pick].detach().cpu().numpy(), result.densities[pick].detach().cpu().numpy()


def generate_from_request(spec: dict, reporter: ProgressReporter, workdir: Path) -> Path:
    """The job server's entry point."""
    return generate(GenerateSpec.from_dict(spec), reporter, workdir)
