# SPDX-License-Identifier: GPL-3.0-or-later
"""Several avatars: linked duplicates that share the splat data, and placing avatars in a layout.

A crowd costs one avatar's splat memory: every copy's splat object uses the same proxy mesh (the
heavy part: 4 points per free splat with their attributes and skin weights), while each copy has
its own armature (pose, motion), body mesh (shape and expression keys) and modifiers pointing at
them. An avatar is moved as a whole by its armature object's transform.
"""

from __future__ import annotations

import math

import bpy
import mathutils
import numpy as np

from .avatar import ROLE, Avatar
from .importer import nodes


def duplicate_avatar(avatar, offset=(1.0, 0.0, 0.0), collection=None):
    """A linked duplicate of ``avatar`` moved by ``offset`` (metres, Blender axes): its own armature,
    action slot and body, the same splat data. Returns the new avatar."""

    parent = collection or _parent_collection(avatar.collection)
    coll = bpy.data.collections.new(avatar.collection.name)
    parent.children.link(coll)
    rig = avatar.armature.copy()
    rig.data = avatar.armature.data.copy()  # its own rest skeleton (shape edits move bones)
    coll.objects.link(rig)
    body = avatar.body.copy()
    body.data = avatar.body.data.copy()  # its own shape and expression keys
    body.parent = rig
    coll.objects.link(body)
    splats = avatar.splats.copy()  # the mesh stays shared
    splats.parent = rig
    coll.objects.link(splats)
    for obj in (body, splats):
        for mod in obj.modifiers:
            if mod.type == "ARMATURE":
                mod.object = rig
            elif mod.type == "NODES" and mod.node_group is not None and _has_input(mod, "Body"):
                nodes.set_body(mod, body)
    rig.location = mathutils.Vector(avatar.armature.location) + mathutils.Vector(offset)
    for obj, role in ((rig, "armature"), (body, "body"), (splats, "splats")):
        obj[ROLE] = role
    return Avatar(rig, body, splats)


def layout_avatars(avatars, columns=None, spacing: float = 1.0, origin=(0.0, 0.0, 0.0), path=None) -> None:
    """Stand ``avatars`` on a grid (``columns`` per row, default about square, rows going back along
    +Y, ``spacing`` metres apart, the first at ``origin``), or evenly along a curve object ``path``
    (facing along it). Each avatar's root lands on its spot; its motion plays from there."""
    avatars = list(avatars)
    if not avatars:
        return
    if path is not None:
        spots, headings = _along_curve(path, len(avatars))
    else:
        columns = columns or math.ceil(math.sqrt(len(avatars)))
        spots = [
            np.asarray(origin, dtype=np.float64) + spacing * np.array([i % columns, i // columns, 0.0])
            for i in range(len(avatars))
        ]
        headings = [0.0] * len(avatars)
    for avatar, spot, heading in zip(avatars, spots, headings):
        pelvis = avatar.armature.data.bones[0].head_local  # the root joint, in the armature's space
        root = mathutils.Vector((pelvis.x, pelvis.y, 0.0))
        avatar.armature.matrix_world = (
            mathutils.Matrix.Translation(mathutils.Vector(spot))
            @ mathutils.Matrix.Rotation(heading, 4, "Z")
            @ mathutils.Matrix.Translation(-root)
        )


def _along_curve(curve, count):
    """``count`` points evenly spaced by arc length along ``curve`` (world space), and the heading
    (rotation about Z) that turns an avatar's front (-Y) along the curve there."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = curve.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        points = np.array([curve.matrix_world @ v.co for v in mesh.vertices], dtype=np.float64)
    finally:
        evaluated.to_mesh_clear()
    if len(points) < 2:
        raise ValueError(f"'{curve.name}' has no length to place avatars along.")
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    targets = np.linspace(0.0, lengths[-1], count) if count > 1 else np.array([0.0])
    spots, headings = [], []
    for t in targets:
        i = min(int(np.searchsorted(lengths, t, side="right")) - 1, len(points) - 2)
        f = (t - lengths[i]) / max(lengths[i + 1] - lengths[i], 1e-12)
        spots.append(points[i] + f * (points[i + 1] - points[i]))
        d = points[i + 1] - points[i]
        headings.append(math.atan2(d[1], d[0]) + math.pi / 2)  # -Y (the avatar's front) onto d
    return spots, headings


def _has_input(mod, name) -> bool:
    return any(getattr(item, "name", "") == name for item in mod.node_group.interface.items_tree)


def _parent_collection(coll):
    scene = bpy.context.scene
    for candidate in [scene.collection, *bpy.data.collections]:
        if coll.name in candidate.children:
            return candidate
    return scene.collection
