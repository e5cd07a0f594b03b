"""Issue 3: exact ray-cast occlusion, ControlNet hand/face drawing, torch batches, sampler close-ups."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import BodyModel
from dreamwaltz.body.poses import apose
from dreamwaltz.conditioning import (
    Keypoints,
    body_keypoints,
    draw_openpose,
    ray_visible_mask,
    sample_camera,
    skeleton_batch,
    skeleton_image,
    to_tensor,
)
from dreamwaltz.conditioning.openpose import BODY_COLORS, HAND_EDGE_COLORS, HAND_EDGES
from dreamwaltz.core.camera import Camera, intrinsics, look_at, orbit_camera
from dreamwaltz.core.errors import DreamWaltzError
from dreamwaltz.core.joints import JOINT_INDEX, facts

WALL_V = np.array([[-0.5, -0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5]])
WALL_F = np.array([[0, 1, 2], [0, 2, 3]])


def front_camera(az=0.0, size=256, radius=2.0, target=(0, 0, 0)):
    return orbit_camera(az, 90, radius, target, 50, size, size)


def sphere(center, radius, n=24):
    """A closed UV sphere (hand-built head) as vertices, triangles."""
    th, ph = np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, n, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([np.sin(T) * np.cos(P), np.cos(T), np.sin(T) * np.sin(P)], -1).reshape(-1, 3) * radius + center
    f = []
    for i in range(n - 1):
        for j in range(n):
            a, b, c, d = i * n + j, i * n + (j + 1) % n, (i + 1) * n + j, (i + 1) * n + (j + 1) % n
            f += [[a, c, b], [b, c, d]]
    return v, np.array(f)


def test_ray_cast_hides_points_behind_a_wall_and_only_those():
    cam = front_camera()  # on +Z at 2 m, the wall is at z = 0.5 between it and the origin
    pts = np.array([[0, 0, 0], [0.2, -0.3, -0.4], [0.9, 0, 0], [0, 0, 0.6], [0, 0, 0.48], [0, 0, 0.45]])
    expected = [False, False, True, True, True, False]  # 2 cm behind the wall is within the 3 cm tolerance
    assert ray_visible_mask(pts, cam, WALL_V, WALL_F, 0.03).tolist() == expected
    assert ray_visible_mask(pts, cam, WALL_V, WALL_F[:, ::-1], 0.03).tolist() == expected, "winding must not matter"
    # Seen from behind the origin (wall now behind the points) nothing is hidden.
    assert ray_visible_mask(pts[:3], front_camera(az=180), WALL_V, WALL_F, 0.03).all()
    # Per-point tolerance.
    assert ray_visible_mask(pts[[5, 5]], cam, WALL_V, WALL_F, np.array([0.03, 0.1])).tolist() == [False, True]


def test_ray_cast_has_no_holes_in_a_close_up():
    # A dense-ish sphere "head" seen from 12 cm: points on its far side must all be hidden. A coarse
    # vertex z-buffer leaks here because near vertices are many pixels apart.
    v, f = sphere(np.zeros(3), 0.1, n=16)
    far = sphere(np.zeros(3), 0.1, n=8)[0]
    far = far[far[:, 2] < -0.03]
    cam = Camera(look_at((0, 0, 0.22), (0, 0, 0)), intrinsics(90, 256, 256), 256, 256)
    assert not ray_visible_mask(far, cam, v, f, 0.03).any()
    near = far * np.array([1, 1, -1])  # mirrored onto the camera's side
    assert ray_visible_mask(near, cam, v, f, 0.03).all()


def test_bad_triangles_are_a_clear_error():
    with pytest.raises(DreamWaltzError):
        ray_visible_mask(np.zeros((1, 3)), front_camera(), WALL_V, np.array([[0, 1, 9]]), 0.03)


def test_hand_dots_are_blue_face_dots_white_and_the_rainbow_is_opencvs():
    cv2_rounded = [
        tuple(e["rgb_int_cv2_rounded"]) for e in facts()["controlnet_openpose_drawing"]["hand_edge_colors_hsv"]
    ]
    assert HAND_EDGE_COLORS == cv2_rounded and len(set(HAND_EDGE_COLORS)) == 20
    hand = np.zeros((21, 3))
    hand[:, 0], hand[:, 1], hand[:, 2] = 30 + 20 * np.arange(21), 60, 1  # dots 20 px apart on one row
    face = np.zeros((68, 3))
    face[5] = (450, 480, 1)
    image = draw_openpose(Keypoints(np.zeros((18, 3)), np.zeros((21, 3)), hand, face, 512, 512))
    for x, y, _ in hand:
        assert tuple(image[int(y), int(x)]) == (0, 0, 255)
    assert tuple(image[480, 450]) == (255, 255, 255)
    assert not image[300:400, 100:200].any(), "nothing drawn where there are no points"


def test_hand_edge_colours_on_long_strokes():
    # One stroke per edge, each from (40, y) to (470, y): the pixel at its middle has the edge colour.
    image_checks = 0
    for e, (a, b) in enumerate(HAND_EDGES):
        hand = np.zeros((21, 3))
        hand[a] = (40, 100, 1)
        hand[b] = (470, 100, 1)
        kp = Keypoints(np.zeros((18, 3)), hand, np.zeros((21, 3)), np.zeros((68, 3)), 512, 512)
        image = draw_openpose(kp)
        assert tuple(image[100, 255]) == HAND_EDGE_COLORS[e], f"edge {e}"
        image_checks += 1
    assert image_checks == 20


def test_sizes_scale_with_resolution():
    def dot_image(size):
        body = np.zeros((18, 3))
        body[0] = (size / 2, size / 2, 1)
        return draw_openpose(Keypoints(body, np.zeros((21, 3)), np.zeros((21, 3)), np.zeros((68, 3)), size, size))

    small, big = dot_image(512), dot_image(1024)
    assert (small.any(axis=2)).sum() < (big.any(axis=2)).sum() / 3  # area grows ~4x with 2x radius
    assert tuple(big[512, 512 + 6]) == BODY_COLORS[0] and not small[256, 256 + 6].any()


@pytest.fixture(scope="module")
def open_body():
    body = BodyModel.load("open")
    with torch.no_grad():
        out = body(full_pose=torch.as_tensor(np.stack([apose(), apose()]), dtype=torch.float32))
    return body, out


def test_real_body_back_view_hides_the_face_and_a_hand_close_up_has_21(open_body):
    body, out = open_body
    joints, landmarks, vertices = (t[0].numpy() for t in (out.joints, out.landmarks, out.vertices))
    faces = body.faces.numpy()
    target = (0, float(joints[:, 1].mean()) - 0.1, 0)
    assert (
        body_keypoints(joints, landmarks, vertices, front_camera(0, 256, 2.6, target), faces=faces).face[:, 2].sum()
        > 60
    )
    back = body_keypoints(joints, landmarks, vertices, front_camera(180, 256, 2.6, target), faces=faces)
    assert back.face[:, 2].sum() == 0 and back.body[:, 2].sum() == 18, "face culled, body joints kept"
    wrist = joints[JOINT_INDEX["left_middle1"]]
    cam = Camera(look_at(wrist + np.array([0, -0.35, 0.05]), wrist, up=(0, 0, 1.0)), intrinsics(60, 256, 256), 256, 256)
    kp = body_keypoints(joints, landmarks, vertices, cam, faces=faces)
    assert kp.left_hand[:, 2].sum() == 21 and kp.right_hand[:, 2].sum() == 0


def test_torch_batch_matches_numpy_images(open_body):
    body, out = open_body
    target = (0, float(out.joints[0, :, 1].mean()) - 0.1, 0)
    cams = [front_camera(0, 128, 2.6, target), front_camera(180, 128, 2.6, target)]
    batch = skeleton_batch(out, cams, body.faces)
    assert batch.shape == (2, 3, 128, 128) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    for i, cam in enumerate(cams):
        ref = skeleton_image(out, cam, body.faces, index=i)
        assert torch.equal(batch[i], to_tensor([ref])[0])
    assert not torch.equal(batch[0], batch[1]), "front and back skeletons differ"


def test_sampler_is_deterministic_and_hand_close_ups_frame_the_hand(open_body):
    joints = open_body[1].joints[0].numpy()
    a = [sample_camera(np.random.default_rng(7), joints, 64, hand_prob=0.3) for _ in range(3)]
    b = [sample_camera(np.random.default_rng(7), joints, 64, hand_prob=0.3) for _ in range(3)]
    assert all(np.array_equal(x.camera.viewmat, y.camera.viewmat) and x.kind == y.kind for x, y in zip(a, b))
    rng = np.random.default_rng(1)
    hands = [sample_camera(rng, joints, 64, face_prob=0.0, hand_prob=1.0) for _ in range(50)]
    assert {s.kind for s in hands} == {"hand"}
    for s in hands:
        uv, z = s.camera.project(joints[[JOINT_INDEX["left_middle1"], JOINT_INDEX["right_middle1"]]])
        centred = (z > 0) & (np.abs(uv - 32) < 2).all(axis=1)
        assert centred.any(), "a hand close-up looks at one of the hands"
    faces = [sample_camera(rng, joints, 64, face_prob=1.0) for _ in range(50)]
    for s in faces:
        assert s.kind == "face" and np.linalg.norm(s.camera.position - joints[JOINT_INDEX["head"]]) < 0.8


def test_condition_cli_reports_camera_and_rejects_a_missing_body(tmp_path):
    out = tmp_path / "skel.png"
    run = [sys.executable, "-m", "dreamwaltz", "condition", "--size", "128", "--out", str(out)]
    ok = subprocess.run(run + ["--azimuth", "180"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["camera"]["view"] == "back view" and sum(p[2] for p in data["face"]) == 0
    bad = subprocess.run(run + ["--body", str(tmp_path / "missing.npz")], capture_output=True, text=True)
    assert bad.returncode != 0 and "does not exist" in (bad.stderr + bad.stdout)


def test_face_close_ups_aim_at_the_face_even_when_the_head_is_turned(open_body):
    body, _ = open_body
    pose = apose()
    pose[JOINT_INDEX["neck"]] = (0.0, np.radians(70), 0.0)  # head turned 70 degrees to its left
    with torch.no_grad():
        out = body(full_pose=torch.as_tensor(pose[None], dtype=torch.float32))
    joints, landmarks = out.joints[0].numpy(), out.landmarks[0].numpy()
    rng = np.random.default_rng(5)
    seen = []
    for _ in range(20):
        s = sample_camera(rng, joints, 128, face_prob=1.0, landmarks=landmarks)
        kp = body_keypoints(joints, landmarks, out.vertices[0].numpy(), s.camera, faces=body.faces.numpy())
        uv, _ = s.camera.project(landmarks[21:].mean(axis=0, keepdims=True))
        assert np.abs(uv[0] - 64).max() < 1.0, "the face centre is the image centre"
        seen.append(kp.face[:, 2].sum())
    assert min(seen) >= 34, "a face close-up always sees at least half of the face"


def test_a_hand_hides_behind_the_torso_but_not_behind_its_own_fingers(open_body):
    body, out = open_body
    joints, landmarks, vertices = (t[0].numpy() for t in (out.joints, out.landmarks, out.vertices))
    faces = body.faces.numpy()
    target = (0, float(joints[:, 1].mean()) - 0.1, 0)
    # Front view of the palm-down A-pose: the ring and pinky fingers are behind the index finger.
    front = front_camera(0, 256, 2.2, target)
    full = body_keypoints(joints, landmarks, vertices, front, faces=faces)
    strict = body_keypoints(joints, landmarks, vertices, front, faces=faces, hand_self_occlusion=True)
    assert full.left_hand[:, 2].sum() == 21 and full.right_hand[:, 2].sum() == 21
    assert strict.left_hand[:, 2].sum() < 21, "the fingers really do overlap in this view"
    # Side view from the subject's left: the right hand is behind the torso and disappears.
    side = body_keypoints(joints, landmarks, vertices, front_camera(90, 256, 2.2, target), faces=faces)
    assert side.left_hand[:, 2].sum() == 21 and side.right_hand[:, 2].sum() == 0


def test_grid_ray_cast_agrees_with_testing_every_triangle(open_body):
    body, out = open_body
    from dreamwaltz.body.poses import random_pose

    rng = np.random.default_rng(11)
    faces = body.faces.numpy()
    for _ in range(4):
        with torch.no_grad():
            posed = body(full_pose=torch.as_tensor(random_pose(rng)[None], dtype=torch.float32))
        joints, landmarks, vertices = (t[0].numpy() for t in (posed.joints, posed.landmarks, posed.vertices))
        cam = sample_camera(rng, joints, 256, 0.3, 0.3, landmarks).camera
        pts = np.concatenate([landmarks, rng.normal(size=(60, 3)) * 0.5 + joints[0]])
        grid = ray_visible_mask(pts, cam, vertices, faces, 0.03)
        brute = ray_visible_mask(pts, cam, vertices, faces, 0.03, method="brute")
        assert np.array_equal(grid, brute) and 0 < grid.sum() < len(pts)
