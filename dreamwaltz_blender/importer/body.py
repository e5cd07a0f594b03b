# SPDX-License-Identifier: GPL-3.0-or-later
"""The skinned body mesh: vertex groups + Armature modifier, shape keys for betas and expressions."""

import bpy
import numpy as np

from ..shared import module

REST_ATTRIBUTE = "dw_rest"  # position after shape keys, before skinning (stored by a modifier)
REST0_ATTRIBUTE = "dw_rest0"  # the avatar's own rest shape: displacements are measured from it
MIN_WEIGHT = 1e-6


def create_body(name: str, avatar, offset_blender: np.ndarray, armature, collection, space):
    a = avatar.arrays
    template = space.points_to_blender(a["body/template_vertices"]) + offset_blender
    faces = a["body/faces"]
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(template))
    mesh.vertices.foreach_set("co", template.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = armature

    # Vertex groups, one per joint with any weight (foreach-friendly: group.add by weight value).
    weights = a["body/skin_weights"]
    for j, joint in enumerate(avatar.joint_names):
        group = obj.vertex_groups.new(name=joint)
        column = weights[:, j]
        nonzero = np.nonzero(column > MIN_WEIGHT)[0]
        for value in np.unique(column[nonzero]):
            group.add(nonzero[column[nonzero] == value].tolist(), float(value), "REPLACE")

    add_shape_keys(
        obj, template, space.points_to_blender, a["body/shape_dirs"], avatar.shape_names, "shape", values=a["rig/betas"]
    )
    add_shape_keys(obj, None, space.points_to_blender, a["body/expression_dirs"], avatar.expression_names, "expression")

    rest0 = template + space.points_to_blender(a["body/shape_dirs"] @ a["rig/betas"].astype(np.float64))
    attr = mesh.attributes.new(REST0_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
    attr.data.foreach_set("vector", rest0.astype(np.float32).ravel())
    if "body/vertex_colors" in a:
        linear = module("color").linear_colors(
            avatar.manifest, a["body/vertex_colors"]
        )  # colour attributes are scene-linear
        colors = np.concatenate([linear, np.ones((len(template), 1))], axis=1)
        col = mesh.color_attributes.new("dw_color", "FLOAT_COLOR", "POINT")
        col.data.foreach_set("color", colors.astype(np.float32).ravel())
        mesh.color_attributes.active_color = col
    return obj


def add_shape_keys(obj, basis, to_blender, dirs: np.ndarray, names, kind: str, values=None) -> None:
    """One key per blendshape, named '<kind>:<name>'; slider value = the coefficient."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    base = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.shape_keys.key_blocks["Basis"].data.foreach_get("co", base)
    base = base.reshape(-1, 3).astype(np.float64)
    for i, name in enumerate(names):
        key = obj.shape_key_add(name=f"{kind}:{name}", from_mix=False)
        key.slider_min, key.slider_max = -10.0, 10.0
        key.data.foreach_set("co", (base + to_blender(dirs[:, :, i])).astype(np.float32).ravel())
        key.value = float(values[i]) if values is not None else 0.0
