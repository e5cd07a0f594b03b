"""``dreamwaltz doctor``: what this machine can run, in one look (nothing is downloaded)."""

from __future__ import annotations

import json
import platform
import sys

NAME = "doctor"
HELP = "Report versions, CUDA and GPU, whether gsplat's kernels load, the rasterizer, and the weights found"


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--sd-model", default=None, help="a Stable Diffusion id or folder to look for (default: SD 1.5)")
    p.add_argument("--controlnet-model", default=None, help="a ControlNet id or folder to look for (default: openpose)")


def system_report(block: bool = True) -> dict:
    """torch, CUDA, GPU, gsplat and the rasterizer ``rasterize`` will use (also served by /health).

    ``block=False`` does not wait for gsplat's kernel check (it may be compiling); the answer is
    then ``usable: null`` and rasterizer "checking" until it is done.
    """
    import torch

    from ..render.gsplat_backend import gsplat_status

    cuda = torch.cuda.is_available()
    info = {
        "torch": torch.__version__,
        "cuda": cuda,
        "cuda_version": torch.version.cuda,
        "gpu": None,
        "gpu_memory_gib": None,
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    status = gsplat_status(block=block)
    info["gsplat"] = status.to_dict()
    if not cuda:
        info["rasterizer"] = "torch (pure PyTorch, CPU)"
    elif status.usable is None:
        info["rasterizer"] = "checking"
    elif status.usable:
        info["rasterizer"] = "gsplat (CUDA kernels)"
    else:
        info["rasterizer"] = "torch (pure PyTorch on CUDA: slower; see gsplat's reason)"
    return info


def weights_report(sd_model=None, controlnet_model=None) -> dict:
    """Whether the diffusion weights are on this computer (HF cache or a given folder)."""
    from ..core.errors import WeightsMissingError
    from ..guidance.models import DEFAULT_CONTROLNET, DEFAULT_SD, check_openpose_controlnet, check_sd_layout, resolve

    out = {}
    for key, model, kind, check in (
        ("sd", sd_model or DEFAULT_SD, "Stable Diffusion", check_sd_layout),
        ("controlnet", controlnet_model or DEFAULT_CONTROLNET, "ControlNet", check_openpose_controlnet),
    ):
        try:
            path = resolve(model, kind)
            check(path)
            out[key] = {"model": model, "present": True, "path": str(path), "problem": ""}
        except WeightsMissingError as err:
            out[key] = {"model": model, "present": False, "path": None, "problem": err.message}
    return out


def report(sd_model=None, controlnet_model=None) -> dict:
    from ..core.version import __version__

    return {
        "dreamwaltz": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        **system_report(),
        "weights": weights_report(sd_model, controlnet_model),
    }


def run(args) -> int:
    info = report(args.sd_model, args.controlnet_model)
    if args.json:
        print(json.dumps(info))
        return 0
    g = info["gsplat"]
    gpu = f"{info['gpu']} ({info['gpu_memory_gib']} GiB)" if info["cuda"] else "none (CPU only: use the tiny preset)"
    if g["version"] is None:
        gsplat = "not installed"
    else:
        gsplat = f"{g['version']}, kernels " + ("usable" if g["usable"] else f"not usable: {g['reason']}")
    lines = [
        ("dreamwaltz", info["dreamwaltz"]),
        ("python", f"{info['python']} ({info['python_executable']})"),
        ("torch", info["torch"]),
        (
            "CUDA",
            f"available (CUDA {info['cuda_version']})"
            if info["cuda"]
            else f"not available (torch built for CUDA {info['cuda_version']})"
            if info["cuda_version"]
            else "not available (CPU build of torch)",
        ),
        ("GPU", gpu),
        ("gsplat", gsplat),
        ("rasterizer", info["rasterizer"]),
    ]
    for key, kind in (("sd", "SD weights"), ("controlnet", "ControlNet")):
        w = info["weights"][key]
        lines.append((kind, f"{w['model']}: " + (f"present ({w['path']})" if w["present"] else "missing")))
    for name, value in lines:
        print(f"{name:12s} {value}")
    if not all(w["present"] for w in info["weights"].values()):
        print(
            "Weights: run 'dreamwaltz models download' (SD 1.5 + ControlNet openpose, several GB) or pass local folders."
        )
    if info["cuda"] and g["version"] is not None and not g["usable"]:
        from ..render.gsplat_backend import FIX

        print(f"gsplat: generation still works on the pure-torch rasterizer; for speed, {FIX}.")
    return 0
