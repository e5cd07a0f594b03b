"""``dreamwaltz inspect``: what is inside a .h3ga file, and whether it is valid."""

import json
from pathlib import Path

NAME = "inspect"
HELP = "Describe a .h3ga avatar (prompt, body, counts, size) and check it"


def add_arguments(p):
    p.add_argument("avatar", type=Path)
    p.add_argument("--json", action="store_true", help="print the manifest and a summary as JSON")


def run(args) -> int:
    import numpy as np

    from ..core.h3ga import read_h3ga

    avatar = read_h3ga(args.avatar)  # raises a clear error for a bad file
    m = avatar.manifest
    rest = avatar["body/template_vertices"]
    summary = {
        "file": str(args.avatar),
        "bytes": args.avatar.stat().st_size,
        "valid": True,
        "prompt": m.get("prompt"),
        "preset": m.get("preset"),
        "seed": m.get("seed"),
        "generator": m.get("generator"),
        "body": m.get("body", {}).get("kind"),
        "licensed_smplx_data": m.get("body", {}).get("licensed_smplx_data"),
        "vertices": avatar.num_vertices,
        "free_gaussians": avatar.num_free,
        "mesh_bound_gaussians": avatar.num_bound,
        "betas": avatar.num_betas,
        "expressions": avatar.num_expressions,
        "height_m": float(np.ptp(rest[:, 1])),
        "previews": sorted(avatar.previews),
    }
    if args.json:
        print(json.dumps({"summary": summary, "manifest": m}, indent=1))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0
