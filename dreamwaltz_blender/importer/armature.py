# SPDX-License-Identifier: GPL-3.0-or-later
"""The avatar's armature: 55 SMPL-X bones whose local frames equal the SMPL-X frame.

Every bone points along world +Z with roll 0. Blender then gives it the axes X = (1,0,0),
Y = (0,0,1), Z = (0,-1,0): exactly SMPL-X's x, y, z seen in Blender space. All rest frames are
the same, so an SMPL-X axis-angle rotation goes straight into a pose bone (quaternion mode).
"""

import bpy
import numpy as np

BONE_LENGTH = 0.05  # display only: the head is the joint; the tail never deforms anything


def create_armature(name: str, joint_names, parents, joints_blender: np.ndarray, collection):
    data = bpy.data.armatures.new(name)
    data.display_type = "STICK"
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    obj.show_in_front = True
    set_rest_joints(obj, joint_names, parents, joints_blender, create=True)
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def set_rest_joints(obj, joint_names, parents, joints_blender: np.ndarray, create: bool = False) -> None:
    """(Re)build the rest pose in edit mode; used at import and when the body shape changes."""
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous_mode = bpy.context.mode
    if previous_mode != "OBJECT" and previous_active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = obj
    hidden = obj.hide_viewport, obj.hide_get()
    obj.hide_viewport = False
    obj.hide_set(False)
    try:
        bpy.ops.object.mode_set(mode="EDIT")
        bones = obj.data.edit_bones
        for name, joint in zip(joint_names, joints_blender):
            bone = bones.new(name) if create else bones[name]
            bone.head = tuple(joint)
            bone.tail = (joint[0], joint[1], joint[2] + BONE_LENGTH)
            bone.roll = 0.0
        if create:
            for name, parent in zip(joint_names, parents):
                if parent >= 0:
                    bones[name].parent = bones[joint_names[parent]]
                    bones[name].use_connect = False
        bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        obj.hide_viewport = hidden[0]
        obj.hide_set(hidden[1])
        view_layer.objects.active = previous_active
