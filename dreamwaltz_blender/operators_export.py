# SPDX-License-Identifier: GPL-3.0-or-later
"""File > Export > 3D Gaussian Splats (.ply): the selected avatar's splats at the current frame."""

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper

from .shared import module


class DREAMWALTZ_OT_export_splats(bpy.types.Operator, ExportHelper):
    """Export the posed splats of the selected DreamWaltz avatar (current frame, world space, Z up)"""

    bl_idname = "export_scene.dreamwaltz_splats"
    bl_label = "Export 3D Gaussian Splats"
    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and (obj.get("dreamwaltz_role") or (obj.parent and obj.parent.get("dreamwaltz_role")))

    def execute(self, context):
        from . import api

        errors = module("errors")
        try:
            avatar = api.Avatar.from_object(context.active_object)
            means, covs, colours, opacities = api.evaluated_splats(avatar, context.evaluated_depsgraph_get())
            module("ply").write_gaussian_ply(self.filepath, means, covs, colours, opacities)
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(means)} splats to {self.filepath}")
        return {"FINISHED"}


def menu_export(self, context):
    self.layout.operator(DREAMWALTZ_OT_export_splats.bl_idname, text="3D Gaussian Splats (.ply)")


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_export_splats)
    bpy.types.TOPBAR_MT_file_export.append(menu_export)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)
    bpy.utils.unregister_class(DREAMWALTZ_OT_export_splats)
