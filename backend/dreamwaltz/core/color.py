"""Colour spaces of the avatar's colours, and the sRGB transfer functions: pure numpy.

The colour arrays of a ``.h3ga`` file (`free/colors`, `bound/colors`, `body/vertex_colors`) are in
the colour space its manifest field `color_space` names (docs/FORMAT.md).
"""

from __future__ import annotations

import numpy as np

# Colour spaces of the colour arrays (`free/colors`, `bound/colors`, `body/vertex_colors`), manifest
# field `color_space`. Stage 2 trains linear light (render.AVATAR_RENDER) and writes "linear"; files
# written before it did hold display values (the trainer rendered them straight into images).
# A file without the field was written before the field existed, by that older trainer, and is
# read as "srgb" (docs/FORMAT.md).
COLOR_SPACE_SRGB = "srgb"
COLOR_SPACE_LINEAR = "linear"
COLOR_SPACES = (COLOR_SPACE_SRGB, COLOR_SPACE_LINEAR)
LEGACY_COLOR_SPACE = COLOR_SPACE_SRGB


def color_space(manifest: dict) -> str:
    """The colour space of the file's colours: its `color_space` field, or "srgb" for older files."""
    return manifest.get("color_space", LEGACY_COLOR_SPACE)


def srgb_to_linear(values) -> np.ndarray:
    """The sRGB EOTF (IEC 61966-2-1), per channel: display value -> linear light (float64)."""
    c = np.asarray(values, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values) -> np.ndarray:
    """The inverse of ``srgb_to_linear``: linear light -> display value (float64)."""
    c = np.asarray(values, dtype=np.float64)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.maximum(c, 0.0031308) ** (1.0 / 2.4) - 0.055)


def display_colors(manifest: dict, colors) -> np.ndarray:
    """The file's colours as display (sRGB) values: what renders and 3DGS .ply files hold."""
    return (
        linear_to_srgb(colors) if color_space(manifest) == COLOR_SPACE_LINEAR else np.asarray(colors, dtype=np.float64)
    )


def linear_colors(manifest: dict, colors) -> np.ndarray:
    """The file's colours as linear light (Blender's scene-linear, emitted as they are)."""
    return srgb_to_linear(colors) if color_space(manifest) == COLOR_SPACE_SRGB else np.asarray(colors, dtype=np.float64)
