"""``dreamwaltz doctor``: what this machine can run, in one look (nothing is downloaded)."""

from __future__ import annotations

import json

from ..system_report import report

NAME = "doctor"
HELP = "Report versions, CUDA and GPU, whether gsplat's kernels load, the rasterizer, and the weights found"


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--sd-model", default=None, help="a Stable Diffusion id or folder to look for (default: SD 1.5)")
    p.add_argument("--controlnet-model", default=None, help="a ControlNet id or folder to look for (default: openpose)")


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
