"""Score distillation (SDS) with Stable Diffusion + an OpenPose ControlNet (diffusers).

Renders are encoded by the VAE, noised at t ~ U[t_min, t_max] (optionally annealed), and the
UNet with ControlNet residuals predicts the noise for the conditional and unconditional prompt in
one batched forward. The classifier-free-guided residual w(t) (eps_hat - eps) is the gradient on
the latents, applied through the reparametrisation trick: loss = 0.5 ||z - sg(z - g)||^2 / B, so
d loss / d z = g / B without backpropagating through the UNet. w(t) = 1 by default, as the
DreamWaltz-G authors train; DreamFusion's 1 - alpha_bar(t) and an SNR weighting are options.

A step whose gradient is not finite (fp16 overflow, a broken model) contributes nothing and is
flagged in ``info["nonfinite"]`` (a 0-d tensor, no host sync) for the trainer to count and stop on.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.job import SDS_WEIGHTINGS, JobSpecError
from .base import Guidance, GuidanceOutput
from .models import check_openpose_controlnet, check_sd_layout


@dataclass
class DiffusionModules:
    """The parts of an SD 1.x pipeline with an OpenPose ControlNet, however they were made."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    controlnet: Any
    scheduler: Any

    @classmethod
    def from_folders(cls, sd_path: Path, controlnet_path: Path, dtype: torch.dtype) -> DiffusionModules:
        """Load diffusers folders (real weights, or the tiny models saved the same way)."""
        from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        check_sd_layout(Path(sd_path))
        check_openpose_controlnet(Path(controlnet_path))
        load = dict(torch_dtype=dtype)
        return cls(
            unet=UNet2DConditionModel.from_pretrained(sd_path, subfolder="unet", **load),
            vae=AutoencoderKL.from_pretrained(sd_path, subfolder="vae", **load),
            text_encoder=CLIPTextModel.from_pretrained(Path(sd_path) / "text_encoder", **load),
            tokenizer=CLIPTokenizer.from_pretrained(Path(sd_path) / "tokenizer"),
            controlnet=ControlNetModel.from_pretrained(controlnet_path, **load),
            scheduler=DDPMScheduler.from_pretrained(sd_path, subfolder="scheduler"),
        )


OFFLOAD_HEADROOM = 8 << 30  # bytes kept free for an SDS step's activations (512 px, batch 4; unmeasured on a GPU)


def _weight_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _free_device_bytes(device: torch.device) -> float:
    if device.type != "cuda":
        return float("inf")  # weights on the CPU already: nothing to stream
    free, _total = torch.cuda.mem_get_info(device)
    return free - OFFLOAD_HEADROOM


class StreamedWeights:
    """A frozen module whose weights live in host memory and visit the device for each call.

    Written here rather than with accelerate's offload hook, which moves the weights back with
    ``.to("cpu")`` after every call: a fresh pageable copy each step (slow to send) of weights that
    never change. Here one host copy is made once, pinned where CUDA can pin it, and sent
    asynchronously; unloading only points the module back at it."""

    def __init__(self, module, device: torch.device):
        self.device = device
        pin = device.type == "cuda" and torch.cuda.is_available()
        self.tensors = [*module.parameters(), *module.buffers()]
        for t in self.tensors:
            host = t.data.to("cpu")
            t.data = host.pin_memory() if pin else host
        self.host = [t.data for t in self.tensors]

    def load(self) -> None:
        for t, host in zip(self.tensors, self.host):
            t.data = host.to(self.device, non_blocking=True)

    def unload(self) -> None:
        for t, host in zip(self.tensors, self.host):
            t.data = host


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU has it (fp32's range at half the memory), else fp32 (the authors' precision).

    fp16 only when asked for: SDS gradients at CFG 50 can overflow its range."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class SDSGuidance(Guidance):
    """SDS with ``modules`` already in ``dtype`` (``from_folders`` loads them so)."""

    def __init__(
        self,
        modules: DiffusionModules,
        device="cpu",
        dtype: torch.dtype | None = None,
        resolution: int = 512,
        guidance_scale: float = 50.0,
        t_range=(0.02, 0.98),
        conditioning_scale: float = 1.0,
        negative_prompt: str = "",
        weighting: str = "uniform",
        anneal: bool = False,
        cpu_offload: bool = False,
        vae_slicing: bool = False,
        resident_budget: int | None = None,
    ):
        """``resident_budget``: bytes of weights that may stay on the device with ``cpu_offload``
        (default: the device's free memory less OFFLOAD_HEADROOM; tests pass a figure)."""
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.unet, self.vae, self.controlnet = modules.unet, modules.vae, modules.controlnet
        self.text_encoder, self.tokenizer, self.scheduler = modules.text_encoder, modules.tokenizer, modules.scheduler
        # The VAE stays on the device: autograd needs its weights there for the backward pass through
        # ``encode``. With CPU offload, UNet, ControlNet and text encoder stay resident where they fit
        # in the device's free memory (beside OFFLOAD_HEADROOM for the step's activations), smallest
        # first, and the rest visit the device for their own no-grad forwards only.
        modules.vae.requires_grad_(False).eval().to(self.device)
        budget = resident_budget if resident_budget is not None else _free_device_bytes(self.device)
        self.placement: dict[str, str] = {}
        self._streamed: dict[int, StreamedWeights] = {}
        offloadable = {"text_encoder": self.text_encoder, "controlnet": self.controlnet, "unet": self.unet}
        for name, module in sorted(offloadable.items(), key=lambda item: _weight_bytes(item[1])):
            module.requires_grad_(False).eval()
            if not cpu_offload or _weight_bytes(module) <= budget:
                module.to(self.device)
                budget -= _weight_bytes(module)
                self.placement[name] = "resident"
            else:
                self._streamed[id(module)] = StreamedWeights(module, self.device)
                self.placement[name] = "streamed"
        self.vae_slicing = vae_slicing
        self.alphas = self.scheduler.alphas_cumprod.to(self.device, torch.float32)
        self.resolution, self.guidance_scale = resolution, guidance_scale
        self.t_range, self.conditioning_scale = t_range, conditioning_scale
        if weighting not in SDS_WEIGHTINGS:
            raise JobSpecError(f"Unknown SDS weighting {weighting!r}.", f"Choose {', '.join(SDS_WEIGHTINGS)}.")
        self.negative_prompt, self.weighting, self.anneal = negative_prompt, weighting, anneal
        self._text_cache: dict[str, torch.Tensor] = {}
        self.latent_scale = float(getattr(self.vae.config, "scaling_factor", 0.18215))

    @classmethod
    def from_folders(
        cls, sd_path: Path, controlnet_path: Path, device="cpu", dtype: torch.dtype | None = None, **options
    ) -> SDSGuidance:
        dtype = dtype or default_dtype(torch.device(device))
        return cls(
            DiffusionModules.from_folders(sd_path, controlnet_path, dtype), device=device, dtype=dtype, **options
        )

    # ------------------------------------------------------------------ pieces
    @torch.no_grad()
    def text_embeddings(self, prompts) -> torch.Tensor:
        missing = [p for p in set(prompts) if p not in self._text_cache]
        if missing:
            ids = self.tokenizer(
                missing,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            with self._on_device(self.text_encoder):
                out = self.text_encoder(ids.to(self.device))[0]
            for p, e in zip(missing, out):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    @contextmanager
    def _on_device(self, module):
        """A streamed module's weights come to the device for the call and go back after."""
        streamed = self._streamed.get(id(module))
        if streamed is None:
            yield
            return
        streamed.load()
        try:
            yield
        finally:
            streamed.unload()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, (self.resolution, self.resolution), mode="bilinear", align_corners=False)
        x = (x * 2 - 1).to(self.dtype)
        if self.vae_slicing and len(x) > 1:
            # One render at a time, each slice checkpointed: autograd keeps only the slices' inputs and
            # outputs and recomputes one slice's encoder activations at a time in the backward pass.
            # (diffusers' own slicing saves nothing here: the backward keeps every slice's activations.)
            from torch.utils.checkpoint import checkpoint

            moments = torch.cat([checkpoint(self._moments, part, use_reentrant=False) for part in x.split(1)])
        else:
            moments = self._moments(x)
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        return DiagonalGaussianDistribution(moments).sample() * self.latent_scale

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        """The VAE encoder's posterior parameters (mean and log-variance) for ``x``."""
        return self.vae.encode(x).latent_dist.parameters

    def sample_t(self, batch: int, step_ratio: float) -> torch.Tensor:
        lo, hi = self.t_range
        if self.anneal:  # large noise early, small late (optional schedule)
            hi = hi - (hi - lo) * 0.5 * step_ratio
        n = self.scheduler.config.num_train_timesteps
        return torch.randint(int(lo * n), int(hi * n) + 1, (batch,), device=self.device)

    @torch.no_grad()
    def predict_noise(self, noisy, t, embeddings_cond, embeddings_uncond, skeletons):
        """Classifier-free-guided noise prediction with ControlNet residuals in both branches."""
        latent_in = torch.cat([noisy, noisy]).to(self.dtype)
        t_in = torch.cat([t, t])
        emb = torch.cat([embeddings_cond, embeddings_uncond]).to(self.dtype)
        kwargs = {}
        if skeletons is not None:
            cond = F.interpolate(skeletons, (self.resolution, self.resolution), mode="nearest").to(self.dtype)
            with self._on_device(self.controlnet):
                down, mid = self.controlnet(
                    latent_in,
                    t_in,
                    encoder_hidden_states=emb,
                    controlnet_cond=torch.cat([cond, cond]),
                    conditioning_scale=self.conditioning_scale,
                    return_dict=False,
                )
            kwargs = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        with self._on_device(self.unet):
            eps = self.unet(latent_in, t_in, encoder_hidden_states=emb, **kwargs).sample.float()
        eps_cond, eps_uncond = eps.chunk(2)
        return eps_uncond + self.guidance_scale * (eps_cond - eps_uncond)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas[t]
        if self.weighting == "sds":
            return 1 - a
        if self.weighting == "uniform":
            return torch.ones_like(a)
        if self.weighting == "snr":
            return torch.sqrt(a) * torch.sqrt(1 - a)
        raise ValueError(f"unknown weighting {self.weighting!r}: uniform, sds or snr")

    # ------------------------------------------------------------------ the step
    def __call__(
        self, images, *, skeletons=None, prompts=(), step_ratio=0.0, cameras=None, poses=None
    ) -> GuidanceOutput:
        B = images.shape[0]
        latents = self.encode(images.to(self.device)).float()
        t = self.sample_t(B, step_ratio)
        noise = torch.randn_like(latents)
        noisy = self.scheduler.add_noise(latents.detach(), noise, t)
        cond = self.text_embeddings(list(prompts))
        uncond = self.text_embeddings([self.negative_prompt] * B)
        eps = self.predict_noise(noisy, t, cond, uncond, skeletons.to(self.device) if skeletons is not None else None)
        grad = self.weight(t)[:, None, None, None] * (eps - noise)
        finite = torch.isfinite(grad).all()
        grad = torch.where(finite, grad, torch.zeros_like(grad))  # counted by the trainer, never silent
        target = (latents - grad).detach()
        loss = 0.5 * F.mse_loss(latents, target, reduction="sum") / B
        return GuidanceOutput(
            loss, {"t": t.detach(), "nonfinite": ~finite, "latents": latents, "eps_hat": eps, "noise": noise}
        )
