# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene settings the DreamWaltz panel edits (saved with the .blend)."""

import bpy
from bpy.props import EnumProperty, IntProperty, PointerProperty, StringProperty


class DreamWaltzSceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="Describe the avatar, e.g. 'a knight in armor'")
    negative_prompt: StringProperty(name="Negative", description="What the avatar should not look like")
    preset: EnumProperty(
        name="Quality",
        items=(
            ("tiny", "Tiny (test)", "Tiny random models on the CPU: checks the set-up, minutes"),
            ("preview", "Preview", "A short real run on a GPU"),
            ("paper", "Paper", "The paper's full schedule on a GPU"),
        ),
        default="preview",
    )
    seed: IntProperty(name="Seed", default=0, min=0)


def register():
    bpy.utils.register_class(DreamWaltzSceneSettings)
    bpy.types.Scene.dreamwaltz = PointerProperty(type=DreamWaltzSceneSettings)


def unregister():
    del bpy.types.Scene.dreamwaltz
    bpy.utils.unregister_class(DreamWaltzSceneSettings)
