"""Issue 4: score distillation with SD + ControlNet on tiny local models, and the oracle."""

from __future__ import annotations

import json

import pytest
import torch

from dreamwaltz.core.errors import WeightsMissingError
from dreamwaltz.guidance import OracleGuidance, build_guidance
from dreamwaltz.guidance.models import resolve, tiny_models


@pytest.fixture(scope="module")
def sds(tmp_path_factory):
    import os

    os.environ.setdefault("DREAMWALTZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    return build_guidance("sds", "tiny", guidance_scale=7.5)


def test_tiny_models_load_through_from_pretrained_and_give_gradients(sds):
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    out = sds(images, skeletons=torch.rand(2, 3, 64, 64), prompts=["a knight, front view", "a knight, back view"])
    out.loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert set(sds._text_cache) >= {"a knight, front view", "a knight, back view"}, "prompt embeddings are cached"


def test_reparametrised_gradient_equals_the_explicit_sds_formula(sds):
    torch.manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, requires_grad=True)
    grad = torch.randn(1, 4, 8, 8)
    target = (latents - grad).detach()
    loss = 0.5 * torch.nn.functional.mse_loss(latents, target, reduction="sum")
    loss.backward()
    assert torch.allclose(latents.grad, grad)


def test_cfg_arithmetic_and_controlnet_conditioning_matter(sds):
    torch.manual_seed(1)
    noisy = torch.randn(1, 4, 8, 8)
    t = torch.tensor([500])
    cond = sds.text_embeddings(["a knight"])
    uncond = sds.text_embeddings([""])
    skeleton = torch.rand(1, 3, 64, 64)
    blank = torch.zeros(1, 3, 64, 64)
    with_skel = sds.predict_noise(noisy, t, cond, uncond, skeleton)
    with_blank = sds.predict_noise(noisy, t, cond, uncond, blank)
    without = sds.predict_noise(noisy, t, cond, uncond, None)
    assert not torch.allclose(with_skel, without) and not torch.allclose(with_skel, with_blank)
    assert not torch.allclose(with_blank, without), "a blank skeleton is still a (different) conditioning"
    scale = sds.guidance_scale
    sds.guidance_scale = 1.0
    plain = sds.predict_noise(noisy, t, cond, uncond, skeleton)
    sds.guidance_scale = 0.0
    unconditional = sds.predict_noise(noisy, t, cond, uncond, skeleton)
    sds.guidance_scale = scale
    expected = unconditional + scale * (plain - unconditional)
    assert torch.allclose(with_skel, expected, atol=1e-4), "eps_u + s (eps_c - eps_u)"


def test_oracle_lowers_the_error_steadily():
    reference = torch.rand(1, 3, 32, 32)
    oracle = OracleGuidance(lambda cameras, poses: reference)
    image = torch.nn.Parameter(torch.rand(1, 3, 32, 32))
    opt = torch.optim.SGD([image], lr=0.2)
    errors = []
    for _ in range(20):
        out = oracle(image)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        errors.append(out.info["error"])
    assert all(b < a for a, b in zip(errors, errors[1:])) and errors[-1] < 0.05 * errors[0]


def test_missing_weights_fail_at_once_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsMissingError) as err:
        build_guidance("sds", "preview")
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in str(err.value) and "models download" in str(err.value)
    with pytest.raises(WeightsMissingError, match="does not exist"):
        resolve(str(tmp_path / "nowhere"), "Stable Diffusion")


def test_wrong_layout_and_non_openpose_controlnet_are_refused(tmp_path, sds):
    from dreamwaltz.guidance.sds import SDSGuidance

    sd, cn = tiny_models()
    (tmp_path / "notsd").mkdir()
    with pytest.raises(WeightsMissingError, match="diffusers layout"):
        SDSGuidance(tmp_path / "notsd", cn)
    depth = tmp_path / "control_v11f1p_sd15_depth"
    depth.mkdir()
    (depth / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    with pytest.raises(WeightsMissingError, match="OpenPose"):
        SDSGuidance(sd, depth)
