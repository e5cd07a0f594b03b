# SPDX-License-Identifier: GPL-3.0-or-later
"""What differs between the Blender versions the add-on supports (4.2 LTS, 4.5 LTS, 5.0, 5.3).

Every version difference the add-on works around is here and nowhere else; each is detected by
the feature itself (does the type or property exist), not by comparing `bpy.app.version`, and
names the release that changed it. `python build.py test --all-blenders` runs the Blender tests
on each supported version.
"""

import bpy

# Geometry nodes: the Integer Math node came with Blender 4.3.
HAS_INTEGER_MATH = hasattr(bpy.types, "FunctionNodeIntegerMath")


def integer_add(builder, value, constant):
    """An integer field `value + constant` (a node tree Builder, an integer socket, an int).

    4.2 has no Integer Math node: there a float Math node adds, which is exact for the point
    indices it is used for (below 2**24), and the Sample Index node's integer input takes it back.
    """
    if HAS_INTEGER_MATH:
        node = builder.node("FunctionNodeIntegerMath", operation="ADD")
        out = node.outputs["Value"]
    else:
        node = builder.node("ShaderNodeMath", operation="ADD")
        out = node.outputs[0]
    builder.link(value, node.inputs[0])
    node.inputs[1].default_value = constant
    return out


# Python access to evaluated geometry (GeometrySet, Object.evaluated_geometry()) came with 4.3.
HAS_GEOMETRY_SET = hasattr(bpy.types, "GeometrySet")


def evaluated_instances(obj, depsgraph, attributes, rows):
    """The instances the evaluated `obj` makes: world transforms (n, 4, 4) and their attributes.

    `attributes` maps an attribute name to (foreach property, width), e.g. {"dw_color": ("vector", 3)}.
    With a GeometrySet (4.3+) they are read from the instances themselves. 4.2 cannot read the
    attributes of evaluated instances: there the transforms come from the depsgraph's instance
    list (in instance order: the second number of their persistent id) and the attributes from the original mesh's
    points `rows`, the points that became the instances, in order.
    """
    import numpy as np

    world = np.array(obj.matrix_world, dtype=np.float64)
    values = {}
    if HAS_GEOMETRY_SET:
        geometry = obj.evaluated_geometry()  # keep it alive while its point cloud is read
        cloud = geometry.instances_pointcloud()
        n = len(cloud.points)
        transforms = np.empty(n * 16, dtype=np.float32)
        cloud.attributes["instance_transform"].data.foreach_get("value", transforms)
        M = world @ transforms.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored column-major
        for name, (prop, width) in attributes.items():
            data = np.empty(n * width, dtype=np.float32)
            cloud.attributes[name].data.foreach_get(prop, data)
            values[name] = data.reshape(n, width) if width > 1 else data
        return M, values
    rows = np.asarray(rows)
    n = len(rows)
    M = np.full((n, 4, 4), np.nan)
    original = obj.original
    for inst in depsgraph.object_instances:
        if inst.is_instance and inst.parent is not None and inst.parent.original == original:
            M[inst.persistent_id[1]] = np.array(inst.matrix_world, dtype=np.float64)
    if np.isnan(M).any():
        raise RuntimeError("the depsgraph did not list every splat instance")
    mesh = original.data
    for name, (prop, width) in attributes.items():
        data = np.empty(len(mesh.vertices) * width, dtype=np.float32)
        mesh.attributes[name].data.foreach_get(prop, data)
        values[name] = (data.reshape(-1, width) if width > 1 else data)[rows]
    return M, values


# Animation: layered actions with slots came with 4.4 (F-curves live in a slot's channelbag);
# 4.2 has legacy actions, whose F-curve collection names the group argument `action_group`.
HAS_ACTION_SLOTS = hasattr(bpy.types, "ActionSlot")


def action_fcurves(action, obj):
    """The F-curve collection of `action` for `obj` (assigning it a slot where actions have them)."""
    if HAS_ACTION_SLOTS and hasattr(action, "slots"):
        from bpy_extras import anim_utils

        slot = obj.animation_data.action_slot or action.slots.new(id_type=obj.id_type, name=obj.name)
        obj.animation_data.action_slot = slot
        ensure = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)  # 5.0
        if ensure is not None:
            return ensure(action, slot).fcurves
        # 4.4 and 4.5: what 5.0's helper does, by hand (one layer, one keyframe strip).
        layer = action.layers[0] if action.layers else action.layers.new("Layer")
        strip = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
        return strip.channelbag(slot, ensure=True).fcurves
    return action.fcurves


def new_fcurve(fcurves, data_path, index, group=""):
    """A new F-curve in `fcurves` (from action_fcurves), in the channel group named `group`."""
    parameters = fcurves.bl_rna.functions["new"].parameters
    if "group_name" in parameters:  # 5.0
        return fcurves.new(data_path, index=index, group_name=group)
    if "action_group" in parameters:  # legacy actions (4.2)
        return fcurves.new(data_path, index=index, action_group=group)
    curve = fcurves.new(data_path, index=index)  # 4.4 and 4.5: group it through its channelbag
    if group:
        groups = fcurves.data.groups
        curve.group = groups.get(group) or groups.new(group)
    return curve


# Not a version but a build difference: the bpy 4.2 wheel on PyPI is built without Audaspace, so it
# cannot hold sound strips (a Blender download has it).
HAS_AUDIO = bool(getattr(bpy.app.build_options, "audaspace", True))


# Compositor Alpha Over: 5.0 names its inputs Background, Foreground, Factor; 4.2-4.5 have Fac, then
# two unnamed Image inputs (background first).
def alpha_over_inputs(node):
    """(background, foreground) colour inputs of a CompositorNodeAlphaOver."""
    colours = [socket for socket in node.inputs if socket.type == "RGBA"]
    return colours[0], colours[1]


# Geometry nodes Compare: up to 5.2 the node holds A and B of every data type (float, int, vector,
# colour, string) and shows the chosen type's pair; 5.3 holds only the chosen type's A and B.
def compare_inputs(node):
    """(A, B) inputs of a FunctionNodeCompare for its current data type."""
    kind = {"INT": "INT", "FLOAT": "VALUE", "VECTOR": "VECTOR", "RGBA": "RGBA", "STRING": "STRING"}[node.data_type]
    sockets = [s for s in node.inputs if s.type == kind and getattr(s, "enabled", True)]
    return sockets[0], sockets[1]


# Node modifier inputs: up to 5.2 they are ID properties of the modifier (mod["Socket_1"]); 5.3
# keeps them as RNA, mod.properties.inputs.Socket_1.value.
HAS_MODIFIER_INTERFACE = "properties" in bpy.types.NodesModifier.bl_rna.properties


def modifier_input(mod, identifier, default=None):
    """The value of a geometry-nodes modifier's input (by its socket identifier)."""
    if HAS_MODIFIER_INTERFACE:
        item = getattr(mod.properties.inputs, identifier, None)
        return default if item is None else item.value
    return mod.get(identifier, default)


def set_modifier_input(mod, identifier, value) -> None:
    """Set a geometry-nodes modifier's input (by its socket identifier)."""
    if HAS_MODIFIER_INTERFACE:
        getattr(mod.properties.inputs, identifier).value = value
    else:
        mod[identifier] = value


# Native 3D Gaussian splats came with 5.3: a point cloud of type 'GAUSSIAN_SPLAT' with the point
# attributes position, scale (linear), rotation (quaternion) and radiance:base (the DC coefficient
# of the display colour, and the opacity), drawn by Eevee, Cycles and the viewport. Geometry nodes
# make one with Set Point Cloud Type. Older Blenders draw the add-on's
# camera-facing cards (importer/nodes.py).
HAS_NATIVE_SPLATS = (
    hasattr(bpy.types, "GeometryNodePointsSetType")
    and "type" in bpy.types.PointCloud.bl_rna.properties
    and "GAUSSIAN_SPLAT" in bpy.types.PointCloud.bl_rna.properties["type"].enum_items.keys()
)
