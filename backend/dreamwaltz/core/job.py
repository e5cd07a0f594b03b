"""The generation job: one schema for the CLI, the job server and the Blender add-on.

Pure Python (the add-on reads it too). Each field has one default here; the CLI's flags, the
server's request model and the add-on's panel all build a ``GenerateSpec`` and send
``spec.to_dict()``, so the same settings make the same job wherever they were typed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .errors import DreamWaltzError

PRESET_NAMES = ("tiny", "preview", "paper")
DEFAULT_PRESET = "preview"  # a real run; `tiny` is the CPU check of the set-up
# Diffusion networks' precision. auto = bf16 on GPUs that have it (Ampere and newer), else fp32;
# fp16 halves memory on older cards but SDS gradients can overflow in it.
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
# SDS timestep weighting w(t): uniform = 1 (the paper's), sds = 1 - alpha_bar(t) (DreamFusion's),
# snr = sqrt(alpha_bar (1 - alpha_bar)).
SDS_WEIGHTINGS = ("uniform", "sds", "snr")
GENDERS = ("neutral", "male", "female")
DEVICES = ("auto", "cpu", "cuda")


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
    sd_model: Optional[str] = None
    controlnet_model: Optional[str] = None
    # For 12-24 GB cards: UNet, ControlNet and text encoder leave the GPU between uses; the VAE
    # encodes one render at a time. Slower, same result.
    cpu_offload: bool = False
    vae_slicing: bool = False
    precision: str = "auto"
    sds_weighting: str = "uniform"
    # Stage 2 grows free Gaussians where detail is missing and prunes transparent ones (gsplat's
    # 3DGS rules), up to twice the preset's count.
    densify: bool = False
    steps: Optional[int] = None  # override the preset's stage-2 step count
    # Stage 1 (the canonical NeRF) steps: None = the preset's count; 0 skips stage 1, and stage 2
    # then starts from the body surface.
    stage1_steps: Optional[int] = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> "GenerateSpec":
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise JobSpecError("The prompt is empty.", "Describe the avatar, e.g. 'a knight in armor'.")
        self.prompt = self.prompt.strip()
        self.negative_prompt = self.negative_prompt or ""
        choices = {"preset": PRESET_NAMES, "precision": PRECISIONS, "sds_weighting": SDS_WEIGHTINGS,
                   "gender": GENDERS, "device": DEVICES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise JobSpecError(f"Unknown {name.replace('_', ' ')} {value!r}.", f"Choose one of: {', '.join(allowed)}.")
        for name in ("steps", "stage1_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise JobSpecError(f"{name} must be a whole number >= 0, not {value!r}.", "Leave it empty for the preset's.")
        try:
            if len(self.betas) > 400:
                raise ValueError
            self.betas = [float(b) for b in self.betas]
        except (TypeError, ValueError):
            raise JobSpecError("betas must be a list of at most 400 numbers.", "Leave it empty for the average body.") from None
        return self

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateSpec":
        """A spec from a request; unknown keys are ignored (an older add-on or a newer one), missing
        or null ones take this schema's default."""
        if not isinstance(data, dict):
            raise JobSpecError("A job request must be a JSON object.", "Send {\"prompt\": ...}.")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)
