"""What this machine can run: torch, CUDA, GPU, gsplat's kernels, the rasterizer, the weights.

One report for ``dreamwaltz doctor``, the server's ``/health`` and the GPU check; here, below both
the command line and the server, so the server never imports the command line.
"""

from __future__ import annotations

import platform
import sys


def system_report(block: bool = True) -> dict:
    """torch, CUDA, GPU, gsplat and the rasterizer ``rasterize`` will use (also served by /health).

    ``block=False`` does not wait for gsplat's kernel check (it may be compiling); the answer is
    then ``usable: null`` and rasterizer "checking" until it is done.
    """
    import torch

    from .render.gsplat_backend import gsplat_status

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
    from .core.errors import WeightsMissingError
    from .guidance.models import DEFAULT_CONTROLNET, DEFAULT_SD, check_openpose_controlnet, check_sd_layout, resolve

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
    from .core.version import __version__

    return {
        "dreamwaltz": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        **system_report(),
        "weights": weights_report(sd_model, controlnet_model),
    }
