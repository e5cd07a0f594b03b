# SPDX-License-Identifier: GPL-3.0-or-later
"""File > Import > DreamWaltz Avatar (.h3ga)."""

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ImportHelper


class DREAMWALTZ_OT_import_h3ga(bpy.types.Operator, ImportHelper):
    """Import a DreamWaltz avatar: armature, skinned body mesh and skinned Gaussian splats"""

    bl_idname = "import_scene.dreamwaltz_h3ga"
    bl_label = "Import DreamWaltz Avatar"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".h3ga"
    filter_glob: StringProperty(default="*.h3ga", options={"HIDDEN"})
    set_view_transform: BoolProperty(
        name="Set View Transform to Standard",
        description="Show the avatar's colours as trained: set the scene's colour management to the Standard view "
                    "transform (no look, exposure 0, gamma 1). On by default for the first avatar in a scene",
        default=False)

    def invoke(self, context, event):
        from . import api

        if not self.properties.is_property_set("set_view_transform"):
            self.set_view_transform = not api.scene_has_avatar(context.scene)
        return super().invoke(context, event)

    def execute(self, context):
        from . import api
        from .shared import module

        errors = module("errors")
        try:
            api.import_avatar(self.filepath, set_view_transform=self.set_view_transform)
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        if self.set_view_transform:
            self.report({"INFO"}, "Set the scene's view transform to Standard: avatar colours show as trained.")
        else:
            warning = api.view_transform_warning(context.scene)
            if warning:
                self.report({"WARNING"}, warning)
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(DREAMWALTZ_OT_import_h3ga.bl_idname, text="DreamWaltz Avatar (.h3ga)")


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_import_h3ga)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    bpy.utils.unregister_class(DREAMWALTZ_OT_import_h3ga)
