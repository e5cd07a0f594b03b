# SPDX-License-Identifier: GPL-3.0-or-later
"""File > Export > 3D Gaussian Splats (.ply): the selected avatar's splats at the current frame.
File > Export > DreamWaltz Avatar (.glb): glTF 2.0 with KHR_gaussian_splatting, the current frame
or the skinned avatar with its armature's action (core/gltf.py; docs/EXPORT.md)."""

from pathlib import Path
from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, StringProperty
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
            module("splat_writers").write_gaussian_ply(self.filepath, means, covs, colours, opacities)
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(means)} splats to {self.filepath}")
        return {"FINISHED"}


class DREAMWALTZ_OT_export_gltf(bpy.types.Operator, ExportHelper):
    """Export the selected DreamWaltz avatar as glTF 2.0 (.glb) with Gaussian splats: the current frame, or the skinned avatar with its armature's action over the scene's frame range"""

    bl_idname = "export_scene.dreamwaltz_glb"
    bl_label = "Export DreamWaltz Avatar (glTF)"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})
    animated: BoolProperty(
        name="Animation",
        default=True,
        description="The skinned avatar (skeleton, body, splats) with the armature's action over "
        "the scene's frame range; off: the splats at the current frame",
    )
    with_body: BoolProperty(
        name="Body Mesh", default=True, description="Include the skinned body mesh (animation only)"
    )

    @classmethod
    def poll(cls, context):
        return DREAMWALTZ_OT_export_splats.poll(context)

    def execute(self, context):
        from . import api
        from .importer import space

        errors, gltf = module("errors"), module("gltf")
        scene = context.scene
        try:
            avatar = api.Avatar.from_object(context.active_object)
            if self.animated:
                source = Path(avatar.armature.get("dreamwaltz_file", ""))
                if not source.is_file():
                    raise errors.DreamWaltzError(
                        f"The avatar's file '{source}' is not there any more.",
                        "Import the avatar again from its .h3ga file.",
                    )
                data = module("h3ga").read_h3ga(source)
                full_pose, transl, frames = avatar.sampled_motion(scene)
                action = avatar.armature.animation_data.action if avatar.armature.animation_data else None
                gltf.write_animated_glb(
                    self.filepath,
                    data,
                    full_pose,
                    transl,
                    scene.render.fps / scene.render.fps_base,
                    name=action.name if action else "pose",
                    with_body=self.with_body,
                )
                message = f"Wrote the skinned avatar with {len(frames)} frames to {self.filepath}"
            else:
                means, covs, colours, opacities = api.evaluated_splats(avatar, context.evaluated_depsgraph_get())
                posed = SimpleNamespace(
                    means=space.points_to_smplx(means),
                    covariances=space.matrices_to_smplx(covs),
                    colors=colours,
                    opacities=opacities,
                )
                gltf.write_posed_glb(self.filepath, posed)
                message = f"Wrote {len(means)} splats to {self.filepath}"
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class DREAMWALTZ_OT_export_scene(bpy.types.Operator, ExportHelper):
    """Export the scene for `dreamwaltz render-scene`: avatars with their placements, shapes and motions, splat scenes, the camera per frame"""

    bl_idname = "export_scene.dreamwaltz_scene"
    bl_label = "Export DreamWaltz Scene"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        from . import api

        errors = module("errors")
        try:
            api.export_scene(self.filepath, context.scene)
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {self.filepath}: render it with `dreamwaltz render-scene`")
        return {"FINISHED"}


def menu_export_scene(self, context):
    self.layout.operator(DREAMWALTZ_OT_export_scene.bl_idname, text="DreamWaltz Scene (.json)")


def menu_export(self, context):
    self.layout.operator(DREAMWALTZ_OT_export_splats.bl_idname, text="3D Gaussian Splats (.ply)")


def menu_export_gltf(self, context):
    self.layout.operator(DREAMWALTZ_OT_export_gltf.bl_idname, text="DreamWaltz Avatar with Splats (.glb)")


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_export_splats)
    bpy.utils.register_class(DREAMWALTZ_OT_export_gltf)
    bpy.utils.register_class(DREAMWALTZ_OT_export_scene)
    bpy.types.TOPBAR_MT_file_export.append(menu_export)
    bpy.types.TOPBAR_MT_file_export.append(menu_export_gltf)
    bpy.types.TOPBAR_MT_file_export.append(menu_export_scene)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(menu_export_scene)
    bpy.types.TOPBAR_MT_file_export.remove(menu_export_gltf)
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)
    bpy.utils.unregister_class(DREAMWALTZ_OT_export_scene)
    bpy.utils.unregister_class(DREAMWALTZ_OT_export_gltf)
    bpy.utils.unregister_class(DREAMWALTZ_OT_export_splats)
