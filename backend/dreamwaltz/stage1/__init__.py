"""Stage 1: the canonical (A-pose) avatar as a hash-grid radiance field anchored to the body."""

from .body import CanonicalBody, body_initialised_field, canonical_body
from .export import export_points
from .field import FieldConfig, RadianceField, render_image
from .presets import Stage1Config
from .train import Stage1Result, run_stage1, train_stage1

__all__ = [
    "CanonicalBody",
    "FieldConfig",
    "RadianceField",
    "Stage1Config",
    "Stage1Result",
    "body_initialised_field",
    "canonical_body",
    "export_points",
    "render_image",
    "run_stage1",
    "train_stage1",
]
