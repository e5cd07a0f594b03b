"""Issue 19: ``dreamwaltz render-scene``: two avatars (one with a motion) in front of a 3DGS wall,
all Gaussians in one depth-sorted rasterization.

The references are built here from the avatar evaluator (``pose_avatar``), the transforms and the
camera interpolation written out by hand, and ``rasterize_posed``: the scene code is checked
against them, not against itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch
from PIL import Image

from dreamwaltz.cli import main
from dreamwaltz.core.camera import Camera, intrinsics, look_at
from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.motion import TargetSkeleton, load_motion
from dreamwaltz.core.posing import PosedSplats, pose_avatar
from dreamwaltz.core.rotations import quaternion_to_matrix
from dreamwaltz.core.splat_writers import write_gaussian_ply
from dreamwaltz.core.testing import make_test_avatar
from dreamwaltz.render import rasterize_posed

MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap" / "cmu_02_02_walk_daz.bvh"
W, H = 96, 64
RED, BLUE = (0.95, 0.05, 0.05), (0.05, 0.05, 0.95)
BACKGROUND = (0.1, 0.1, 0.1)
FRAMES = (1, 3)
# Camera keys at frames 1 and 3: frame 2 is their midpoint.
KEYS = [(1, (0.0, 0.1, 4.0), (0.0, 0.0, 0.0), 30.0), (3, (0.4, 0.3, 4.0), (0.1, 0.0, 0.0), 34.0)]
FAR = {"location": (-0.25, 0.0, -0.6), "yaw": 25.0, "scale": 1.0}
NEAR = {"location": (0.3, -0.05, 0.6), "quat": (math.cos(0.2), 0.0, math.sin(0.2), 0.0), "scale": 0.9, "start_frame": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The test machine's two cores are shared: torch's intra-op threads then cost seconds a frame.
    # Module scope, so it is set before the module-scoped render below.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def flat_avatar(color, seed):
    """A few hundred opaque splats of one colour, big enough to cover the body at 64 px."""
    avatar = make_test_avatar(num_free=500, num_bound=80, seed=seed)
    a = avatar.arrays
    a["free/colors"] = np.tile(color, (len(a["free/colors"]), 1))
    a["bound/colors"] = np.tile(color, (len(a["bound/colors"]), 1))
    a["free/log_scales"] = a["free/log_scales"] + math.log(3.0)
    a["free/opacity_logits"] = np.full_like(a["free/opacity_logits"], 4.0)
    return avatar


def wall():
    """A checkered wall of 3DGS splats at z = -1.5, behind both avatars."""
    xs, ys = np.meshgrid(np.linspace(-2.0, 2.0, 24), np.linspace(-1.4, 1.4, 16))
    means = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, -1.5)], 1)
    cov = np.tile(np.diag([0.1, 0.1, 0.01]) ** 2, (len(means), 1, 1))
    checker = (np.floor(xs.ravel() * 2) + np.floor(ys.ravel() * 2)) % 2
    colors = np.where(checker[:, None] > 0, [[0.2, 0.7, 0.3]], [[0.8, 0.8, 0.2]])
    return means, cov, colors, np.full(len(means), 0.9)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    (root / "assets").mkdir()
    far, near = flat_avatar(BLUE, 1), flat_avatar(RED, 2)
    write_h3ga(root / "assets" / "far.h3ga", far)
    write_h3ga(root / "assets" / "near.h3ga", near)
    write_gaussian_ply(root / "assets" / "wall.ply", *wall())
    scene = {
        "version": 1,
        "frames": list(FRAMES),
        "fps": 30,
        "width": W,
        "height": H,
        "background": list(BACKGROUND),
        "camera": {
            "keyframes": [{"frame": f, "position": list(p), "target": list(t), "fov_deg": fov} for f, p, t, fov in KEYS]
        },
        # The far avatar comes first: a renderer compositing in list order would draw it in front.
        "avatars": [
            {"name": "far", "file": "assets/far.h3ga", "location": list(FAR["location"]), "rotation": FAR["yaw"]},
            {
                "name": "near",
                "file": "assets/near.h3ga",
                "location": list(NEAR["location"]),
                "rotation": list(NEAR["quat"]),
                "scale": NEAR["scale"],
                "motion": str(MOCAP),
                "start_frame": NEAR["start_frame"],
            },
        ],
        "splats": [{"name": "wall", "file": "assets/wall.ply"}],
    }
    path = root / "shot.json"
    path.write_text(json.dumps(scene, indent=1))
    assert (
        main(
            [
                "render-scene",
                str(path),
                "--out",
                str(root / "frames"),
                "--mp4",
                str(root / "shot.mp4"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return {"root": root, "far": far, "near": near, "frames": root / "frames", "mp4": root / "shot.mp4"}


def reference_camera(frame):
    (f0, p0, t0, v0), (f1, p1, t1, v1) = KEYS
    s = (frame - f0) / (f1 - f0)
    lerp = lambda a, b: np.asarray(a) + s * (np.asarray(b) - np.asarray(a))
    return Camera(look_at(lerp(p0, p1), lerp(t0, t1)), intrinsics(v0 + s * (v1 - v0), W, H), W, H)


def placed(posed, location, R, scale):
    return PosedSplats(
        np.asarray(location) + scale * posed.means @ R.T,
        scale**2 * R @ posed.covariances @ R.T,
        posed.colors,
        posed.opacities,
    )


def reference_parts(shot, frame):
    """Each avatar of ``frame`` in world space, and the wall, built without core.scene."""
    yaw = math.radians(FAR["yaw"])
    R_far = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    far = placed(pose_avatar(shot["far"]), FAR["location"], R_far, FAR["scale"])
    seq = load_motion(MOCAP, TargetSkeleton.from_avatar(shot["near"]), fps=30)
    k = min(max(frame - NEAR["start_frame"], 0), seq.num_frames - 1)
    near = placed(
        pose_avatar(shot["near"], seq.full_pose[k], transl=seq.transl[k]),
        NEAR["location"],
        quaternion_to_matrix(np.array(NEAR["quat"])),
        NEAR["scale"],
    )
    means, cov, colors, opacities = wall()
    return far, near, PosedSplats(means, cov, colors, opacities)


def render(parts, camera):
    joined = PosedSplats(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("means", "covariances", "colors", "opacities"))
    )
    with torch.no_grad():
        out = rasterize_posed(joined, camera, "cpu", background=BACKGROUND)
    return (out.image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8), out.alpha[..., 0].numpy()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.mark.parametrize("frame", [1, 2, 3])
def test_the_nearer_avatar_hides_the_farther_and_the_rest_matches_per_avatar_renders(shot, frame):
    image = np.asarray(Image.open(shot["frames"] / f"frame_{frame:04d}.png"))
    assert image.shape == (H, W, 3)
    camera = reference_camera(frame)
    far, near, scene_splats = reference_parts(shot, frame)
    far_ref, _ = render([far, scene_splats], camera)
    near_ref, _ = render([near, scene_splats], camera)
    _, far_alpha = render([far], camera)
    _, near_alpha = render([near], camera)

    # Where both avatars cover the pixel, the nearer (red) one is what shows.
    both = (far_alpha > 0.9) & (near_alpha > 0.9)
    assert both.sum() >= 20, "the layout should make the avatars overlap"
    err_near = np.abs(image[both].astype(int) - near_ref[both]).mean()
    err_far = np.abs(image[both].astype(int) - far_ref[both]).mean()
    assert err_near < 12 and err_far > 100, (err_near, err_far)
    assert (image[both][:, 0].astype(int) - image[both][:, 2] > 120).mean() > 0.95  # red over blue

    # Where only one avatar (or neither) draws, the scene render is that avatar's own render with the wall.
    only_far, only_near = near_alpha == 0, far_alpha == 0
    assert (only_far & (far_alpha > 0.5)).sum() >= 50 and (only_near & (near_alpha > 0.5)).sum() >= 50
    assert psnr(image[only_far], far_ref[only_far]) >= 35
    assert psnr(image[only_near], near_ref[only_near]) >= 35
    # The wall is really there (and in colour) where no avatar is.
    empty = only_far & only_near
    assert (np.abs(image[empty].astype(int) - np.round(np.array(BACKGROUND) * 255)).sum(-1) > 60).mean() > 0.5


def test_the_mp4_has_every_frame_at_the_scene_size(shot):
    import av

    with av.open(str(shot["mp4"])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate
    assert len(frames) == FRAMES[1] - FRAMES[0] + 1 and frames[0].shape == (H, W, 3) and rate == 30
    first = np.asarray(Image.open(shot["frames"] / "frame_0001.png"))
    assert psnr(frames[0], first) > 25  # the same picture, through a lossy codec at 96x64


def test_an_orbit_camera_circles_the_centre(tmp_path):
    write_gaussian_ply(tmp_path / "wall.ply", *wall())
    scene = {
        "version": 1,
        "frames": [0, 3],
        "width": 32,
        "height": 24,
        "splats": [{"file": "wall.ply"}],
        "camera": {"orbit": {"center": [0, 1, 0], "radius": 2.0, "height": 0.5, "degrees": 360, "azimuth_deg": 90}},
    }
    from dreamwaltz.core.scene import parse_scene

    s = parse_scene(scene, tmp_path)
    positions = [s.camera_at(f).position for f in s.frames]
    expected = [(2, 1.5, 0), (0, 1.5, -2), (-2, 1.5, 0), (0, 1.5, 2)]  # azimuth 90 = +X, a quarter turn a frame
    assert np.allclose(positions, expected, atol=1e-9)
    cam = s.camera_at(0)
    uv, z = cam.project(np.array([[0.0, 1.0, 0.0]]))
    assert np.allclose(uv, [[16, 12]]) and z[0] > 0  # it looks at the centre


def write_scene(tmp_path, changes):
    """A valid small scene with ``changes`` applied: {"a__0__b": value} sets scene["a"][0]["b"]
    (value None deletes the field)."""
    write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=50, num_bound=10, seed=3))
    scene = {
        "version": 1,
        "frames": [1, 2],
        "width": 32,
        "height": 32,
        "camera": {"keyframes": [{"frame": 1, "position": [0, 0, 3], "target": [0, 0, 0]}]},
        "avatars": [{"file": "a.h3ga", "location": [0, 0, 0]}],
    }
    for key, value in changes.items():
        *parents, last = [int(k) if k.isdigit() else k for k in key.split("__")]
        node = scene
        for k in parents:
            node = node[k]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(scene))
    return path


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"avatars__0__file": "missing.h3ga"}, "avatars[0].file 'missing.h3ga' does not exist"),
        ({"avatars__0__location": "here"}, "avatars[0].location must be a list of 3 numbers"),
        ({"avatars__0__scale": -1}, "avatars[0].scale is -1"),
        ({"avatars__0__locaton": [0, 0, 0]}, "avatars[0].locaton is not a field"),
        ({"frames": [5, 2]}, "frames [5, 2] is an empty range"),
        ({"camera": None}, "camera is missing"),
        ({"camera": {"keyframes": []}}, "camera.keyframes is empty"),
        ({"width": 0}, "width is 0"),
        ({"version": 9}, "version is 9"),
        ({"splats": [{"file": "notes.ply"}]}, "splats[0].file: 'notes.ply' is neither a PLY nor an SPZ splat file"),
        ({"avatars__0__file": "notes.h3ga"}, "avatars[0].file: 'notes.h3ga' is not a DreamWaltz avatar"),
        ({"avatars__0__motion": "walk.fbx"}, "avatars[0].motion 'walk.fbx' is not a motion file"),
        ({"avatars__0__betas": [0.1]}, "avatars[0].betas has 1 values; 'a.h3ga' has 10"),
        ({"avatars__0__rotation": "left"}, "avatars[0].rotation must be a yaw angle in degrees or a quaternion"),
        ({"splats": [{"file": "points.ply"}]}, "splats[0].file: 'points.ply' is not a 3D Gaussian splatting PLY"),
    ],
)
def test_bad_scene_files_give_one_line_errors(tmp_path, capsys, changes, expected):
    (tmp_path / "notes.ply").write_text("hello")
    (tmp_path / "notes.h3ga").write_text("hello")
    (tmp_path / "walk.fbx").write_text("hello")
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + "".join(
        f"property float {c}\n" for c in "xyz"
    )
    (tmp_path / "points.ply").write_bytes((header + "end_header\n").encode() + np.zeros(3, "<f4").tobytes())
    path = write_scene(tmp_path, changes)
    assert main(["render-scene", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'bad.json'") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


def test_invalid_json_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"version": 1,\n "frames": [1, 2],,}')
    assert main(["render-scene", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'bad.json' is not valid JSON (line 2" in err and len(err.strip().splitlines()) == 1


def test_scene_to_dict_writes_what_parse_scene_reads(shot):
    from dreamwaltz.core.scene import load_scene, parse_scene, scene_to_dict

    scene = load_scene(shot["root"] / "shot.json")
    data = json.loads(json.dumps(scene_to_dict(scene, relative_to=shot["root"])))
    assert data["avatars"][0]["file"] == "assets/far.h3ga"  # relative to the scene's folder, as written
    again = parse_scene(data, shot["root"])
    assert scene_to_dict(again, shot["root"]) == data
    for frame in (1, 2, 3):
        assert np.allclose(again.camera_at(frame).viewmat, scene.camera_at(frame).viewmat)
    assert np.allclose(again.avatars[1].transform.rotation, scene.avatars[1].transform.rotation)
