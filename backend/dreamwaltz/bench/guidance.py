"""SDS step time and peak memory, and those of its parts.

- always: the tiny models on the CPU at 64x64 (checks the machinery, not a speed figure);
- on CUDA: SD-1.5-size UNet + ControlNet + VAE + CLIP with random weights (the compute of the
  real weights, nothing fetched) at 512x512, fp16 and bf16, batch 1 and 4 (stage 2's batch);
- ``DREAMWALTZ_BENCH_SD15=1`` also runs the SD-1.5-size models on a machine without CUDA (fp32,
  minutes per step: it shows what a CPU-only user would wait, and exercises this code here).

The parts: "unet_controlnet" is the classifier-free-guided UNet + ControlNet forward (batch 2B),
"vae" the VAE encoder forward + backward of the renders. The last line is
``sds_step_ms=... unet_controlnet_ms=... vae_ms=... overhead_ratio=...`` with
overhead_ratio = sds_step / (unet_controlnet + vae): what the step costs beyond its two big parts
(noise sampling, text-embedding lookup, loss). It is the bf16 batch-1 figure when CUDA exists.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import torch


@dataclass
class Figures:
    sds_ms: float
    unet_controlnet_ms: float
    vae_ms: float
    peak_mib: dict  # part -> peak memory (CUDA: allocated by torch; CPU: the process's peak RSS)

    @property
    def overhead_ratio(self) -> float:
        return self.sds_ms / (self.unet_controlnet_ms + self.vae_ms)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """(milliseconds per call, peak MiB) after one warm-up call."""
    fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    ms = 1000 * (time.perf_counter() - start) / repeats
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ms, peak


def measure(guidance, batch: int = 1, repeats: int = 5) -> Figures:
    device, size = guidance.device, guidance.resolution
    images = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    skeletons = torch.rand(batch, 3, size, size, device=device)
    prompts = ["a knight in armor, front view"] * batch
    latents = torch.randn(batch, 4, size // 8, size // 8, device=device)
    t = torch.full((batch,), 500, device=device)

    def step():
        guidance(images, skeletons=skeletons, prompts=prompts).loss.backward()

    def unet_controlnet():
        cond = guidance.text_embeddings(prompts)
        guidance.predict_noise(
            latents, t, cond, guidance.text_embeddings([guidance.negative_prompt] * batch), skeletons
        )

    def vae():
        guidance.encode(images).float().sum().backward()

    (sds, p_sds), (unet, p_unet), (enc, p_vae) = (timed(f, device, repeats) for f in (step, unet_controlnet, vae))
    return Figures(sds, unet, enc, {"sds_step": p_sds, "unet_controlnet": p_unet, "vae": p_vae})


def report(label: str, f: Figures) -> None:
    peaks = ", ".join(f"{k} {v:,.0f} MiB" for k, v in f.peak_mib.items())
    print(
        f"{label}: sds_step {f.sds_ms:.1f} ms, unet+controlnet {f.unet_controlnet_ms:.1f} ms, "
        f"vae {f.vae_ms:.1f} ms, overhead_ratio {f.overhead_ratio:.2f}; peak memory: {peaks}",
        flush=True,
    )


def sd15_guidance(device: str, dtype: torch.dtype, **options):
    from ..guidance.architectures import sd15_random_modules
    from ..guidance.presets import NEGATIVE_PROMPT
    from ..guidance.sds import SDSGuidance
    from ..presets import get_preset

    modules = sd15_random_modules(device, dtype)
    return SDSGuidance(
        modules,
        device=device,
        dtype=dtype,
        negative_prompt=NEGATIVE_PROMPT,
        **{**get_preset("paper").guidance.options(), **options},
    )


def main():
    from ..guidance import build_guidance

    tiny = measure(build_guidance("sds", "tiny"))
    report("CPU, tiny models, 64x64, batch 1", tiny)
    last = tiny
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for dtype in (torch.float16, torch.bfloat16):
            guidance = sd15_guidance("cuda", dtype)
            for batch in (4, 1):
                figures = measure(guidance, batch=batch)
                report(f"{name}, SD-1.5-size random weights, {str(dtype)[6:]}, 512x512, batch {batch}", figures)
            last = figures
            del guidance
            torch.cuda.empty_cache()
    elif os.environ.get("DREAMWALTZ_BENCH_SD15") == "1":
        figures = measure(sd15_guidance("cpu", torch.float32), repeats=1)
        report(f"CPU ({os.cpu_count()} cores), SD-1.5-size random weights, fp32, 512x512, batch 1", figures)
        last = figures
    else:
        print(
            "No CUDA: the SD-1.5-size fp16/bf16 figures need an NVIDIA GPU "
            "(DREAMWALTZ_BENCH_SD15=1 runs them on this CPU in fp32, minutes per step)."
        )
    print(
        f"sds_step_ms={last.sds_ms:.1f} unet_controlnet_ms={last.unet_controlnet_ms:.1f} "
        f"vae_ms={last.vae_ms:.1f} overhead_ratio={last.overhead_ratio:.2f}"
    )
