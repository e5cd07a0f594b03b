"""One generation job: body -> guidance -> stage 1 (canonical NeRF) -> stage 2 (H3GA) -> .h3ga.

Resumable (each stage checkpoints in its own folder of ``workdir``) and cancellable.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .core.errors import DreamWaltzError
from .core.h3ga import write_h3ga
from .core.job import PRECISIONS, GenerateSpec  # noqa: F401 - the job schema, re-exported for callers
from .progress import ProgressReporter

# Torch dtypes by precision name; None = the guidance's default for the device (bf16 or fp32).
PRECISION_DTYPES = {"auto": None, "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DreamWaltzError(
            "CUDA was requested but no NVIDIA GPU is visible to PyTorch.",
            "Install a CUDA build of PyTorch (python build.py setup --cuda), or use --device cpu with the tiny preset.",
        )
    return name


def generate(
    spec: GenerateSpec,
    reporter: ProgressReporter,
    workdir: Path,
    out: Path | None = None,
    preset=None,
    guidance=None,
) -> Path:
    """Run the job. ``preset`` (a ``presets.Preset``) replaces the named preset's numbers and
    ``guidance`` the diffusion models it would load: the dress-rehearsal benchmark runs the paper's
    shapes with random-weight SD-1.5-size networks and a short body initialisation this way."""
    import numpy as np
    import torch

    from .body import BodyModel
    from .guidance import build_guidance
    from .guidance.presets import NEGATIVE_PROMPT
    from .presets import get_preset
    from .stage2 import H3GA, train_stage2

    spec.validate()
    preset = preset or get_preset(spec.preset)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = pick_device(spec.device)
    from .render.gsplat_backend import job_rasterizer

    rasterizer, warning = job_rasterizer(torch.device(device).type, spec.rasterizer)
    reporter.info("setup", rasterizer)
    if warning:
        reporter.warn("setup", warning)
    reporter.info("setup", f"Loading the body ({spec.body}) and the {spec.preset} diffusion models on {device}.")
    body = BodyModel.load(spec.body, gender=spec.gender).to(device)
    betas = np.zeros(body.num_betas)
    betas[: min(len(spec.betas), body.num_betas)] = spec.betas[: body.num_betas]
    dtype = PRECISION_DTYPES[spec.precision]
    guidance = guidance or build_guidance(
        "sds",
        spec.preset,
        spec.sd_model,
        spec.controlnet_model,
        device=device,
        negative_prompt=spec.negative_prompt or NEGATIVE_PROMPT,
        cpu_offload=spec.cpu_offload,
        vae_slicing=spec.vae_slicing,
        dtype=getattr(torch, dtype) if dtype else None,
        weighting=spec.sds_weighting,
    )
    placement = getattr(guidance, "placement", None)
    if spec.cpu_offload and placement:
        reporter.info("setup", "CPU offload: " + ", ".join(f"{name} {where}" for name, where in placement.items()))
    torch.manual_seed(spec.seed)
    steps = spec.steps or preset.stage2.steps
    cfg = replace(
        preset.stage2,
        steps=steps,
        checkpoint_every=min(preset.stage2.checkpoint_every, max(1, steps // 4)),
        preview_every=min(preset.stage2.preview_every, max(1, steps // 4)),
        densify=densify_schedule(steps, preset.stage2.num_free) if spec.densify else None,
    )
    init = stage1_points(spec, body, guidance, reporter, workdir, betas, cfg.num_free, device, preset.stage1)
    model = H3GA(
        body,
        num_free=cfg.num_free,
        num_bound=cfg.num_bound,
        betas=betas,
        seed=spec.seed,
        init_points=init.points,
        init_colors=init.colors,
        init_densities=init.densities,
        init_scales=init.scales,
        init_quats=init.quats,
    ).to(device)
    if model.dropped_near_parts:
        reporter.info(
            "stage1",
            f"{model.dropped_near_parts} stage-1 points on the hands and face left to the mesh-bound Gaussians.",
        )
    train_stage2(model, guidance, spec.prompt, cfg, reporter, workdir, seed=spec.seed, device=device)
    avatar = model.export(
        prompt=spec.prompt, negative_prompt=spec.negative_prompt, seed=spec.seed, preset=spec.preset, gender=spec.gender
    )
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
    return DensifyConfig(
        start=start, every=every, stop=max(start + every + 1, steps // 2), max_free=2 * num_free, grow_grad2d=0.01
    )


class Stage2Start:
    """Where stage 2's free Gaussians start (all None: from the body surface)."""

    def __init__(self, points=None, colors=None, densities=None, scales=None, quats=None):
        self.points, self.colors, self.densities, self.scales, self.quats = points, colors, densities, scales, quats


def stage1_points(
    spec: GenerateSpec, body, guidance, reporter, workdir: Path, betas, count: int, device, config=None
) -> Stage2Start:
    """Stage 1, then its density points moved to the rest pose: where stage 2's free Gaussians start,
    with their colours, densities and the shape of their neighbourhood (scales and rotations)."""
    import numpy as np

    from .presets import stage1_config
    from .stage1 import run_stage1
    from .stage1.export import local_shapes, points_to_rest

    if spec.stage1_steps == 0:
        reporter.info("stage1", "Stage 1 skipped (--stage1-steps 0): stage 2 starts from the body surface.")
        return Stage2Start()
    config = config or stage1_config(spec.preset)
    if spec.stage1_steps is not None:
        config = replace(config, steps=spec.stage1_steps)
    result = run_stage1(spec, body, guidance, reporter, workdir / "stage1", config=config, device=device)
    if len(result.points) < count // 4:
        reporter.info("stage1", f"Stage 1 left only {len(result.points)} points: stage 2 starts from the body surface.")
        return Stage2Start()
    rng = np.random.default_rng(spec.seed)
    pick = rng.choice(len(result.points), size=count, replace=len(result.points) < count)
    points = points_to_rest(result.points[pick], body, betas).cpu().numpy()
    scales, quats = local_shapes(points)
    return Stage2Start(
        points, result.colors[pick].detach().cpu().numpy(), result.densities[pick].detach().cpu().numpy(), scales, quats
    )


def generate_from_request(spec: dict, reporter: ProgressReporter, workdir: Path) -> Path:
    """The job server's entry point."""
    return generate(GenerateSpec.from_dict(spec), reporter, workdir)
