"""Shared, CPU-sized stage-1 set-up for the stage-1 tests: the open body in the A-pose and one
body-initialised field, fitted once per test process into a private cache directory."""

from __future__ import annotations

import copy
import tempfile
from functools import lru_cache
from pathlib import Path

from dreamwaltz.presets import stage1_config
from dreamwaltz.stage1 import body_initialised_field, canonical_body
from dreamwaltz.stage1.field import FieldConfig

CACHE = Path(tempfile.mkdtemp(prefix="dw-stage1-cache-"))


def small_config(**overrides):
    base = dict(
        steps=6,
        schedule=((0.0, 24), (0.5, 32)),
        samples=32,
        init_steps=200,
        init_rays=1024,
        checkpoint_every=2,
        preview_every=3,
        preview_size=32,
        field=FieldConfig(levels=12, log2_table=15, max_res=1024, occupancy_res=32),
    )
    base.update(overrides)
    return stage1_config("tiny", **base)


@lru_cache(maxsize=1)
def _setup():
    from dreamwaltz.body import BodyModel

    body = BodyModel.load("open")
    cb = canonical_body(body)
    cfg = small_config()
    field = body_initialised_field(cb, cfg, CACHE, seed=0)
    return body, cb, cfg, field


def setup():
    """(body, canonical body, config, a fresh copy of the body-initialised field)."""
    body, cb, cfg, field = _setup()
    return body, cb, cfg, copy.deepcopy(field)
