"""``dreamwaltz models``: where diffusion weights are, and fetching them when you ask."""

NAME = "models"
HELP = "List, locate or download (only on request) the diffusion weights"


def add_arguments(p):
    p.add_argument(
        "action",
        choices=["list", "download", "tiny"],
        help="list: what is on this computer; download: fetch SD 1.5 + ControlNet openpose "
        "into your Hugging Face cache; tiny: build the tiny local test models",
    )
    p.add_argument("--sd-model", default=None)
    p.add_argument("--controlnet-model", default=None)


def run(args) -> int:
    from ..core.errors import WeightsMissingError
    from ..guidance.models import DEFAULT_CONTROLNET, DEFAULT_SD, DOWNLOAD_PATTERNS, resolve, tiny_models

    ids = [
        (args.sd_model or DEFAULT_SD, "Stable Diffusion"),
        (args.controlnet_model or DEFAULT_CONTROLNET, "ControlNet"),
    ]
    if args.action == "tiny":
        sd, cn = tiny_models()
        print(f"tiny models: {sd} and {cn}")
        return 0
    if args.action == "download":
        from huggingface_hub import snapshot_download

        for model, kind in ids:
            print(f"downloading {kind} {model} (only the files DreamWaltz loads) ...", flush=True)
            path = snapshot_download(model, allow_patterns=DOWNLOAD_PATTERNS[kind])
            print(f"  -> {path}")
        return 0
    missing = 0
    for model, kind in ids:
        try:
            print(f"{kind:17s} {model}: {resolve(model, kind)}")
        except WeightsMissingError:
            missing += 1
            print(f"{kind:17s} {model}: not on this computer")
    if missing:
        print("Run 'dreamwaltz models download' to fetch them, or pass local folders.")
    return 0
