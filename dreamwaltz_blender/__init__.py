# SPDX-License-Identifier: GPL-3.0-or-later
"""DreamWaltz for Blender: text -> expressive, animatable 3D Gaussian avatars (DreamWaltz-G).

The add-on runs in Blender's own Python: bpy, mathutils and numpy only. Generation happens in a
separate backend process (local or remote), reached over HTTP with a token.
"""

import importlib

# Submodules that define Blender classes, in registration order. Each has register()/unregister().
_MODULE_NAMES = (
    "preferences",
    "properties",
    "operators_import",
    "operators_export",
    "mesh_bake",
    "jobs",
    "motion",
    "reenact",
    "panel",
)
_modules = []


def register():
    _modules.clear()
    for name in _MODULE_NAMES:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register()
        _modules.append(module)


def unregister():
    for module in reversed(_modules):
        module.unregister()
    _modules.clear()
