# SPDX-License-Identifier: GPL-3.0-or-later
"""The splat object: a vertex-only proxy mesh that the node trees in nodes.py turn into splats.

Free splat i is four vertices: its centre and the centre plus each column of R diag(scale)
(the covariance's square root), all with the splat's own top-k skin weights. Mesh-bound splat
j is one vertex carrying its triangle, barycentrics and axes in the triangle's frame.

Layout: the splats first, in splat order (free centres 0..N-1, then the M mesh-bound splats), then
the free splats' axis points (splat i's at N + M + 3 i + 0..2; its centre's dw_axes_at says
where). The splat tree copies the first N + M points' data, in order, onto the points it draws
and reads only the axis points' positions.
"""

import bpy
import numpy as np

from .. import compat
from ..shared import module
from . import nodes

KIND_CENTRE, KIND_AXIS, KIND_BOUND = 0, 1, 2


def square_roots(core, log_scales, quats):
    """(N,3,3) L with L L^T = the covariance: rotation columns scaled by the standard deviations."""
    R = core.quaternion_to_matrix(quats)
    return R * np.exp(np.asarray(log_scales, dtype=np.float64))[:, None, :]


def native_dc(display_colors):
    """The DC coefficient of the display colour (3DGS files' f_dc), as Blender's own splats take it
    in radiance:base (reference/blender_native_splats.md)."""
    return ((np.asarray(display_colors, dtype=np.float64) - 0.5) / module("splat_files").SH_C0).astype(np.float32)


def create_splats(name, avatar, offset_blender, armature, body_object, collection, space, rotations, mesh=None):
    """The splat object of an avatar. ``mesh``: another avatar's splat mesh from the same file, shared
    (a crowd holds one copy of the splat data); the object's transform then moves that mesh's
    baked placement to this avatar's, and the Armature modifier skins it by this avatar's bones."""
    if mesh is None:
        mesh = build_splat_mesh(name, avatar, offset_blender, space, rotations)
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = armature
    obj.location = np.asarray(offset_blender, dtype=np.float64) - np.asarray(mesh["dreamwaltz_offset"])
    bind = obj.modifiers.new("DreamWaltz Bind", "NODES")
    bind.node_group = nodes.bind_tree()
    nodes.set_body(bind, body_object)
    skin = obj.modifiers.new("Armature", "ARMATURE")
    skin.object = armature
    skin.use_deform_preserve_volume = False
    draw = obj.modifiers.new("DreamWaltz Splats", "NODES")
    draw.node_group = nodes.splat_tree()
    nodes.set_body(draw, body_object)
    return obj


def build_splat_mesh(name, avatar, offset_blender, space, rotations):
    """The proxy mesh with every splat's attributes and skin weights (the heavy data)."""
    a = avatar.arrays
    n_free, n_bound = avatar.num_free, avatar.num_bound
    n_splats = n_free + n_bound
    L = space.matrices_to_blender(square_roots(rotations, a["free/log_scales"], a["free/quats"]))
    centres = space.points_to_blender(a["free/means"]) + offset_blender
    axis_points = centres[:, None, :] + np.transpose(L, (0, 2, 1))  # (N, 3 axes, 3)
    positions = np.concatenate([centres, np.zeros((n_bound, 3)), axis_points.reshape(-1, 3)])

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(positions))
    mesh.vertices.foreach_set("co", positions.astype(np.float32).ravel())
    mesh.update()
    mesh["dreamwaltz_offset"] = np.asarray(offset_blender, dtype=np.float64).tolist()  # baked into the centres
    mesh["dreamwaltz_draw_version"] = nodes.DRAW_VERSION  # the layout the splat tree reads

    kinds = np.concatenate([np.full(n_free, KIND_CENTRE), np.full(n_bound, KIND_BOUND), np.full(3 * n_free, KIND_AXIS)])
    axes_at = np.zeros(len(positions), dtype=np.int32)
    axes_at[:n_free] = n_splats + 3 * np.arange(n_free)

    def free_then_bound(free, bound, axis_fill=None):
        """Per-point values: the splats' own, then the axis points' (their splat's, or ``axis_fill``)."""
        free, bound = np.asarray(free), np.asarray(bound)
        axis = np.repeat(free, 3, axis=0) if axis_fill is None else np.full((3 * n_free, *free.shape[1:]), axis_fill)
        return np.concatenate([free, bound, axis.astype(free.dtype)])

    faces = a["body/faces"]
    # The bind tree moves every free point (axis points too) with the body's shape: they need the binding.
    tri = free_then_bound(faces[a["free/bind_faces"]], faces[a["bound/faces"]])
    bary = free_then_bound(a["free/bind_barycentrics"], a["bound/barycentrics"])
    local = square_roots(rotations, a["bound/log_scales"], a["bound/quats"])  # in the triangle frame
    # What is drawn is read on the splats only: the axis points carry zeros.
    # Scene-linear for the emission shader: the file's display (sRGB) colours through the sRGB EOTF.
    file_colors = free_then_bound(a["free/colors"], a["bound/colors"], 0.0)
    colors = module("color").linear_colors(avatar.manifest, file_colors)
    sigmoid = module("posing").sigmoid
    opacity = free_then_bound(sigmoid(a["free/opacity_logits"]), sigmoid(a["bound/opacity_logits"]), 0.0)
    rng = np.random.default_rng(0)
    random = free_then_bound(rng.random(n_free), rng.random(n_bound), 0.0)

    def put(attr_name, kind, values, key):
        attr = mesh.attributes.new(attr_name, kind, "POINT")
        attr.data.foreach_set(key, np.ascontiguousarray(values).ravel())

    put("dw_kind", "INT", kinds.astype(np.int32), "value")
    put("dw_axes_at", "INT", axes_at, "value")
    for c in range(3):
        put(f"dw_i{c}", "INT", tri[:, c].astype(np.int32), "value")
    put("dw_bary", "FLOAT_VECTOR", bary.astype(np.float32), "vector")
    for j in range(3):
        axis = np.zeros((len(positions), 3), dtype=np.float32)
        axis[n_free:n_splats] = local[:, :, j]
        put(f"dw_ax{j + 1}", "FLOAT_VECTOR", axis, "vector")
    put("dw_color", "FLOAT_VECTOR", colors.astype(np.float32), "vector")
    put("dw_opacity", "FLOAT", opacity.astype(np.float32), "value")
    if compat.HAS_NATIVE_SPLATS:
        display = module("color").display_colors(avatar.manifest, file_colors)
        put("dw_dc", "FLOAT_VECTOR", native_dc(display), "vector")
    put("dw_random", "FLOAT", random.astype(np.float32), "value")

    # Skin the free proxies with their own top-k weights (one call per splat and joint). Vertex
    # groups are made through an object but live on the mesh: every object using it has them.
    holder = bpy.data.objects.new(name, mesh)
    groups = [holder.vertex_groups.new(name=joint) for joint in avatar.joint_names]
    joints, weights = a["free/skin_joints"], a["free/skin_weights"]
    for i in range(n_free):
        ids = [i, n_splats + 3 * i, n_splats + 3 * i + 1, n_splats + 3 * i + 2]
        for k in range(joints.shape[1]):
            if weights[i, k] > 0.0:
                groups[joints[i, k]].add(ids, float(weights[i, k]), "REPLACE")

    bpy.data.objects.remove(holder)
    return mesh
