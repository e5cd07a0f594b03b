# SPDX-License-Identifier: GPL-3.0-or-later
"""Node trees built from Python: rest-shape store, splat binding, splat instancing, splat material.

Why node trees: Blender has no built-in Gaussian splat type, and no splat add-on deforms splat
shapes with bones. Free splats are skinned by Blender's own Armature modifier through a
4-point proxy (centre + 3 scaled axis points, identical weights), so the deformed axes give the
deformed covariance exactly (LBS applies one blended matrix to all four points). Mesh-bound
splats are rebuilt every frame from the evaluated body's triangles, so they follow pose, shape
and expression keys. Each splat is drawn as a unit ico-sphere transformed by its axes, with a
material whose opacity is the Gaussian's line integral: exp(-b^2 / 2), b the ray's distance to
the centre in the splat's own (whitened) space.
"""

import bpy

from .. import compat

EXTENT_SIGMA = 3.0  # the instanced sphere reaches 3 standard deviations
REST_TREE = "DreamWaltz Rest Shape"
BIND_TREE = "DreamWaltz Splat Bind"
SPLAT_TREE = "DreamWaltz Splats"
SPLAT_MATERIAL = "DreamWaltz Splat"


class Builder:
    """Terse node creation and linking."""

    def __init__(self, tree):
        self.tree = tree
        self.x = 0

    def node(self, kind, inputs=None, **props):
        n = self.tree.nodes.new(kind)
        n.location = (self.x, 0)
        self.x += 30
        for key, value in props.items():
            setattr(n, key, value)
        for key, value in (inputs or {}).items():
            sock = n.inputs[key]
            if isinstance(value, bpy.types.NodeSocket):
                self.tree.links.new(value, sock)
            else:
                sock.default_value = value
        return n

    def link(self, out, inp):
        self.tree.links.new(out, inp)

    # conveniences
    def attr(self, name, data_type="FLOAT_VECTOR"):
        return self.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type=data_type).outputs["Attribute"]

    def vmath(self, op, a, b=None, scale=None):
        n = self.node("ShaderNodeVectorMath", operation=op)
        self.link(a, n.inputs[0]) if isinstance(a, bpy.types.NodeSocket) else setattr(n.inputs[0], "default_value", a)
        if b is not None:
            self.link(b, n.inputs[1]) if isinstance(b, bpy.types.NodeSocket) else setattr(n.inputs[1], "default_value", b)
        if scale is not None:
            self.link(scale, n.inputs["Scale"]) if isinstance(scale, bpy.types.NodeSocket) else setattr(n.inputs["Scale"], "default_value", scale)
        return n.outputs["Vector"] if "Vector" in n.outputs and op != "DOT_PRODUCT" else n.outputs["Value"]

    def sample(self, geometry, value, index, data_type="FLOAT_VECTOR"):
        n = self.node("GeometryNodeSampleIndex", data_type=data_type, domain="POINT")
        self.link(geometry, n.inputs["Geometry"])
        self.link(value, n.inputs["Value"])
        self.link(index, n.inputs["Index"])
        return n.outputs["Value"]

    def compare_int(self, a, b, op="EQUAL"):
        n = self.node("FunctionNodeCompare", data_type="INT", operation=op)
        self.link(a, n.inputs[2]) if isinstance(a, bpy.types.NodeSocket) else setattr(n.inputs[2], "default_value", a)
        n.inputs[3].default_value = b
        return n.outputs["Result"]

    def switch(self, kind, condition, if_false, if_true):
        n = self.node("GeometryNodeSwitch", input_type=kind)
        self.link(condition, n.inputs["Switch"])
        self.link(if_false, n.inputs["False"])
        self.link(if_true, n.inputs["True"])
        return n.outputs["Output"]


def _new_geometry_tree(name, extra_inputs=()):
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    for socket_name, socket_type, default in extra_inputs:
        sock = tree.interface.new_socket(socket_name, in_out="INPUT", socket_type=socket_type)
        if default is not None:
            sock.default_value = default
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    b = Builder(tree)
    group_in = b.node("NodeGroupInput")
    group_out = b.node("NodeGroupOutput")
    return tree, b, group_in, group_out


def rest_shape_tree():
    """Body: remember the shape-keyed rest position (before skinning) as an attribute."""
    tree, b, gin, gout = _new_geometry_tree(REST_TREE)
    store = b.node("GeometryNodeStoreNamedAttribute", {"Geometry": gin.outputs["Geometry"], "Name": "dw_rest"},
                   data_type="FLOAT_VECTOR", domain="POINT")
    b.link(b.node("GeometryNodeInputPosition").outputs["Position"], store.inputs["Value"])
    b.link(store.outputs["Geometry"], gout.inputs["Geometry"])
    return tree


def _body_corners(b, body_geometry, value):
    """Barycentric blend over the bind triangle of ``value`` sampled on the body."""
    bary = b.attr("dw_bary")
    sep = b.node("ShaderNodeSeparateXYZ", {"Vector": bary})
    total = None
    corners = []
    for c, axis in enumerate("XYZ"):
        v = b.sample(body_geometry, value, b.attr(f"dw_i{c}", "INT"))
        corners.append(v)
        term = b.vmath("SCALE", v, scale=sep.outputs[axis])
        total = term if total is None else b.vmath("ADD", total, term)
    return total, corners


def bind_tree(body_object):
    """Splats, before skinning: move free splats with the body's shape and expression keys."""
    tree, b, gin, gout = _new_geometry_tree(BIND_TREE)
    body = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
    body.inputs["Object"].default_value = body_object
    displacement = b.vmath("SUBTRACT", b.attr("dw_rest"), b.attr("dw_rest0"))
    offset, _ = _body_corners(b, body.outputs["Geometry"], displacement)
    is_free = b.compare_int(b.attr("dw_kind", "INT"), 2, "NOT_EQUAL")
    setpos = b.node("GeometryNodeSetPosition", {"Geometry": gin.outputs["Geometry"], "Selection": is_free, "Offset": offset})
    b.link(setpos.outputs["Geometry"], gout.inputs["Geometry"])
    return tree


def splat_tree(body_object, material):
    """Splats, after skinning: place mesh-bound splats, then instance one ellipsoid per splat."""
    tree, b, gin, gout = _new_geometry_tree(SPLAT_TREE, [("Viewport Density", "NodeSocketFloat", 1.0)])
    geometry = gin.outputs["Geometry"]
    kind = b.attr("dw_kind", "INT")
    is_bound = b.compare_int(kind, 2)
    index = b.node("GeometryNodeInputIndex").outputs["Index"]
    position = b.node("GeometryNodeInputPosition").outputs["Position"]

    # Mesh-bound: the point and orthonormal frame of the posed, shaped, expressed body triangle.
    body = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
    body.inputs["Object"].default_value = body_object
    body_pos = b.node("GeometryNodeInputPosition").outputs["Position"]
    point, (v0, v1, v2) = _body_corners(b, body.outputs["Geometry"], body_pos)
    edge1 = b.vmath("SUBTRACT", v1, v0)
    e1 = b.vmath("NORMALIZE", edge1)
    normal = b.vmath("NORMALIZE", b.vmath("CROSS_PRODUCT", edge1, b.vmath("SUBTRACT", v2, v0)))
    e2 = b.vmath("CROSS_PRODUCT", normal, e1)
    bound_axes = []
    for j in (1, 2, 3):
        sep = b.node("ShaderNodeSeparateXYZ", {"Vector": b.attr(f"dw_ax{j}")})
        axis = b.vmath("ADD", b.vmath("ADD", b.vmath("SCALE", e1, scale=sep.outputs["X"]),
                                      b.vmath("SCALE", e2, scale=sep.outputs["Y"])),
                       b.vmath("SCALE", normal, scale=sep.outputs["Z"]))
        bound_axes.append(axis)

    # Free: axis j is proxy point (index + j) minus the centre, after the Armature modifier.
    axes = []
    for j in (1, 2, 3):
        free_axis = b.vmath("SUBTRACT", b.sample(geometry, position, compat.integer_add(b, index, j)), position)
        axes.append(b.switch("VECTOR", is_bound, free_axis, bound_axes[j - 1]))
    stored = geometry
    for j, axis in enumerate(axes, start=1):
        store = b.node("GeometryNodeStoreNamedAttribute", {"Geometry": stored, "Name": f"dw_axis{j}"},
                       data_type="FLOAT_VECTOR", domain="POINT")
        b.link(axis, store.inputs["Value"])
        stored = store.outputs["Geometry"]
    placed = b.node("GeometryNodeSetPosition", {"Geometry": stored, "Selection": is_bound, "Position": point})

    # Which points become splats: centres and bound points, thinned in the viewport only.
    is_axis_point = b.compare_int(kind, 1)
    keep = b.node("FunctionNodeBooleanMath", {0: is_axis_point}, operation="NOT").outputs[0]
    thin = b.node("ShaderNodeMath", {0: b.attr("dw_random", "FLOAT"), 1: gin.outputs["Viewport Density"]}, operation="LESS_THAN")
    viewport = b.node("GeometryNodeIsViewport").outputs[0]
    not_viewport = b.node("FunctionNodeBooleanMath", {0: viewport}, operation="NOT").outputs[0]
    shown = b.node("FunctionNodeBooleanMath", {0: not_viewport, 1: thin.outputs[0]}, operation="OR").outputs[0]
    selection = b.node("FunctionNodeBooleanMath", {0: keep, 1: shown}, operation="AND").outputs[0]

    sphere = b.node("GeometryNodeMeshIcoSphere", {"Radius": 1.0, "Subdivisions": 2})
    with_material = b.node("GeometryNodeSetMaterial", {"Geometry": sphere.outputs["Mesh"], "Material": material})
    instances = b.node("GeometryNodeInstanceOnPoints", {"Points": placed.outputs["Geometry"], "Selection": selection,
                                                        "Instance": with_material.outputs["Geometry"]})
    matrix = b.node("FunctionNodeCombineMatrix")
    for j in (1, 2, 3):
        sep = b.node("ShaderNodeSeparateXYZ", {"Vector": b.vmath("SCALE", b.attr(f"dw_axis{j}"), scale=EXTENT_SIGMA)})
        for r, axis in enumerate("XYZ", start=1):
            b.link(sep.outputs[axis], matrix.inputs[f"Column {j} Row {r}"])
    sep = b.node("ShaderNodeSeparateXYZ", {"Vector": b.node("GeometryNodeInputPosition").outputs["Position"]})
    for r, axis in enumerate("XYZ", start=1):
        b.link(sep.outputs[axis], matrix.inputs[f"Column 4 Row {r}"])
    transform = b.node("GeometryNodeSetInstanceTransform", {"Instances": instances.outputs["Instances"],
                                                           "Transform": matrix.outputs["Matrix"]})
    b.link(transform.outputs["Instances"], gout.inputs["Geometry"])
    return tree


def splat_material():
    """Emission of the splat's colour, with alpha = opacity * exp(-b^2 / 2) (see module docstring)."""
    mat = bpy.data.materials.new(SPLAT_MATERIAL)
    mat.use_nodes = True
    if hasattr(mat, "surface_render_method"):
        mat.surface_render_method = "BLENDED"  # Eevee (4.2+): true alpha blending
    mat.use_backface_culling = True
    tree = mat.node_tree
    tree.nodes.clear()
    b = Builder(tree)
    out = b.node("ShaderNodeOutputMaterial")
    color = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="dw_color")
    opacity = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="dw_opacity")
    coords = b.node("ShaderNodeTexCoord").outputs["Object"]
    geometry = b.node("ShaderNodeNewGeometry")
    incoming = b.node("ShaderNodeVectorTransform", {"Vector": geometry.outputs["Incoming"]},
                      vector_type="VECTOR", convert_from="WORLD", convert_to="OBJECT").outputs["Vector"]
    direction = b.vmath("NORMALIZE", incoming)
    along = b.vmath("DOT_PRODUCT", coords, direction)
    length2 = b.vmath("DOT_PRODUCT", coords, coords)
    along2 = b.node("ShaderNodeMath", {0: along, 1: along}, operation="MULTIPLY").outputs[0]
    b2 = b.node("ShaderNodeMath", {0: length2, 1: along2}, operation="SUBTRACT").outputs[0]
    exponent = b.node("ShaderNodeMath", {0: b2, 1: -0.5 * EXTENT_SIGMA ** 2}, operation="MULTIPLY").outputs[0]
    falloff = b.node("ShaderNodeMath", {0: exponent}, operation="EXPONENT").outputs[0]
    alpha = b.node("ShaderNodeMath", {0: falloff, 1: opacity.outputs["Fac"]}, operation="MULTIPLY").outputs[0]
    front = b.node("ShaderNodeMath", {0: 1.0, 1: geometry.outputs["Backfacing"]}, operation="SUBTRACT").outputs[0]
    alpha = b.node("ShaderNodeMath", {0: alpha, 1: front}, operation="MULTIPLY", use_clamp=True).outputs[0]
    emission = b.node("ShaderNodeEmission", {"Color": color.outputs["Color"], "Strength": 1.0})
    transparent = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader", {"Fac": alpha, 1: transparent.outputs[0], 2: emission.outputs[0]})
    b.link(mix.outputs[0], out.inputs["Surface"])
    return mat
