# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion from an animated armature in the scene (whatever made it: BVH, FBX, glTF, by hand).

The armature is sampled once per frame of its action into a BVH-like clip: joint names and
parents, rest positions, leaf tails as End Sites, and per frame each bone's world rotation
relative to its rest (exactly what a BVH's forward kinematics gives, whose rest rotations are all
identity) and its world head position. ``core/motion``'s ``retarget_bvh`` then maps and retargets
it as it does a file: up, left and units are detected from the rest skeleton, so Blender's Z up
and any object scale need no conversion here. bpy and numpy only.
"""

from __future__ import annotations

import bpy
import numpy as np

from .shared import module

errors = module("errors")
motion = module("motion")

# FBX leaf bones ("Head_end" from Blender's exporter, Mixamo's "HeadTop_End"): End Sites, not joints.
LEAF_SUFFIXES = ("_end", "_leaf")
ROLE = "dreamwaltz_role"


# A sampled armature: the core's clip that retarget_bvh reads like a BVH.
ArmatureClip = motion.SampledClip


def _rotation(M: np.ndarray) -> np.ndarray:
    """The rotation of 4x4 world matrices (any object scale divided out)."""
    R = M[..., :3, :3]
    return R / np.maximum(np.linalg.norm(R, axis=-2, keepdims=True), 1e-12)


def check_source(obj, avatar=None) -> None:
    if obj is None or getattr(obj, "type", None) != "ARMATURE":
        raise errors.MotionError(
            f"'{getattr(obj, 'name', obj)}' is not an armature.",
            "Choose an animated armature (imported from BVH, FBX, glTF, or your own rig).",
        )
    if avatar is not None and obj == avatar.armature:
        raise errors.MotionError(
            f"'{obj.name}' is the avatar's own rig.", "Select another animated armature as the motion source."
        )
    if obj.get("dreamwaltz_role"):
        raise errors.MotionError(
            f"'{obj.name}' is a DreamWaltz avatar's rig.", "Choose the armature that holds the mocap."
        )
    if obj.animation_data is None or obj.animation_data.action is None:
        raise errors.MotionError(
            f"'{obj.name}' has no action.", "Import or assign an animation on that armature first."
        )
    if len(obj.data.bones) < 2:
        raise errors.MotionError(f"'{obj.name}' has {len(obj.data.bones)} bone(s).", "It is not a body rig.")


def sample_armature(obj, scene=None, frames=None) -> ArmatureClip:
    """``obj``'s action sampled at every frame of its range (or at ``frames``) as a BVH-like clip."""
    check_source(obj)
    scene = scene or bpy.context.scene
    if frames is None:
        start, end = obj.animation_data.action.frame_range
        frames = np.arange(int(round(start)), int(round(end)) + 1)
    frames = [int(f) for f in frames]
    if not frames:
        raise errors.MotionError(f"'{obj.name}': its action has no frames.", "Key the animation first.")
    bones = list(obj.data.bones)
    # Parents before children (bone order in an armature is not guaranteed to be).
    order, seen = [], set()

    def visit(bone):
        if bone.parent is not None and bone.parent.name not in seen:
            visit(bone.parent)
        if bone.name not in seen:
            seen.add(bone.name)
            order.append(bone)

    for bone in bones:
        visit(bone)
    # FBX leaf bones become their parent's End Site.
    leaves = {
        b.name
        for b in order
        if not b.children
        and b.parent is not None
        and len(b.parent.children) == 1
        and b.name.lower().endswith(LEAF_SUFFIXES)
    }
    joints = [b for b in order if b.name not in leaves]
    names = [b.name for b in joints]
    index = {n: i for i, n in enumerate(names)}
    parents = [index[b.parent.name] if b.parent is not None else -1 for b in joints]
    J, T = len(joints), len(frames)

    current = scene.frame_current, scene.frame_subframe
    pose_bones = [obj.pose.bones[n] for n in names]
    M = np.empty((T, J, 4, 4))
    # Avatars in the scene would re-evaluate their splats on every frame (~0.1 s per frame for
    # 50k splats when animated): out of the viewport layer while sampling, put back afterwards.
    layer = bpy.context.view_layer.objects if scene == bpy.context.scene else ()
    hidden = [
        o
        for o in layer
        if o != obj and not o.hide_viewport and (o.get(ROLE) or (o.parent is not None and o.parent.get(ROLE)))
    ]
    selected = [o for o in hidden if o.select_get()]  # hiding deselects
    try:
        for o in hidden:
            o.hide_viewport = True
        scene.frame_set(frames[0])
        world0 = np.array(obj.matrix_world, dtype=np.float64)
        for t, frame in enumerate(frames):
            if t:
                scene.frame_set(frame)
            world = np.array(obj.matrix_world, dtype=np.float64)
            M[t] = world @ np.array([pb.matrix for pb in pose_bones], dtype=np.float64)
    finally:
        for o in hidden:
            o.hide_viewport = False
        for o in selected:
            o.select_set(True)
        scene.frame_set(current[0], subframe=current[1])

    # Rest: the same object matrix as the first frame (any fixed one would do: only deltas count).
    rest_M = world0 @ np.array([b.matrix_local for b in joints], dtype=np.float64)
    rest = rest_M[:, :3, 3]
    tails = (world0 @ np.concatenate([np.array([b.tail_local for b in joints]), np.ones((J, 1))], axis=1).T).T[:, :3]
    end_sites = {}
    for j, bone in enumerate(joints):
        kids = list(bone.children)
        if kids and all(c.name in leaves for c in kids):
            head = (world0 @ np.append(np.array(kids[0].head_local), 1.0))[:3]
            end_sites[j] = head - rest[j]
        elif not kids:
            end_sites[j] = tails[j] - rest[j]
    R = _rotation(M) @ np.transpose(_rotation(rest_M), (0, 2, 1))[None]
    fps = scene.render.fps / scene.render.fps_base
    return ArmatureClip(names, parents, rest, end_sites, R, M[..., :3, 3].copy(), fps)


def retarget_armature(
    obj,
    target,
    mapping=None,
    in_place: bool = False,
    scale: float = 1.0,
    fps=None,
    keep_on_ground: bool = True,
    scene=None,
):
    """``obj``'s action as an SMPL-X sequence for ``target`` (at the scene's rate, or resampled to ``fps``)."""
    clip = sample_armature(obj, scene)
    seq = motion.retarget_bvh(
        clip, target, mapping=mapping, in_place=in_place, scale=scale, keep_on_ground=keep_on_ground, source=obj.name
    )
    return motion.resample(seq, fps) if fps is not None else seq
