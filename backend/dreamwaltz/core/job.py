"""The generation job: one schema for the CLI, the job server and the Blender add-on.

Pure Python (the add-on reads it too). Each field has one default here; the CLI's flags, the
server's request model and the add-on's panel all build a ``GenerateSpec`` and send
``spec.to_dict()``, so the same settings make the same job wherever they were typed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .errors import DreamWaltzError

PRESET_NAMES = ("tiny", "preview", "paper")
# The diffusion weights a job uses unless it names others (diffusers ids; `dreamwaltz models download`).
DEFAULT_SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
DEFAULT_PRESET = "preview"  # a real run; `tiny` is the CPU check of the set-up
# Diffusion networks' precision. auto = bf16 on GPUs that have it (Ampere and newer), else fp32;
# fp16 halves memory on older cards but SDS gradients can overflow in it.
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
# SDS timestep weighting w(t): uniform = 1 (the paper's), sds = 1 - alpha_bar(t) (DreamFusion's),
# snr = sqrt(alpha_bar (1 - alpha_bar)).
SDS_WEIGHTINGS = ("uniform", "sds", "snr")
GENDERS = ("neutral", "male", "female")
DEVICES = ("auto", "cpu", "cuda")
# Stage 2's Gaussian rasterizer: auto = gsplat's CUDA kernels when they load (checked when the job
# starts), else the pure-torch one with a warning in the job's events; gsplat = those kernels or
# the job fails at once.
RASTERIZERS = ("auto", "gsplat")


MAX_SEED = 2**32 - 1  # the generators' seed range
MAX_BETAS = 400  # SMPL-X files have at most 300 shape + 100 expression directions
MAX_ABS_BETA = 100.0
MAX_STEPS = 10_000_000
MAX_PROMPT_CHARS = 4000  # the text encoders read 77 tokens; this only stops absurd requests
MAX_PATH_CHARS = 4096


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class JobSpecError(DreamWaltzError, ValueError):
    """A job setting is invalid (a ValueError too, so request validators report it as such)."""

    code = "invalid_request"


@dataclass
class GenerateSpec:
    prompt: str
    negative_prompt: str = ""
    preset: str = DEFAULT_PRESET
    body: str = "open"  # "open" or a path to an SMPL-X .npz on the backend's machine
    gender: str = "neutral"
    betas: list[float] = field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    sd_model: str | None = None
    controlnet_model: str | None = None
    # For 12-24 GB cards: UNet, ControlNet and text encoder leave the GPU between uses; the VAE
    # encodes one render at a time. Slower, same result.
    cpu_offload: bool = False
    vae_slicing: bool = False
    precision: str = "auto"
    sds_weighting: str = "uniform"
    rasterizer: str = "auto"
    # Stage 2 grows free Gaussians where detail is missing and prunes transparent ones (gsplat's
    # 3DGS rules), up to twice the preset's count.
    densify: bool = False
    steps: int | None = None  # override the preset's stage-2 step count
    # Stage 1 (the canonical NeRF) steps: None = the preset's count; 0 skips stage 1, and stage 2
    # then starts from the body surface.
    stage1_steps: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> GenerateSpec:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise JobSpecError("The prompt is empty.", "Describe the avatar, e.g. 'a knight in armor'.")
        self.prompt = self.prompt.strip()
        self.negative_prompt = self.negative_prompt or ""
        choices = {
            "preset": PRESET_NAMES,
            "precision": PRECISIONS,
            "sds_weighting": SDS_WEIGHTINGS,
            "gender": GENDERS,
            "device": DEVICES,
            "rasterizer": RASTERIZERS,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise JobSpecError(
                    f"Unknown {name.replace('_', ' ')} {value!r}.", f"Choose one of: {', '.join(allowed)}."
                )
        for name in ("steps", "stage1_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise JobSpecError(
                    f"{name} must be a whole number >= 0, not {value!r}.", "Leave it empty for the preset's."
                )
        try:
            if isinstance(self.betas, (str, bytes)) or len(self.betas) > MAX_BETAS:
                raise ValueError
            self.betas = [float(b) for b in self.betas]
            if not all(math.isfinite(b) and abs(b) <= MAX_ABS_BETA for b in self.betas):
                raise ValueError
        except (TypeError, ValueError):
            raise JobSpecError(
                f"betas must be a list of at most {MAX_BETAS} numbers between -{MAX_ABS_BETA} and {MAX_ABS_BETA}.",
                "Leave it empty for the average body.",
            ) from None
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise JobSpecError(
                f"seed must be a whole number from 0 to {MAX_SEED}, not {str(self.seed)[:40]}.", "Use e.g. 0."
            )
        for name in ("steps", "stage1_steps"):
            value = getattr(self, name)
            if value is not None and value > MAX_STEPS:
                raise JobSpecError(
                    f"{name} is {value}, over the {MAX_STEPS} limit.", "Leave it empty for the preset's."
                )
        texts = {
            "prompt": MAX_PROMPT_CHARS,
            "negative_prompt": MAX_PROMPT_CHARS,
            "body": MAX_PATH_CHARS,
            "sd_model": MAX_PATH_CHARS,
            "controlnet_model": MAX_PATH_CHARS,
        }
        for name, limit in texts.items():
            value = getattr(self, name)
            if value is None and name in ("sd_model", "controlnet_model"):
                continue
            if not isinstance(value, str) or len(value) > limit or "\0" in value:
                raise JobSpecError(
                    f"{name.replace('_', ' ')} must be text of at most {limit} characters.",
                    "Shorten it." if isinstance(value, str) else "Send text.",
                )
        for name in ("cpu_offload", "vae_slicing", "densify"):
            if not isinstance(getattr(self, name), bool):
                raise JobSpecError(f"{name} must be true or false, not {str(getattr(self, name))[:40]}.", "")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> GenerateSpec:
        """A spec from a request; unknown keys are ignored (an older add-on or a newer one), missing
        or null ones take this schema's default."""
        if not isinstance(data, dict):
            raise JobSpecError("A job request must be a JSON object.", 'Send {"prompt": ...}.')
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)
