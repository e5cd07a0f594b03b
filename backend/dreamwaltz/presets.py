"""The quality presets: every number of a run, per preset, in one place.

``paper`` follows DreamWaltz-G (arXiv 2409.17145) and the authors' published settings: stage 1,
10k SkelSD iterations with the render size growing 64 -> 256 then 5k at 512; stage 2, three 5k
phases at 512; SD 1.5 + ControlNet openpose, CFG 50, t ~ U[0.02, 0.98], w(t) = 1.
docs/TRAINING.md compares each number with the paper's. ``preview`` is a shorter real run for a
24 GB card; ``tiny`` runs on any CPU in minutes with the tiny local models (it checks the
machinery, not the looks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .core.errors import DreamWaltzError
from .core.job import PRESET_NAMES
from .guidance.presets import GuidanceConfig
from .stage1.field import FieldConfig
from .stage1.presets import Stage1Config
from .stage2.config import Stage2Config


@dataclass(frozen=True)
class Preset:
    name: str
    guidance: GuidanceConfig
    stage1: Stage1Config
    stage2: Stage2Config


PRESETS = {
    "tiny": Preset(
        "tiny",
        GuidanceConfig(resolution=64, guidance_scale=7.5, models="tiny"),
        Stage1Config(),
        Stage2Config(steps=40, resolution=64, batch=1, num_free=3000, num_bound=1000),
    ),
    "preview": Preset(
        "preview",
        GuidanceConfig(),
        Stage1Config(
            steps=3000,
            schedule=((0.0, 64), (0.3, 128), (0.6, 256)),
            samples=96,
            batch=4,
            checkpoint_every=500,
            preview_every=250,
            log_every=10,
            preview_size=512,
            export_resolution=192,
            init_steps=1000,
            init_size=128,
            init_rays=8192,
            field=FieldConfig(log2_table=19, max_res=2048, occupancy_res=64),
        ),
        Stage2Config(
            steps=3000,
            resolution=512,
            batch=4,
            num_free=60000,
            num_bound=10000,
            checkpoint_every=500,
            preview_every=250,
            log_every=10,
        ),
    ),
    "paper": Preset(
        "paper",
        GuidanceConfig(),
        Stage1Config(
            steps=15000,
            schedule=((0.0, 64), (0.2, 128), (0.4, 256), (2 / 3, 512)),
            samples=128,
            batch=4,
            checkpoint_every=1000,
            preview_every=500,
            log_every=10,
            preview_size=512,
            export_resolution=256,
            init_steps=2000,
            init_size=256,
            init_rays=16384,
            field=FieldConfig(log2_table=19, max_res=2048, occupancy_res=128),
        ),
        Stage2Config(
            steps=15000,
            resolution=512,
            batch=4,
            num_free=100000,
            num_bound=20000,
            checkpoint_every=1000,
            preview_every=500,
            log_every=10,
        ),
    ),
}
assert tuple(PRESETS) == PRESET_NAMES  # the job schema's choices are these presets


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise DreamWaltzError(f"Unknown preset {name!r}.", f"Choose {', '.join(PRESETS)}.")
    return PRESETS[name]


def stage1_config(name: str, **overrides) -> Stage1Config:
    return replace(get_preset(name).stage1, **overrides)


def stage2_config(name: str, **overrides) -> Stage2Config:
    return replace(get_preset(name).stage2, **overrides)
