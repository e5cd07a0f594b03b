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
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get("DREAMWALTZ_TOKEN"),
                   help="access token (default: $DREAMWALTZ_TOKEN, else a new random one, printed)")
    p.add_argument("--jobs-dir", type=Path, default=None, help="where jobs, checkpoints and results are kept")


def run(args) -> int:
    import uvicorn

    from ..server.app import create_app
    from ..server.runner import run_generate_job

    token = args.token or secrets.token_urlsafe(24)
    jobs_dir = args.jobs_dir or default_jobs_dir()
    app = create_app(jobs_dir, token, run_generate_job)
    if not args.token:
        print(f"token: {token}", flush=True)
    print(f"DreamWaltz backend on http://{args.host}:{args.port} (jobs in {jobs_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
