# SPDX-License-Identifier: GPL-3.0-or-later
"""File > Import > DreamWaltz Avatar (.h3ga) and 3D Gaussian Splats (.ply, .spz, .splat)."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
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
        default=False,
    )

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


class DREAMWALTZ_OT_import_splats(bpy.types.Operator, ImportHelper):
    """Import a 3D Gaussian splatting scene (standard or compressed .ply, .spz, .splat) as a static splat object"""

    bl_idname = "import_scene.dreamwaltz_splats"
    bl_label = "Import 3D Gaussian Splats"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply;*.spz;*.splat", options={"HIDDEN"})
    up_axis: EnumProperty(
        name="Up Axis",
        default="Y",
        items=[
            ("Y", "+Y", "Y up: SPZ files, glTF, DreamWaltz exports"),
            ("-Y", "-Y", "Y down: COLMAP / OpenCV captures, the output of most 3DGS training"),
            ("Z", "+Z", "Z up, as Blender"),
        ],
    )
    scale: FloatProperty(name="Scale", default=1.0, min=1e-6, soft_max=100.0)
    viewport_density: FloatProperty(
        name="Viewport Density",
        default=1.0,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="Fraction of the splats shown in the viewport (renders show all); lower it for millions of splats",
    )

    def execute(self, context):
        from . import api
        from .shared import module

        errors = module("errors")
        try:
            obj = api.import_splat_scene(self.filepath, up_axis=self.up_axis, scale=self.scale)
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        api.set_viewport_density(obj, self.viewport_density)
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(DREAMWALTZ_OT_import_h3ga.bl_idname, text="DreamWaltz Avatar (.h3ga)")
    self.layout.operator(DREAMWALTZ_OT_import_splats.bl_idname, text="3D Gaussian Splats (.ply, .spz, .splat)")


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_import_h3ga)
    bpy.utils.register_class(DREAMWALTZ_OT_import_splats)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    bpy.utils.unregister_class(DREAMWALTZ_OT_import_splats)
    bpy.utils.unregister_class(DREAMWALTZ_OT_import_h3ga)
