"""Issue 18 in Blender: api.reenact builds a shot whose camera, avatar motion, frame range and
render match the track (docs/REENACT.md, "Reenactment in Blender")."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.camera import Camera
from dreamwaltz.core.h3ga import read_h3ga, write_h3ga
from dreamwaltz.core.posing import pose_body
from dreamwaltz.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamwaltz.core.testing import make_test_avatar
from dreamwaltz.core.tracks import Track, TrackCamera, make_person, write_track

pytestmark = pytest.mark.blender
W, H, T, FPS = 64, 48, 4, 25
FRAMES = np.arange(1, T)  # the person is missing from frame 0


def _walk(t: int) -> np.ndarray:
    pose = np.zeros((55, 3))
    pose[1, 0], pose[2, 0] = 0.4 * np.sin(t), -0.4 * np.sin(t)
    pose[16, 2], pose[17, 2] = -1.0, 1.0
    pose[18, 1] = 0.5
    return pose


def make_track(data, world: bool, fy_scale: float = 1.0, distance: float = 3.2) -> Track:
    """A person walking toward the camera; static camera-frame track, or a world (y-up) track
    seen by a camera that moves, turns and zooms every frame."""
    K = np.array([[58.0, 0, 30.5], [0, 58.0 * fy_scale, 26.0], [0, 0, 1.0]])
    betas = np.repeat((data["rig/betas"] + 0.3)[None], len(FRAMES), 0)  # not the avatar's own shape
    rest = data["body/template_vertices"] + data["body/shape_dirs"] @ betas[0]
    pelvis0 = (data["rig/joint_regressor"] @ rest)[0]
    pose = np.stack([_walk(int(t)) for t in FRAMES])
    flip = np.diag([1.0, -1.0, -1.0])
    if not world:  # upright, facing the camera, 3 m in front of it
        for i, t in enumerate(FRAMES):
            pose[i, 0] = matrix_to_axis_angle(
                axis_angle_to_matrix(np.array([np.pi, 0, 0])) @ axis_angle_to_matrix(np.array([0, 0.2 * t, 0]))
            )
        pelvis = np.array([[-0.3 + 0.2 * t, 0.1, 3.0] for t in FRAMES])
        camera = TrackCamera(np.repeat(K[None], T, 0), W, H)
    else:
        pose[:, 0] = [[0, 0.2 * t, 0] for t in FRAMES]
        pelvis = np.array([[0.1 * t, 0.9, 0.05 * t] for t in FRAMES])
        w2c = np.tile(np.eye(4), (T, 1, 1))
        for t in range(T):
            R = axis_angle_to_matrix(np.array([0.05 * t, 0.08 * t - 0.1, 0.02])) @ flip
            centre = np.array([0.3 * t - 0.4, 1.1, distance + 0.1 * t])
            w2c[t, :3, :3], w2c[t, :3, 3] = R, -R @ centre
        zoom = np.repeat(K[None], T, 0)
        zoom[:, :2, :2] *= (1.0 + 0.05 * np.arange(T))[:, None, None]  # the lens zooms in
        camera = TrackCamera(zoom, W, H, w2c)
    person = make_person(FRAMES, pose, pelvis - pelvis0, betas)
    return Track([person], camera, float(FPS), "world" if world else "camera", "synthetic")


def truth_joints(data, track: Track, i: int) -> np.ndarray:
    """The avatar's joints posed by the track with its pelvis on the tracked pelvis (the backend's rule)."""
    p = track.persons[0]
    rest = data["body/template_vertices"] + data["body/shape_dirs"] @ p.betas[i]
    transl = p.transl[i] + (data["rig/joint_regressor"] @ rest)[0] - data["rig/rest_joints"][0]
    return pose_body(data, p.full_pose[i], transl=transl).joints, transl


def write_video(path, frames: int, seed: int = 0, audio: bool = False):
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = W, H, "yuv444p"
        s.options = {"crf": "0"}
        if audio:
            a = c.add_stream("aac", rate=44100)
            a.layout = "mono"
            n = 44100 * frames // FPS
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)[None]
            for start in range(0, n, 1024):
                f = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
                )
                f.sample_rate, f.pts = 44100, start
                for p in a.encode(f):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
        for t in range(frames):
            img = np.full((H, W, 3), (40 + 20 * t, 120, 200), np.uint8) + rng.integers(0, 3, (H, W, 3)).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def shot(addon, tmp_path):
    from dreamwaltz_blender import api

    avatar_file = make_test_avatar(num_free=1500, num_bound=300, seed=4)
    path = write_h3ga(tmp_path / "a.h3ga", avatar_file)
    return api.import_avatar(str(path), set_view_transform=True), read_h3ga(path), tmp_path


def _pixels(bpy, scene, cam, points):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    out = []
    for p in points:
        v = world_to_camera_view(scene, cam, Vector(p))
        out.append((v.x * W, (1.0 - v.y) * H))
    return np.array(out)


@pytest.mark.parametrize("world", [False, True], ids=["static-camera-frame", "moving-world"])
def test_camera_and_avatar_project_like_the_track(shot, world):
    import bpy

    from dreamwaltz.core.joints import JOINT_NAMES
    from dreamwaltz_blender import api

    avatar, data, tmp = shot
    track = make_track(data, world, fy_scale=1.1 if world else 1.0)
    track.fps = 30.0  # the video's 25 fps wins (as in `dreamwaltz reenact`): it is what is rendered
    video = write_video(tmp / "v.mp4", T)
    if world:  # an avatar moved by its armature object (e.g. api.layout_avatars): the shot moves with it
        avatar.armature.location, avatar.armature.rotation_euler = (1.0, 2.0, 0.5), (0.0, 0.0, 0.5)
        bpy.context.view_layer.update()
    cam = api.reenact(avatar, str(write_track(tmp / "v.track.npz", track)), video_path=str(video))
    scene = bpy.context.scene
    assert scene.camera == cam
    assert (scene.frame_start, scene.frame_end) == (1, T)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(FPS)
    assert (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage) == (W, H, 100)
    assert cam.data.background_images[0].clip.filepath.endswith("v.mp4")
    worst = 0.0
    for i, t in enumerate(FRAMES):
        scene.frame_set(1 + int(t))
        joints, _ = truth_joints(data, track, i)
        cam_pts = joints @ track.viewmat(t)[:3, :3].T + track.viewmat(t)[:3, 3]
        assert (cam_pts[:, 2] > 0.5).all()
        uv = Camera(track.viewmat(t), track.camera.K[t], W, H).project(joints)[0]
        rig = avatar.armature
        heads = [rig.matrix_world @ rig.pose.bones[n].head for n in JOINT_NAMES]
        got = _pixels(bpy, scene, cam, heads)
        worst = max(worst, float(np.abs(got - uv).max()))
    print("worst joint reprojection error px:", worst)
    assert worst < 2.0
    if world:
        assert cam.animation_data is not None and cam.animation_data.action is not None, "a moving camera is keyed"
        assert cam.data.animation_data is not None and cam.data.animation_data.action is not None, "a zoom is keyed"
    else:
        assert cam.animation_data is None, "a camera-frame track keeps the camera still"
    # The avatar is shown only where the person is tracked.
    scene.frame_set(1)
    assert avatar.splats.hide_render
    scene.frame_set(2)
    assert not avatar.splats.hide_render


def test_cycles_frame_matches_the_backend_silhouette(shot):
    import bpy
    from backend_reference import rasterize_posed_arrays

    from dreamwaltz.core.posing import pose_avatar
    from dreamwaltz.reenact import auto_supersample
    from dreamwaltz_blender import api

    avatar, data, tmp = shot
    track = make_track(data, world=True, distance=2.2)  # the body about 45 px tall
    cam = api.reenact(avatar, str(write_track(tmp / "v.track.npz", track)))  # size from the track, no plate
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == (W, H)
    i, t = 1, int(FRAMES[1])
    scene.frame_set(1 + t)
    for obj in cam.users_collection[0].objects:
        if obj.type != "CAMERA":
            obj.hide_render = True  # the avatar alone (no shadow in the alpha)
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 32, False
    scene.render.film_transparent = True
    if hasattr(scene.render.image_settings, "media_type"):  # 5.0
        scene.render.image_settings.media_type = "IMAGE"
    scene.render.image_settings.file_format, scene.render.image_settings.color_mode = "PNG", "RGBA"
    scene.render.filepath = str(tmp / "frame.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp / "frame.png"))
    px = np.empty(W * H * 4, np.float32)
    image.pixels.foreach_get(px)
    blender_alpha = px.reshape(H, W, 4)[::-1, :, 3]
    _, transl = truth_joints(data, track, i)
    posed = pose_avatar(data, track.persons[0].full_pose[i], transl=transl)
    # As `dreamwaltz reenact` renders the avatar (reenact.AvatarLayer): as trained (rasterize_posed's
    # AVATAR_RENDER: antialiased), supersampled so the body spans 256 px (at most 4x), box-filtered down.
    heights = np.ptp(Camera(track.viewmat(t), track.camera.K[t], W, H).project(posed.body.vertices)[0][:, 1])
    ss = auto_supersample(np.array([heights]))
    fine = Camera(track.viewmat(t), np.diag([ss, ss, 1.0]) @ track.camera.K[t], W * ss, H * ss)
    _, alpha = rasterize_posed_arrays(posed, fine.viewmat, fine.K, fine.width, fine.height, (0.0, 0.0, 0.0))
    backend_alpha = alpha.reshape(H, ss, W, ss).mean(axis=(1, 3))
    a, b = blender_alpha > 0.5, backend_alpha > 0.5
    iou = (a & b).sum() / (a | b).sum()
    print(f"silhouette IoU {iou:.3f} (supersampling {ss}), px {a.sum()} vs {b.sum()}")
    assert b.sum() > 150, "the avatar is in view"
    assert iou >= 0.85


def test_plate_shows_behind_the_render_with_a_shadow_catcher_and_video_output(shot):
    import bpy

    from dreamwaltz_blender import api

    avatar, data, tmp = shot
    track = make_track(data, world=True, distance=2.2)
    plate = write_video(tmp / "plate.mp4", T, audio=True)
    video = write_video(tmp / "video.mp4", T, seed=1, audio=True)
    cam = api.reenact(
        avatar, str(write_track(tmp / "v.track.npz", track)), video_path=str(video), plate_path=str(plate)
    )
    scene = bpy.context.scene
    assert [c.filepath for c in bpy.data.movieclips] == [str(plate)], "the plate is shown; the video was only checked"
    ff = scene.render.ffmpeg
    assert (scene.render.image_settings.file_format, ff.format, ff.codec) == ("FFMPEG", "MPEG4", "H264")
    assert scene.render.filepath.endswith("video_reenact.mp4")
    assert scene.render.film_transparent and scene.render.engine == "CYCLES"
    from dreamwaltz_blender import compat

    if compat.HAS_AUDIO:  # the PyPI bpy 4.2 wheel is built without audio
        strips = list(
            scene.sequence_editor.strips
            if hasattr(scene.sequence_editor, "strips")
            else scene.sequence_editor.sequences
        )
        assert [(st.type, st.frame_final_start) for st in strips] == [("SOUND", 1)], "the video's sound, from frame 1"
        assert abs(strips[0].frame_final_duration - T) <= 1
    ground = next(o for o in cam.users_collection[0].objects if o.type == "MESH")
    assert ground.is_shadow_catcher
    # The feet: on the ground at their lowest over the clip, never under it.
    lowest = []
    for t in FRAMES:
        scene.frame_set(1 + int(t))
        mesh = avatar.body.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        z = np.array([(avatar.body.matrix_world @ v.co).z for v in mesh.vertices])
        lowest.append(z.min() - ground.matrix_world.translation.z)
    assert -0.02 < min(lowest) < 0.02, lowest
    # A Cycles frame: the plate (frame 2's colour) where the avatar is not, the avatar where it is.
    t = 2
    scene.frame_set(1 + t)
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 8, False
    if hasattr(scene.render.image_settings, "media_type"):  # 5.0
        scene.render.image_settings.media_type = "IMAGE"
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp / "composited.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp / "composited.png"))
    px = np.empty(W * H * image.channels, np.float32)
    image.pixels.foreach_get(px)
    rgb = px.reshape(H, W, image.channels)[::-1, :, :3] * 255
    expected = np.array([40 + 20 * t, 120, 200]) + 1.0  # write_video's colour (+ noise 0-2)
    assert np.abs(rgb[1, 1] - expected).max() < 4.0, rgb[1, 1]
    assert np.abs(rgb[1, W - 2] - expected).max() < 4.0, rgb[1, W - 2]
    spine = truth_joints(data, track, int(np.searchsorted(FRAMES, t)))[0][3:4]
    u, v = Camera(track.viewmat(t), track.camera.K[t], W, H).project(spine)[0][0]
    assert np.abs(rgb[int(v), int(u)] - expected).max() > 20.0, "the avatar covers the plate at its spine"
    # The avatar's shadow on the catcher darkens the plate: the same frame without the light.
    next(o for o in cam.users_collection[0].objects if o.type == "LIGHT").hide_render = True
    scene.render.filepath = str(tmp / "unlit.png")
    bpy.ops.render.render(write_still=True)
    unlit = bpy.data.images.load(str(tmp / "unlit.png"))
    unlit.pixels.foreach_get(px)
    darker = px.reshape(H, W, image.channels)[::-1, :, :3] * 255 - rgb
    print("darkest shadow (of 255):", darker.mean(-1).max())
    assert darker.mean(-1).max() > 20.0


def _state(bpy, avatar):
    scene = bpy.context.scene
    r = scene.render
    return (
        {
            k: len(getattr(bpy.data, k))
            for k in ("objects", "cameras", "meshes", "movieclips", "actions", "collections", "node_groups", "lights")
        },
        scene.camera,
        scene.frame_start,
        scene.frame_end,
        r.resolution_x,
        r.resolution_y,
        r.fps,
        r.engine,
        r.film_transparent,
        r.image_settings.file_format,
        avatar.armature.animation_data,
        avatar.splats.animation_data,
        scene.view_settings.view_transform,
        scene.sequence_editor is None,
        getattr(scene, "compositing_node_group", None),
        avatar.armature.pose.bones[0].rotation_mode,
        tuple(avatar.armature.pose.bones[0].location),
    )


def test_a_bad_track_changes_nothing(shot):
    import bpy

    from dreamwaltz.core.errors import TrackError
    from dreamwaltz_blender import api

    avatar, data, tmp = shot
    track_path = str(write_track(tmp / "v.track.npz", make_track(data, world=True)))
    before = _state(bpy, avatar)
    with pytest.raises(TrackError, match="no person 3"):
        api.reenact(avatar, track_path, video_path=str(write_video(tmp / "v.mp4", T)), person=3)
    assert _state(bpy, avatar) == before
    with pytest.raises(TrackError, match=f"covers {T} frames but the video has {T + 2}"):
        api.reenact(avatar, track_path, plate_path=str(write_video(tmp / "long.mp4", T + 2)))
    assert _state(bpy, avatar) == before
    with pytest.raises(TrackError, match="track convert"):
        api.reenact(avatar, str(tmp / "hmr4d_results.pt"))
    assert _state(bpy, avatar) == before
    # The operator reports the same error in one line and cancels.
    bpy.context.view_layer.objects.active = avatar.armature
    with pytest.raises(RuntimeError, match="no person 3"):
        bpy.ops.dreamwaltz.reenact_video(track_path=track_path, person=3)
    assert _state(bpy, avatar) == before
    # ... and builds the shot from good input.
    assert bpy.ops.dreamwaltz.reenact_video(track_path=track_path, plate_path=str(tmp / "v.mp4")) == {"FINISHED"}
    assert bpy.context.scene.camera is not None and bpy.context.scene.frame_end == T
    first = bpy.context.scene.camera
    assert bpy.ops.dreamwaltz.reenact_video(track_path=track_path, plate_path=str(tmp / "v.mp4")) == {"FINISHED"}
    assert bpy.context.scene.camera != first, "reenacting again makes a new shot (the avatar's keys replaced)"


def test_a_failure_late_in_the_build_undoes_everything(shot, monkeypatch):
    """Camera, keys, visibility, compositor, clip, ground, render settings: all put back."""
    import bpy

    from dreamwaltz.core.errors import DreamWaltzError
    from dreamwaltz_blender import api, reenact

    avatar, data, tmp = shot
    track_path = str(write_track(tmp / "v.track.npz", make_track(data, world=True)))
    before = _state(bpy, avatar)

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reenact, "_audio", broken)
    with pytest.raises(DreamWaltzError, match="disk full.*the scene is unchanged"):
        api.reenact(avatar, track_path, plate_path=str(write_video(tmp / "p.mp4", T, audio=True)))
    assert _state(bpy, avatar) == before


def test_the_local_backend_makes_the_clean_plate(shot):
    """make_plate: the add-on runs `dreamwaltz reenact --plate-out` with the local backend's Python and
    shows that plate; without a backend it says how to make one, and nothing changes."""
    import bpy

    from dreamwaltz_blender import api, preferences

    backend_python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    if not backend_python.is_file():
        pytest.skip("no backend environment (.venv) to run the backend from")
    avatar, data, tmp = shot
    track_path = str(write_track(tmp / "v.track.npz", make_track(data, world=False)))
    video = write_video(tmp / "video.mp4", T)
    prefs = preferences.get(bpy.context)
    prefs.python_path = str(tmp / "missing" / "python")
    cameras = len(bpy.data.cameras)
    with pytest.raises(api.errors.DreamWaltzError, match="No local backend"):
        api.reenact(avatar, track_path, video_path=str(video), make_plate=True)
    assert len(bpy.data.cameras) == cameras and not (tmp / "video_plate.mp4").exists()

    prefs.python_path = str(backend_python)
    api.reenact(avatar, track_path, video_path=str(video), make_plate=True)
    plate = tmp / "video_plate.mp4"
    assert plate.is_file()
    shown = [c for c in bpy.data.movieclips if Path(bpy.path.abspath(c.filepath)).resolve() == plate.resolve()]
    assert shown and shown[0].frame_duration == T, "the plate is what the shot shows"
