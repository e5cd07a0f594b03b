"""Issue 5 (stage 1): SkelSD training end to end on CPU with the tiny models, exact resume after
cancel, oracle reconstruction of a reference avatar, and the hand/face density guidance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch
from stage1_helpers import CACHE, setup, small_config

from dreamwaltz.core.errors import JobCancelled
from dreamwaltz.core.joints import JOINT_INDEX
from dreamwaltz.guidance import build_guidance
from dreamwaltz.progress import CancelToken, ProgressReporter
from dreamwaltz.stage1 import run_stage1, train_stage1
from dreamwaltz.stage1.oracle import outfit_vertex_colors, reference_renderer, run_oracle_stage1

SPEC = SimpleNamespace(prompt="a knight in armor", preset="tiny", seed=3, betas=[])


def test_tiny_preset_runs_end_to_end_and_resumes_exactly_after_cancel(tmp_path):
    body, cb, cfg, _ = setup()
    guidance = build_guidance("sds", "tiny")
    events = []
    full = run_stage1(
        SPEC, body, guidance, ProgressReporter([events.append]), tmp_path / "a", config=cfg, cache_dir=CACHE
    )
    steps = [e.step for e in events if e.stage == "stage1" and e.total]  # progress, not messages
    assert steps == list(range(1, cfg.steps + 1))
    assert any(e.preview for e in events) and (tmp_path / "a" / "stage1.pt").exists()
    assert len(full.points) > 100 and full.points.shape == full.colors.shape

    token = CancelToken()
    seen = []

    def cancel_at_3(e):
        seen.append(e)
        if e.stage == "stage1" and e.step == 3:
            token.cancel()

    with pytest.raises(JobCancelled):
        run_stage1(
            SPEC, body, guidance, ProgressReporter([cancel_at_3], token), tmp_path / "b", config=cfg, cache_dir=CACHE
        )
    state = torch.load(tmp_path / "b" / "stage1.pt", weights_only=True)
    assert state["step"] == 3
    later = []
    resumed = run_stage1(
        SPEC, body, guidance, ProgressReporter([later.append]), tmp_path / "b", config=cfg, cache_dir=CACHE
    )
    assert [e.step for e in later if e.stage == "stage1" and e.total] == [4, 5, 6]
    for (name, a), b in zip(full.field.state_dict().items(), resumed.field.state_dict().values()):
        assert torch.equal(a, b), name
    last = lambda evs: [e.loss for e in evs if e.stage == "stage1" and e.loss is not None][-1]
    assert last(events) == last(later)


def test_oracle_guidance_recovers_the_reference_avatar():
    final, initial, _ = run_oracle_stage1(steps=40, size=32, cache_dir=CACHE, **_small())
    # The benchmark (400 steps at 64 px) measures more; this CPU-sized run must clear a margin.
    assert final > initial + 2.0 and final > 19.0, (final, initial)


def _small():
    cfg = small_config()
    return {k: getattr(cfg, k) for k in ("samples", "init_steps", "init_size", "init_rays", "field")}


def _finger_probe(cb):
    j = lambda n: torch.as_tensor(cb.joints[JOINT_INDEX[n]], dtype=torch.float32)
    gap = (j("left_index3") + j("left_middle3")) / 2  # ~1 cm from either finger, outside the mesh
    fingers = torch.stack([j("left_index3"), j("left_middle3")])
    return gap[None], fingers


def _trained_margin(weight, tmp_path) -> tuple:
    """Train the body-initialised field 25 oracle steps with hand/face density guidance of
    ``weight``; return (margin, gap density, finger densities). The margin (log units) is how far
    the worst probe clears the guidance's own targets: log density above ``log_density_in`` on the
    fingertips, below ``log_density_out`` in the gap between them (> 0: both met)."""
    body, cb, cfg, field = setup()
    reference = reference_renderer(cb, outfit_vertex_colors(body, cb))
    guidance = build_guidance("oracle", reference_render=reference)
    cfg = small_config(
        steps=25, schedule=((0.0, 24),), density_weight=weight, checkpoint_every=10**9, preview_every=10**9
    )
    gap, fingers = _finger_probe(cb)
    train_stage1(field, cb, guidance, "oracle", cfg, ProgressReporter(), tmp_path, seed=0)
    with torch.no_grad():
        gap_density, finger_density = float(field.density(gap)[0]), field.density(fingers)
    log = lambda x: float(np.log(max(float(x), 1e-12)))
    margin = min(min(log(d) for d in finger_density) - cfg.log_density_in, cfg.log_density_out - log(gap_density))
    return margin, gap_density, finger_density.tolist()


def test_hand_density_guidance_keeps_the_gap_between_fingers_empty(tmp_path):
    """With the guidance the fingertips are solid and the gap between them empty. Without it, 24 px
    silhouettes cannot see a 1 cm gap: what the body initialisation left there decides, and the
    fingertips thin out (how much depends on the machine's arithmetic, so the control is compared,
    not fixed)."""
    guided, gap, fingers = _trained_margin(1.0, tmp_path / "guided")
    assert gap < 1.0 and min(fingers) > 20.0, (guided, gap, fingers)
    unguided, *densities = _trained_margin(0.0, tmp_path / "unguided")
    assert guided > unguided + 0.3, (guided, unguided, densities)


@pytest.mark.slow
def test_a_stage1_steps_host_syncs_do_not_grow_with_the_chunk_count(tmp_path):
    """Issue 30: a training render made the host wait twice per chunk of rays (and again in the
    checkpointed recomputation); now once per render (how many rays meet matter), so the step's
    count is the same for 1 chunk or 20."""
    from dataclasses import replace

    from dreamwaltz.hostsync import HostSyncCounter
    from dreamwaltz.stage1.train import Stage1Training

    _, cb, cfg, field = setup()
    guidance = build_guidance("sds", "tiny")
    counts = {}
    for chunk in (1 << 20, 32):
        stage = Stage1Training(field, cb, guidance, "a knight", replace(cfg, render_chunk=chunk), tmp_path, seed=0)
        views = stage.make_conditions(1)
        with HostSyncCounter() as syncs:
            stage.train_step(1, views)
        counts[chunk] = syncs
    size = cfg.size_at(1)
    assert size * size // 32 >= 16, "the small chunk splits the render into many chunks"
    assert counts[32].total == counts[1 << 20].total, (dict(counts[32].kinds), dict(counts[1 << 20].kinds))
    assert counts[32].kinds["nonzero"] <= cfg.batch + 1, dict(counts[32].kinds)


def test_stage1_skeletons_are_drawn_at_the_diffusion_resolution_not_the_render_size(tmp_path):
    """Issue 30: drawn at the 24-256 px render size, the limbs were under a pixel wide and the
    ControlNet saw them upsampled by nearest neighbour; the official implementation draws the
    skeleton at the diffusion resolution."""
    from dreamwaltz.body import BodyModel
    from dreamwaltz.stage1 import canonical_body
    from dreamwaltz.stage1.body import new_field
    from dreamwaltz.stage1.train import Stage1Training

    cfg = small_config(batch=2)
    cb = canonical_body(BodyModel.load("open"))
    guidance = build_guidance("sds", "tiny", resolution=96)
    stage = Stage1Training(new_field(cb, cfg), cb, guidance, "a knight", cfg, tmp_path)
    for cam, skeleton, _ in stage.make_conditions(0):
        assert cam.camera.width == cfg.size_at(0) < 96, "the field still renders at the schedule's size"
        assert skeleton.shape == (3, 96, 96)
        lit = (skeleton.amax(0) > 0).float().mean()
        assert lit > 0.01, "limbs a few pixels wide, not sub-pixel specks"


def test_the_render_chunk_comes_from_free_gpu_memory_and_stays_the_presets_on_a_cpu():
    from dreamwaltz.stage1.train import CHUNK_BYTES_PER_SAMPLE, render_chunk_for

    assert render_chunk_for(None, 128, 4096) == 4096
    big = render_chunk_for(70 << 30, 128, 4096)  # an H100 with 70 GiB free
    assert 4096 < big <= 1 << 18 and big & (big - 1) == 0
    assert big * 128 * CHUNK_BYTES_PER_SAMPLE <= (70 << 30) // 4, "a quarter of the free memory at most"
    assert render_chunk_for(1 << 30, 128, 4096) == 4096, "never below the preset's"
