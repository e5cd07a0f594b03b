# SPDX-License-Identifier: GPL-3.0-or-later
"""A 3DGS scene as a static splat object: one point per splat, drawn by nodes.splat_draw_tree.

The points stay in the file's own frame; the object's transform carries the up-axis change and
the scale, so the spherical harmonics (defined in the file's frame) are evaluated toward the
camera in that same frame by nodes.scene_splat_tree.
"""

import bpy
import mathutils
import numpy as np

from .. import compat
from ..shared import module
from . import nodes

# Blender is +Z up. Rows map file coordinates to Blender's.
UP_AXES = {
    "Y": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # +Y up: glTF, SMPL-X, SPZ (RUB), dreamwaltz export
    "-Y": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # -Y up: COLMAP / OpenCV, most 3DGS captures
    "Z": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # +Z up: Blender's own
}


def create_scene_splats(name, cloud, collection, up_axis="Y", scale=1.0):
    color = module("color")
    n = len(cloud)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(n)
    mesh.vertices.foreach_set("co", cloud.means.astype(np.float32).ravel())

    def put(attr_name, kind, values, key):
        attr = mesh.attributes.new(attr_name, kind, "POINT")
        attr.data.foreach_set(key, np.ascontiguousarray(values, dtype=np.float32).ravel())

    L = cloud.covariance_square_roots()
    for j in range(3):
        put(f"dw_axis{j + 1}", "FLOAT_VECTOR", L[:, :, j], "vector")
    put("dw_color", "FLOAT_VECTOR", color.srgb_to_linear(cloud.colors), "vector")  # the DC colour, scene-linear
    put("dw_opacity", "FLOAT", cloud.opacities, "value")
    put("dw_random", "FLOAT", np.random.default_rng(0).random(n), "value")
    k = cloud.sh_rest.shape[1]
    if compat.HAS_NATIVE_SPLATS:  # Blender draws the SH itself, in the object's frame
        put("dw_dc", "FLOAT_VECTOR", cloud.sh_dc, "vector")
        for i in range(k):
            put(f"radiance:sh_{i}", "FLOAT_VECTOR", cloud.sh_rest[:, i], "vector")
    if k:
        put("dw_sh0", "FLOAT_VECTOR", 0.5 + module("splat_files").SH_C0 * cloud.sh_dc.astype(np.float64), "vector")
        for i in range(k):
            put(f"dw_sh{i + 1}", "FLOAT_VECTOR", cloud.sh_rest[:, i], "vector")
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    rotation = np.array(UP_AXES[up_axis]) * float(scale)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    obj.matrix_world = mathutils.Matrix([list(row) for row in matrix])  # rows
    draw = obj.modifiers.new("DreamWaltz Splats", "NODES")
    draw.node_group = nodes.scene_splat_tree(0 if compat.HAS_NATIVE_SPLATS else k)
    obj["dreamwaltz_role"] = "scene_splats"
    obj["dreamwaltz_sh_degree"] = cloud.sh_degree
    return obj


def is_native_cloud(obj) -> bool:
    """A splat scene in Blender's own form (5.3+): a point cloud of type 'GAUSSIAN_SPLAT', as File >
    Import > .ply / .spz makes it. (The add-on's own imports are meshes drawn by its nodes.)"""
    return obj.type == "POINTCLOUD" and getattr(obj.data, "type", None) == "GAUSSIAN_SPLAT"


def cloud_points(cloud, attributes=None) -> dict:
    """The points of a Blender splat cloud (5.3+: the add-on's evaluated splats, or Blender's own
    import) in its object's frame: means (n,3), axes (n,3,3; columns rotation times linear scale)
    and each of ``attributes`` ({name: (foreach property, width)})."""
    n = 0 if cloud is None else len(cloud.points)

    def read(name, prop, width):
        data = np.empty(n * width, dtype=np.float32)
        if n:
            cloud.attributes[name].data.foreach_get(prop, data)
        return (data.reshape(n, width) if width > 1 else data).astype(np.float64)

    R = module("rotations").quaternion_to_matrix(read("rotation", "value", 4))
    points = {"means": read("position", "vector", 3), "axes": R * read("scale", "vector", 3)[:, None, :]}
    points.update({name: read(name, prop, width) for name, (prop, width) in (attributes or {}).items()})
    return points


def native_cloud_arrays(cloud) -> dict:
    """A splat cloud Blender's own importer made: cloud_points plus DC display colours (n,3),
    opacities (n,) and sh_rest (n,K,3) from its radiance attributes."""
    names = {a.name for a in cloud.attributes}
    k = 0
    while f"radiance:sh_{k}" in names:
        k += 1
    rest = {f"radiance:sh_{i}": ("vector", 3) for i in range(k)}
    points = cloud_points(cloud, {"radiance:base": ("vector", 4), **rest})
    base = points.pop("radiance:base")
    sh_rest = [points.pop(name) for name in rest]
    return {
        **points,
        "colors": 0.5 + module("splat_files").SH_C0 * base[:, :3],
        "opacities": base[:, 3],
        "sh_rest": np.stack(sh_rest, axis=1) if sh_rest else np.zeros((len(base), 0, 3)),
    }
