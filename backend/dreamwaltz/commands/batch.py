"""``dreamwaltz batch``: every prompt of a file x every seed, resumable, with a contact sheet."""

from pathlib import Path

NAME = "batch"
HELP = "Generate an avatar for every prompt of a file and every seed, then a contact sheet to choose from"


def add_arguments(p):
    from ..server.engines import add_engine_arguments
    from .generate import add_job_arguments

    p.add_argument("prompts", type=Path, help="text file, one prompt a line (# starts a comment)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, each prompt is run with each (default 0)")
    add_job_arguments(p)
    add_engine_arguments(p)
    p.add_argument(
        "--storage",
        default=None,
        help="with --engine ray: where the jobs live, a folder every node mounts (default: OUT/jobs)",
    )
    p.add_argument("--view-size", type=int, default=256, help="pixels of each front/back view on the sheet")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the avatars (OUT/jobs/*/result.h3ga), contact_sheet.png and index.html; "
        "rerun with the same folder to resume",
    )


def run(args) -> int:
    import functools
    import signal

    from ..batch import generate_with_views, parse_seeds, read_prompts, run_batch
    from ..core.errors import DreamWaltzError
    from ..server.engines import engine_from_args, storage_dir
    from .generate import spec_from_args

    prompts, seeds = read_prompts(args.prompts), parse_seeds(args.seeds)
    if not 16 <= args.view_size <= 2048:
        raise DreamWaltzError(f"--view-size {args.view_size} is out of range.", "Use 16 to 2048 pixels, e.g. 256.")
    engine = engine_from_args(args)
    jobs_dir = storage_dir(args.storage) if args.storage else None
    for prompt in prompts:  # a bad setting fails now, not after the first avatars
        spec_from_args(args, prompt=prompt, seed=seeds[0])
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl+C: jobs resume on a rerun
    try:
        summary = run_batch(
            prompts,
            seeds,
            lambda prompt, seed: spec_from_args(args, prompt=prompt, seed=seed),
            args.out,
            engine,
            functools.partial(generate_with_views, view_size=args.view_size),
            view_size=args.view_size,
            device=args.device or "auto",
            jobs_dir=jobs_dir,
        )
    except KeyboardInterrupt:
        print("batch: interrupted; rerun the same command to resume from the checkpoints.", flush=True)
        return 130
    return 0 if summary["failed"] == 0 else 1
