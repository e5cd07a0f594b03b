"""The one training loop of both stages: non-finite guidance steps counted, reported and stopped
on; checkpoints that carry every RNG state."""

from __future__ import annotations

import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import BodyModel
from dreamwaltz.guidance import build_guidance
from dreamwaltz.guidance.base import Guidance
from dreamwaltz.progress import ProgressReporter
from dreamwaltz.stage2 import H3GA, Stage2Config, train_stage2
from dreamwaltz.trainer import NonFiniteGuidanceError


@pytest.fixture(scope="module")
def body():
    return BodyModel.load("open")


@pytest.fixture(scope="module")
def guidances():
    healthy = build_guidance("sds", "tiny", resolution=32)
    broken = build_guidance("sds", "tiny", resolution=32)
    with torch.no_grad():  # what an fp16 overflow does: eps_hat is not finite
        broken.unet.conv_out.weight.fill_(float("inf"))
    return healthy, broken


class EveryNthBroken(Guidance):
    """The tiny SD guidance, with the broken copy on every ``n``-th call."""

    def __init__(self, healthy, broken, n):
        self.healthy, self.broken, self.n, self.calls = healthy, broken, n, 0

    def __call__(self, images, **kw):
        self.calls += 1
        return (self.broken if self.calls % self.n == 0 else self.healthy)(images, **kw)


def small_run(body, guidance, tmp_path, steps, **loop):
    model = H3GA(body, num_free=300, num_bound=100, seed=0)
    cfg = Stage2Config(steps=steps, resolution=32, batch=1, checkpoint_every=4, preview_every=10**9, **loop)
    events = []
    train_stage2(model, guidance, "a knight", cfg, ProgressReporter([events.append]), tmp_path, seed=0)
    return model, events


def test_non_finite_steps_are_counted_and_reported_not_zeroed_silently(body, guidances, tmp_path):
    healthy, broken = guidances
    model, events = small_run(body, EveryNthBroken(healthy, broken, 4), tmp_path, steps=8)
    assert events[-1].step == 8 and "2 non-finite guidance steps dropped" in events[-1].message
    assert all(torch.isfinite(p).all() for p in model.parameters()), "a dropped step leaves no NaN behind"


def test_a_run_of_non_finite_steps_stops_the_job_with_a_clear_error(body, guidances, tmp_path):
    _, broken = guidances
    with pytest.raises(NonFiniteGuidanceError) as err:
        small_run(body, broken, tmp_path, steps=30)
    assert "non-finite" in str(err.value) and "--precision fp32" in str(err.value)
    checkpoint = torch.load(tmp_path / "stage2.pt", weights_only=True)
    assert checkpoint["step"] < 10, "the last checkpoint is from before the run went bad"


def test_checkpoints_carry_every_rng_state(body, guidances, tmp_path):
    healthy, _ = guidances
    small_run(body, healthy, tmp_path, steps=4)
    rng = torch.load(tmp_path / "stage2.pt", weights_only=True)["rng"]
    assert {"python", "numpy_global", "torch"} <= set(rng)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        assert len(rng["torch_cuda"]) == torch.cuda.device_count()


@pytest.mark.gpu
def test_a_cuda_checkpoint_holds_the_cuda_rng_state(body, tmp_path):
    cuda_body = BodyModel.load("open").to("cuda")
    model = H3GA(cuda_body, num_free=300, num_bound=100, seed=0)
    guidance = build_guidance("sds", "tiny", resolution=32, device="cuda")
    cfg = Stage2Config(steps=2, resolution=32, batch=1, checkpoint_every=1, preview_every=10**9)
    train_stage2(model, guidance, "a knight", cfg, ProgressReporter(), tmp_path, device="cuda")
    rng = torch.load(tmp_path / "stage2.pt", weights_only=True)["rng"]
    assert len(rng["torch_cuda"]) == torch.cuda.device_count()


def test_conditions_made_ahead_by_worker_threads_are_those_made_inline(body, guidances, tmp_path):
    """Each step's poses, cameras, skeleton images and prompts depend only on (seed, step): worker
    threads making them ahead of time give exactly what the loop would make itself."""
    from dreamwaltz.conditioning.prefetch import Prefetcher
    from dreamwaltz.stage2.train import Stage2Training

    healthy, _ = guidances
    model = H3GA(body, num_free=300, num_bound=100, seed=0)
    cfg = Stage2Config(steps=9, resolution=32, batch=2)
    stage = Stage2Training(model, healthy, "a knight", cfg, ProgressReporter(), tmp_path, seed=3)
    inline = [stage.make_conditions(step) for step in range(2, 9)]
    with Prefetcher(stage.make_conditions, 2, 9, workers=2, depth=3) as ahead:
        threaded = [ahead.get(step) for step in range(2, 9)]
        assert ahead.busy_s > 0 and ahead.steps == 7
    for a_views, b_views in zip(inline, threaded):
        for a, b in zip(a_views, b_views):
            assert a.prompt == b.prompt and (a.pose == b.pose).all() and (a.expression == b.expression).all()
            assert (a.camera.camera.viewmat == b.camera.camera.viewmat).all() and torch.equal(a.skeleton, b.skeleton)
    assert any(v.prompt != inline[0][0].prompt or (v.pose != inline[0][0].pose).any() for v in inline[3]), (
        "different steps, different conditions"
    )


def test_the_run_reports_its_host_side_time_per_step(body, guidances, tmp_path):
    healthy, _ = guidances
    model = H3GA(body, num_free=300, num_bound=100, seed=0)
    cfg = Stage2Config(steps=3, resolution=32, batch=1, checkpoint_every=10**9, preview_every=10**9)
    stats = {}
    train_stage2(model, healthy, "a knight", cfg, ProgressReporter(), tmp_path, stats=stats)
    assert stats["steps"] == 3 and stats["condition_ms"] > 0 and 0 <= stats["wait_share"] <= 1
    assert stats["step_ms"] >= stats["wait_ms"]
