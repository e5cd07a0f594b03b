# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply motion (a BVH/SMPL-X file or an animated armature in the scene) to an avatar as one Action.

The retargeting itself is the shared numpy core (``core/motion``), so Blender and
``dreamwaltz render --motion`` agree frame for frame; this module only writes keyframes.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import compat, motion_source
from .avatar import Avatar
from .importer import space
from .shared import module

errors = module("errors")
motion = module("motion")
rotations = module("rotations")
JOINT_NAMES = module("joints").JOINT_NAMES


def target_skeleton(avatar: Avatar):
    """The avatar's rest joints and soles in SMPL-X space, at its current shape."""
    offset = np.array(avatar.armature["dreamwaltz_offset"])
    bones = avatar.armature.data.bones
    joints = space.points_to_smplx(np.array([bones[n].head_local for n in JOINT_NAMES]) - offset)
    rig = avatar.armature.data
    previous = rig.pose_position
    rig.pose_position = "REST"
    try:
        bpy.context.view_layer.update()
        mesh = avatar.body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        rig.pose_position = previous
    rest = space.points_to_smplx(co.reshape(-1, 3) - offset)
    # The body's skinning from its vertex groups; the soles are picked as TargetSkeleton.from_mesh does.
    column = {g.index: JOINT_NAMES.index(g.name) for g in avatar.body.vertex_groups if g.name in JOINT_NAMES}
    weights = np.zeros((len(rest), len(JOINT_NAMES)))
    for v in avatar.body.data.vertices:
        for g in v.groups:
            if g.group in column:
                weights[v.index, column[g.group]] = g.weight
    return motion.TargetSkeleton.from_mesh(joints, rest, weights)


def _fcurves(action, obj):
    """F-curve collection of ``action`` for ``obj``: layered actions (4.4+) or legacy ones."""
    return compat.action_fcurves(action, obj)


def _write(fcurves, data_path, index, frames, values, group=None):
    curve = compat.new_fcurve(fcurves, data_path, index, group or "")
    curve.keyframe_points.add(len(frames))
    curve.keyframe_points.foreach_set("co", np.stack([frames, values], axis=1).astype(np.float32).ravel())
    curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), 2, dtype=np.int32))  # LINEAR
    curve.update()


def apply_motion(
    avatar: Avatar,
    source,
    start_frame=None,
    in_place: bool = False,
    scale: float = 1.0,
    mapping=None,
    fps=None,
    name=None,
    max_frames=None,
    up_axis: str = "auto",
) -> bpy.types.Action:
    """Retarget ``source`` onto ``avatar`` and return the new Action (also assigned to its armature).

    ``source`` is a motion file path (.bvh, SMPL-X/AMASS .npz/.npy) or an animated armature object
    in the scene (whatever made it: BVH, FBX or glTF importers, a hand-made rig), sampled at every
    frame of its action's range. Resampled to the scene's frame rate unless ``fps`` is given.
    Expressions in a file go onto the body's expression keys. A bad source raises a clear error
    and changes nothing. A file of more frames than the ceiling (``max_frames``; default 100,000,
    or ``DREAMWALTZ_MAX_FRAMES``) is refused from its header, before anything is allocated.
    ``up_axis`` ("auto", "y", "z", ...) overrides the file's detected up axis.
    """
    scene = bpy.context.scene
    fps = fps or scene.render.fps / scene.render.fps_base
    if isinstance(source, bpy.types.Object):
        motion_source.check_source(source, avatar)
        label = source.name
        seq = motion_source.retarget_armature(
            source, target_skeleton(avatar), mapping=mapping, in_place=in_place, scale=scale, fps=fps, scene=scene
        )
    else:
        label = Path(source).stem
        seq = motion.load_motion(
            source,
            target_skeleton(avatar),
            fps=fps,
            in_place=in_place,
            scale=scale,
            mapping=mapping,
            max_frames=max_frames,
            up_axis=up_axis,
        )
    start = scene.frame_current if start_frame is None else int(start_frame)
    frames = start + np.arange(seq.num_frames, dtype=np.float64)
    return key_sequence(avatar, seq, frames, name or f"{avatar.armature.name}: {label}")


def key_sequence(avatar: Avatar, seq, frames, name: str) -> bpy.types.Action:
    """Key a retargeted ``seq`` (``core.motion.MotionSequence``: full_pose, transl, expression) onto
    the avatar's armature at scene ``frames`` (one per row, increasing) as one new Action; all or
    nothing. Shared by apply_motion and reenact (docs/REENACT.md)."""
    scene = bpy.context.scene
    frames = np.asarray(frames, dtype=np.float64)
    rig = avatar.armature
    saved = _SceneState(avatar, scene)
    action = None
    try:
        action = bpy.data.actions.new(name)
        rig.animation_data_create()
        rig.animation_data.action = action
        curves = _fcurves(action, rig)
        quats = rotations.axis_angle_to_quaternion(seq.full_pose)  # (T,55,4) w,x,y,z
        for k, joint in enumerate(JOINT_NAMES):
            rig.pose.bones[joint].rotation_mode = "QUATERNION"
            path_ = f'pose.bones["{joint}"].rotation_quaternion'
            for c in range(4):
                _write(curves, path_, c, frames, quats[:, k, c], joint)
        # Root translation: pose location of the root is in its rest frame = SMPL-X axes.
        for c in range(3):
            _write(curves, f'pose.bones["{JOINT_NAMES[0]}"].location', c, frames, seq.transl[:, c], JOINT_NAMES[0])
        if seq.expression is not None:
            _apply_expression(avatar, seq, frames)
        scene.frame_start, scene.frame_end = int(frames[0]), max(scene.frame_end, int(frames[-1]))
    except BaseException:
        saved.restore()  # all or nothing: the rig, its previous action, the frame range, the selection
        raise
    return action


class _SceneState:
    """What apply_motion changes, to put back exactly if it fails part-way."""

    def __init__(self, avatar: Avatar, scene):
        rig = avatar.armature
        self.avatar, self.scene = avatar, scene
        self.had_anim = rig.animation_data is not None
        self.action = rig.animation_data.action if self.had_anim else None
        self.slot = getattr(rig.animation_data, "action_slot", None) if self.had_anim else None
        self.modes = {b.name: b.rotation_mode for b in rig.pose.bones}
        self.frames = (scene.frame_start, scene.frame_end, scene.frame_current)
        keys = avatar.body.data.shape_keys if avatar.body is not None else None
        self.keys_had_anim = keys is not None and keys.animation_data is not None
        self.keys_action = keys.animation_data.action if self.keys_had_anim else None
        self.actions = set(bpy.data.actions)
        self.selected = [o for o in bpy.context.view_layer.objects if o.select_get()]
        self.active = bpy.context.view_layer.objects.active

    def restore(self) -> None:
        rig = self.avatar.armature
        if self.had_anim:
            rig.animation_data.action = self.action
            if self.slot is not None and hasattr(rig.animation_data, "action_slot"):
                try:
                    rig.animation_data.action_slot = self.slot
                except (RuntimeError, TypeError, AttributeError):
                    pass
        elif rig.animation_data is not None:
            rig.animation_data_clear()
        for bone in rig.pose.bones:
            if bone.name in self.modes:
                bone.rotation_mode = self.modes[bone.name]
        keys = self.avatar.body.data.shape_keys if self.avatar.body is not None else None
        if keys is not None:
            if self.keys_had_anim:
                keys.animation_data.action = self.keys_action
            elif keys.animation_data is not None:
                keys.animation_data_clear()
        for action in list(bpy.data.actions):
            if action not in self.actions:  # every action made here, the new one included
                bpy.data.actions.remove(action)
        self.scene.frame_start, self.scene.frame_end = self.frames[0], self.frames[1]
        if self.scene.frame_current != self.frames[2]:
            self.scene.frame_set(self.frames[2])
        for obj in bpy.context.view_layer.objects:
            obj.select_set(obj in self.selected)
        bpy.context.view_layer.objects.active = self.active


def _apply_expression(avatar: Avatar, seq, frames) -> None:
    keys = [k for k in avatar.body.data.shape_keys.key_blocks if k.name.startswith("expression:")]
    count = min(len(keys), seq.expression.shape[1])
    if count == 0:
        return
    key_data = avatar.body.data.shape_keys
    key_data.animation_data_create()
    action = bpy.data.actions.new(f"{avatar.body.name}: expressions")
    key_data.animation_data.action = action
    curves = _fcurves(action, key_data)
    for i in range(count):
        _write(curves, f'key_blocks["{keys[i].name}"].value', 0, frames, seq.expression[:, i])


def selected_source(context, avatar: Avatar):
    """The selected armature that is not the avatar's: the motion source of "From the Selected Armature"."""
    own = {avatar.armature, avatar.body, avatar.splats}
    found = [
        o for o in context.selected_objects if o.type == "ARMATURE" and o not in own and not o.get("dreamwaltz_role")
    ]
    if not found:
        raise errors.MotionError(
            "no other armature is selected.",
            "Select the animated armature (e.g. imported from BVH or FBX), then the avatar last (active).",
        )
    if len(found) > 1:
        raise errors.MotionError(
            f"{len(found)} other armatures are selected ({', '.join(o.name for o in found)}).",
            "Select only the one that holds the motion, and the avatar.",
        )
    return found[0]


class DREAMWALTZ_OT_apply_motion(bpy.types.Operator, ImportHelper):
    """Retarget a motion file (BVH mocap, SMPL-X/AMASS .npz) or the selected animated armature onto the active DreamWaltz avatar"""

    bl_idname = "dreamwaltz.apply_motion"
    bl_label = "Apply Motion"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.bvh;*.vrma;*.npz;*.npy", options={"HIDDEN"})
    from_armature: BoolProperty(
        name="From the Selected Armature",
        description="Take the motion from the other selected armature's action (from any "
        "importer: BVH, FBX, glTF, or a hand-made rig) instead of a file",
    )
    start_frame: IntProperty(name="Start Frame", default=1)
    in_place: BoolProperty(name="In Place", description="Keep the avatar where it is (no root travel)")
    scale: FloatProperty(
        name="Root Motion Scale",
        default=1.0,
        min=0.01,
        max=100.0,
        description="Multiplies the travel after the automatic leg-length scaling",
    )

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and (obj.get("dreamwaltz_role") or (obj.parent and obj.parent.get("dreamwaltz_role")))

    def invoke(self, context, event):
        if self.from_armature:  # no file to choose
            return context.window_manager.invoke_props_dialog(self)
        return ImportHelper.invoke(self, context, event)

    up_axis: EnumProperty(
        name="Up Axis",
        items=[
            ("auto", "Automatic", "Detected from the skeleton (head over feet)"),
            ("y", "Y", "The file is Y-up (most BVH)"),
            ("z", "Z", "The file is Z-up (Blender, 3ds Max, MakeHuman exports; AMASS .npz)"),
        ],
        default="auto",
        description="The motion file's up axis; Automatic detects it",
    )
    max_frames: IntProperty(
        name="Frame Ceiling",
        default=100_000,
        min=1,
        description="Longer files are refused before they are read. Retargeting needs about 30 kB of "
        "memory per frame (3 GB for 100,000 frames): raise it only for genuinely long captures",
    )

    def draw(self, context):  # the file browser's sidebar and the From Selected Armature dialog
        for name in ("start_frame", "in_place", "scale", "up_axis", "max_frames"):
            self.layout.prop(self, name)

    def execute(self, context):
        try:
            avatar = Avatar.from_object(context.active_object)
            source = selected_source(context, avatar) if self.from_armature else self.filepath
            action = apply_motion(
                avatar,
                source,
                self.start_frame,
                self.in_place,
                self.scale,
                max_frames=self.max_frames,
                up_axis=self.up_axis,
            )
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        except Exception as err:  # noqa: BLE001 - the scene is already restored; say what failed, no traceback
            self.report({"ERROR"}, f"Apply Motion failed ({type(err).__name__}: {err}); the scene is unchanged.")
            return {"CANCELLED"}
        label = source.name if self.from_armature else Path(self.filepath).name
        self.report({"INFO"}, f"Applied {label}: frames {int(action.frame_range[0])}-{int(action.frame_range[1])}")
        return {"FINISHED"}


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_apply_motion)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_OT_apply_motion)
