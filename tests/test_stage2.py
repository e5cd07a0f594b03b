"""Issue 6: the H3GA stage, its export, and the generate pipeline (CPU, tiny models, oracle)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import BodyModel
from dreamwaltz.body.poses import random_expression, random_pose
from dreamwaltz.core.color import display_colors, linear_to_srgb
from dreamwaltz.core.errors import JobCancelled
from dreamwaltz.core.h3ga import read_h3ga, write_h3ga
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.pipeline import GenerateSpec, generate
from dreamwaltz.progress import ProgressReporter
from dreamwaltz.stage2 import H3GA
from dreamwaltz.stage2.oracle import run_oracle_stage2


@pytest.fixture(scope="module")
def body():
    return BodyModel.load("open")


def test_torch_model_equals_the_exported_files_reference_evaluator(body, tmp_path):
    model = H3GA(body, num_free=500, num_bound=200, betas=np.linspace(-1, 1, body.num_betas), seed=3)
    with torch.no_grad():  # make it non-trivial: moved means, hand shape, rotated splats
        model.free_means.add_(torch.randn_like(model.free_means) * 0.005)
        model.hand_offsets.add_(torch.randn_like(model.hand_offsets) * 0.002)
        model.free_quats.copy_(torch.randn_like(model.free_quats))
        model.bound_quats.copy_(torch.randn_like(model.bound_quats))
    avatar = read_h3ga(write_h3ga(tmp_path / "a.h3ga", model.export(prompt="parity")))
    rng = np.random.default_rng(0)
    pose, expression = random_pose(rng), random_expression(rng, body.num_expressions)
    with torch.no_grad():
        means, cov, colors, opac = model(
            torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(expression, dtype=torch.float32), deform=False
        )  # the file holds what Blender can reproduce
    ref = pose_avatar(avatar, pose, expression=expression)
    assert np.abs(means.numpy() - ref.means).max() < 1e-4
    rel = np.linalg.norm(cov.numpy() - ref.covariances, axis=(1, 2)) / np.linalg.norm(ref.covariances, axis=(1, 2))
    assert rel.max() < 1e-3
    # The model holds linear light (what it is trained in) and says so in the file; the file's
    # evaluator gives display values, as .ply files and renders hold them.
    assert avatar.manifest["color_space"] == "linear"
    assert np.allclose(linear_to_srgb(colors.numpy()), ref.colors, atol=1e-5) and np.allclose(
        opac.numpy(), ref.opacities, atol=1e-5
    )
    assert not any(name.startswith("deform/") for name in avatar.arrays), "training ends without the pose network"


def test_the_pose_deformation_network_is_pose_dependent_and_starts_at_zero(body):
    model = H3GA(body, num_free=200, num_bound=10, seed=0)
    pose = torch.as_tensor(random_pose(np.random.default_rng(3)), dtype=torch.float32)
    with torch.no_grad():
        base = model(pose, deform=False)[0]
        assert torch.allclose(model(pose)[0], base), "zero offsets before training"
        torch.nn.init.normal_(model.deformation.net[2].weight, std=0.5)
        other = torch.as_tensor(random_pose(np.random.default_rng(4)), dtype=torch.float32)
        d1 = model(pose)[0][:200] - model(pose, deform=False)[0][:200]
        d2 = model(other)[0][:200] - model(other, deform=False)[0][:200]
    assert d1.abs().max() > 1e-4 and not torch.allclose(d1, d2), "offsets depend on the pose"


def test_free_gaussians_on_the_surface_follow_the_body_models_lbs(body):
    model = H3GA(body, num_free=300, num_bound=10, seed=1)
    w = body.skin_weights
    few = torch.nonzero((w > 0).sum(1) <= 4).squeeze(1)[:300]
    faces = body.faces
    with torch.no_grad():  # put each free Gaussian exactly on a vertex, skinned like it
        tri = torch.stack([torch.nonzero((faces == v).any(1))[0, 0] for v in few])
        corner = (faces[tri] == few[:, None]).float()
        model.free_bind.copy_(tri)
        model.free_bary.copy_(corner)
        model.free_means.copy_(body().rest_vertices[0][few])
        top, idx = torch.topk(w[few], 4, dim=1)
        model.free_skin_joints.copy_(idx)
        model.free_skin_weights.copy_(top / top.sum(1, keepdim=True))
    pose = random_pose(np.random.default_rng(2))
    with torch.no_grad():
        means = model(torch.as_tensor(pose, dtype=torch.float32))[0][:300]
        posed = body(full_pose=pose[None]).vertices[0][few]
    assert torch.abs(means - posed).max() < 1e-5


def test_oracle_reconstruction_recovers_the_reference_across_views_and_poses():
    s = run_oracle_stage2(steps=40, size=32, num_free=1500)
    # Measured 23.7 / 23.5 dB from 17.6 dB on this CPU-sized run; the benchmark runs bigger.
    assert s.view > s.initial + 4.0 and s.view > 21.5, s
    assert s.pose > 21.0, s
    assert s.export_gap < 0.3, "the exported file shows what training optimised last"


def test_tiny_generate_writes_an_avatar_that_round_trips_bit_exactly(tmp_path):
    out = tmp_path / "k.h3ga"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamwaltz",
            "generate",
            "a knight in armor",
            "--preset",
            "tiny",
            "--steps",
            "6",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Stage 1 done" in proc.stderr, "stage 1 runs by default and hands its points to stage 2"
    avatar = read_h3ga(out)
    assert avatar.manifest["prompt"] == "a knight in armor" and avatar.manifest["body"]["kind"] == "open"
    assert avatar.manifest["body"]["licensed_smplx_data"] is False
    again = write_h3ga(tmp_path / "again.h3ga", avatar)
    assert again.read_bytes() == out.read_bytes()
    assert "front_back.png" in avatar.previews


def test_a_cancelled_job_resumes_exactly_where_it_stopped(tmp_path):
    spec = GenerateSpec(prompt="a dancer", preset="tiny", steps=6, seed=4)
    straight = read_h3ga(generate(spec, ProgressReporter(), tmp_path / "straight"))

    reporter = ProgressReporter()
    reporter.sinks.append(lambda ev: reporter.cancel.cancel() if ev.stage == "stage2" and ev.step == 3 else None)
    with pytest.raises(JobCancelled):
        generate(spec, reporter, tmp_path / "resumed")
    events = []
    resumed = read_h3ga(generate(spec, ProgressReporter([events.append]), tmp_path / "resumed"))
    assert any("Resumed from step 3" in e.message for e in events)
    assert [e.step for e in events if e.stage == "stage2" and e.total][0] == 4
    for name, array in straight.arrays.items():
        assert np.allclose(array, resumed.arrays[name], atol=1e-6), name


def test_empty_prompts_and_unknown_presets_are_refused(tmp_path):
    from dreamwaltz.core.errors import DreamWaltzError

    with pytest.raises(DreamWaltzError, match="prompt is empty"):
        generate(GenerateSpec(prompt="  ", preset="tiny"), ProgressReporter(), tmp_path)
    with pytest.raises(DreamWaltzError, match="tiny, preview, paper"):
        generate(GenerateSpec(prompt="x", preset="ultra"), ProgressReporter(), tmp_path)


def test_stage1_points_seed_stage2_unless_skipped(tmp_path):
    events = []
    spec = GenerateSpec(prompt="a knight in armor", preset="tiny", steps=2, stage1_steps=3, seed=1)
    avatar = read_h3ga(generate(spec, ProgressReporter([events.append]), tmp_path))
    done = [e.message for e in events if e.message.startswith("Stage 1 done")]
    assert done and int(done[0].split()[3]) > 100
    skin = np.array([0.78, 0.6, 0.5])
    shown = lambda a: display_colors(a.manifest, a["free/colors"])  # the file holds linear light
    assert np.abs(shown(avatar) - skin).max(axis=1).mean() > 0.02, "colours come from the stage-1 field"
    assert avatar["free/opacity_logits"].std() > 0.3, "opacities come from the stage-1 densities"
    off = read_h3ga(
        generate(
            GenerateSpec(prompt="x", preset="tiny", steps=1, seed=1, stage1_steps=0),
            ProgressReporter(),
            tmp_path / "off",
        )
    )
    assert np.abs(shown(off) - skin).max() < 0.05, "without stage 1 they start as skin"
    assert off["free/opacity_logits"].std() < 0.15, "... and equally opaque"


def test_the_same_seed_builds_the_same_avatar_whatever_ran_before(body):
    torch.manual_seed(1)
    a = H3GA(body, num_free=200, num_bound=50, seed=5)
    torch.manual_seed(2)
    b = H3GA(body, num_free=200, num_bound=50, seed=5)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.mark.gpu
def test_both_stages_run_on_cuda_with_densification(tmp_path):
    """The GPU path end to end: CUDA body, stage-1 field, gsplat rasterizer, densify (tiny models)."""
    events = []
    spec = GenerateSpec(
        prompt="a knight in armor", preset="tiny", device="cuda", steps=4, stage1_steps=3, seed=0, densify=True
    )
    avatar = read_h3ga(generate(spec, ProgressReporter([events.append]), tmp_path))
    assert any(e.message.startswith("Stage 1 done") for e in events)
    assert any(e.message.startswith("Densify at step") for e in events)
    assert np.isfinite(avatar["free/means"]).all() and avatar.num_free > 100


def test_a_point_between_the_legs_follows_both_legs_not_just_the_nearest_triangle(body):
    """A long skirt's hem midway between the ankles (7 cm from either leg) must not be torn to one
    side: far from the skin, skin weights are averaged over the neighbourhood."""
    from dreamwaltz.core.joints import JOINT_INDEX, JOINT_NAMES

    joints = body().rest_joints[0]
    hem = ((joints[JOINT_INDEX["left_ankle"]] + joints[JOINT_INDEX["right_ankle"]]) / 2).numpy()
    model = H3GA(body, num_free=10, num_bound=10, init_points=hem[None])
    weights = dict(zip((JOINT_NAMES[j] for j in model.free_skin_joints[0]), model.free_skin_weights[0].tolist()))
    left, right = weights.get("left_ankle", 0.0), weights.get("right_ankle", 0.0)
    assert min(left, right) > 0.3 and abs(left - right) < 0.15, weights
    # On the skin the triangle's own weights stay: a vertex is skinned exactly like the body.
    chest = int(torch.nonzero(body.skin_weights.argmax(1) == JOINT_INDEX["spine2"])[0])  # not a hand or face vertex
    vertex = body.template_vertices[chest].numpy()
    on_skin = H3GA(body, num_free=10, num_bound=10, init_points=vertex[None])
    expected = torch.topk(body.skin_weights[chest], 4)
    assert torch.allclose(on_skin.free_skin_weights[0] * expected.values.sum(), expected.values, atol=1e-5)


def test_command_line_options_reach_the_job(monkeypatch, tmp_path):
    import dreamwaltz.pipeline as pipeline
    from dreamwaltz.cli import main

    seen = []
    monkeypatch.setattr(pipeline, "generate", lambda spec, reporter, workdir, out=None: seen.append(spec) or out)
    assert (
        main(
            [
                "generate",
                "a knight",
                "--preset",
                "tiny",
                "--densify",
                "--cpu-offload",
                "--vae-slicing",
                "--precision",
                "bf16",
                "--stage1-steps",
                "0",
                "--out",
                str(tmp_path / "k.h3ga"),
            ]
        )
        == 0
    )
    spec = seen[0]
    assert (spec.densify, spec.cpu_offload, spec.vae_slicing, spec.precision, spec.stage1_steps) == (
        True,
        True,
        True,
        "bf16",
        0,
    )
    main(["generate", "a knight", "--out", str(tmp_path / "d.h3ga")])
    assert seen[1].stage1_steps is None and not seen[1].densify, "defaults: stage 1 on (preset's steps), no densify"


def _vertex_normals(vertices, faces):
    v = vertices[faces]
    n = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(normals, dim=-1)


def test_a_free_gaussian_on_a_finger_binds_to_a_triangle_of_that_finger(body):
    """Fingers lie side by side: the triangle with the nearest centre is often the neighbour's."""
    from dreamwaltz.core.joints import JOINT_NAMES
    from dreamwaltz.stage2.model import nearest_triangles

    rest = body().rest_vertices[0]
    dominant = body.skin_weights.argmax(1)
    finger = [JOINT_NAMES.index(n) for n in ("left_index2", "left_index3", "right_middle2", "right_middle3")]
    on_finger = torch.nonzero(torch.isin(dominant, torch.tensor(finger))).squeeze(1)
    normals = _vertex_normals(rest, body.faces)[on_finger]
    for offset, outside in ((0.003, True), (-0.002, False)):
        points = rest[on_finger] + offset * normals
        bind, bary, distance, is_outside = nearest_triangles(points, rest, body.faces)
        owner = body.skin_weights[body.faces[bind]].sum(1).argmax(1)  # the bound triangle's joint
        same = [
            JOINT_NAMES[o].split("_")[1].rstrip("123") == JOINT_NAMES[d].split("_")[1].rstrip("123")
            and JOINT_NAMES[o][0] == JOINT_NAMES[d][0]
            for o, d in zip(owner.tolist(), dominant[on_finger].tolist())
        ]
        assert np.mean(same) == 1.0, f"{np.mean(same):.3f} bound to their own finger at offset {offset}"
        assert distance.max() < abs(offset) + 1e-3 and (is_outside == outside).float().mean() > 0.95
        assert torch.allclose(bary.sum(1), torch.ones(len(bary))) and (bary >= 0).all()


def test_stage1_points_on_the_hands_and_face_are_left_to_the_mesh_bound_gaussians(body):
    from dreamwaltz.core.joints import JOINT_INDEX

    rest = body().rest_vertices[0]
    dominant = body.skin_weights.argmax(1)
    normals = _vertex_normals(rest, body.faces)
    # The backs of the fingers (T-pose: palms down), so 3 cm up is clear of the neighbouring fingers.
    hand = torch.nonzero(
        torch.isin(dominant, torch.tensor([JOINT_INDEX[f"left_{f}2"] for f in ("index", "middle", "ring")]))
        & (normals[:, 1] > 0.8)
    ).squeeze(1)[:20]
    torso = torch.nonzero(dominant == JOINT_INDEX["spine2"]).squeeze(1)[:20]
    assert len(hand) == len(torso) == 20
    glove = rest[hand] + 0.03 * normals[hand]  # a bulky glove: 3 cm off the skin, free
    points = torch.cat([rest[hand] + 0.004 * normals[hand], rest[torso] + 0.004 * normals[torso], glove]).numpy()
    model = H3GA(body, num_free=10, num_bound=50, init_points=points)
    assert model.dropped_near_parts == 20 and model.num_free == 40
    kept = model.free_means.detach()
    assert torch.cdist(kept, torch.as_tensor(points[:20])).min() > 0.01, "the skin-tight finger points went"


def test_gaussians_from_stage1_points_start_shaped_like_their_neighbourhood():
    """Points on a tilted plane start as discs lying in it; points in a ball start round."""
    from dreamwaltz.core.rotations import quaternion_to_matrix
    from dreamwaltz.stage1.export import local_shapes

    rng = np.random.default_rng(0)
    normal = np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])
    u = np.cross(normal, [1.0, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    plane = rng.uniform(-0.1, 0.1, (2000, 2)) @ np.stack([u, v])
    scales, quats = local_shapes(plane)
    axes = quaternion_to_matrix(quats.astype(np.float64))  # columns: the Gaussian's axes
    thin = np.abs(np.einsum("nij,i->nj", axes, normal)[np.arange(len(axes)), scales.argmin(1)])
    assert np.median(thin) > 0.98, "the thinnest axis is the plane's normal"
    assert np.median(scales.min(1) / scales.max(1)) < 0.25
    ball, _ = local_shapes(rng.normal(size=(2000, 3)) * 0.05)
    assert np.median(ball.min(1) / ball.max(1)) > 0.35
