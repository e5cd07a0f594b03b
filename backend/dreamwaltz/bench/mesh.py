"""The baked mesh against the avatar it was baked from (issue 31): the oracle benchmark's known,
textured target (``stage2.oracle.reference_avatar``, 100k splats) baked at 2048x2048, then drawn at
held-out views (never the bake's rays: any camera) next to the splats' own render, and against the
oracle's ground truth (its outfit painted on the body mesh). Figures in the avatar region (either
silhouette): PSNR, silhouette IoU, and the bake's seconds. The line before last gives
``gt_psnr_db= gt_iou=`` (against the ground truth); the last ``mesh_psnr_db= mesh_iou= bake_s=``
(against the splats).
"""

from __future__ import annotations

import os

import numpy as np

NUM_FREE = int(os.environ.get("DREAMWALTZ_BENCH_MESH_FREE", "75000"))  # + a third as many mesh-bound: 100k
TEXTURE = 2048
SIZE = 384
HELD_OUT = ((20, 80), (160, 95), (-70, 100), (110, 70))  # (azimuth, polar angle)


def psnr(image, ref_image, region) -> float:
    mse = float(np.mean((image - ref_image)[region] ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def compare(image, mask, ref_image, ref_mask) -> tuple[float, float, float]:
    """(PSNR over either silhouette, silhouette IoU, PSNR where both are: the texture alone)."""
    region = mask | ref_mask
    iou = float((mask & ref_mask).sum() / max(region.sum(), 1))
    return psnr(image, ref_image, region), iou, psnr(image, ref_image, mask & ref_mask)


def main():
    from ..body import BodyModel
    from ..core.camera import orbit_camera
    from ..core.posing import pose_avatar, pose_body
    from ..meshbake import bake_mesh, render_baked
    from ..render import rasterize_posed
    from ..render.meshraster import rasterize_mesh
    from ..stage2.oracle import outfit_colors, reference_avatar

    body = BodyModel.load("open")
    avatar = reference_avatar(body, num_free=NUM_FREE).export()
    mesh = bake_mesh(avatar, texture_size=TEXTURE)
    print(
        f"baked {avatar.num_splats:,} splats: {len(mesh.faces):,} triangles, {TEXTURE}px texture; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in mesh.seconds.items()),
        flush=True,
    )
    posed = pose_avatar(avatar)
    rest = pose_body(avatar)
    truth_colors = outfit_colors(rest.rest_vertices, rest.rest_joints)
    center = tuple(posed.means.mean(0))
    splat_scores, truth_scores = [], []
    for az, el in HELD_OUT:
        cam = orbit_camera(az, el, 2.6, center, 50, SIZE, SIZE)
        out = rasterize_posed(posed, cam)
        splat_image, splat_mask = out.image.numpy().astype(np.float64), out.alpha.numpy()[..., 0] > 0.5
        truth = rasterize_mesh(rest.rest_vertices, avatar.arrays["body/faces"], cam, truth_colors)
        image, mask = render_baked(mesh, cam)
        splat_scores.append(compare(image, mask, splat_image, splat_mask))
        truth_scores.append(compare(image, mask, truth.color, truth.mask))
        print(
            f"view az {az} el {el}: vs splats {splat_scores[-1][0]:.2f} dB IoU {splat_scores[-1][1]:.4f} "
            f"(inside both silhouettes {splat_scores[-1][2]:.2f} dB); "
            f"vs ground truth {truth_scores[-1][0]:.2f} dB IoU {truth_scores[-1][1]:.4f}",
            flush=True,
        )
    mesh_psnr, iou, inside = np.mean(splat_scores, axis=0)
    gt_psnr, gt_iou, _ = np.mean(truth_scores, axis=0)
    print(f"inside both silhouettes: mesh_psnr_inside_db={inside:.2f}")
    print(f"against the oracle's ground truth: gt_psnr_db={gt_psnr:.2f} gt_iou={gt_iou:.4f}")
    print(f"mesh_psnr_db={mesh_psnr:.2f} mesh_iou={iou:.4f} bake_s={mesh.seconds['total']:.1f}")
