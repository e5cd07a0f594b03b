"""Issue 6: optional densification and pruning of the free Gaussians (gsplat's DefaultStrategy)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import BodyModel
from dreamwaltz.core.errors import JobCancelled
from dreamwaltz.core.h3ga import read_h3ga, write_h3ga
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.guidance import OracleGuidance
from dreamwaltz.progress import ProgressReporter
from dreamwaltz.stage2 import H3GA
from dreamwaltz.stage2.densify import DensifyConfig, FreeGaussianRefiner
from dreamwaltz.stage2.oracle import reference_avatar
from dreamwaltz.stage2.train import Stage2Config, make_optimizer, render, train_stage2


@pytest.fixture(scope="module")
def body():
    return BodyModel.load("open")


def fake_render(total: int, hot: slice, size: int = 32):
    """A render whose screen-space gradient is high on ``hot`` Gaussians, all of them on screen."""
    grad = torch.zeros(total, 2)
    grad[hot] = 0.05
    return SimpleNamespace(
        means2d=SimpleNamespace(grad=grad), radii=torch.ones(total, 2), image=torch.zeros(size, size, 3)
    )


def test_high_gradient_gaussians_grow_transparent_ones_go_and_the_hand_face_gaussians_stay(body):
    model = H3GA(body, num_free=300, num_bound=50, seed=0)
    with torch.no_grad():
        model.free_opacity[:10] = -8.0  # opacity 0.0003: below gsplat's pruning threshold
        model.free_color_logits[20:30] = 3.0  # mark the hot ones
    bound_before = model.bound_faces.clone()
    optimizers = make_optimizer(model, Stage2Config())
    refiner = FreeGaussianRefiner(model, optimizers, DensifyConfig(start=0, every=1, stop=100))
    changed = refiner.after_step(1, [fake_render(350, slice(20, 30))])
    assert changed == {"before": 300, "after": 300 + 10 - 10}
    marked = (model.free_color_logits[:, 0] == 3.0).nonzero().squeeze(1)
    assert len(marked) == 20, "each hot Gaussian was cloned or split into two"
    assert (model.free_opacity > -8.0).all(), "the transparent ones were pruned"
    parents = model.free_bind[marked]
    assert (parents.reshape(-1, 1) == parents.unique().reshape(1, -1)).any(0).all() and len(parents.unique()) <= 10
    assert torch.equal(model.bound_faces, bound_before) and model.bound_opacity.shape == (50,)
    for key, opt in optimizers.per_free.items():  # the optimizers hold the model's new tensors
        assert opt.param_groups[0]["params"][0] is getattr(
            model,
            {
                "means": "free_means",
                "scales": "free_log_scales",
                "quats": "free_quats",
                "opacities": "free_opacity",
                "colors": "free_color_logits",
            }[key],
        )
    # The grown avatar is a valid file that poses like any other.
    avatar = read_h3ga(write_h3ga(Path(tempfile.mkdtemp()) / "grown.h3ga", model.export()))
    posed = pose_avatar(avatar, np.zeros((55, 3)))
    assert posed.means.shape == (300 + 50, 3) and np.isfinite(posed.means).all()


def test_growth_stops_at_the_budget(body):
    model = H3GA(body, num_free=200, num_bound=20, seed=0)
    optimizers = make_optimizer(model, Stage2Config())
    refiner = FreeGaussianRefiner(model, optimizers, DensifyConfig(start=0, every=1, stop=100, max_free=200))
    refiner.after_step(1, [fake_render(220, slice(0, 50))])
    assert model.num_free == 200


def oracle_run(body, workdir, steps, cancel_at=None):
    reference = reference_avatar(body, 400)

    def reference_render(cameras, poses):
        return torch.stack([render(reference, p, e, c).permute(2, 0, 1) for c, (p, e) in zip(cameras, poses)])

    model = H3GA(body, num_free=400, num_bound=100, seed=0)
    cfg = Stage2Config(
        steps=steps,
        resolution=24,
        batch=1,
        checkpoint_every=10**9,
        preview_every=10**9,
        densify=DensifyConfig(start=1, every=3, stop=8, grow_grad2d=1e-6),
    )
    reporter = ProgressReporter()
    if cancel_at is not None:
        reporter.sinks.append(
            lambda ev: reporter.cancel.cancel() if ev.stage == "stage2" and ev.step == cancel_at else None
        )
    train_stage2(model, OracleGuidance(reference_render), "oracle", cfg, reporter, workdir, seed=2)
    return model


def test_a_densified_run_resumes_exactly_after_a_cancel(body, tmp_path):
    straight = oracle_run(body, tmp_path / "straight", 8)
    assert straight.num_free > 400, "the run densified"
    with pytest.raises(JobCancelled):
        oracle_run(body, tmp_path / "resumed", 8, cancel_at=5)  # after the refinement at step 3
    resumed = oracle_run(body, tmp_path / "resumed", 8)
    assert resumed.num_free == straight.num_free
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_generate_with_densify_writes_the_refined_gaussians(tmp_path):
    from dreamwaltz.pipeline import GenerateSpec, generate

    events = []
    spec = GenerateSpec(prompt="a knight in armor", preset="tiny", steps=4, seed=0, densify=True)
    avatar = read_h3ga(generate(spec, ProgressReporter([events.append]), tmp_path))
    refined = [e.message for e in events if e.message.startswith("Densify at step")]
    assert refined, "a 4-step run refines once, at step 2"
    assert avatar.num_free == int(refined[-1].split("-> ")[1].split()[0])
