"""Peak memory of each training step at the presets' real sizes (issue 14: a 24 GB card).

Measured, each in a fresh process:

- ``stage1_<preset>``: one stage-1 step, preview and paper: the preset's field, final render size,
  samples per ray, batch and ray chunk; a tiny stand-in loss (the image mean plus the hand/face
  density loss) so that the diffusion networks are left to ``sds``; backward and an Adam step.
  The field's occupancy grid is the canonical body's (its surface cells, the inside filled along
  z, dilated by one cell as training does), so that the samples reach the network where a
  trained field's would; the batch is the sampler's closest face close-up (the whole frame is
  face) and three of its closest body views. On a CPU, where such a step takes hours, the step
  renders copies of the densest chunk of rays instead (the centre of the face close-up: every
  sample in an occupied cell) and is extrapolated linearly in rays to the preset's batch x size^2:
  with checkpointed chunks only per-ray outputs grow with the rays, so this bounds the real step.
- ``stage2_paper``: one stage-2 step: H3GA with the paper's Gaussian counts (started on the body
  surface), posed, rendered by ``render.rasterize`` at 512 px, batch 4, backward, Adam step.
- ``sds_paper``: the SDS step (``bench guidance``'s SD-1.5-size random-weight networks) on a batch
  of 512 px renders, backward to the renders; the paper's precision on CUDA (fp16), bf16 on a CPU
  (the same bytes per number; ``DREAMWALTZ_BENCH_MEMORY_SDS_DTYPE=float32`` for fp32).
- ``h3ga_init_paper``: constructing H3GA with the paper's counts from stage-1-like start points
  (the body's outer shell, as stage 1 exports them), which binds each point to a triangle.

Method. On CUDA: ``torch.cuda.max_memory_allocated`` of the process (everything it allocated:
parameters, optimiser state, activations). On a CPU: the peak RSS of the measuring process
(``VmHWM`` in /proc) minus that of an idle process that imported the same modules, both with a
fixed glibc mmap threshold so that freed tensors leave the RSS (see ``run_child``). The SDS
measurement restarts its peak once the networks are built (they are built in fp32 and cast,
a transient that loading real weights in their precision does not have): it counts the
resident weights and the step.
A measurement whose forecast exceeds ``DREAMWALTZ_BENCH_MEMORY_LIMIT_GIB`` (default 7) on a CPU is
run at two smaller batches (or point counts) and extrapolated linearly, and says so.

The last line: ``stage1_preview_gib=.. stage1_paper_gib=.. stage2_paper_gib=.. sds_paper_gib=..
h3ga_init_paper_gib=..``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

GIB = 2**30
RESULT = "MEMORY-RESULT "


# -- what runs in the measuring process --------------------------------------------------------
def _imports():
    """The modules every measuring process (and the idle baseline) imports before measuring."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from ..body import BodyModel  # noqa: F401
    from ..guidance.architectures import sd15_random_modules  # noqa: F401
    from ..guidance.sds import SDSGuidance  # noqa: F401
    from ..render import rasterize  # noqa: F401
    from ..stage1 import canonical_body  # noqa: F401
    from ..stage1.field import render_image  # noqa: F401
    from ..stage2 import H3GA  # noqa: F401


def stage2_settings(preset: str) -> dict:
    """Resolution, batch and Gaussian counts of a preset's stage 2."""
    from ..presets import get_preset

    c = get_preset(preset).stage2
    return {"resolution": c.resolution, "batch": c.batch, "num_free": c.num_free, "num_bound": c.num_bound}


def body_occupancy(field, cb) -> float:
    """Set the field's occupancy grid to the body's: surface cells, the inside filled along z,
    dilated by one cell (as ``update_occupancy`` does). Returns the occupied fraction."""
    import torch
    import torch.nn.functional as F

    g = field.cfg.occupancy_res
    v = torch.as_tensor(cb.vertices, dtype=torch.float32)
    tri = v[torch.as_tensor(cb.faces, dtype=torch.long)]
    bary = torch.distributions.Dirichlet(torch.ones(3)).sample((16,))  # 16 points per triangle
    pts = torch.cat([v, torch.einsum("kc,fci->fki", bary, tri).reshape(-1, 3)])
    lo, hi = field.box_min.cpu(), field.box_max.cpu()
    c = ((pts - lo) / (hi - lo) * g).long().clamp(0, g - 1)
    occ = torch.zeros(g, g, g, dtype=torch.bool)
    occ[c[:, 0], c[:, 1], c[:, 2]] = True
    occ = (occ.cumsum(2) > 0) & (occ.flip(2).cumsum(2).flip(2) > 0)
    occ = F.max_pool3d(occ.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0
    field.occupied.copy_(occ.to(field.occupied.device))
    return float(occ.float().mean())


def stage1_views(cb, size: int, batch: int):
    """The sampler's closest face close-up, then its closest body views from around the body."""
    import numpy as np

    from ..core.camera import orbit_camera
    from ..core.joints import JOINT_INDEX

    face = np.asarray(cb.landmarks)[21:89].mean(0)
    hips = cb.joints[0]
    cams = [orbit_camera(0.0, 90.0, 0.35, face, 40, size, size)]
    for az in (45.0, 160.0, -100.0):
        chest = np.array([hips[0], cb.joints[JOINT_INDEX["left_shoulder"], 1], hips[2]])
        cams.append(orbit_camera(az, 90.0, 1.0, chest, 40, size, size))
    return (cams * batch)[:batch]


def crop(camera, rays: int):
    """The centred window of about ``rays`` pixels of ``camera``'s image, as a camera of its own."""
    from dataclasses import replace

    side = min(camera.width, int(round(rays**0.5)))
    K = camera.K.copy()
    K[0, 2] -= (camera.width - side) / 2
    K[1, 2] -= (camera.height - side) / 2
    return replace(camera, K=K, width=side, height=side)


def stage1_step(device: str, preset: str, batch: int, rays: int = 0) -> dict:
    """``rays`` > 0: instead of the batch, that many rays as copies of the densest chunk: the
    centre window of the face close-up, one chunk of rays, where every ray meets the head and
    every sample is in an occupied cell (a bound: chunks of real views are sparser)."""
    import torch

    from ..body import BodyModel
    from ..presets import stage1_config as stage1_preset
    from ..stage1 import canonical_body
    from ..stage1.body import new_field
    from ..stage1.density import margin_loss, region_points
    from ..stage1.field import render_image

    cfg = stage1_preset(preset)
    size = cfg.schedule[-1][1]
    cb = canonical_body(BodyModel.load("open"))
    field = new_field(cb, cfg).to(device)
    occupied = body_occupancy(field, cb)
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3, eps=1e-15)
    cams = stage1_views(cb, size, batch)
    if rays:
        cams = [crop(cams[0], cfg.render_chunk)] * max(1, rays // cfg.render_chunk)
    start = time.perf_counter()
    images = [
        render_image(field, cam, cfg.samples, jitter=True, chunk=cfg.render_chunk)[0].permute(2, 0, 1) for cam in cams
    ]
    inside, outside = region_points(cb, cfg.density_points, cfg.density_offset, None)
    loss = torch.stack(images).mean() + margin_loss(field, inside, outside, cfg.log_density_in, cfg.log_density_out)
    loss.backward()
    optimizer.step()
    what = (
        f"{len(cams)} copies of the densest {cams[0].width}x{cams[0].height} rays (face close-up centre)"
        if rays
        else f"batch {batch}"
    )
    return {
        "what": f"stage 1, {preset} preset: {size} px, {what}, {cfg.samples} samples/ray, "
        f"chunk {cfg.render_chunk} rays, hash table 2^{cfg.field.log2_table}, "
        f"occupancy {cfg.field.occupancy_res}^3 ({occupied:.0%} occupied)",
        "seconds": time.perf_counter() - start,
    }


def stage2_step(device: str, preset: str, batch: int) -> dict:
    import numpy as np
    import torch

    from ..body import BodyModel
    from ..body.poses import random_pose
    from ..conditioning import sample_camera
    from ..render import AVATAR_RENDER, rasterize
    from ..stage2 import H3GA

    s = stage2_settings(preset)
    body = BodyModel.load("open").to(device)
    model = H3GA(body, num_free=s["num_free"], num_bound=s["num_bound"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-15)
    rng = np.random.default_rng(0)
    images = []
    start = time.perf_counter()
    for _ in range(batch):
        pose = random_pose(rng)
        with torch.no_grad():
            joints = (
                body(full_pose=torch.as_tensor(pose, dtype=torch.float32, device=device)[None]).joints[0].cpu().numpy()
            )
        camera = sample_camera(rng, joints, s["resolution"], face_prob=0.0).camera
        means, cov, colors, opacities = model(
            torch.as_tensor(pose, dtype=torch.float32, device=device), torch.zeros(body.num_expressions, device=device)
        )
        images.append(
            rasterize(
                means, cov, opacities, colors, camera, torch.full((3,), 0.5, device=device), **AVATAR_RENDER
            ).image
        )
    torch.stack(images).mean().backward()
    optimizer.step()
    return {
        "what": f"stage 2, {preset} preset: {s['resolution']} px, batch {batch}, "
        f"{s['num_free']:,} free + {s['num_bound']:,} bound Gaussians",
        "seconds": time.perf_counter() - start,
    }


def sds_dtype(device: str):
    """The guidance's default on CUDA (bf16 where the GPU has it, else fp32); on a CPU bf16 (fast on
    CPUs with AVX512-BF16/AMX) unless DREAMWALTZ_BENCH_MEMORY_SDS_DTYPE says otherwise (float32)."""
    import torch

    if device == "cuda":  # what --precision auto picks there
        from ..guidance.sds import default_dtype

        return default_dtype(torch.device("cuda"))
    return getattr(torch, os.environ.get("DREAMWALTZ_BENCH_MEMORY_SDS_DTYPE", "bfloat16"))


def sds_step(device: str, batch: int) -> dict:
    import torch

    from .guidance import sd15_guidance

    dtype = sds_dtype(device)
    guidance = sd15_guidance(device, dtype)
    # The networks are built in fp32 and then cast; real weights load in their precision directly,
    # so the peak of the build is not the step's: count from the built networks on.
    reset_peak(device)
    size = guidance.resolution
    images = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    skeletons = torch.rand(batch, 3, size, size, device=device)
    start = time.perf_counter()
    guidance(images, skeletons=skeletons, prompts=["a knight in armor, front view"] * batch).loss.backward()
    weights = sum(
        p.numel() * p.element_size()
        for m in (guidance.unet, guidance.vae, guidance.text_encoder, guidance.controlnet)
        for p in m.parameters()
    )
    return {
        "what": f"SDS step, SD-1.5-size random weights, {str(dtype)[6:]}, {size} px, batch {batch}",
        "seconds": time.perf_counter() - start,
        "fixed": weights,
    }


def vae_encode(device: str, batch: int, vae_slicing: bool = False) -> dict:
    """The part of an SDS step that --vae-slicing changes: encoding the renders, and the backward
    pass through the encoder (an SD-1.5-size VAE with random weights; the other networks are the
    tiny models', which encoding never calls)."""
    import dataclasses

    import torch
    from diffusers import AutoencoderKL

    from ..guidance import tiny_models
    from ..guidance.architectures import SD15_VAE
    from ..guidance.sds import DiffusionModules, SDSGuidance

    dtype = sds_dtype(device)
    torch.manual_seed(0)
    modules = DiffusionModules.from_folders(*tiny_models(), dtype)
    modules = dataclasses.replace(modules, vae=AutoencoderKL(**SD15_VAE).to(device, dtype))
    guidance = SDSGuidance(modules, device=device, dtype=dtype, resolution=512, vae_slicing=vae_slicing)
    reset_peak(device)
    images = torch.rand(batch, 3, guidance.resolution, guidance.resolution, device=device, requires_grad=True)
    start = time.perf_counter()
    guidance.encode(images).float().square().sum().backward()
    return {
        "what": f"VAE encode + backward, SD-1.5 size, {str(dtype)[6:]}, 512 px, batch {batch}"
        + (", VAE slicing" if vae_slicing else ""),
        "seconds": time.perf_counter() - start,
    }


def shell_points(body, count: int, seed: int = 0):
    """Stage-1-like start points in the rest pose: the body's outer shell, up to 5 cm out."""
    import numpy as np
    import torch

    with torch.no_grad():
        v = body().rest_vertices[0].cpu().numpy()
    faces = body.faces.cpu().numpy()
    rng = np.random.default_rng(seed)
    f = faces[rng.integers(len(faces), size=count)]
    bary = rng.dirichlet((1.0, 1.0, 1.0), count)
    tri = v[f]
    p = np.einsum("nc,nci->ni", bary, tri)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return (p + n * rng.uniform(-0.02, 0.05, (count, 1))).astype(np.float32)


def h3ga_init(device: str, preset: str, batch: int) -> dict:
    """``batch`` is the number of free Gaussians here."""
    import numpy as np

    from ..body import BodyModel
    from ..stage2 import H3GA

    s = stage2_settings(preset)
    body = BodyModel.load("open")
    points = shell_points(body, batch)
    start = time.perf_counter()
    H3GA(
        body.to(device),
        num_free=batch,
        num_bound=s["num_bound"],
        init_points=points,
        init_colors=np.full((batch, 3), 0.5, np.float32),
        init_densities=np.full(batch, 50.0, np.float32),
    )
    return {
        "what": f"H3GA set-up, {preset} preset: {batch:,} stage-1 points + {s['num_bound']:,} bound, "
        f"{len(body.faces):,} triangles",
        "seconds": time.perf_counter() - start,
    }


def idle(device: str) -> dict:
    return {"what": "idle"}


def reset_peak(device: str) -> None:
    """Restart the peak: CUDA's allocation peak, or the kernel's peak RSS (VmHWM) of this process."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def peak_rss() -> int:
    """Bytes: this process's peak RSS since it started or since ``reset_peak``."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


MEASURES = {
    "stage1": stage1_step,
    "stage2": stage2_step,
    "sds": sds_step,
    "vae_encode": vae_encode,
    "h3ga_init": h3ga_init,
    "idle": idle,
}


def child(name: str, kwargs: dict) -> None:
    _imports()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = MEASURES[name](device, **kwargs)
    if device == "cuda":
        torch.cuda.synchronize()
        info["cuda_peak"] = torch.cuda.max_memory_allocated()
    else:
        info["rss_peak"] = peak_rss()
    print(RESULT + json.dumps(info), flush=True)


# -- the measuring side ------------------------------------------------------------------------
def run_child(name: str, **kwargs) -> dict:
    """Run one measurement in a fresh process; its result with ``peak`` (bytes): the peak RSS on
    a CPU (``ru_maxrss`` of that process alone), the peak CUDA allocation on CUDA."""
    cmd = [sys.executable, "-c", f"from dreamwaltz.bench.memory import child; child({name!r}, {kwargs!r})"]
    # glibc keeps freed blocks below its (self-raising) mmap threshold in its heap, so the RSS of a
    # process that frees and reallocates chunk after chunk climbs past its live memory; a fixed
    # small threshold returns freed tensors to the system and the RSS follows the live memory.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory bench {name} {kwargs} failed (exit {proc.returncode}):\n{out[-3000:]}")
    info = json.loads(lines[-1][len(RESULT) :])
    # /proc's VmHWM (restartable by reset_peak); else ru_maxrss of that process alone (KiB on Linux)
    info["peak"] = info.get("cuda_peak", info.get("rss_peak", usage.ru_maxrss * 1024))
    return info


class Meter:
    def __init__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.limit = float(os.environ.get("DREAMWALTZ_BENCH_MEMORY_LIMIT_GIB", "7")) * GIB
        self.baseline = 0 if self.cuda else run_child("idle")["peak"]
        where = torch.cuda.get_device_name(0) if self.cuda else f"CPU ({os.cpu_count()} cores)"
        method = (
            "torch.cuda.max_memory_allocated"
            if self.cuda
            else f"peak RSS minus an idle process's ({self.baseline / GIB:.2f} GiB)"
        )
        print(f"{where}; method: {method}", flush=True)

    def measure(self, name: str, full: int, small: tuple, scale: str = "batch", **kwargs) -> float:
        """GiB at ``batch=full`` (or ``rays=full``: ``scale``); on a CPU, when the smaller runs
        forecast more than the memory limit or ten minutes, extrapolated linearly from them. A run
        that reports its batch-independent bytes (``fixed``: weights) needs only one smaller run."""
        if self.cuda:
            info = run_child(name, **{scale: full}, **kwargs)
            return self._report(info, info["peak"])
        runs = []
        for n in small:
            info = run_child(name, **{scale: n}, **kwargs)
            runs.append((n, info, self._report(info, info["peak"] - self.baseline) * GIB))
            if "fixed" in info and runs[0][2] * (n + 1) / n > self.limit:
                break  # the next batch would pass the limit: slope from the fixed bytes
        (a, ia, pa), (b, ib, pb) = runs[0], runs[-1]
        if b == a:
            slope, how = (pa - ia["fixed"]) / a, f"from {a:,} and its {ia['fixed'] / GIB:.2f} GiB of weights"
        else:
            slope, how = (pb - pa) / (b - a), f"from {a:,} and {b:,}"
        forecast = pb + slope * (full - b)
        seconds = ib.get("seconds", 0) * full / b
        if scale == "batch" and forecast <= self.limit and seconds < 600:
            info = run_child(name, **{scale: full}, **kwargs)
            return self._report(info, info["peak"] - self.baseline)
        why = (
            "a whole step at this size takes hours on this CPU"
            if scale != "batch"
            else f"a direct run would pass this machine's {'memory limit' if forecast > self.limit else 'ten minutes'}"
        )
        per = f"{slope / 2**20:,.2f} MiB per {scale}" if scale == "batch" else f"{slope:,.0f} bytes per ray"
        print(
            f"  -> {name} at {scale} {full:,}: {forecast / GIB:.2f} GiB, extrapolated linearly in {scale} {how} "
            f"({per}; {why})",
            flush=True,
        )
        return forecast / GIB

    @staticmethod
    def _report(info: dict, peak: float) -> float:
        secs = f" ({info['seconds']:.0f} s)" if "seconds" in info else ""
        print(f"{info['what']}: {peak / GIB:.2f} GiB{secs}", flush=True)
        return peak / GIB


def main():
    from ..presets import stage1_config as stage1_preset

    m = Meter()
    on_cpu = not m.cuda
    figures = {}
    for preset in ("preview", "paper"):
        cfg = stage1_preset(preset)
        rays = cfg.batch * cfg.schedule[-1][1] ** 2
        if on_cpu:  # a whole step at these sizes takes hours here: copies of the densest chunk, scaled
            figures[f"stage1_{preset}"] = m.measure(
                "stage1", rays, (2 * cfg.render_chunk, 6 * cfg.render_chunk), scale="rays", preset=preset, batch=1
            )
        else:
            figures[f"stage1_{preset}"] = m.measure("stage1", cfg.batch, (1, 2), preset=preset)
    paper = stage2_settings("paper")
    figures["h3ga_init_paper"] = m.measure("h3ga_init", paper["num_free"], (10000, 20000), preset="paper")
    if on_cpu:
        print(
            f"SDS on this CPU in {str(sds_dtype('cpu'))[6:]} (what --precision auto picks on GPUs that have bf16).",
            flush=True,
        )
    figures["sds_paper"] = m.measure("sds", paper["batch"], (1, 2))
    encode = {sliced: m.measure("vae_encode", paper["batch"], (1, 2), vae_slicing=sliced) for sliced in (False, True)}
    print(f"--vae-slicing: vae_encode_gib={encode[False]:.2f} vae_encode_sliced_gib={encode[True]:.2f}", flush=True)
    figures["stage2_paper"] = m.measure("stage2", paper["batch"], (1, 2), preset="paper")
    total1 = figures["stage1_paper"] + figures["sds_paper"]
    total2 = figures["stage2_paper"] + figures["sds_paper"]
    print(
        f"paper preset totals: stage 1 + SDS {total1:.2f} GiB, stage 2 + SDS {total2:.2f} GiB "
        f"({'under' if max(total1, total2) < 22 else 'over'} 22 GiB"
        f"{'; CPU figures: own rasterizer, SDS in ' + str(sds_dtype('cpu'))[6:] if on_cpu else ''})"
    )
    print(
        " ".join(
            f"{k}_gib={figures[k]:.2f}"
            for k in ("stage1_preview", "stage1_paper", "stage2_paper", "sds_paper", "h3ga_init_paper")
        )
    )
