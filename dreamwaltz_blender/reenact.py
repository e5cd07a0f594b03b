# SPDX-License-Identifier: GPL-3.0-or-later
"""Human video reenactment in Blender (docs/REENACT.md, "Reenactment in Blender"): a shot built from
a motion-capture track of a video: the track's camera, the avatar moved by the track, the clean
plate behind it and a shadow catcher under its feet.

Frames. The track's bodies and camera are in the track's frame (OpenCV camera axes for a
camera-frame track, the tool's y-up world otherwise). They are first *levelled* (a camera-frame
track is turned so the tracked body's mean up axis is +Y, as the backend's ``body_up``; a world
track is already y-up), moved down so the lowest the avatar's soles go over the clip is y = 0, and
then taken to Blender by the project's SMPL-X -> Blender axis change (``importer/space.py``): one
rigid map ``shot`` (4x4) for bodies and camera alike, so every projection is unchanged. Video frame
t is scene frame ``START + t``.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import compat
from .avatar import STANDARD_VIEW, Avatar
from .importer import space
from .shared import module

errors = module("errors")
tracks = module("tracks")
rotations = module("rotations")
core_motion = module("motion")
retarget = module("motion.retarget")
JOINT_NAMES = module("joints").JOINT_NAMES

START = 1  # scene frame of the video's first frame
SENSOR_MM = 36.0
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV x right, y down, z forward -> Blender camera axes
PICKLES = {".pkl", ".pickle", ".npy", ".joblib"}


# ------------------------------------------------------------------ reading and checking (nothing touched yet)


def read_track(track_path, allow_pickle: bool = False):
    """The track through the shared numpy readers; torch files and pickles are the backend's."""
    path = Path(track_path)
    suffix = path.suffix.lower()
    if suffix in PICKLES or suffix in (".pt", ".pth"):
        flag = " --allow-pickle" if suffix in PICKLES else ""
        why = "a pickle" if suffix in PICKLES else "a torch file"
        if suffix in PICKLES and not allow_pickle:
            why += " (a pickle can run code: it is read only on request, by the backend)"
        raise errors.TrackError(
            f"'{path.name}' is {why}; Blender reads only numpy track files.",
            f"Run `dreamwaltz track convert {path.name} {path.stem}.track.npz{flag}` first and load the .track.npz.",
        )
    return tracks.load_track(path)


def _clip_facts(clip, path):
    frames = int(clip.frame_duration)
    width, height = int(clip.size[0]), int(clip.size[1])
    if frames <= 0 or width <= 0 or height <= 0:
        raise errors.TrackError(
            f"Blender cannot read '{Path(path).name}' as a video ({width}x{height}, {frames} frames).",
            "Give an .mp4/.mov video or the first image of a numbered image sequence.",
        )
    return frames, width, height, float(clip.fps) if getattr(clip, "fps", 0) else None


def _level(track, person) -> np.ndarray:
    """(3,3) rotation turning the track's frame so the body's up (``core.tracks.body_up``, as the
    backend's reenactment finds it) is +Y."""
    return rotations.align(module("tracks").body_up(track, person), np.array([0.0, 1.0, 0.0]))


def _rest_pelvis_at(rig, betas: np.ndarray) -> np.ndarray:
    """(N,3) rest pelvis of the avatar's body model at the tracked shapes ``betas`` (N,B): the rig's
    stored rest joints moved along its joint shape directions (what ``api.set_shape`` uses). Matches
    the backend's default ``--body open`` for avatars made on the open body."""
    betas0 = np.array(rig["dreamwaltz_betas0"], dtype=np.float64)
    nb = len(betas0)
    dirs = np.array(rig["dreamwaltz_joint_shape_dirs"], dtype=np.float64).reshape(55, 3, nb)[0]
    b = np.zeros((len(betas), nb))
    n = min(nb, betas.shape[1])
    b[:, :n] = betas[:, :n]
    pelvis0 = np.array(rig["dreamwaltz_rest_joints"], dtype=np.float64).reshape(55, 3)[0]
    return pelvis0 + (b - betas0) @ dirs.T


class Shot:
    """Everything the scene will get, computed from the track before the scene is touched."""

    def __init__(self, avatar: Avatar, track, person_index: int, num_frames: int, width: int, height: int, fps):
        from .motion import target_skeleton

        person = track.person(person_index)
        self.track, self.person = track, person
        self.num_frames, self.width, self.height = num_frames, width, height
        self.fps = float(fps or track.fps or 24.0)  # the video's rate first: it is what gets rendered
        self.viewmats = np.stack(
            [track.viewmat(t) for t in range(num_frames)]
        )  # refuses world tracks without extrinsics
        self.K = track.camera.K[:num_frames]
        L = _level(track, person)
        target = target_skeleton(avatar)  # SMPL-X space, the avatar's current shape, offset removed
        # The avatar keeps its shape; its pelvis goes where the tracked body's is (as the backend's AvatarLayer).
        pelvis = person.transl + _rest_pelvis_at(avatar.armature, person.betas)  # (N,3) posed tracked pelvis
        pose = person.full_pose.copy()
        pose[:, 0] = rotations.matrix_to_axis_angle(L @ rotations.axis_angle_to_matrix(pose[:, 0]))
        transl = pelvis @ L.T - target.rest_joints[0]
        W, P = core_motion.forward_kinematics_batch(rotations.axis_angle_to_matrix(pose), target.rest_joints, transl)
        self.ground = float(retarget.sole_points(W, P, target)[:, :, 1].min()) if person.num_frames else 0.0
        transl[:, 1] -= self.ground
        # shot: track frame -> Blender (before the armature's own object transform).
        self.shot = np.eye(4)
        self.shot[:3, :3] = space.TO_BLENDER @ L
        self.shot[:3, 3] = space.TO_BLENDER @ np.array([0.0, -self.ground, 0.0])
        offset = np.array(avatar.armature["dreamwaltz_offset"], dtype=np.float64)
        # Bones sit at TO_BLENDER @ P + offset in the armature: take the import offset back out.
        transl -= space.points_to_smplx(offset)
        self.seq = core_motion.MotionSequence(self.fps, pose, transl, person.expression, source=track.source)
        self.frames = START + person.frames.astype(np.float64)
        self.pelvis_blender = space.points_to_blender(pelvis @ L.T - [0.0, self.ground, 0.0])
        rig_world = np.array(avatar.armature.matrix_world, dtype=np.float64)
        self.cameras = np.stack(
            [rig_world @ self.shot @ np.linalg.inv(V) @ OPENCV_TO_BLENDER_CAMERA for V in self.viewmats]
        )
        self.rig_world = rig_world

    def lens(self, t: int):
        """(focal mm, shift_x, shift_y) of frame t for a horizontal sensor fit of SENSOR_MM. Blender
        measures both shifts in widths of the image in *horizontal* pixels; a vertical pixel is
        pixel_aspect_y / pixel_aspect_x of those (Blender's camera viewplane)."""
        fx, cx, cy = self.K[t, 0, 0], self.K[t, 0, 2], self.K[t, 1, 2]
        W, H = self.width, self.height
        ax, ay = self.pixel_aspect()
        return fx * SENSOR_MM / W, (W / 2.0 - cx) / W, (cy - H / 2.0) * (ay / ax) / W

    def pixel_aspect(self):
        ratio = float(np.median(self.K[:, 1, 1] / self.K[:, 0, 0]))  # fy / fx: pixel width / height
        return (ratio, 1.0) if ratio >= 1.0 else (1.0, 1.0 / ratio)


# ------------------------------------------------------------------ building (all or nothing)


class _Undo:
    """Datablocks made and properties changed, put back in reverse order on failure."""

    KINDS = (
        "objects",
        "cameras",
        "meshes",
        "lights",
        "movieclips",
        "images",
        "node_groups",
        "collections",
        "actions",
        "materials",
        "sounds",
    )

    def __init__(self):
        self.before = {k: set(getattr(bpy.data, k)) for k in self.KINDS}
        self.values = []
        self.cleared = []  # objects given animation data here
        self.undos = []  # callables, run first

    def set(self, owner, name, value):
        self.values.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def restore(self):
        for undo in reversed(self.undos):
            undo()
        for obj in self.cleared:
            obj.animation_data_clear()
        for owner, name, value in reversed(self.values):
            try:
                setattr(owner, name, value)
            except (AttributeError, TypeError, ValueError, RuntimeError):
                pass
        for kind in self.KINDS:  # objects first: then their data has no users
            data = getattr(bpy.data, kind)
            for block in [b for b in data if b not in self.before[kind]]:
                data.remove(block)


def _key(fcurves, data_path, index, frames, values, constant=False):
    curve = compat.new_fcurve(fcurves, data_path, index, "")
    curve.keyframe_points.add(len(frames))
    curve.keyframe_points.foreach_set("co", np.stack([frames, values], axis=1).astype(np.float32).ravel())
    mode = 0 if constant else 2  # CONSTANT, LINEAR
    curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), mode, dtype=np.int32))
    curve.update()


def _animate(obj, name):
    obj.animation_data_create()
    action = bpy.data.actions.new(name)
    obj.animation_data.action = action
    return compat.action_fcurves(action, obj)


def _build_camera(shot: Shot, coll, name: str):
    from mathutils import Matrix

    data = bpy.data.cameras.new(name)
    cam = bpy.data.objects.new(name, data)
    coll.objects.link(cam)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_MM
    data.clip_start, data.clip_end = 0.05, 1000.0
    cam.rotation_mode = "QUATERNION"
    T = shot.num_frames
    locs, quats = np.zeros((T, 3)), np.zeros((T, 4))
    for t in range(T):
        loc, rot, _ = Matrix(shot.cameras[t].tolist()).decompose()
        q = np.array(rot)
        if t and q @ quats[t - 1] < 0:  # keep the keys on one side: linear keys between them stay short
            q = -q
        locs[t], quats[t] = loc, q
    lenses = np.array([shot.lens(t) for t in range(T)])
    cam.location, cam.rotation_quaternion = locs[0], quats[0]
    data.lens, data.shift_x, data.shift_y = lenses[0]
    frames = START + np.arange(T, dtype=np.float64)
    if T > 1 and (np.ptp(locs, axis=0).max() > 1e-9 or np.ptp(quats, axis=0).max() > 1e-9):
        curves = _animate(cam, f"{name}: track")
        for c in range(3):
            _key(curves, "location", c, frames, locs[:, c])
        for c in range(4):
            _key(curves, "rotation_quaternion", c, frames, quats[:, c])
    if T > 1 and np.ptp(lenses, axis=0).max() > 1e-9:
        curves = _animate(data, f"{name}: intrinsics")
        for c, prop in enumerate(("lens", "shift_x", "shift_y")):
            _key(curves, prop, 0, frames, lenses[:, c])
    return cam


def _visibility(avatar: Avatar, shot: Shot, undo: _Undo):
    """The avatar shown only in the frames the person is tracked in (as displayed now otherwise)."""
    present = np.zeros(shot.num_frames, bool)
    present[shot.person.frames] = True
    if present.all():
        return
    frames = START + np.arange(shot.num_frames, dtype=np.float64)
    for obj in (avatar.body, avatar.splats):
        paths = [p for p in ("hide_render", "hide_viewport") if not getattr(obj, p)]
        if not paths:
            continue
        previous = obj.animation_data.action if obj.animation_data is not None else None
        if previous is not None and not previous.get("dreamwaltz_reenact"):  # an earlier reenact's is replaced
            raise errors.DreamWaltzError(
                f"'{obj.name}' already has an animation.",
                "Clear its animation (Object > Animation > Clear Keyframes), then reenact.",
            )
        if obj.animation_data is None:
            undo.cleared.append(obj)
        else:
            undo.values.append((obj.animation_data, "action", previous))
        curves = _animate(obj, f"{obj.name}: tracked frames")
        obj.animation_data.action["dreamwaltz_reenact"] = True
        for p in paths:
            _key(curves, p, 0, frames, (~present).astype(np.float64), constant=True)


def _build_ground(shot: Shot, coll, name: str):
    import bmesh

    centre = shot.pelvis_blender[:, :2].mean(axis=0) if len(shot.pelvis_blender) else np.zeros(2)
    cams = np.array([np.linalg.inv(shot.rig_world) @ m for m in shot.cameras])[:, :2, 3]
    reach = max(np.abs(shot.pelvis_blender[:, :2] - centre).max(initial=0.0), np.abs(cams - centre).max(initial=0.0))
    size = 2.0 * reach + 10.0
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2.0)
    bm.to_mesh(mesh)
    bm.free()
    ground = bpy.data.objects.new(name, mesh)
    coll.objects.link(ground)
    ground.matrix_world = bpy_matrix(shot.rig_world @ _translation(centre[0], centre[1], 0.0))
    ground.is_shadow_catcher = True
    return ground


def _translation(x, y, z):
    m = np.eye(4)
    m[:3, 3] = x, y, z
    return m


def bpy_matrix(m):
    from mathutils import Matrix

    return Matrix(np.asarray(m, dtype=np.float64).tolist())


def _compositor(scene, clip, undo: _Undo):
    """The plate behind the render: film transparent, the clip alpha-over'd under the render layer."""
    from . import compat

    undo.set(scene.render, "film_transparent", True)
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0: the compositor is a node group
        tree = bpy.data.node_groups.new("DreamWaltz Reenact", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
        undo.set(scene, "compositing_node_group", tree)
        target = out.inputs[0]
    else:  # 4.2-4.5: the scene's own node tree, whose (first) Composite node is the output
        undo.set(scene, "use_nodes", True)
        tree = scene.node_tree
        out = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
        if out is None:
            out = tree.nodes.new("CompositorNodeComposite")
            undo.undos.append(lambda: tree.nodes.remove(out))
        target = out.inputs["Image"]
        previous = [link.from_socket for link in target.links]  # the artist's input, put back on undo
        for node in list(tree.nodes):
            if node != out:
                undo.set(node, "mute", True)  # keep the artist's nodes (muted); ours drive the output
        undo.undos.append(lambda: [tree.links.new(socket, target) for socket in previous])
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    plate = tree.nodes.new("CompositorNodeMovieClip")
    plate.clip = clip
    over = tree.nodes.new("CompositorNodeAlphaOver")
    background, foreground = compat.alpha_over_inputs(over)
    tree.links.new(plate.outputs["Image"], background)
    tree.links.new(layers.outputs["Image"], foreground)
    tree.links.new(over.outputs["Image"], target)
    layers.location, plate.location, over.location, out.location = (-300, 150), (-300, -150), (0, 0), (250, 0)
    over.name = over.label = "DreamWaltz Plate Over"
    if not hasattr(scene, "compositing_node_group"):  # 4.2-4.5: our nodes are in the artist's tree; out on failure
        undo.undos.append(lambda: [tree.nodes.remove(n) for n in (layers, plate, over)])
    return tree


def _video_output(scene, video, undo: _Undo):
    image = scene.render.image_settings
    if hasattr(image, "media_type"):  # 5.0: stills vs video chosen first
        undo.set(image, "media_type", "VIDEO")
    undo.set(image, "file_format", "FFMPEG")
    ff = scene.render.ffmpeg
    undo.set(ff, "format", "MPEG4")
    undo.set(ff, "codec", "H264")
    undo.set(ff, "constant_rate_factor", "HIGH")
    if video is not None:
        undo.set(ff, "audio_codec", "AAC")  # the video's sound, when added to the sequencer
        undo.set(scene.render, "filepath", str(Path(video).with_name(Path(video).stem + "_reenact.mp4")))


def _audio(scene, path, num_frames: int, undo: _Undo):
    """The video's sound as a sound strip in the sequencer, so a rendered video keeps it (a sound
    strip does not replace the 3D render). A file without sound, or a Blender built without audio,
    gives no strip."""
    from . import compat

    if not compat.HAS_AUDIO:
        return None
    had_editor = scene.sequence_editor is not None
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.0 renamed sequences to strips
    if not had_editor:
        undo.undos.append(lambda: scene.sequence_editor_clear())
    strip = strips.new_sound(Path(path).stem + " sound", str(path), 1, START)
    if strip.frame_final_duration <= 1 < num_frames:  # Blender's placeholder for a file without sound
        strips.remove(strip)
        if not had_editor:
            scene.sequence_editor_clear()
            undo.undos.pop()
        return None
    undo.undos.append(lambda: strips.remove(strip))
    return strip


def reenact(avatar: Avatar, track_path, video_path=None, plate_path=None, person: int = 0, allow_pickle: bool = False):
    """Build the reenactment shot for ``avatar`` from a track file; returns the new camera.

    ``plate_path``: a clean plate (``dreamwaltz reenact --plate-out``) shown behind the avatar;
    ``video_path``: the original video (shown when no plate is given; checked against the track
    either way). Without either, size and rate come from the track. All checks come first; any
    error leaves the scene as it was.
    """
    from . import motion as blender_motion

    scene = bpy.context.scene
    track = read_track(track_path, allow_pickle)
    track.person(person)  # a missing person is refused before Blender loads anything
    undo = _Undo()
    saved = blender_motion._SceneState(avatar, scene)
    try:
        clips = {}
        for role, path in (("video", video_path), ("plate", plate_path)):
            if path is None:
                continue
            if not Path(path).exists():
                raise errors.TrackError(f"The {role} '{path}' does not exist.", f"Check the path to the {role}.")
            clip = bpy.data.movieclips.load(str(path))
            num_frames, width, height, fps = _clip_facts(clip, path)
            track.check_video(num_frames, width, height)
            clips[role] = (clip, num_frames, width, height, fps)
        if "plate" in clips and "video" in clips:  # the video was only checked: the plate is shown
            bpy.data.movieclips.remove(clips.pop("video")[0])
        if clips:
            _, num_frames, width, height, fps = clips.get("plate", clips.get("video"))
        else:
            if track.camera is None or not track.camera.width:
                raise errors.TrackError(
                    f"The track ({track.source or Path(track_path).name}) does not give the image size.",
                    "Give the video (or the plate) too.",
                )
            num_frames, width, height, fps = track.num_frames, track.camera.width, track.camera.height, None
            track.check_video(num_frames, width, height)
        track = track.with_image_size(width, height)
        shot = Shot(avatar, track, person, num_frames, width, height, fps)

        label = Path(video_path or plate_path or track_path).name.split(".")[0]
        coll = bpy.data.collections.new(f"DW Reenact {label}"[:60])
        scene.collection.children.link(coll)
        blender_motion.key_sequence(avatar, shot.seq, shot.frames, f"{avatar.armature.name}: {label} track")
        _visibility(avatar, shot, undo)
        cam = _build_camera(shot, coll, f"{label} Camera")
        undo.set(scene, "camera", cam)
        _build_ground(shot, coll, f"{label} Shadow Catcher")
        sun_data = bpy.data.lights.new(f"{label} Sun", "SUN")
        sun = bpy.data.objects.new(sun_data.name, sun_data)
        coll.objects.link(sun)
        centre = shot.pelvis_blender.mean(axis=0) if len(shot.pelvis_blender) else np.zeros(3)
        sun.location = (shot.rig_world @ [centre[0], centre[1], 5.0, 1.0])[:3]
        sun.rotation_euler = (0.35, 0.2, 0.0)  # a light to start from: the artist moves it to match the plate
        plate = clips.get("plate", clips.get("video"))
        if plate is not None:
            clip = plate[0]
            clip.frame_start = START
            bg = cam.data.background_images.new()
            bg.source = "MOVIE_CLIP"
            bg.clip = clip
            bg.use_camera_clip = False
            bg.frame_method = "FIT"
            cam.data.show_background_images = True
            _compositor(scene, clip, undo)

            view = scene.view_settings
            for name, value in (("view_transform", STANDARD_VIEW), ("look", "None"), ("exposure", 0.0), ("gamma", 1.0)):
                undo.set(view, name, value)
        render = scene.render
        if hasattr(scene, "cycles"):
            undo.set(render, "engine", "CYCLES")  # the shadow catcher is Cycles'
        for name, value in (("resolution_x", width), ("resolution_y", height), ("resolution_percentage", 100)):
            undo.set(render, name, value)
        ax, ay = shot.pixel_aspect()
        undo.set(render, "pixel_aspect_x", ax)
        undo.set(render, "pixel_aspect_y", ay)
        rate = max(1, int(round(shot.fps)))
        undo.set(render, "fps", rate)
        undo.set(render, "fps_base", rate / shot.fps)
        _video_output(scene, video_path or plate_path, undo)
        if video_path or plate_path:
            _audio(scene, video_path or plate_path, num_frames, undo)
        scene.frame_start, scene.frame_end = START, START + num_frames - 1
        first = int(shot.frames[0]) if len(shot.frames) else START
        scene.frame_set(first)
    except BaseException as err:
        undo.restore()
        saved.restore()
        if isinstance(err, errors.DreamWaltzError) or not isinstance(err, Exception):
            raise
        raise errors.DreamWaltzError(
            f"Reenacting '{Path(track_path).name}' failed ({type(err).__name__}: {err}); the scene is unchanged.",
            "Please report this with the track.",
        ) from err
    return cam


def make_clean_plate(
    avatar: Avatar, track_path, video_path, person: int = 0, python=None, allow_pickle: bool = False
) -> Path:
    """Ask the local backend for the clean plate: ``dreamwaltz reenact VIDEO --plate-out`` run by the
    backend's Python (the add-on preferences' Backend Python, or ``python``), written beside the
    video as ``<video>_plate.mp4``. A remote backend cannot be handed a local video: there, run
    ``dreamwaltz reenact --plate-out`` on its machine and choose the plate."""
    import tempfile

    from .backend import local

    video = Path(video_path)
    plate = video.with_name(video.stem + "_plate.mp4")
    with tempfile.TemporaryDirectory(prefix="dreamwaltz-plate-") as tmp:
        cmd = [
            "reenact",
            str(video),
            "--track",
            str(track_path),
            "--avatar",
            str(avatar.armature["dreamwaltz_file"]),
            "--person",
            str(person),
            "--plate-out",
            str(plate),
            "--out",
            str(Path(tmp) / "composite.mp4"),
        ]
        if allow_pickle:
            cmd.append("--allow-pickle")
        done = local.run_command(
            cmd,
            python,
            "Install Backend in the DreamWaltz preferences, or run `dreamwaltz reenact VIDEO --track TRACK "
            "--avatar A.h3ga --plate-out PLATE.mp4` on the backend machine and choose the plate.",
        )
    if done.returncode != 0 or not plate.is_file():
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise errors.DreamWaltzError(
            f"The backend could not make the clean plate: {last[:300]}",
            "Check the video and the track with `dreamwaltz track info`.",
        )
    return plate


# ------------------------------------------------------------------ operator


class DREAMWALTZ_OT_reenact_video(bpy.types.Operator):
    """Replace a tracked person in a video by the active avatar: the track's camera, the avatar moved by the track, the plate behind it and a shadow catcher"""

    bl_idname = "dreamwaltz.reenact_video"
    bl_label = "Reenact Video"
    bl_options = {"REGISTER", "UNDO"}

    track_path: StringProperty(
        name="Track",
        subtype="FILE_PATH",
        description="The track: .track.npz (dreamwaltz track convert), a SMPLer-X folder, .smpl or AMASS-style .npz",
    )
    plate_path: StringProperty(
        name="Plate or Video",
        subtype="FILE_PATH",
        description="The clean plate (dreamwaltz reenact --plate-out) or the original video",
    )
    video_path: StringProperty(
        name="Original Video",
        subtype="FILE_PATH",
        description="Optional: the original video, to check the track against when a plate is given",
    )
    person: IntProperty(name="Person", default=0, min=0, description="Which tracked person the avatar replaces")
    allow_pickle: BoolProperty(
        name="Allow Pickles",
        default=False,
        description="Pickled tracks can run code; they are converted by the backend only on request",
    )
    make_plate: BoolProperty(
        name="Make Clean Plate",
        default=False,
        description="Have the local backend remove the person from the original video "
        "(dreamwaltz reenact --plate-out) and show that plate; needs the Original Video",
    )

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and (obj.get("dreamwaltz_role") or (obj.parent and obj.parent.get("dreamwaltz_role")))

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=420)

    def draw(self, context):
        for name in ("track_path", "plate_path", "video_path", "make_plate", "person", "allow_pickle"):
            self.layout.prop(self, name)

    def execute(self, context):
        path = lambda p: bpy.path.abspath(p) if p else None  # noqa: E731
        try:
            if not self.track_path:
                raise errors.TrackError("No track file was chosen.", "Choose the track (.track.npz) of the video.")
            avatar = Avatar.from_object(context.active_object)
            plate = path(self.plate_path)
            if self.make_plate:
                if not self.video_path:
                    raise errors.TrackError(
                        "Making a clean plate needs the original video.", "Choose the Original Video."
                    )
                # Checked by reenact() below too; made first so a bad track fails before the long backend run.
                read_track(path(self.track_path), self.allow_pickle).person(self.person)
                plate = str(
                    make_clean_plate(
                        avatar,
                        path(self.track_path),
                        path(self.video_path),
                        self.person,
                        allow_pickle=self.allow_pickle,
                    )
                )
            cam = reenact(
                avatar,
                path(self.track_path),
                video_path=path(self.video_path),
                plate_path=plate,
                person=self.person,
                allow_pickle=self.allow_pickle,
            )
        except errors.DreamWaltzError as err:
            self.report({"ERROR"}, " ".join(str(err).split()))  # the message and its fix, one line
            return {"CANCELLED"}
        scene = context.scene
        self.report({"INFO"}, f"Reenactment shot: camera '{cam.name}', frames {scene.frame_start}-{scene.frame_end}")
        return {"FINISHED"}


def register():
    bpy.utils.register_class(DREAMWALTZ_OT_reenact_video)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_OT_reenact_video)
