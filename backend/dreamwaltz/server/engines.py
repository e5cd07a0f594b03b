"""Choosing the execution engine: ``local`` (one job at a time in this process, the default) or
``ray`` (each job a Ray task on a cluster). Shared by ``dreamwaltz serve`` and ``dreamwaltz batch``.
Ray is imported only when ``ray`` is chosen."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from ..core.errors import DreamWaltzError
from .jobs import EngineFactory, Worker

ENGINES = ("local", "ray")


def add_engine_arguments(p) -> None:
    p.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local: one job at a time on this machine (default); ray: each job a Ray task on a cluster "
        "(docs/CLUSTER.md)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="with --engine ray: the cluster to join ('auto', or host:port of the head; default: "
        "$RAY_ADDRESS, else a Ray started on this machine)",
    )
    p.add_argument(
        "--gpu-resource",
        default="GPU",
        help="with --engine ray: the Ray resource a job asks for (default GPU; any custom resource name)",
    )
    p.add_argument(
        "--gpus-per-job",
        type=float,
        default=1.0,
        help="with --engine ray: how much of that resource a job asks for (default 1; 0.5 puts two jobs on a card)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="with --engine ray: how often a job whose worker or node died is retried (from its checkpoint)",
    )


def engine_factory(
    name: str,
    ray_address: str | None = None,
    gpu_resource: str = "GPU",
    gpus_per_job: float = 1.0,
    max_retries: int = 3,
) -> EngineFactory:
    if name == "local":
        return Worker
    if name != "ray":
        raise DreamWaltzError(f"Unknown engine {name!r}.", f"Choose one of: {', '.join(ENGINES)}.")
    if not gpu_resource or gpus_per_job <= 0 or max_retries < 0:
        raise DreamWaltzError(
            "--gpu-resource needs a name, --gpus-per-job a number above 0 and --max-retries one >= 0.",
            "E.g. --gpu-resource GPU --gpus-per-job 1 --max-retries 3.",
        )
    try:
        import ray  # noqa: F401 - only the ray engine needs it
    except ImportError:
        raise DreamWaltzError(
            "--engine ray needs Ray, which is not installed.",
            "pip install 'dreamwaltz[ray]' (or: pip install -r requirements.txt).",
        ) from None
    from .ray_engine import RayEngine, connect, resource_warning

    owns = connect(ray_address)  # a wrong address fails here, in one line, not in the engine's thread
    warning = resource_warning(gpu_resource, gpus_per_job)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return functools.partial(
        RayEngine,
        address=ray_address,
        resource=gpu_resource,
        amount=gpus_per_job,
        max_retries=max_retries,
        owns_ray=owns,
    )


def engine_from_args(args) -> EngineFactory:
    return engine_factory(args.engine, args.ray_address, args.gpu_resource, args.gpus_per_job, args.max_retries)


def storage_dir(value: str) -> Path:
    """``--storage``: a folder every node mounts (NFS, CephFS, a mounted bucket)."""
    if "://" in value:
        raise DreamWaltzError(
            f"--storage {value!r}: object-store URIs are not supported; jobs read and write files.",
            "Mount the bucket or share on every node (NFS, CephFS, s3fs, gcsfuse) and give that folder.",
        )
    return Path(value).expanduser()
