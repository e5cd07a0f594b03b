"""The reference avatar evaluator: skinning of means and covariances, fingers, jaw, expressions, shape."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwaltz.core.joints import JOINT_INDEX
from dreamwaltz.core.posing import pose_avatar, pose_body
from dreamwaltz.core.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)
from dreamwaltz.core.testing import make_test_avatar


@pytest.fixture(scope="module")
def avatar():
    return make_test_avatar(num_free=1500, num_bound=400, seed=1)


def bound_mask_for(avatar, joint_names):
    """Mesh-bound Gaussians whose triangle is driven mostly by the given joints."""
    ids = [JOINT_INDEX[n] for n in joint_names]
    faces = avatar["body/faces"][avatar["bound/faces"]]
    weight = avatar["body/skin_weights"][faces][:, :, ids].sum(-1).mean(-1)
    return weight > 0.6


def test_rotation_conversions_agree():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(200, 3))
    aa = aa / np.linalg.norm(aa, axis=1, keepdims=True) * rng.uniform(0, 3.0, (200, 1))
    R = axis_angle_to_matrix(aa)
    assert np.allclose(R @ np.transpose(R, (0, 2, 1)), np.eye(3), atol=1e-12)
    assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-10)
    assert np.allclose(matrix_to_axis_angle(R), aa, atol=1e-8)
    assert np.allclose(quaternion_to_axis_angle(axis_angle_to_quaternion(aa)), aa, atol=1e-10)
    half = quaternion_slerp(np.array([1.0, 0, 0, 0]), axis_angle_to_quaternion(np.array([0, 0, 1.0])), 0.5)
    assert np.allclose(quaternion_to_axis_angle(half), [0, 0, 0.5])


def test_zero_pose_is_the_rest_pose(avatar):
    posed = pose_avatar(avatar)
    n = avatar.num_free
    assert np.allclose(posed.means[:n], avatar["free/means"], atol=1e-6)
    assert np.allclose(posed.body.joints, avatar["rig/rest_joints"], atol=1e-6)


def test_global_rotation_rotates_every_mean_and_covariance(avatar):
    pose = np.zeros((55, 3))
    pose[0] = [0.3, -1.2, 0.4]
    R = axis_angle_to_matrix(pose[0])
    pelvis = avatar["rig/rest_joints"][0]
    rest, posed = pose_avatar(avatar), pose_avatar(avatar, pose, transl=[0.1, 0.2, -0.3])
    assert np.allclose(posed.means, (rest.means - pelvis) @ R.T + pelvis + [0.1, 0.2, -0.3], atol=1e-5)
    assert np.allclose(posed.covariances, R @ rest.covariances @ R.T, atol=1e-9)


def test_free_gaussians_on_rigid_parts_of_the_surface_follow_the_mesh(avatar):
    """Where a triangle's corners share their skin weights, LBS of the bind point is the posed triangle point."""
    pose = np.random.default_rng(5).normal(scale=0.35, size=(55, 3))
    a = avatar.arrays
    faces = a["body/faces"][a["free/bind_faces"]]
    corner_w = a["body/skin_weights"][faces]
    rigid = np.abs(corner_w - corner_w[:, :1]).max(axis=(1, 2)) < 1e-9
    assert rigid.sum() > 100
    surface = avatar.arrays.copy()
    body_rest = pose_body(avatar)
    surface["free/means"] = np.einsum("nc,nci->ni", a["free/bind_barycentrics"], body_rest.rest_vertices[faces]).astype(
        np.float32
    )
    from dreamwaltz.core.h3ga import H3GAAvatar

    on_surface = H3GAAvatar(avatar.manifest, surface)
    posed = pose_avatar(on_surface, pose)
    expected = np.einsum("nc,nci->ni", a["free/bind_barycentrics"], posed.body.vertices[faces])
    assert np.abs(posed.means[: avatar.num_free][rigid] - expected[rigid]).max() < 1e-5


def test_covariances_stay_symmetric_positive_definite_under_pose(avatar):
    pose = np.random.default_rng(2).normal(scale=0.5, size=(55, 3))
    cov = pose_avatar(avatar, pose, expression=np.ones(avatar.num_expressions)).covariances
    assert np.allclose(cov, np.transpose(cov, (0, 2, 1)), atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0


def test_bound_gaussians_follow_the_fingers(avatar):
    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["left_index1"]] = [0.0, 0.0, -1.4]
    rest, bent = pose_avatar(avatar), pose_avatar(avatar, pose)
    n = avatar.num_free
    moved = np.linalg.norm(bent.means[n:] - rest.means[n:], axis=1) > 1e-4
    index = bound_mask_for(avatar, ["left_index2", "left_index3"])
    right_hand = bound_mask_for(
        avatar,
        [f"right_{f}{i}" for f in ("index", "middle", "ring", "pinky", "thumb") for i in (1, 2, 3)] + ["right_wrist"],
    )
    assert index.any() and moved[index].all(), "Gaussians on the bent finger move"
    assert not moved[right_hand].any(), "the other hand does not"


def test_jaw_and_expressions_drive_the_face(avatar):
    n = avatar.num_free
    rest = pose_avatar(avatar)
    jaw_pose = np.zeros((55, 3))
    jaw_pose[JOINT_INDEX["jaw"]] = [0.4, 0, 0]
    opened = pose_avatar(avatar, jaw_pose)
    jaw = bound_mask_for(avatar, ["jaw"])
    assert jaw.any() and (np.linalg.norm(opened.means[n:][jaw] - rest.means[n:][jaw], axis=1) > 1e-3).all()
    smiling = pose_avatar(avatar, expression=np.full(avatar.num_expressions, 2.0))
    moved = np.linalg.norm(smiling.means[n:] - rest.means[n:], axis=1) > 1e-5
    hands = bound_mask_for(avatar, ["left_wrist", "left_index1", "left_index2", "left_index3", "left_middle1"])
    face = bound_mask_for(avatar, ["head", "jaw"])
    assert moved[face].mean() > 0.8 and not moved[hands].any()


def test_shape_edits_move_body_joints_and_free_gaussians_together(avatar):
    betas = avatar["rig/betas"].astype(np.float64).copy()
    betas[0] += 2.0  # taller
    rest, tall = pose_avatar(avatar), pose_avatar(avatar, betas=betas)
    assert np.allclose(tall.body.joints, avatar["rig/joint_regressor"] @ tall.body.rest_vertices, atol=1e-6)
    height = lambda v: v[:, 1].max() - v[:, 1].min()
    assert height(tall.body.vertices) > height(rest.body.vertices) * 1.05
    n = avatar.num_free
    assert height(tall.means[:n]) > height(rest.means[:n]) * 1.05
