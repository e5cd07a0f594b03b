"""``dreamwaltz serve``: the HTTP job service the Blender add-on talks to."""

import os
import secrets
from pathlib import Path

NAME = "serve"
HELP = "Run the job service (localhost, token-protected) that the Blender add-on talks to"


def default_jobs_dir() -> Path:
    base = os.environ.get("DREAMWALTZ_CACHE") or Path.home() / ".cache" / "dreamwaltz"
    return Path(base) / "jobs"


def add_arguments(p):
    from ..server.engines import add_engine_arguments

    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--token",
        default=os.environ.get("DREAMWALTZ_TOKEN"),
        help="access token (default: $DREAMWALTZ_TOKEN, else a new random one, printed)",
    )
    p.add_argument("--jobs-dir", type=Path, default=None, help="where jobs, checkpoints and results are kept")
    add_engine_arguments(p)
    p.add_argument(
        "--storage",
        default=None,
        help="with --engine ray: the jobs folder on storage every node mounts at the same path "
        "(replaces --jobs-dir; docs/CLUSTER.md)",
    )


def run(args) -> int:
    import uvicorn

    from ..core.errors import DreamWaltzError
    from ..server.app import create_app
    from ..server.engines import engine_from_args, storage_dir
    from ..server.runner import run_generate_job

    if args.storage and args.jobs_dir:
        raise DreamWaltzError(
            "Give --storage or --jobs-dir, not both.", "--storage is the jobs folder on shared storage."
        )
    token = args.token or secrets.token_urlsafe(24)
    jobs_dir = storage_dir(args.storage) if args.storage else args.jobs_dir or default_jobs_dir()
    app = create_app(jobs_dir, token, run_generate_job, engine=engine_from_args(args))
    if not args.token:
        print(f"token: {token}", flush=True)
    engine = f"Ray engine ({args.gpus_per_job:g} {args.gpu_resource} a job)" if args.engine == "ray" else "local engine"
    print(f"DreamWaltz backend on http://{args.host}:{args.port} (jobs in {jobs_dir}, {engine})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
