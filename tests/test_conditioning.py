"""Issue 3: keypoints, occlusion, ControlNet-style skeleton images, cameras and view prompts."""

from __future__ import annotations

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")

from dreamwaltz.body import BodyModel
from dreamwaltz.body.poses import apose
from dreamwaltz.conditioning import body_keypoints, draw_openpose, sample_camera, view_prompt
from dreamwaltz.conditioning.openpose import BODY_COLORS
from dreamwaltz.core.camera import Camera, intrinsics, look_at, orbit_camera
from dreamwaltz.core.joints import JOINT_INDEX


@pytest.fixture(scope="module")
def posed():
    body = BodyModel.load("open")
    out = body(full_pose=apose()[None])
    return tuple(t[0].numpy() for t in (out.joints, out.landmarks, out.vertices))


def front(size=512, az=0.0):
    return orbit_camera(az, 90, 2.6, (0, -0.1, 0), 50, size, size)


def test_drawn_pixels_have_controlnet_colours_at_the_keypoints(posed):
    kp = body_keypoints(*posed, front())
    image = draw_openpose(kp, hands=False, face=False)
    for i, (x, y, visible) in enumerate(kp.body):
        assert visible
        assert tuple(image[int(y), int(x)]) == BODY_COLORS[i], f"keypoint {i}"
    # Limbs are drawn at 60 % intensity: the middle of the left forearm (LElbow 6 -> LWrist 7, limb 5).
    mid = ((kp.body[6, :2] + kp.body[7, :2]) / 2).astype(int)
    assert tuple(image[mid[1], mid[0]]) == tuple(int(c * 0.6) for c in BODY_COLORS[5])


def test_left_and_right_are_the_subjects(posed):
    kp = body_keypoints(*posed, front())
    assert kp.body[2, 0] < kp.body[5, 0], "in a front view the subject's right shoulder is on the image's left"


def test_back_view_has_no_face_points_front_view_has_them(posed):
    assert body_keypoints(*posed, front()).face[:, 2].sum() > 50
    assert body_keypoints(*posed, front(az=180)).face[:, 2].sum() == 0
    image = draw_openpose(body_keypoints(*posed, front(az=180)))
    assert not (image == 255).all(axis=2).any(), "no white face dots in a back view"


def test_a_hand_close_up_shows_its_21_points(posed):
    joints, landmarks, vertices = posed
    target = joints[JOINT_INDEX["left_middle1"]]
    eye = target + np.array([0.0, -0.35, 0.05])  # below the palm-down hand, looking up at its palm
    cam = Camera(look_at(eye, target, up=(0, 0, 1.0)), intrinsics(60, 256, 256), 256, 256)
    kp = body_keypoints(joints, landmarks, vertices, cam)
    assert kp.left_hand[:, 2].sum() == 21
    assert kp.right_hand[:, 2].sum() == 0


def test_points_behind_the_camera_are_dropped(posed):
    joints, landmarks, vertices = posed
    eye = joints[JOINT_INDEX["head"]] + np.array([0, 0, 0.3])
    cam = Camera(look_at(eye, eye + np.array([0, 0, 1.0])), intrinsics(60, 128, 128), 128, 128)
    kp = body_keypoints(joints, landmarks, vertices, cam)
    assert kp.body[:, 2].sum() == 0 and kp.face[:, 2].sum() == 0


def test_camera_sampler_ranges(posed):
    joints = posed[0]
    rng = np.random.default_rng(0)
    samples = [sample_camera(rng, joints, 64) for _ in range(400)]
    body = [s for s in samples if s.kind == "body"]
    faces = [s for s in samples if s.kind == "face"]
    assert 0.12 < len(faces) / len(samples) < 0.28
    for s in body:
        assert 60 <= s.elevation <= 120 and -180 <= s.azimuth <= 180
        assert 40 <= s.camera.fov_y_deg <= 70.01
        r = np.linalg.norm(s.camera.position - np.array([joints[0, 0], s.camera.position[1], joints[0, 2]]))
        assert r <= 2.0 + 1e-6
    assert np.ptp([s.azimuth for s in body]) > 300


@pytest.mark.parametrize(
    "azimuth, elevation, expected",
    [
        (0, 90, "front view"),
        (30, 90, "front view"),
        (90, 90, "side view"),
        (-100, 90, "side view"),
        (180, 90, "back view"),
        (10, 10, "overhead view"),
        (0, 170, "bottom view"),
    ],
)
def test_view_prompts(azimuth, elevation, expected):
    assert view_prompt("a knight", azimuth, elevation) == f"a knight, {expected}"


def test_close_up_prompts_describe_the_crop_not_a_whole_body():
    face = view_prompt("a knight", 10, 90, "face")
    hand = view_prompt("a knight", 10, 90, "hand")
    assert "close-up" in face and "face" in face and "front view" in face and "a knight" in face
    assert "close-up" in hand and "hand" in hand and "front view" not in hand
    assert "side view" in view_prompt("a knight", 70, 90, "face")


def test_condition_cli_writes_image_and_keypoints(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "skel.png"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamwaltz",
            "condition",
            "--body",
            "open",
            "--pose",
            "apose",
            "--azimuth",
            "30",
            "--size",
            "256",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["body"]) == 18 and len(data["face"]) == 68 and len(data["left_hand"]) == 21
    from PIL import Image

    assert Image.open(out).size == (256, 256)
