"""Issue 4: score distillation with SD + ControlNet on tiny local models, and the oracle."""

from __future__ import annotations

import json

import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
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


@pytest.mark.parametrize("weighting", ["uniform", "sds", "snr"])
def test_the_sds_gradient_on_the_latents_is_the_weighted_noise_residual(sds, weighting):
    """d loss / d z = w(t) (eps_hat - eps) / B, through the guidance's own step; w = 1 by default."""
    from dreamwaltz.guidance.sds import SDSGuidance
    from dreamwaltz.presets import PRESETS

    assert all(p.guidance.weighting == "uniform" for p in PRESETS.values())
    assert SDSGuidance.__init__.__defaults__ is not None and sds.weighting == "uniform"
    sds.weighting = weighting
    try:
        torch.manual_seed(5)
        images = torch.rand(3, 3, 64, 64, requires_grad=True)
        out = sds(images, skeletons=torch.rand(3, 3, 64, 64), prompts=["a knight, front view"] * 3)
        latents = out.info["latents"]
        latents.retain_grad()
        out.loss.backward()
    finally:
        sds.weighting = "uniform"
    alpha = sds.scheduler.alphas_cumprod[out.info["t"]].float()
    w = {"uniform": torch.ones_like(alpha), "sds": 1 - alpha, "snr": (alpha * (1 - alpha)).sqrt()}[weighting]
    expected = w[:, None, None, None] * (out.info["eps_hat"] - out.info["noise"]) / 3
    assert torch.allclose(latents.grad, expected, rtol=1e-4, atol=1e-7)
    assert images.grad.abs().sum() > 0 and not bool(out.info["nonfinite"])


def test_a_non_finite_sds_step_is_flagged_and_gives_no_gradient(tmp_path):
    """A UNet that overflows (here: an inf weight) makes eps_hat NaN: the step says so and moves nothing."""
    from dreamwaltz.guidance.sds import SDSGuidance

    sd, cn = tiny_models()
    broken = SDSGuidance.from_folders(sd, cn, resolution=64, guidance_scale=7.5)
    with torch.no_grad():
        broken.unet.conv_out.weight.fill_(float("inf"))
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = broken(images, skeletons=torch.rand(1, 3, 64, 64), prompts=["a knight"])
    out.loss.backward()
    assert bool(out.info["nonfinite"]) and torch.isfinite(images.grad).all() and images.grad.abs().sum() == 0


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
        SDSGuidance.from_folders(tmp_path / "notsd", cn)
    depth = tmp_path / "control_v11f1p_sd15_depth"
    depth.mkdir()
    (depth / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    with pytest.raises(WeightsMissingError, match="OpenPose"):
        SDSGuidance.from_folders(sd, depth)


def _saved_bytes(fn):
    """Bytes autograd keeps for the backward pass while ``fn`` runs (the activation memory)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def _lean(sds, **options):
    from dreamwaltz.guidance.sds import SDSGuidance

    sd, cn = tiny_models()
    return SDSGuidance.from_folders(
        sd,
        cn,
        resolution=sds.resolution,
        guidance_scale=sds.guidance_scale,
        negative_prompt=sds.negative_prompt,
        **options,
    )


def test_vae_slicing_keeps_one_render_of_encoder_activations_and_the_same_result(sds):
    """--vae-slicing (issue 30): diffusers' slicing kept every slice's activations for the backward
    pass; now the encode at batch 4 keeps under half of the unsliced activations, with the same
    latents (the same noise, drawn in the same order) and the same gradients."""
    sliced = _lean(sds, vae_slicing=True)
    images = torch.rand(4, 3, 64, 64)
    results = []
    for guidance in (sds, sliced):
        x = images.clone().requires_grad_(True)
        torch.manual_seed(3)
        z, saved = _saved_bytes(lambda g=guidance, x=x: g.encode(x))
        (z * torch.linspace(-1, 1, z.numel()).reshape(z.shape)).sum().backward()
        results.append((z.detach(), x.grad, saved))
    (z_full, g_full, saved_full), (z_sliced, g_sliced, saved_sliced) = results
    assert torch.allclose(z_full, z_sliced, atol=1e-5) and torch.allclose(g_full, g_sliced, atol=1e-6)
    assert saved_sliced < 0.5 * saved_full, (saved_sliced, saved_full)


@pytest.mark.parametrize("budget", [0, None])
def test_cpu_offload_gives_the_same_sds_step(sds, budget):
    """CPU offload (for 12-24 GB cards) changes where the weights wait, not the step: with no room
    (budget 0) every network is streamed; with room, all stay resident. Backward included (the VAE's
    weights must be where autograd needs them)."""
    offload = _lean(sds, cpu_offload=True, resident_budget=budget)
    expected = "streamed" if budget == 0 else "resident"
    assert offload.placement == {"text_encoder": expected, "controlnet": expected, "unet": expected}
    images, skeletons = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    noisy, t = torch.randn(2, 4, 8, 8), torch.tensor([300, 700])
    eps = [
        g.predict_noise(noisy, t, g.text_embeddings(["a knight"] * 2), g.text_embeddings([""] * 2), skeletons)
        for g in (sds, offload)
    ]
    assert torch.allclose(eps[0], eps[1], atol=1e-5)
    full = []
    for guidance in (sds, offload):
        x = images.clone().requires_grad_(True)
        torch.manual_seed(4)
        guidance(x, skeletons=skeletons, prompts=["a knight", "a knight"]).loss.backward()
        full.append(x.grad)
    assert full[0].abs().sum() > 0 and torch.allclose(full[0], full[1], rtol=1e-4, atol=1e-7)


def test_cpu_offload_keeps_what_fits_resident_and_streams_from_one_host_copy(sds):
    """Smallest networks stay on the device while they fit; a streamed network's weights go back to
    the same host copy after every call (no fresh copy a step)."""
    from dreamwaltz.guidance.sds import _weight_bytes

    probe = _lean(sds)
    sizes = {name: _weight_bytes(getattr(probe, name)) for name in ("text_encoder", "controlnet", "unet")}
    smallest = min(sizes, key=sizes.get)
    offload = _lean(sds, cpu_offload=True, resident_budget=sizes[smallest])
    assert offload.placement[smallest] == "resident"
    assert [name for name, where in offload.placement.items() if where == "streamed"] == sorted(
        (n for n in sizes if n != smallest), key=sizes.get
    )
    streamed = offload._streamed[id(offload.unet)]
    before = [t.data_ptr() for t in streamed.host]
    noisy, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    emb = offload.text_embeddings(["a knight"])
    for _ in range(2):
        offload.predict_noise(noisy, t, emb, offload.text_embeddings([""]), torch.rand(1, 3, 64, 64))
    assert [p.data_ptr() for p in offload.unet.parameters()] == before[: len(list(offload.unet.parameters()))]


def test_a_generation_job_passes_the_memory_options_to_the_guidance(monkeypatch, tmp_path):
    import dreamwaltz.guidance as guidance_module
    from dreamwaltz.pipeline import GenerateSpec, generate
    from dreamwaltz.progress import ProgressReporter

    seen = {}

    class Stop(Exception):
        pass

    def fake_build(*args, **options):
        seen.update(options)
        raise Stop

    monkeypatch.setattr(guidance_module, "build_guidance", fake_build)
    spec = GenerateSpec.from_dict(
        {
            "prompt": "a knight",
            "preset": "tiny",
            "device": "cpu",
            "cpu_offload": True,
            "vae_slicing": True,
            "precision": "bf16",
        }
    )
    with pytest.raises(Stop):
        generate(spec, ProgressReporter([]), tmp_path)
    assert seen["cpu_offload"] is True and seen["vae_slicing"] is True and seen["dtype"] is torch.bfloat16
    from dreamwaltz.core.errors import DreamWaltzError

    with pytest.raises(DreamWaltzError, match="auto, fp16, bf16, fp32"):
        generate(
            GenerateSpec(prompt="a knight", preset="tiny", device="cpu", precision="fp8"),
            ProgressReporter([]),
            tmp_path,
        )


def test_benchmark_models_have_the_sizes_of_sd15_and_its_openpose_controlnet():
    """The GPU benchmark's random-weight networks cost what the real ones do: same configs, same
    parameter counts (built on the meta device: no memory, no weights)."""
    from dreamwaltz.guidance.architectures import SD15_PARAMETERS, sd15_random_modules

    modules = sd15_random_modules("meta")
    counts = {name: sum(p.numel() for p in getattr(modules, name).parameters()) for name in SD15_PARAMETERS}
    assert counts == SD15_PARAMETERS
    assert modules.unet.config.cross_attention_dim == modules.text_encoder.config.hidden_size == 768


@pytest.mark.gpu
def test_an_sd15_size_sds_step_runs_in_bf16_on_cuda():
    from dreamwaltz.bench.guidance import sd15_guidance

    guidance = sd15_guidance("cuda", torch.bfloat16)
    images = torch.rand(1, 3, 128, 128, device="cuda", requires_grad=True)
    out = guidance(images, skeletons=torch.rand(1, 3, 128, 128, device="cuda"), prompts=["a knight, front view"])
    out.loss.backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_models_download_fetches_only_the_files_the_backend_loads(tmp_path):
    """Issue 30: `models download` fetched ~10 GB it never loads (SD 1.5's single-file
    checkpoints, the safety checker, fp16 and non-EMA copies). Its patterns, applied by the Hub's
    own filter, keep what ``from_folders`` reads and nothing else."""
    import shutil
    from pathlib import Path

    from huggingface_hub.utils import filter_repo_objects

    from dreamwaltz.guidance.models import DOWNLOAD_PATTERNS
    from dreamwaltz.guidance.sds import DiffusionModules

    sd, controlnet = tiny_models()  # saved in the same diffusers layout as the real repositories
    loaded = sorted(str(p.relative_to(sd)) for p in sd.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(loaded, allow_patterns=DOWNLOAD_PATTERNS["Stable Diffusion"]))
    assert kept == loaded
    for name in kept:  # a folder holding only what the patterns keep loads
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sd / name, tmp_path / name)
    assert DiffusionModules.from_folders(tmp_path, controlnet, torch.float32).unet is not None
    unused = [  # files of stable-diffusion-v1-5 and control_v11p_sd15_openpose the backend never reads
        "v1-5-pruned.safetensors",
        "v1-5-pruned-emaonly.safetensors",
        "v1-5-pruned.ckpt",
        "safety_checker/model.safetensors",
        "safety_checker/config.json",
        "feature_extractor/preprocessor_config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "text_encoder/model.fp16.safetensors",
        "text_encoder/pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    assert list(filter_repo_objects(unused, allow_patterns=DOWNLOAD_PATTERNS["Stable Diffusion"])) == []
    controlnet_files = ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"]
    controlnet_files += ["diffusion_pytorch_model.fp16.safetensors", "control_v11p_sd15_openpose.pth"]
    kept = list(filter_repo_objects(controlnet_files, allow_patterns=DOWNLOAD_PATTERNS["ControlNet"]))
    assert kept == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert Path(controlnet, "diffusion_pytorch_model.safetensors").is_file()
