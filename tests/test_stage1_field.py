"""Issue 5 (stage 1): the mesh rasterizer, the hash-grid field with its occupancy grid, body-shape
initialisation (silhouette IoU on held-out views, cache) and the nerf -> points export."""

from __future__ import annotations

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch
from stage1_helpers import CACHE, setup

from dreamwaltz.core.camera import Camera, intrinsics, look_at
from dreamwaltz.render.meshraster import rasterize_mesh
from dreamwaltz.stage1 import body_initialised_field, canonical_body, export_points, render_image
from dreamwaltz.stage1.body import held_out_cameras, init_cache_path


def _camera(size=40):
    view = look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3))
    return Camera(view, intrinsics(40.0, size, size), size, size)


def test_mesh_rasterizer_gives_the_exact_silhouette_depth_and_colours_of_a_square():
    # A 1 m square facing the camera at depth 3 m, two triangles, red and blue corners.
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    cam = _camera()
    colors = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]], float)
    r = rasterize_mesh(v, f, cam, colors)
    uv, z = cam.project(v)
    lo, hi = uv.min(0), uv.max(0)
    u, w = np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5)
    expected = (u > lo[0]) & (u < hi[0]) & (w > lo[1]) & (w < hi[1])
    assert (r.mask == expected).all()
    assert np.allclose(r.depth[r.mask], 3.0, atol=1e-6)
    assert (r.color[~r.mask] == 0.5).all()
    top, bottom = r.color[r.mask].reshape(-1, 3)[:, 2].max(), r.color[r.mask].reshape(-1, 3)[:, 2].min()
    assert top > 0.9 and bottom < 0.1  # colours interpolate across the square


def test_body_initialisation_matches_the_body_silhouette_on_held_out_views():
    # 128 px: at 64 px one pixel is ~3 cm and a single boundary pixel swings the IoU by a percent.
    body, cb, cfg, field = setup()
    ious = []
    for cam in held_out_cameras(cb, 128):
        ref = rasterize_mesh(cb.vertices, cb.faces, cam).mask
        with torch.no_grad():
            alpha = render_image(field, cam, cfg.samples)[1].numpy()
        m = alpha > 0.5
        ious.append((m & ref).sum() / (m | ref).sum())
    # This CPU-sized fit (200 steps of 1,024 rays; the presets take 1,000-2,000 of 8-16k) lands at
    # 0.956-0.969 per view here across seeds and thread counts, and 0.949-0.954 on CI's CPU (float
    # reduction order): a body-shaped field on every view, not an exact figure.
    assert np.mean(ious) >= 0.95 and min(ious) >= 0.94, ious


def test_body_initialisation_is_cached_per_body_shape():
    body, cb, cfg, field = setup()
    path = init_cache_path(CACHE, cb, cfg)
    assert path.exists()
    again = body_initialised_field(cb, cfg, CACHE)  # loads instead of refitting
    for a, b in zip(field.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other = canonical_body(body, betas=np.full(body.num_betas, 0.5))
    assert other.key != cb.key and init_cache_path(CACHE, other, cfg) != path


def test_occupancy_grid_skips_empty_space_and_spends_the_samples_on_the_body():
    body, cb, cfg, field = setup()
    cam = held_out_cameras(cb, 32)[0]
    with torch.no_grad():
        skipped = render_image(field, cam, cfg.samples)[0]
        frac = float(field.occupied.float().mean())
        field.occupied.fill_(True)  # no skipping: samples spread over the whole box
        plain = render_image(field, cam, cfg.samples)[0]
        dense = render_image(field, cam, 16 * cfg.samples)[0]
    assert frac < 0.5  # most of the box is skipped
    err_skipped, err_plain = (skipped - dense).abs().mean(), (plain - dense).abs().mean()
    assert err_skipped < 0.002 and err_skipped < err_plain, (err_skipped, err_plain)


def test_export_points_lie_on_the_canonical_body_with_their_colours():
    body, cb, cfg, field = setup()
    points, colors, dens = export_points(field, threshold=cfg.export_threshold, resolution=64)
    assert len(points) > 500 and colors.shape == points.shape and dens.shape == (len(points),)
    assert (dens > cfg.export_threshold).all() and colors.min() >= 0 and colors.max() <= 1
    # Densities fill the body's volume: points lie inside the mesh or within 1 cm outside it
    # (the sign of the offset from the nearest vertex along its normal).
    v = torch.as_tensor(cb.vertices, dtype=torch.float32)
    n = torch.as_tensor(cb.normals, dtype=torch.float32)
    near = torch.cat([torch.cdist(points[i : i + 2048], v).argmin(1) for i in range(0, len(points), 2048)])
    outside = ((points - v[near]) * n[near]).sum(1)
    assert float((outside < 0.01).float().mean()) > 0.95
    # The A-pose: both hands far out to the sides are there.
    assert float(points[:, 0].max()) > 0.5 and float(points[:, 0].min()) < -0.5


def test_canonical_points_map_back_to_the_rest_pose_for_stage_2():
    from dreamwaltz.stage1.export import points_to_rest

    body, cb, cfg, field = setup()
    idx = torch.arange(0, body.num_vertices, 97)
    a_pose = torch.as_tensor(cb.vertices, dtype=torch.float32)[idx]
    rest = body().rest_vertices[0][idx]
    assert torch.allclose(points_to_rest(a_pose, body), rest, atol=1e-4)


def test_stage2_gets_the_outer_shell_of_the_field_without_specks():
    from dreamwaltz.stage1.export import surface_cells

    cube = torch.stack(torch.meshgrid(*[torch.arange(4, 16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    speck = torch.tensor([[1, 1, 1]])
    keep = surface_cells(torch.cat([cube, speck]), (20, 20, 20), shell_cells=1, min_neighbours=12)
    kept = torch.cat([cube, speck])[keep]
    assert len(kept) == 12**3 - 10**3, "the cube's outer layer of cells, not its inside"
    assert ((kept == 4) | (kept == 15)).any(1).all()
    assert not keep[-1], "a lone speck would float around the animated avatar"


def test_chunked_checkpointed_render_matches_the_whole_image_render_and_its_gradients():
    # Issue 14: training renders go through the field in gradient-checkpointed chunks of rays so
    # that memory grows with the chunk, not the image; values and gradients must not change, and
    # the jitter the recomputation draws must be the jitter of the forward pass.
    from dreamwaltz.stage1.field import FieldConfig, RadianceField, camera_rays, render_rays

    field = RadianceField(
        (-0.4, -0.4, -0.4),
        (0.4, 0.4, 0.4),
        FieldConfig(levels=4, log2_table=10, max_res=64, hidden=16, occupancy_res=8),
    )
    with torch.no_grad():
        field.mlp[-1].bias[0] = 3.0  # dense enough that the rays saturate
        ijk = torch.stack(torch.meshgrid(*[torch.arange(8)] * 3, indexing="ij"), -1)
        field.occupied.copy_(((ijk - 3.5) ** 2).sum(-1) < 9)  # a ball: some samples are skipped
    cam = _camera(24)
    params = list(field.parameters())

    def grads(loss):
        for p in params:
            p.grad = None
        loss.backward()
        return [p.grad.clone() for p in params]

    def loss_of(image, alpha, depth):
        return (image * torch.linspace(0.5, 1.5, 3)).mean() + alpha.mean() + 0.1 * depth.mean()

    torch.manual_seed(3)  # the reference: all rays at once, no chunks, no checkpointing
    o, d = camera_rays(cam)
    ref = render_rays(field, o, d, 16, jitter=True)
    ref = (ref.color.reshape(24, 24, 3), ref.alpha.reshape(24, 24), ref.depth.reshape(24, 24))
    assert 0.05 < float(ref[1].detach().mean()) < 0.95
    ref_grads = grads(loss_of(*ref))
    assert all(float(g.abs().sum()) > 0 for g in ref_grads)
    for chunk in (1 << 30, 100):
        torch.manual_seed(3)  # global-RNG jitter is drawn inside the checkpointed chunk
        out = render_image(field, cam, 16, jitter=True, chunk=chunk)
        for a, b in zip(out, ref):
            assert torch.allclose(a, b, atol=1e-6), chunk
        for g, r in zip(grads(loss_of(*out)), ref_grads):
            assert torch.allclose(g, r, atol=1e-7, rtol=1e-4), chunk
    # Jitter from an explicit generator is drawn before each chunk: the draws without chunks.
    ref = render_rays(field, o, d, 16, jitter=True, generator=torch.Generator().manual_seed(5))
    ref_grads = grads(ref.color.mean())
    out = render_image(field, cam, 16, jitter=True, chunk=100, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(out[0], ref.color.reshape(24, 24, 3), atol=1e-6)
    for g, r in zip(grads(out[0].mean()), ref_grads):
        assert torch.allclose(g, r, atol=1e-7, rtol=1e-4)
