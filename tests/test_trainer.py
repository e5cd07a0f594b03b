"""The one training loop of both stages: non-finite guidance steps counted, reported and stopped
on; checkpoints that carry every RNG state."""

from __future__ import annotations

import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import BodyModel
from dreamwaltz.core.errors import JobCancelled
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


def small_run(body, guidance, tmp_path, steps, events=None, **loop):
    model = H3GA(body, num_free=300, num_bound=100, seed=0)
    cfg = Stage2Config(steps=steps, resolution=32, batch=1, checkpoint_every=4, preview_every=10**9, **loop)
    events = [] if events is None else events
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


def test_a_checkpoint_whose_rng_states_came_from_another_device_resumes_to_the_same_parameters(
    body, guidances, tmp_path
):
    """A checkpoint loaded with ``map_location="cuda"`` hands the RNG states over as GPU tensors,
    which the generators' setters refuse; here the states are rewritten as what no setter takes
    (int64 and int32 tensors, a CUDA entry) and the resumed run must still equal the straight one."""
    healthy, _ = guidances
    straight, _ = small_run(body, healthy, tmp_path / "straight", steps=8)

    def cancel_at_3(event, reporter):
        if event.step == 3:
            reporter.cancel.cancel()

    model = H3GA(body, num_free=300, num_bound=100, seed=0)
    cfg = Stage2Config(steps=8, resolution=32, batch=1, checkpoint_every=4, preview_every=10**9)
    reporter = ProgressReporter()
    reporter.sinks.append(lambda event: cancel_at_3(event, reporter))
    with pytest.raises(JobCancelled):
        train_stage2(model, healthy, "a knight", cfg, reporter, tmp_path / "resumed", seed=0)
    path = tmp_path / "resumed" / "stage2.pt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["step"] == 3
    rng = checkpoint["rng"]
    rng["torch"] = rng["torch"].to(torch.int64)
    rng["numpy_global"]["key"] = rng["numpy_global"]["key"].to(torch.int32)
    rng["torch_cuda"] = [rng["torch"].to(torch.int32)]  # what a CUDA run saves; ignored without CUDA
    torch.save(checkpoint, path)

    events = []
    resumed, _ = small_run(body, healthy, tmp_path / "resumed", steps=8, events=events)
    assert any("Resumed from step 3" in e.message for e in events)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


@pytest.mark.gpu
def test_a_cuda_checkpoint_holds_the_cuda_rng_state(body, tmp_path):
    cuda_body = BodyModel.load("open").to("cuda")
    model = H3GA(cuda_body, num_free=300, num_bound=100, seed=0)
    guidance = build_guidance("sds", "tiny", resolution=32, device="cuda")
    cfg = Stage2Config(steps=2, resolution=32, batch=1, checkpoint_every=1, preview_every=10**9)
    train_stage2(model, guidance, "a knight", cfg, ProgressReporter(), tmp_path, device="cuda")
    rng = torch.load(tmp_path / "stage2.pt", weights_only=True)["rng"]
    assert len(rng["torch_cuda"]) == torch.cuda.device_count()
    events = []  # and a rerun resumes from it (the loader maps the states onto the GPU)
    cfg = Stage2Config(steps=3, resolution=32, batch=1, checkpoint_every=1, preview_every=10**9)
    train_stage2(model, guidance, "a knight", cfg, ProgressReporter([events.append]), tmp_path, device="cuda")
    assert any("Resumed from step 2" in e.message for e in events)


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


def test_a_steps_skeletons_reach_the_device_as_one_batch():
    from dreamwaltz.conditioning.prefetch import skeletons_to

    views = [torch.rand(3, 8, 8) for _ in range(3)]
    assert torch.equal(skeletons_to(views, "cpu"), torch.stack(views))


@pytest.mark.gpu
def test_pinned_skeletons_stay_pinned_when_stacked_so_the_copy_does_not_wait():
    from dreamwaltz.conditioning.prefetch import skeleton_tensor, skeletons_to

    views = [skeleton_tensor(torch.zeros(8, 8, 3, dtype=torch.uint8).numpy(), pin=True) for _ in range(2)]
    batch = skeletons_to(views, "cuda")
    assert batch.device.type == "cuda" and batch.shape == (2, 3, 8, 8)
    stacked = torch.stack(views, out=torch.empty((2, 3, 8, 8)).pin_memory())
    assert stacked.is_pinned(), "stack into a pinned buffer keeps it pinned"
