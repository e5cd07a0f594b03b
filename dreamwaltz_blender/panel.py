# SPDX-License-Identifier: GPL-3.0-or-later
"""The "DreamWaltz" tab in the 3D viewport's sidebar."""

import bpy


class DREAMWALTZ_PT_main(bpy.types.Panel):
    bl_label = "DreamWaltz"
    bl_idname = "DREAMWALTZ_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DreamWaltz"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.dreamwaltz
        layout.prop(settings, "prompt")
        layout.prop(settings, "negative_prompt")
        layout.prop(settings, "preset")
        layout.prop(settings, "seed")
        layout.operator("import_scene.dreamwaltz_h3ga", text="Import Avatar…", icon="IMPORT")


def register():
    bpy.utils.register_class(DREAMWALTZ_PT_main)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_PT_main)
