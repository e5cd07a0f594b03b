# SPDX-License-Identifier: GPL-3.0-or-later
"""Node trees built from Python: rest-shape store, splat binding, splat instancing, splat material.

Why node trees: Blender has no built-in Gaussian splat type, and no splat add-on deforms splat
shapes with bones. Free splats are skinned by Blender's own Armature modifier through a
4-point proxy (centre + 3 scaled axis points, identical weights), so the deformed axes give the
deformed covariance exactly (LBS applies one blended matrix to all four points). Mesh-bound
splats are rebuilt every frame from the evaluated body's triangles, so they follow pose, shape
and expression keys. One drawing path (splat_draw_tree) then draws every splat, an avatar's or
a 3DGS scene's: in the viewport a unit ico-sphere transformed by its axes, whose material's
opacity is the Gaussian's line integral exp(-b^2 / 2) (b the ray's whitened distance to the
centre); in renders a camera-facing card through the centre with the Gaussian's projected
footprint, ordered by centre depth as 3DGS orders splats.
"""

import bpy

from .. import compat

EXTENT_SIGMA = 3.0  # the instanced sphere or card reaches 3 standard deviations
REST_TREE = "DreamWaltz Rest Shape"
BIND_TREE = "DreamWaltz Splat Bind"
SPLAT_TREE = "DreamWaltz Splats"
SPLAT_MATERIAL = "DreamWaltz Splat"
CARD_MATERIAL = "DreamWaltz Splat Card"
DRAW_TREE = "DreamWaltz Splat Draw"
DRAW_VERSION = 6  # bump when the draw tree changes: files keep the tree they were made with


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
            self.link(b, n.inputs[1]) if isinstance(b, bpy.types.NodeSocket) else setattr(
                n.inputs[1], "default_value", b
            )
        if scale is not None:
            self.link(scale, n.inputs["Scale"]) if isinstance(scale, bpy.types.NodeSocket) else setattr(
                n.inputs["Scale"], "default_value", scale
            )
        return n.outputs["Value"] if op in ("DOT_PRODUCT", "LENGTH", "DISTANCE") else n.outputs["Vector"]

    def sample(self, geometry, value, index, data_type="FLOAT_VECTOR"):
        n = self.node("GeometryNodeSampleIndex", data_type=data_type, domain="POINT")
        self.link(geometry, n.inputs["Geometry"])
        self.link(value, n.inputs["Value"])
        self.link(index, n.inputs["Index"])
        return n.outputs["Value"]

    def compare_int(self, a, b, op="EQUAL"):
        n = self.node("FunctionNodeCompare", data_type="INT", operation=op)
        first, second = compat.compare_inputs(n)
        self.link(a, first) if isinstance(a, bpy.types.NodeSocket) else setattr(first, "default_value", a)
        second.default_value = b
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


def _shared(name):
    """The file's tree of that name when it was built by this drawing version (trees are shared by
    every avatar: a crowd has one copy of each), else None."""
    # A file made by an older add-on keeps its trees under the plain name; ours are then "<name>.001".
    return next(
        (
            tree
            for tree in bpy.data.node_groups
            if (tree.name == name or tree.name.startswith(name + "."))
            and tree.get("dreamwaltz_draw_version") == DRAW_VERSION
        ),
        None,
    )


def _new_shared_tree(name, extra_inputs=()):
    tree, b, gin, gout = _new_geometry_tree(name, extra_inputs)
    tree["dreamwaltz_draw_version"] = DRAW_VERSION
    return tree, b, gin, gout


def input_identifier(mod, name: str) -> str:
    """The identifier of a node modifier's input called ``name`` (``compat.set_modifier_input`` sets it)."""
    return next(
        item.identifier
        for item in mod.node_group.interface.items_tree
        if getattr(item, "in_out", "INPUT") == "INPUT" and getattr(item, "name", "") == name
    )


def set_body(mod, body_object) -> None:
    """Point a splat modifier (bind or draw tree) at its avatar's body."""
    compat.set_modifier_input(mod, input_identifier(mod, "Body"), body_object)


def _body_info(b, gin):
    body = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
    b.link(gin.outputs["Body"], body.inputs["Object"])
    return body


def rest_shape_tree():
    """Body: remember the shape-keyed rest position (before skinning) as an attribute."""
    tree = _shared(REST_TREE)
    if tree is not None:
        return tree
    tree, b, gin, gout = _new_shared_tree(REST_TREE)
    store = b.node(
        "GeometryNodeStoreNamedAttribute",
        {"Geometry": gin.outputs["Geometry"], "Name": "dw_rest"},
        data_type="FLOAT_VECTOR",
        domain="POINT",
    )
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


def bind_tree():
    """Splats, before skinning: move free splats with the body's shape and expression keys (its
    modifier's Body input: ``set_body``)."""
    tree = _shared(BIND_TREE)
    if tree is not None:
        return tree
    tree, b, gin, gout = _new_shared_tree(BIND_TREE, [("Body", "NodeSocketObject", None)])
    body = _body_info(b, gin)
    displacement = b.vmath("SUBTRACT", b.attr("dw_rest"), b.attr("dw_rest0"))
    offset, _ = _body_corners(b, body.outputs["Geometry"], displacement)
    is_free = b.compare_int(b.attr("dw_kind", "INT"), 2, "NOT_EQUAL")
    setpos = b.node(
        "GeometryNodeSetPosition", {"Geometry": gin.outputs["Geometry"], "Selection": is_free, "Offset": offset}
    )
    # At the file's shape and a neutral face nothing moves (up to float rounding of the shape keys'
    # mix, well under the 10 um allowed): the Switch then skips the sampling (three body corners for
    # every proxy point: 8 ms of a 100k-splat frame, measured).
    moved = b.node(
        "GeometryNodeAttributeStatistic",
        {"Geometry": body.outputs["Geometry"], "Attribute": b.vmath("LENGTH", displacement)},
        data_type="FLOAT",
        domain="POINT",
    ).outputs["Max"]
    is_moved = _math(b, "GREATER_THAN", moved, 1e-5)
    b.link(b.switch("GEOMETRY", is_moved, gin.outputs["Geometry"], setpos.outputs["Geometry"]), gout.inputs["Geometry"])
    return tree


def splat_tree():
    """Splats, after skinning: place mesh-bound splats on the body (the modifier's Body input:
    ``set_body``), store every splat's axes, then draw them."""
    tree = _shared(SPLAT_TREE)
    if tree is not None:
        return tree
    tree, b, gin, gout = _new_shared_tree(
        SPLAT_TREE, [("Viewport Density", "NodeSocketFloat", 1.0), ("Body", "NodeSocketObject", None)]
    )
    proxy = gin.outputs["Geometry"]
    kind = b.attr("dw_kind", "INT")
    # The splats are the proxy's first points (importer/splats.py), gathered onto new points with
    # the attributes drawing needs: turning the proxy into points would carry its vertex groups
    # along, one dense attribute per joint (measured: 30 ms more per 100k frame).
    is_axis_point = b.compare_int(kind, 1)
    n_splats = b.node(
        "GeometryNodeAttributeStatistic",
        {"Geometry": proxy, "Attribute": _math(b, "SUBTRACT", 1.0, is_axis_point)},
        data_type="FLOAT",
        domain="POINT",
    ).outputs["Sum"]
    index = b.node("GeometryNodeInputIndex").outputs["Index"]
    proxy_position = b.node("GeometryNodeInputPosition").outputs["Position"]
    points = b.node("GeometryNodePoints", {"Count": n_splats, "Position": b.sample(proxy, proxy_position, index)})
    kind_store = b.node(
        "GeometryNodeStoreNamedAttribute",
        {"Geometry": points.outputs["Points"], "Name": "dw_kind"},
        data_type="INT",
        domain="POINT",
    )
    b.link(b.sample(proxy, kind, index, "INT"), kind_store.inputs["Value"])
    gathered = kind_store.outputs["Geometry"]
    # Read from the stored kind: a sampled field would be gathered again by every node that uses it.
    is_bound = b.compare_int(b.attr("dw_kind", "INT"), 2)
    is_free = b.node("FunctionNodeBooleanMath", {0: is_bound}, operation="NOT").outputs[0]
    # The binding (triangle, barycentrics, axes in its frame) only for the mesh-bound splats: a
    # store with a selection evaluates its field there alone (a tenth of the splats, typically).
    for name, data_type, selection in (
        ("dw_axes_at", "INT", is_free),
        ("dw_i0", "INT", is_bound),
        ("dw_i1", "INT", is_bound),
        ("dw_i2", "INT", is_bound),
        ("dw_bary", "FLOAT_VECTOR", is_bound),
        ("dw_ax1", "FLOAT_VECTOR", is_bound),
        ("dw_ax2", "FLOAT_VECTOR", is_bound),
        ("dw_ax3", "FLOAT_VECTOR", is_bound),
        ("dw_color", "FLOAT_VECTOR", None),
        ("dw_opacity", "FLOAT", None),
        ("dw_random", "FLOAT", None),
    ) + ((("dw_dc", "FLOAT_VECTOR", None),) if compat.HAS_NATIVE_SPLATS else ()):
        store = b.node(
            "GeometryNodeStoreNamedAttribute",
            {"Geometry": gathered, "Name": name},
            data_type=data_type,
            domain="POINT",
        )
        b.link(b.sample(proxy, b.attr(name, data_type), index, data_type), store.inputs["Value"])
        if selection is not None:
            b.link(selection, store.inputs["Selection"])
        gathered = store.outputs["Geometry"]
    position = b.node("GeometryNodeInputPosition").outputs["Position"]

    # Mesh-bound: the point and orthonormal frame of the posed, shaped, expressed body triangle.
    body = _body_info(b, gin)
    body_pos = b.node("GeometryNodeInputPosition").outputs["Position"]
    point, (v0, v1, v2) = _body_corners(b, body.outputs["Geometry"], body_pos)
    edge1 = b.vmath("SUBTRACT", v1, v0)
    e1 = b.vmath("NORMALIZE", edge1)
    normal = b.vmath("NORMALIZE", b.vmath("CROSS_PRODUCT", edge1, b.vmath("SUBTRACT", v2, v0)))
    e2 = b.vmath("CROSS_PRODUCT", normal, e1)
    bound_axes = []
    for j in (1, 2, 3):
        sep = b.node("ShaderNodeSeparateXYZ", {"Vector": b.attr(f"dw_ax{j}")})
        bound_axes.append(
            b.vmath(
                "ADD",
                b.vmath(
                    "ADD", b.vmath("SCALE", e1, scale=sep.outputs["X"]), b.vmath("SCALE", e2, scale=sep.outputs["Y"])
                ),
                b.vmath("SCALE", normal, scale=sep.outputs["Z"]),
            )
        )

    # Free: axis j is its axis point minus the centre, after the Armature modifier. Each kind's axes
    # are evaluated on its own splats only (a Switch would evaluate both on all).
    stored = gathered
    axes_at = b.attr("dw_axes_at", "INT")
    for j in (1, 2, 3):
        free_axis = b.vmath(
            "SUBTRACT", b.sample(proxy, proxy_position, _math(b, "ADD", axes_at, float(j - 1))), position
        )
        for axis, selection in ((free_axis, is_free), (bound_axes[j - 1], is_bound)):
            store = b.node(
                "GeometryNodeStoreNamedAttribute",
                {"Geometry": stored, "Name": f"dw_axis{j}", "Selection": selection},
                data_type="FLOAT_VECTOR",
                domain="POINT",
            )
            b.link(axis, store.inputs["Value"])
            stored = store.outputs["Geometry"]
    placed = b.node("GeometryNodeSetPosition", {"Geometry": stored, "Selection": is_bound, "Position": point})

    draw = b.node("GeometryNodeGroup", node_tree=splat_draw_tree())
    b.link(placed.outputs["Geometry"], draw.inputs["Geometry"])
    b.link(gin.outputs["Viewport Density"], draw.inputs["Viewport Density"])
    b.link(draw.outputs["Geometry"], gout.inputs["Geometry"])
    return tree


def _matrix(b, columns, translation):
    """A 4x4 transform from three column vectors and a translation (all vector sockets)."""
    matrix = b.node("FunctionNodeCombineMatrix")
    for j, column in enumerate(list(columns) + [translation], start=1):
        if not isinstance(column, bpy.types.NodeSocket):
            for r, value in enumerate(column, start=1):
                matrix.inputs[f"Column {j} Row {r}"].default_value = value
            continue
        sep = b.node("ShaderNodeSeparateXYZ", {"Vector": column})
        for r, axis in enumerate("XYZ", start=1):
            b.link(sep.outputs[axis], matrix.inputs[f"Column {j} Row {r}"])
    return matrix.outputs["Matrix"]


def _math(b, op, x, y=None):
    n = b.node("ShaderNodeMath", operation=op)
    for i, value in enumerate((x, y)):
        if value is None:
            continue
        if isinstance(value, bpy.types.NodeSocket):
            b.link(value, n.inputs[i])
        else:
            n.inputs[i].default_value = value
    return n.outputs[0]


def _card_transform(b, position, axes):
    """The camera-facing card of a Gaussian with covariance A A^T (A's columns ``axes``).

    The card lies through the centre, perpendicular to the direction d from the scene camera,
    and carries the marginal covariance C = [u v]^T A A^T [u v] of the plane (u, v) orthogonal to
    d: seen from the camera, to first order, exactly the 2D Gaussian 3DGS rasterizes (its
    Jacobian J has d in its null space, so J A A^T J^T = J P A A^T P^T J^T). Columns: the 3-sigma
    extent of the Cholesky factor of C along u and v, then d (any non-zero length; the card is flat).
    """
    camera = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
    b.link(b.node("GeometryNodeInputActiveCamera").outputs[0], camera.inputs["Object"])
    d = b.vmath("NORMALIZE", b.vmath("SUBTRACT", position, camera.outputs["Location"]))
    # Any unit u orthogonal to d: cross with +Z unless d is nearly vertical, then with +X.
    d_z = b.node("ShaderNodeSeparateXYZ", {"Vector": d}).outputs["Z"]
    vertical = _math(b, "GREATER_THAN", _math(b, "ABSOLUTE", d_z), 0.9)
    up_node = b.node("GeometryNodeSwitch", input_type="VECTOR")
    b.link(vertical, up_node.inputs["Switch"])
    up_node.inputs["False"].default_value = (0.0, 0.0, 1.0)
    up_node.inputs["True"].default_value = (1.0, 0.0, 0.0)
    u = b.vmath("NORMALIZE", b.vmath("CROSS_PRODUCT", up_node.outputs["Output"], d))
    v = b.vmath("CROSS_PRODUCT", d, u)

    def along(direction):  # (direction . a1, direction . a2, direction . a3)
        combine = b.node("ShaderNodeCombineXYZ")
        for axis, column in zip("XYZ", axes):
            b.link(b.vmath("DOT_PRODUCT", direction, column), combine.inputs[axis])
        return combine.outputs["Vector"]

    p, q = along(u), along(v)
    c_uu, c_uv, c_vv = b.vmath("DOT_PRODUCT", p, p), b.vmath("DOT_PRODUCT", p, q), b.vmath("DOT_PRODUCT", q, q)
    l11 = _math(b, "SQRT", _math(b, "MAXIMUM", c_uu, 1e-20))
    l21 = _math(b, "DIVIDE", c_uv, l11)
    l22 = _math(b, "SQRT", _math(b, "MAXIMUM", _math(b, "SUBTRACT", c_vv, _math(b, "MULTIPLY", l21, l21)), 1e-20))
    first = b.vmath("ADD", b.vmath("SCALE", u, scale=l11), b.vmath("SCALE", v, scale=l21))
    columns = [
        b.vmath("SCALE", first, scale=EXTENT_SIGMA),
        b.vmath("SCALE", v, scale=_math(b, "MULTIPLY", l22, EXTENT_SIGMA)),
        b.vmath("SCALE", d, scale=l11),
    ]
    return _matrix(b, columns, position)


def splat_draw_tree():
    """Points -> splats: the one drawing path for avatar splats and scene splats.

    Each point carries its centre (position), dw_axis1..3 (a square root of its covariance),
    dw_color (scene-linear), dw_opacity and dw_random. In the viewport a splat is an ellipsoid
    (view-independent, so it looks right from any viewport angle); in renders it is a card
    facing the scene camera through its centre, so splats are ordered by centre depth like 3DGS
    (issue 23: a sphere's front surface put large splats in front of small ones inside them)
    and each costs one transparent hit. The tree is shared by every splat object in the file.
    """
    tree = _shared(DRAW_TREE)
    if tree is not None:
        return tree
    tree, b, gin, gout = _new_shared_tree(
        DRAW_TREE, [("Selection", "NodeSocketBool", True), ("Viewport Density", "NodeSocketFloat", 1.0)]
    )
    if compat.HAS_NATIVE_SPLATS:
        _native_draw(b, gin, gout)
        return tree
    position = b.node("GeometryNodeInputPosition").outputs["Position"]
    axes = [b.attr(f"dw_axis{j}") for j in (1, 2, 3)]

    # Thinned in the viewport only (a display aid for dense avatars and scenes).
    selection = _viewport_thinning(b, gin)
    viewport = b.node("GeometryNodeIsViewport").outputs[0]

    def instanced(shape, material, transform):
        with_material = b.node("GeometryNodeSetMaterial", {"Geometry": shape, "Material": material})
        instances = b.node(
            "GeometryNodeInstanceOnPoints",
            {"Points": gin.outputs["Geometry"], "Selection": selection, "Instance": with_material.outputs["Geometry"]},
        )
        return b.node(
            "GeometryNodeSetInstanceTransform", {"Instances": instances.outputs["Instances"], "Transform": transform}
        ).outputs["Instances"]

    sphere = b.node("GeometryNodeMeshIcoSphere", {"Radius": 1.0, "Subdivisions": 2}).outputs["Mesh"]
    ellipsoids = instanced(
        sphere, splat_material(), _matrix(b, [b.vmath("SCALE", a, scale=EXTENT_SIGMA) for a in axes], position)
    )
    quad = b.node("GeometryNodeMeshGrid", {"Size X": 2.0, "Size Y": 2.0, "Vertices X": 2, "Vertices Y": 2}).outputs[
        "Mesh"
    ]
    cards = instanced(quad, splat_card_material(), _card_transform(b, position, axes))
    b.link(b.switch("GEOMETRY", viewport, cards, ellipsoids), gout.inputs["Geometry"])
    return tree


def _viewport_thinning(b, gin):
    """Selection of the splats shown: all in renders, the Viewport Density fraction in the viewport."""
    thin = b.node(
        "ShaderNodeMath", {0: b.attr("dw_random", "FLOAT"), 1: gin.outputs["Viewport Density"]}, operation="LESS_THAN"
    )
    viewport = b.node("GeometryNodeIsViewport").outputs[0]
    not_viewport = b.node("FunctionNodeBooleanMath", {0: viewport}, operation="NOT").outputs[0]
    shown = b.node("FunctionNodeBooleanMath", {0: not_viewport, 1: thin.outputs[0]}, operation="OR").outputs[0]
    return b.node("FunctionNodeBooleanMath", {0: gin.outputs["Selection"], 1: shown}, operation="AND").outputs[0]


def _native_draw(b, gin, gout):
    """Points -> Blender's own Gaussian splats (5.3+): a 'GAUSSIAN_SPLAT' point cloud.

    A splat's deformed axes A (columns dw_axis1..3; for a skinned splat the blended bone matrix
    times its rest axes) give its covariance A A^T. A blended matrix is not a rotation times a
    scale, so the splat's rotation is the Gram-Schmidt frame of its axes (e1 along a1, e2 along a2's
    part orthogonal to it, e3 = e1 x e2) and its scales the axes' lengths: exact wherever one bone
    (or a mesh triangle) moves the splat, and where bones blend, 62 dB against the exact covariance
    in the backend's render at the fidelity test's poses (46 dB at an extreme pose; docs/BLENDER.md).
    Blender's Matrix SVD gives the exact U S^2 U^T, but a 100k-splat frame took 235-249 ms with it
    against 72-79 ms with this fit (docs/BENCHMARKS.md).
    radiance:base (and radiance:sh_*) come with the points from the proxy."""
    geometry = gin.outputs["Geometry"]
    # Points as they come (an avatar's splat tree makes a point cloud); a mesh's vertices (a splat
    # scene) become points first. The Switch runs only the branch it takes: joining a point cloud to
    # nothing would copy every point each frame.
    as_points = b.node("GeometryNodeMeshToPoints", {"Mesh": geometry}).outputs["Points"]
    parts = b.node("GeometryNodeSeparateComponents", {"Geometry": geometry})
    joined = b.node("GeometryNodeJoinGeometry")
    b.link(parts.outputs["Point Cloud"], joined.inputs[0])
    b.link(as_points, joined.inputs[0])
    vertices = b.node("GeometryNodeAttributeDomainSize", {"Geometry": geometry}, component="MESH")
    has_mesh = b.compare_int(vertices.outputs["Point Count"], 0, "GREATER_THAN")
    points = b.switch("GEOMETRY", has_mesh, geometry, joined.outputs[0])
    hidden = b.node("FunctionNodeBooleanMath", {0: _viewport_thinning(b, gin)}, operation="NOT").outputs[0]
    shown = b.node("GeometryNodeDeleteGeometry", {"Geometry": points, "Selection": hidden}, domain="POINT").outputs[0]

    a1, a2, a3 = (b.attr(f"dw_axis{j}") for j in (1, 2, 3))
    # Axes to Rotation is that Gram-Schmidt frame, in one node.
    rotation = b.node(
        "FunctionNodeAxesToRotation", {"Primary Axis": a1, "Secondary Axis": a2}, primary_axis="X", secondary_axis="Y"
    ).outputs["Rotation"]
    lengths = b.node("ShaderNodeCombineXYZ")
    for axis, column in zip("XYZ", (a1, a2, a3)):
        b.link(b.vmath("LENGTH", column), lengths.inputs[axis])
    stored = shown
    # radiance:base (DC coefficient, opacity): a FLOAT4 Blender's splats read; built here as an
    # RGBA colour (no node makes or samples a FLOAT4 field), which the attribute converts exactly.
    dc = b.node("ShaderNodeSeparateXYZ", {"Vector": b.attr("dw_dc")})
    base = b.node("FunctionNodeCombineColor")
    for channel, axis in zip(("Red", "Green", "Blue"), "XYZ"):
        b.link(dc.outputs[axis], base.inputs[channel])
    b.link(b.attr("dw_opacity", "FLOAT"), base.inputs["Alpha"])
    for name, data_type, value in (
        ("rotation", "QUATERNION", rotation),
        ("scale", "FLOAT_VECTOR", lengths.outputs["Vector"]),
        ("radiance:base", "FLOAT_COLOR", base.outputs["Color"]),
    ):
        store = b.node(
            "GeometryNodeStoreNamedAttribute", {"Geometry": stored, "Name": name}, data_type=data_type, domain="POINT"
        )
        b.link(value, store.inputs["Value"])
        stored = store.outputs["Geometry"]
    splats = b.node("GeometryNodePointsSetType", {"Points": stored})
    splats.inputs["Type"].default_value = "3D Gaussian Splat"
    b.link(splats.outputs[0], gout.inputs["Geometry"])


def _sh_basis(b, x, y, z, count):
    """The first ``count`` real SH basis values beyond DC (3DGS's order; core/splat_files.sh_basis)."""
    from ..shared import module

    files = module("splat_files")
    SH_C1, SH_C2, SH_C3 = files.SH_C1, files.SH_C2, files.SH_C3
    mul = lambda *factors: _product(b, factors)
    xx, yy, zz = mul(x, x), mul(y, y), mul(z, z)
    terms = [
        lambda: mul(-SH_C1, y),
        lambda: mul(SH_C1, z),
        lambda: mul(-SH_C1, x),
        lambda: mul(SH_C2[0], x, y),
        lambda: mul(SH_C2[1], y, z),
        lambda: mul(SH_C2[2], _math(b, "SUBTRACT", _math(b, "SUBTRACT", mul(2.0, zz), xx), yy)),
        lambda: mul(SH_C2[3], x, z),
        lambda: mul(SH_C2[4], _math(b, "SUBTRACT", xx, yy)),
        lambda: mul(SH_C3[0], y, _math(b, "SUBTRACT", mul(3.0, xx), yy)),
        lambda: mul(SH_C3[1], x, y, z),
        lambda: mul(SH_C3[2], y, _math(b, "SUBTRACT", _math(b, "SUBTRACT", mul(4.0, zz), xx), yy)),
        lambda: mul(SH_C3[3], z, _math(b, "SUBTRACT", _math(b, "SUBTRACT", mul(2.0, zz), mul(3.0, xx)), mul(3.0, yy))),
        lambda: mul(SH_C3[4], x, _math(b, "SUBTRACT", _math(b, "SUBTRACT", mul(4.0, zz), xx), yy)),
        lambda: mul(SH_C3[5], z, _math(b, "SUBTRACT", xx, yy)),
        lambda: mul(SH_C3[6], x, _math(b, "SUBTRACT", xx, mul(3.0, yy))),
    ]
    return [make() for make in terms[:count]]


def _product(b, factors):
    sockets = [f for f in factors if isinstance(f, bpy.types.NodeSocket)]
    constant = 1.0
    for f in factors:
        if not isinstance(f, bpy.types.NodeSocket):
            constant *= f
    out = sockets[0]
    for f in sockets[1:]:
        out = _math(b, "MULTIPLY", out, f)
    return _math(b, "MULTIPLY", out, constant) if constant != 1.0 else out


def _srgb_to_linear(b, value):
    """The sRGB EOTF per channel of a vector field (core/color.srgb_to_linear)."""
    sep = b.node("ShaderNodeSeparateXYZ", {"Vector": value})
    combine = b.node("ShaderNodeCombineXYZ")
    for axis in "XYZ":
        c = _math(b, "MAXIMUM", sep.outputs[axis], 0.0)
        low = _math(b, "DIVIDE", c, 12.92)
        high = _math(b, "POWER", _math(b, "DIVIDE", _math(b, "ADD", c, 0.055), 1.055), 2.4)
        pick = b.node("GeometryNodeSwitch", input_type="FLOAT")
        b.link(_math(b, "LESS_THAN", c, 0.04045), pick.inputs["Switch"])
        b.link(high, pick.inputs["False"])
        b.link(low, pick.inputs["True"])
        b.link(pick.outputs["Output"], combine.inputs[axis])
    return combine.outputs["Vector"]


def scene_splat_tree(sh_rest: int):
    """Static splats (a 3DGS scene): view-dependent colour from their SH toward the scene camera,
    then the one drawing path. Points carry dw_sh0 (the DC colour, display) and dw_sh1..K."""
    name = f"DreamWaltz Scene Splats (SH {sh_rest})"
    tree = _shared(name)
    if tree is not None:
        return tree
    tree, b, gin, gout = _new_shared_tree(name, [("Viewport Density", "NodeSocketFloat", 1.0)])
    geometry = gin.outputs["Geometry"]
    if sh_rest:
        camera = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
        b.link(b.node("GeometryNodeInputActiveCamera").outputs[0], camera.inputs["Object"])
        position = b.node("GeometryNodeInputPosition").outputs["Position"]
        direction = b.vmath("NORMALIZE", b.vmath("SUBTRACT", position, camera.outputs["Location"]))
        sep = b.node("ShaderNodeSeparateXYZ", {"Vector": direction})
        color = b.attr("dw_sh0")
        for k, basis in enumerate(_sh_basis(b, sep.outputs["X"], sep.outputs["Y"], sep.outputs["Z"], sh_rest), start=1):
            color = b.vmath("ADD", color, b.vmath("SCALE", b.attr(f"dw_sh{k}"), scale=basis))
        store = b.node(
            "GeometryNodeStoreNamedAttribute",
            {"Geometry": geometry, "Name": "dw_color"},
            data_type="FLOAT_VECTOR",
            domain="POINT",
        )
        b.link(_srgb_to_linear(b, color), store.inputs["Value"])
        geometry = store.outputs["Geometry"]
    draw = b.node("GeometryNodeGroup", node_tree=splat_draw_tree())
    b.link(geometry, draw.inputs["Geometry"])
    b.link(gin.outputs["Viewport Density"], draw.inputs["Viewport Density"])
    b.link(draw.outputs["Geometry"], gout.inputs["Geometry"])
    return tree


def _new_splat_material(name):
    """A material emitting the instancer's dw_color, transparent elsewhere; returns (material, builder, alpha inputs)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    if hasattr(mat, "surface_render_method"):
        mat.surface_render_method = "BLENDED"  # Eevee (4.2+): true alpha blending
    tree = mat.node_tree
    tree.nodes.clear()
    b = Builder(tree)
    out = b.node("ShaderNodeOutputMaterial")
    color = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="dw_color")
    opacity = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="dw_opacity")
    emission = b.node("ShaderNodeEmission", {"Color": color.outputs["Color"], "Strength": 1.0})
    transparent = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader", {1: transparent.outputs[0], 2: emission.outputs[0]})
    b.link(mix.outputs[0], out.inputs["Surface"])
    return mat, b, opacity.outputs["Fac"], mix.inputs["Fac"]


def splat_material():
    """Ellipsoids (viewport): alpha = opacity * exp(-b^2 / 2), b the ray's whitened distance to the centre."""
    mat = bpy.data.materials.get(SPLAT_MATERIAL)
    if mat is not None:
        return mat
    mat, b, opacity, alpha_input = _new_splat_material(SPLAT_MATERIAL)
    mat.use_backface_culling = True
    coords = b.node("ShaderNodeTexCoord").outputs["Object"]
    geometry = b.node("ShaderNodeNewGeometry")
    incoming = b.node(
        "ShaderNodeVectorTransform",
        {"Vector": geometry.outputs["Incoming"]},
        vector_type="VECTOR",
        convert_from="WORLD",
        convert_to="OBJECT",
    ).outputs["Vector"]
    direction = b.vmath("NORMALIZE", incoming)
    along = b.vmath("DOT_PRODUCT", coords, direction)
    length2 = b.vmath("DOT_PRODUCT", coords, coords)
    b2 = _math(b, "SUBTRACT", length2, _math(b, "MULTIPLY", along, along))
    falloff = _math(b, "EXPONENT", _math(b, "MULTIPLY", b2, -0.5 * EXTENT_SIGMA**2))
    front = _math(b, "SUBTRACT", 1.0, geometry.outputs["Backfacing"])
    alpha = b.node("ShaderNodeMath", operation="MULTIPLY", use_clamp=True)
    b.link(_math(b, "MULTIPLY", falloff, opacity), alpha.inputs[0])
    b.link(front, alpha.inputs[1])
    b.link(alpha.outputs[0], alpha_input)
    return mat


def splat_card_material():
    """Cards (renders): alpha = opacity * exp(-r^2 / 2), r the whitened radius on the card (see _card_transform)."""
    mat = bpy.data.materials.get(CARD_MATERIAL)
    if mat is not None:
        return mat
    mat, b, opacity, alpha_input = _new_splat_material(CARD_MATERIAL)
    mat.use_backface_culling = False  # a card may face either way; it is hit once
    coords = b.node("ShaderNodeTexCoord").outputs["Object"]  # the unit quad: 1 = 3 sigma
    r2 = b.vmath("DOT_PRODUCT", coords, coords)
    falloff = _math(b, "EXPONENT", _math(b, "MULTIPLY", r2, -0.5 * EXTENT_SIGMA**2))
    alpha = b.node("ShaderNodeMath", operation="MULTIPLY", use_clamp=True)
    b.link(falloff, alpha.inputs[0])
    b.link(opacity, alpha.inputs[1])
    b.link(alpha.outputs[0], alpha_input)
    return mat
