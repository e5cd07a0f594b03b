# SPDX-License-Identifier: GPL-3.0-or-later
"""A 3DGS scene as a static splat object: one point per splat, drawn by nodes.splat_draw_tree.

The points stay in the file's own frame; the object's transform carries the up-axis change and
the scale, so the spherical harmonics (defined in the file's frame) are evaluated toward the
camera in that same frame by nodes.scene_splat_tree.
"""

import bpy
import mathutils
import numpy as np

from . import nodes
from ..shared import module

# Blender is +Z up. Rows map file coordinates to Blender's.
UP_AXES = {
    "Y": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # +Y up: glTF, SMPL-X, SPZ (RUB), dreamwaltz export
    "-Y": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # -Y up: COLMAP / OpenCV, most 3DGS captures
    "Z": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # +Z up: Blender's own
}


def create_scene_splats(name, cloud, collection, up_axis="Y", scale=1.0):
    h3ga = module("h3ga")
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
    put("dw_color", "FLOAT_VECTOR", h3ga.srgb_to_linear(cloud.colors), "vector")  # the DC colour, scene-linear
    put("dw_opacity", "FLOAT", cloud.opacities, "value")
    put("dw_random", "FLOAT", np.random.default_rng(0).random(n), "value")
    k = cloud.sh_rest.shape[1]
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
    draw.node_group = nodes.scene_splat_tree(k)
    obj["dreamwaltz_role"] = "scene_splats"
    obj["dreamwaltz_sh_degree"] = cloud.sh_degree
    return obj
