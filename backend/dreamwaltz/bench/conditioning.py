"""Skeleton conditioning cost per training view on CPU: keypoints with the ray-cast occlusion test
against the open body, and drawing, at 512 px (what every SDS step pays once per view)."""

import time


def main() -> None:
    import numpy as np
    import torch

    from ..body import BodyModel
    from ..body.poses import random_pose
    from ..conditioning import draw_openpose, posed_keypoints, sample_camera

    body = BodyModel.load("open")
    rng = np.random.default_rng(0)
    poses = np.stack([random_pose(rng) for _ in range(8)])
    with torch.no_grad():
        out = body(full_pose=torch.as_tensor(poses, dtype=torch.float32))
    cams = [sample_camera(rng, out.joints[i].numpy(), 512, 0.2, 0.1, out.landmarks[i].numpy()) for i in range(8)]
    posed_keypoints(out, cams[0].camera, body.faces)  # warm-up
    t0 = time.perf_counter()
    kps = [posed_keypoints(out, c.camera, body.faces, i) for i, c in enumerate(cams)]
    t1 = time.perf_counter()
    for kp in kps:
        draw_openpose(kp)
    t2 = time.perf_counter()
    kp_ms, draw_ms = (t1 - t0) / len(cams) * 1e3, (t2 - t1) / len(cams) * 1e3
    print(f"open body: {body.num_vertices} vertices, {len(body.faces)} triangles; 8 random poses and sampled cameras")
    print(f"keypoints + ray-cast occlusion: {kp_ms:.1f} ms/view; drawing 512x512: {draw_ms:.1f} ms/view")
    print(f"keypoints_ms={kp_ms:.1f} draw_ms={draw_ms:.1f} total_ms={kp_ms + draw_ms:.1f}")
