"""How much a skinned splat loses when Blender's own splats draw it (issue 29).

A linear-blend-skinned splat's covariance is ``A A^T`` with ``A = L R diag(s)`` (L the blended bone
matrix): not a rotation times a scale where bones blend. Blender 5.3's splats take a rotation and a
scale, and the add-on's draw tree (``dreamwaltz_blender/importer/nodes.py``, ``_native_draw``) gives
them the Gram-Schmidt frame of A's columns and the columns' lengths. This bench renders the test
avatar (20k splats) posed, with the exact covariances and with that fit, at three views, and prints
the avatar-region PSNR between the two and the covariance's relative error, at the Blender fidelity
test's poses (joints ~ N(0, 0.25 rad)) and at extreme ones (N(0, 0.7 rad)).

Last line: ``gram_schmidt_psnr_db=.. extreme_psnr_db=..`` (the lowest view of each).
"""

from __future__ import annotations

import dataclasses

import numpy as np

VIEWS = (0.0, 60.0, 200.0)  # azimuths, degrees
SIZE = 160


def gram_schmidt_fit(axes: np.ndarray) -> np.ndarray:
    """(n,3,3) covariances of the fit the draw tree makes of deformed axes (columns a1, a2, a3):
    rotation e1 = a1/|a1|, e2 = a2's part orthogonal to e1, e3 = e1 x e2; scales |a1|, |a2|, |a3|."""
    a1, a2 = axes[:, :, 0], axes[:, :, 1]
    e1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    e2 = a2 - np.sum(a2 * e1, axis=1, keepdims=True) * e1
    e2 /= np.linalg.norm(e2, axis=1, keepdims=True)
    frame = np.stack([e1, e2, np.cross(e1, e2)], axis=2)
    return np.einsum("nij,nj,nkj->nik", frame, np.linalg.norm(axes, axis=1) ** 2, frame)


def skinned_axes(avatar, pose) -> np.ndarray:
    """The free splats' deformed axes L R diag(s), as the Armature modifier moves the proxy's axis points."""
    from ..core.posing import pose_body
    from ..core.rotations import quaternion_to_matrix

    a = avatar.arrays
    transforms = pose_body(avatar, pose).skinning_transforms[:, :3, :3]
    L = np.einsum("nk,nkij->nij", a["free/skin_weights"].astype(np.float64), transforms[a["free/skin_joints"]])
    R = quaternion_to_matrix(a["free/quats"])
    return L @ (R * np.exp(a["free/log_scales"].astype(np.float64))[:, None, :])


def compare(avatar, spread: float, seed: int = 29) -> tuple[list[float], np.ndarray]:
    """(avatar-region PSNR per view, relative covariance error per free splat) at a random pose."""
    from ..core.camera import orbit_camera
    from ..core.posing import pose_avatar
    from ..render import rasterize_posed

    pose = np.zeros((55, 3))
    pose[1:22] = np.random.default_rng(seed).normal(scale=spread, size=(21, 3))  # body joints
    posed = pose_avatar(avatar, pose)
    axes = skinned_axes(avatar, pose)
    exact = axes @ np.transpose(axes, (0, 2, 1))
    fit = gram_schmidt_fit(axes)
    error = np.linalg.norm(fit - exact, axis=(1, 2)) / np.linalg.norm(exact, axis=(1, 2))
    fitted = dataclasses.replace(posed, covariances=np.concatenate([fit, posed.covariances[len(fit) :]]))
    scores = []
    for azimuth in VIEWS:
        camera = orbit_camera(azimuth, 10.0, 2.6, width=SIZE, height=SIZE)
        ref, approx = rasterize_posed(posed, camera), rasterize_posed(fitted, camera)
        region = ref.alpha.numpy()[..., 0] > 0.05
        mse = float(np.mean((ref.image.numpy() - approx.image.numpy())[region] ** 2))
        scores.append(10 * np.log10(1.0 / max(mse, 1e-12)))
    return scores, error


def main():
    from ..core.testing import make_test_avatar

    avatar = make_test_avatar(num_free=20_000, num_bound=2_000, seed=1)
    lowest = {}
    for name, spread in (("test poses", 0.25), ("extreme poses", 0.7)):
        scores, error = compare(avatar, spread)
        lowest[name] = min(scores)
        print(
            f"{name} (joints ~ N(0, {spread} rad)): PSNR vs exact "
            + ", ".join(f"{s:.1f}" for s in scores)
            + f" dB; covariance error median {np.median(error):.2%}, p95 {np.percentile(error, 95):.2%}, "
            f"p99 {np.percentile(error, 99):.2%}",
            flush=True,
        )
    print(f"gram_schmidt_psnr_db={lowest['test poses']:.1f} extreme_psnr_db={lowest['extreme poses']:.1f}")
