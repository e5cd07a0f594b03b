"""``dreamwaltz generate``: a prompt to an animatable .h3ga avatar."""

from pathlib import Path

NAME = "generate"
HELP = "Generate an avatar from a text prompt (writes a .h3ga file)"


def add_arguments(p):
    p.add_argument("prompt")
    add_job_arguments(p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workdir", type=Path, default=None, help="checkpoints; a rerun with the same folder resumes")
    p.add_argument("--out", type=Path, required=True)


def add_job_arguments(p):
    """The job's settings but prompt and seed (``dreamwaltz batch`` takes those from a file and a list)."""
    from ..core import job  # the job schema: its defaults and choices are the CLI's

    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument(
        "--preset",
        default=job.DEFAULT_PRESET,
        choices=job.PRESET_NAMES,
        help=f"tiny: random tiny models on a CPU (checks the set-up); preview/paper: real weights on a GPU "
        f"(default {job.DEFAULT_PRESET})",
    )
    p.add_argument("--body", default=None, help="'open' (default) or your SMPL-X .npz")
    p.add_argument("--gender", default=None, choices=job.GENDERS)
    p.add_argument("--betas", type=float, nargs="*", default=None, help="shape coefficients")
    p.add_argument("--device", default=None, choices=job.DEVICES)
    p.add_argument("--steps", type=int, default=None, help="override the preset's number of stage-2 steps")
    p.add_argument(
        "--stage1-steps",
        type=int,
        default=None,
        help="steps of stage 1 (the canonical NeRF that stage 2 starts from); default: the preset's; "
        "0 skips it and stage 2 starts from the body surface",
    )
    p.add_argument("--sd-model", default=None, help="diffusers id or folder (default: SD 1.5)")
    p.add_argument("--controlnet-model", default=None, help="diffusers id or folder of an openpose ControlNet")
    p.add_argument(
        "--densify",
        action="store_true",
        default=None,
        help="grow Gaussians where detail is missing and prune transparent ones (up to 2x the preset's count)",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=job.PRECISIONS,
        help="diffusion networks' precision (auto: bf16 on GPUs that have it, else fp32; fp16 can overflow)",
    )
    p.add_argument(
        "--sds-weighting",
        default=None,
        choices=job.SDS_WEIGHTINGS,
        help="SDS timestep weighting w(t): uniform (1, the paper's; default), sds (1 - alpha_bar) or snr",
    )
    p.add_argument(
        "--rasterizer",
        default=None,
        choices=job.RASTERIZERS,
        help="stage 2's rasterizer: auto (gsplat's CUDA kernels when they load, else pure torch with a warning; "
        "default) or gsplat (those kernels or an error at once)",
    )
    p.add_argument(
        "--cpu-offload",
        action="store_true",
        default=None,
        help="less GPU memory (12-16 GB cards): keep the networks in CPU memory between uses; slower",
    )
    p.add_argument(
        "--vae-slicing", action="store_true", default=None, help="less GPU memory: encode one render at a time"
    )


def spec_from_args(args, prompt=None, seed=None):
    """The job these flags ask for (``prompt`` and ``seed`` replace the flags'); flags not given take
    the job schema's defaults."""
    from ..core.job import GenerateSpec

    return GenerateSpec.from_dict(
        {
            "prompt": args.prompt if prompt is None else prompt,
            "negative_prompt": args.negative,
            "preset": args.preset,
            "body": args.body,
            "gender": args.gender,
            "betas": args.betas,
            "seed": args.seed if seed is None else seed,
            "device": args.device,
            "steps": args.steps,
            "stage1_steps": args.stage1_steps,
            "sd_model": args.sd_model,
            "controlnet_model": args.controlnet_model,
            "cpu_offload": args.cpu_offload,
            "vae_slicing": args.vae_slicing,
            "densify": args.densify,
            "precision": args.precision,
            "sds_weighting": args.sds_weighting,
            "rasterizer": args.rasterizer,
        }
    )


def run(args) -> int:
    import signal

    from ..pipeline import generate
    from ..progress import ProgressReporter, terminal_sink

    spec = spec_from_args(args)
    reporter = ProgressReporter([terminal_sink()])
    # Ctrl+C: stop at the next step after saving a checkpoint (rerun to resume).
    signal.signal(signal.SIGINT, lambda *_: reporter.cancel.cancel())
    workdir = args.workdir or args.out.with_suffix(".work")
    path = generate(spec, reporter, workdir, out=args.out)
    print(f"avatar: {path}")
    return 0
