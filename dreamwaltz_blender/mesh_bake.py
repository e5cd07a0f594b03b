# SPDX-License-Identifier: GPL-3.0-or-later
"""Avatar > Bake Textured Mesh: the avatar as a textured mesh on its own armature, for Blender's
FBX and glTF exporters (game engines, VTubing apps).

The bake runs in the local backend (``dreamwaltz export --format mesh-glb``: the splats' surface
and colours by rays, numpy and scipy that Blender does not ship); the mesh comes back through
Blender's own glTF importer (texture, UVs, vertex groups, expression shape keys) and is moved onto
the avatar's armature. All or nothing: on any error nothing new stays in the scene.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
import numpy as np

from .avatar import ROLE, Avatar
from .importer import space
from .importer.body import REST0_ATTRIBUTE
from .shared import module

errors = module("errors")
MESH_ROLE = "baked_mesh"


def _rest0_smplx(avatar_file) -> np.ndarray:
    a = avatar_file.arrays
    return a["body/template_vertices"].astype(np.float64) + a["body/shape_dirs"] @ a["rig/betas"].astype(np.float64)


def bake_mesh(avatar: Avatar, texture_size: int = 2048, python=None):
    """A new mesh object: ``avatar`` baked by the local backend (the preferences' Backend Python,
    or ``python``), skinned by the avatar's armature (Armature modifier, vertex groups by joint),
    its texture packed into the .blend, the expression shape keys kept. Returns the object."""
    from .backend import local

    source = avatar.armature.get("dreamwaltz_file")
    if not source or not Path(bpy.path.abspath(source)).is_file():
        raise errors.DreamWaltzError(
            f"The avatar's .h3ga file ({source or 'none recorded'}) is not on disk.",
            "Import the avatar again from its .h3ga file.",
        )
    source = bpy.path.abspath(source)
    with tempfile.TemporaryDirectory() as tmp:
        glb = Path(tmp) / "baked.glb"
        local.run_for_file(
            ["export", source, "--format", "mesh-glb", "--texture", texture_size, "--out", glb],
            glb,
            "bake the mesh",
            python,
            "Install Backend in the DreamWaltz preferences, or run `dreamwaltz export A.h3ga --format mesh-glb "
            "--out A.glb` where the backend is and import that.",
        )
        return _attach(avatar, glb, source)


def _attach(avatar: Avatar, glb: Path, source: str):
    before = set(bpy.data.objects)
    try:
        result = bpy.ops.import_scene.gltf(filepath=str(glb))
        if "FINISHED" not in result:
            raise errors.DreamWaltzError("Blender's glTF importer could not read the baked mesh.", "")
        new = [o for o in bpy.data.objects if o not in before]
        # The skinned mesh (recent glTF importers also add a bone-display shape, an unskinned mesh).
        meshes = [o for o in new if o.type == "MESH" and any(m.type == "ARMATURE" for m in o.modifiers)]
        if len(meshes) != 1:
            raise errors.DreamWaltzError(f"The baked file held {len(meshes)} meshes, not one.", "")
        obj = meshes[0]
        for image in bpy.data.images:
            if image.users and not image.packed_file and image.source == "FILE":
                image.pack()  # the temporary file goes away; the texture stays in the .blend
        # Where the avatar's body sits in its armature's space: the body's stored rest shape
        # against the same shape computed from the file (the import offset).
        avatar_file = module("h3ga").read_h3ga(source)
        rest0 = np.empty(len(avatar.body.data.vertices) * 3, np.float32)
        avatar.body.data.attributes[REST0_ATTRIBUTE].data.foreach_get("vector", rest0)
        offset = (rest0.reshape(-1, 3)[0] - space.points_to_blender(_rest0_smplx(avatar_file)[:1])[0]).astype(
            np.float64
        )
        world = np.array(obj.matrix_world, dtype=np.float64)
        co = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3] + offset  # glTF importer's space -> armature's
        obj.data.vertices.foreach_set("co", co.astype(np.float32).ravel())
        if obj.data.shape_keys is not None:
            for key in obj.data.shape_keys.key_blocks:
                kc = np.empty(len(key.data) * 3, np.float32)
                key.data.foreach_get("co", kc)
                key.data.foreach_set("co", (kc.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3] + offset).ravel())
        obj.data.update()
        for collection in list(obj.users_collection):
            collection.objects.unlink(obj)
        avatar.collection.objects.link(obj)
        obj.parent = avatar.armature
        obj.matrix_parent_inverse.identity()
        obj.matrix_basis.identity()
        for mod in list(obj.modifiers):
            obj.modifiers.remove(mod)
        mod = obj.modifiers.new("Armature", "ARMATURE")
        mod.object = avatar.armature
        _follow_expressions(obj, avatar.body)
        obj.name = f"{avatar.armature.name} baked mesh"
        obj[ROLE] = MESH_ROLE
        for other in new:
            if other is not obj:
                bpy.data.objects.remove(other, do_unlink=True)
        return obj
    except Exception:
        for other in [o for o in bpy.data.objects if o not in before]:
            bpy.data.objects.remove(other, do_unlink=True)
        raise


def _follow_expressions(obj, body) -> None:
    """Name the baked mesh's expression keys as the body's ('expression:<name>') and drive each
    by the body's key, so the panel's expression sliders move both."""
    if obj.data.shape_keys is None or body.data.shape_keys is None:
        return
    body_keys = body.data.shape_keys.key_blocks
    for key in obj.data.shape_keys.key_blocks[1:]:
        name = f"expression:{key.name}"
        if name not in body_keys:
            continue
        key.name = name
        key.slider_min, key.slider_max = body_keys[name].slider_min, body_keys[name].slider_max
        curve = key.driver_add("value")
        var = curve.driver.variables.new()
        var.type = "SINGLE_PROP"
        var.targets[0].id_type = "KEY"
        var.targets[0].id = body.data.shape_keys
        var.targets[0].data_path = f'key_blocks["{name}"].value'
        curve.driver.expression = var.name


class DREAMWALTZ_OT_bake_mesh(bpy.types.Operator):
    """Bake the active avatar into a textured mesh on its armature (for FBX / glTF export to game engines)"""

    bl_idname = "dreamwaltz.bake_mesh"
    bl_label = "Bake Textured Mesh"
    bl_options = {"REGISTER", "UNDO"}

    texture_size: bpy.props.EnumProperty(
        name="Texture",
        items=[("1024", "1024", ""), ("2048", "2048", ""), ("4096", "4096", "")],
        default="2048",
    )

    @classmethod
    def poll(cls, context):
        return context.active_object is not None

    def execute(self, context):
        try:
            avatar = Avatar.from_object(context.active_object)
            obj = bake_mesh(avatar, int(self.texture_size))
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked '{obj.name}' ({len(obj.data.polygons):,} triangles): File > Export > FBX or glTF")
        return {"FINISHED"}


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_bake_mesh)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_OT_bake_mesh)
