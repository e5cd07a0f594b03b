"""The reference evaluator of an avatar in a pose (pure numpy): what Blender must reproduce.

The avatar model (docs/FORMAT.md): the body is linear blend skinning (LBS) of
``template + shape_dirs.betas + expression_dirs.expression`` by the 55 SMPL-X joints, with no
pose correctives (Blender's armature cannot reproduce them). Free Gaussians are skinned with their
own top-k joints; a shape or expression edit moves each by the blendshape displacement of its
bind point on the body. Mesh-bound Gaussians live in the frame of a posed body triangle.
Backend render/export and the Blender parity tests all use this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .color import display_colors
from .h3ga import H3GAAvatar
from .rotations import axis_angle_to_matrix, quaternion_to_matrix


@dataclass
class PosedBody:
    vertices: np.ndarray  # (V, 3) posed
    joints: np.ndarray  # (55, 3) posed
    rest_vertices: np.ndarray  # (V, 3) zero pose, with shape and expression
    rest_joints: np.ndarray  # (55, 3)
    skinning_transforms: np.ndarray  # (55, 4, 4): rest -> posed, translation included
    joint_transforms: np.ndarray  # (55, 4, 4): world frame of each joint


@dataclass
class PosedSplats:
    means: np.ndarray  # (N + M, 3), free first then bound
    covariances: np.ndarray  # (N + M, 3, 3)
    colors: np.ndarray  # (N + M, 3) display (sRGB) values, whatever the file's color_space: what renders and .ply hold
    opacities: np.ndarray  # (N + M,) in [0, 1]
    body: PosedBody | None = None


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def forward_kinematics(rest_joints: np.ndarray, full_pose: np.ndarray, parents) -> tuple[np.ndarray, np.ndarray]:
    """World joint frames G (J,4,4) and skinning transforms A = G . [I | -J_rest] (J,4,4)."""
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    rotations = axis_angle_to_matrix(np.asarray(full_pose, dtype=np.float64).reshape(-1, 3))
    J = len(parents)
    G = np.zeros((J, 4, 4))
    for k, parent in enumerate(parents):
        local = np.eye(4)
        local[:3, :3] = rotations[k]
        local[:3, 3] = rest_joints[k] - (rest_joints[parent] if parent >= 0 else 0.0)
        G[k] = local if parent < 0 else G[parent] @ local
    A = G.copy()
    A[:, :3, 3] -= np.einsum("kij,kj->ki", G[:, :3, :3], rest_joints)
    return G, A


def shape_delta(avatar: H3GAAvatar, betas=None) -> np.ndarray:
    """Per-vertex displacement (V,3) of a shape edit, relative to the avatar's own betas."""
    delta = np.zeros((avatar.num_vertices, 3))
    if betas is not None:
        d_betas = np.asarray(betas, dtype=np.float64) - avatar.arrays["rig/betas"]
        if np.any(d_betas):
            delta += avatar.arrays["body/shape_dirs"].astype(np.float64) @ d_betas
    return delta


def expression_delta(avatar: H3GAAvatar, expression=None) -> np.ndarray:
    delta = np.zeros((avatar.num_vertices, 3))
    if expression is not None and avatar.num_expressions:
        expression = np.asarray(expression, dtype=np.float64)
        if np.any(expression):
            delta += avatar.arrays["body/expression_dirs"].astype(np.float64) @ expression
    return delta


def pose_body(avatar: H3GAAvatar, full_pose=None, betas=None, expression=None, transl=None) -> PosedBody:
    """The body mesh and joints. Joints follow shape edits (regressor) but not expressions, so an
    animated expression never needs a new rest skeleton (in Blender it is only shape keys)."""
    a = avatar.arrays
    d_shape = shape_delta(avatar, betas)
    template = a["body/template_vertices"].astype(np.float64)
    rest_vertices = (
        template
        + a["body/shape_dirs"].astype(np.float64) @ a["rig/betas"].astype(np.float64)
        + d_shape
        + expression_delta(avatar, expression)
    )
    rest_joints = a["rig/rest_joints"].astype(np.float64) + a["rig/joint_regressor"].astype(np.float64) @ d_shape
    pose = np.zeros((len(avatar.parents), 3)) if full_pose is None else np.asarray(full_pose, np.float64).reshape(-1, 3)
    G, A = forward_kinematics(rest_joints, pose, avatar.parents)
    t = np.zeros(3) if transl is None else np.asarray(transl, dtype=np.float64)
    G[:, :3, 3] += t
    A[:, :3, 3] += t
    blended = np.einsum("vk,kij->vij", a["body/skin_weights"].astype(np.float64), A[:, :3, :])
    vertices = np.einsum("vij,vj->vi", blended[:, :, :3], rest_vertices) + blended[:, :, 3]
    return PosedBody(vertices, G[:, :3, 3].copy(), rest_vertices, rest_joints, A, G)


def gaussian_covariances(log_scales: np.ndarray, quats: np.ndarray) -> np.ndarray:
    """R diag(exp(2 s)) R^T for (N,3) log-scales and (N,4) quaternions."""
    R = quaternion_to_matrix(quats)
    S2 = np.exp(2.0 * np.asarray(log_scales, dtype=np.float64))
    return np.einsum("nij,nj,nkj->nik", R, S2, R)


def triangle_frames(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(T,3,3) orthonormal frames with columns e1 = edge 0->1, e2 = n x e1, n = the face normal."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    e1 = v1 - v0
    e1 /= np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-12)
    n = np.cross(v1 - v0, v2 - v0)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    e2 = np.cross(n, e1)
    return np.stack([e1, e2, n], axis=2)


def pose_free(avatar: H3GAAvatar, body: PosedBody, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = avatar.arrays
    faces = a["body/faces"]
    means = a["free/means"].astype(np.float64)
    if np.any(delta):
        corners = delta[faces[a["free/bind_faces"]]]  # (N,3,3)
        means = means + np.einsum("nc,nci->ni", a["free/bind_barycentrics"].astype(np.float64), corners)
    A = body.skinning_transforms[:, :3, :]
    blended = np.einsum("nk,nkij->nij", a["free/skin_weights"].astype(np.float64), A[a["free/skin_joints"]])
    L = blended[:, :, :3]
    posed_means = np.einsum("nij,nj->ni", L, means) + blended[:, :, 3]
    cov = gaussian_covariances(a["free/log_scales"], a["free/quats"])
    return posed_means, L @ cov @ np.transpose(L, (0, 2, 1))


def pose_bound(avatar: H3GAAvatar, body: PosedBody) -> tuple[np.ndarray, np.ndarray]:
    a = avatar.arrays
    faces = a["body/faces"][a["bound/faces"]]
    corners = body.vertices[faces]  # (M,3,3)
    means = np.einsum("mc,mci->mi", a["bound/barycentrics"].astype(np.float64), corners)
    frames = triangle_frames(body.vertices, faces)
    cov = gaussian_covariances(a["bound/log_scales"], a["bound/quats"])
    return means, frames @ cov @ np.transpose(frames, (0, 2, 1))


def pose_avatar(avatar: H3GAAvatar, full_pose=None, betas=None, expression=None, transl=None) -> PosedSplats:
    """Every Gaussian of ``avatar`` in a pose (SMPL-X space): free first, then mesh-bound."""
    a = avatar.arrays
    delta = shape_delta(avatar, betas) + expression_delta(avatar, expression)
    body = pose_body(avatar, full_pose, betas, expression, transl)
    free_means, free_cov = pose_free(avatar, body, delta)
    bound_means, bound_cov = pose_bound(avatar, body)
    return PosedSplats(
        means=np.concatenate([free_means, bound_means]),
        covariances=np.concatenate([free_cov, bound_cov]),
        colors=display_colors(avatar.manifest, np.concatenate([a["free/colors"], a["bound/colors"]])),
        opacities=np.concatenate([sigmoid(a["free/opacity_logits"]), sigmoid(a["bound/opacity_logits"])]),
        body=body,
    )
