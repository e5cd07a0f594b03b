"""SDS step time and its parts: tiny models on the CPU; SD-1.5-size models (random weights) on CUDA."""

import time

import torch


def timed(fn, repeats=5):
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / repeats


def measure(guidance, size, batch=1):
    images = torch.rand(batch, 3, size, size, device=guidance.device, requires_grad=True)
    skeletons = torch.rand(batch, 3, size, size, device=guidance.device)
    prompts = ["a knight in armor, front view"] * batch

    def step():
        guidance(images, skeletons=skeletons, prompts=prompts).loss.backward()

    def unet_controlnet():
        latents = torch.randn(batch, 4, guidance.resolution // 8, guidance.resolution // 8, device=guidance.device)
        t = torch.full((batch,), 500, device=guidance.device)
        cond = guidance.text_embeddings(prompts)
        guidance.predict_noise(latents, t, cond, guidance.text_embeddings([""] * batch), skeletons)

    def vae():
        guidance.encode(images).float().sum().backward()

    sds, unet, enc = timed(step), timed(unet_controlnet), timed(vae)
    return sds, unet, enc


def main():
    from ..guidance import build_guidance

    guidance = build_guidance("sds", "tiny")
    sds, unet, vae = measure(guidance, 64)
    print(f"CPU, tiny models, 64x64: sds_step {sds:.1f} ms, unet+controlnet {unet:.1f} ms, vae {vae:.1f} ms")
    # Not built yet: the SD-1.5-size (random weights) fp16/bf16 512x512 measurement on CUDA.
    print("SD-1.5-size CUDA measurement: not implemented yet (see docs/BENCHMARKS.md)")
    print(f"sds_step_ms={sds:.1f} unet_controlnet_ms={unet:.1f} vae_ms={vae:.1f} overhead_ratio={sds / (unet + vae):.2f}")
