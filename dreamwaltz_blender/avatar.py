# SPDX-License-Identifier: GPL-3.0-or-later
"""The imported avatar as the add-on's modules see it: its three objects, how they are tagged, and
its motion read back. The feature modules (motion, crowds, reenactment, scene export) and the
scripting facade ``api`` import it from here."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from .shared import module

errors = module("errors")

ROLE = "dreamwaltz_role"  # custom property on each part: "armature", "body", "splats"
STANDARD_VIEW = "Standard"  # the view transform that shows avatar colours as trained


@dataclass
class Avatar:
    armature: bpy.types.Object
    body: bpy.types.Object
    splats: bpy.types.Object

    @property
    def collection(self):
        return self.armature.users_collection[0]

    @classmethod
    def from_object(cls, obj) -> Avatar:
        """The avatar that ``obj`` (its armature, body or splats) belongs to."""
        rig = obj if obj.get(ROLE) == "armature" else obj.parent
        if rig is None or rig.get(ROLE) != "armature":
            raise errors.DreamWaltzError(
                f"'{obj.name}' is not part of a DreamWaltz avatar.", "Select an avatar's armature, body or splats."
            )
        parts = {child.get(ROLE): child for child in rig.children}
        return cls(rig, parts["body"], parts["splats"])

    def sampled_motion(self, scene, frames=None):
        """(full_pose (T,55,3), transl (T,3), frames) of the armature over the scene's frame range (or
        at ``frames``).

        A pose bone's basis matrix is its local rotation in the SMPL-X frame (the bones' rest frames
        are SMPL-X axes, importer/armature.py), and the root's location is the motion's translation,
        as ``api.set_pose`` and ``apply_motion`` write them.
        """
        rotations = module("rotations")
        names = module("joints").JOINT_NAMES
        bones = self.armature.pose.bones
        frames = list(range(scene.frame_start, scene.frame_end + 1)) if frames is None else list(frames)
        current = scene.frame_current
        full_pose, transl = np.zeros((len(frames), len(names), 3)), np.zeros((len(frames), 3))
        try:
            for i, frame in enumerate(frames):
                scene.frame_set(frame)
                basis = np.array([[list(row) for row in bones[name].matrix_basis] for name in names])
                full_pose[i] = rotations.matrix_to_axis_angle(basis[:, :3, :3])
                transl[i] = basis[0, :3, 3]
        finally:
            scene.frame_set(current)
        return full_pose, transl, frames
