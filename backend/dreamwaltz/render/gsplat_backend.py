"""gsplat's CUDA kernels as an optional fast path, and the check of whether they can be used.

gsplat's PyPI wheel compiles its CUDA kernels the first time they are used, which needs nvcc and
a CUDA toolkit matching torch; many machines have neither. ``gsplat_status`` finds out once per
process (by rendering one Gaussian with gsplat's public API on the GPU) and says why not, in
plain words. ``choose_backend`` turns that into "gsplat" or "torch" (the project's own pure-torch
rasterizer) and logs one notice per process when a CUDA run falls back.

Nothing here imports gsplat at module level: on a CPU gsplat is never imported at all.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass

DISABLE_ENV = "DREAMWALTZ_DISABLE_GSPLAT"
FIX = (
    "install the CUDA toolkit matching torch (nvcc) or a prebuilt gsplat wheel for your torch/CUDA "
    "from https://docs.gsplat.studio/whl"
)

log = logging.getLogger("dreamwaltz.render")

_probe_lock = threading.Lock()  # held by the probe itself, for as long as gsplat compiles
_start_lock = threading.Lock()  # starting the background probe; never held while probing
_probe_result: GsplatStatus | None = None
_probe_thread: threading.Thread | None = None
_notice_given = False


@dataclass(frozen=True)
class GsplatStatus:
    version: str | None  # installed gsplat version, None when not installed
    usable: bool | None  # its CUDA kernels run here; None while still being checked
    reason: str  # plain words: why not (empty when usable)

    def to_dict(self) -> dict:
        return asdict(self)


def installed_version() -> str | None:
    """gsplat's version from the package metadata (does not import gsplat)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gsplat")
    except PackageNotFoundError:
        return None


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def gsplat_status(block: bool = True) -> GsplatStatus:
    """Whether gsplat's CUDA kernels are usable in this process (checked once, then cached).

    ``block=False`` never waits for the check (which can take minutes while gsplat compiles its
    kernels), nor for a check another thread is running: it starts it in the background when none
    is running and answers ``usable=None`` until it is done (the server's ``/health`` asks so).
    """
    version = installed_version()
    if disabled():
        return GsplatStatus(version, False, f"turned off by {DISABLE_ENV}=1")
    if version is None:
        return GsplatStatus(None, False, "gsplat is not installed")
    import torch

    if not torch.cuda.is_available():
        return GsplatStatus(version, False, "no CUDA (gsplat's kernels need an NVIDIA GPU)")
    if _probe_result is not None:
        return _probe_result
    if block:
        return _probe()
    _start_background_probe()
    return _probe_result or GsplatStatus(version, None, "being checked (gsplat may be compiling its CUDA kernels)")


def _start_background_probe() -> None:
    global _probe_thread
    with _start_lock:
        if _probe_thread is None and _probe_result is None and not _probe_lock.locked():
            _probe_thread = threading.Thread(target=_probe, daemon=True, name="dreamwaltz-gsplat-check")
            _probe_thread.start()


def _probe() -> GsplatStatus:
    """Render one Gaussian with gsplat on the GPU; cache the answer."""
    global _probe_result
    with _probe_lock:
        if _probe_result is not None:
            return _probe_result
        try:
            import torch
            from gsplat import rasterization

            dev = torch.device("cuda")
            means = torch.tensor([[0.0, 0.0, 2.0]], device=dev)
            covars = torch.eye(3, device=dev)[None] * 0.01
            viewmat = torch.eye(4, device=dev)[None]
            K = torch.tensor([[[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]], device=dev)
            image, _, _ = rasterization(
                means,
                None,
                None,
                torch.ones(1, device=dev),
                torch.ones(1, 3, device=dev),
                viewmat,
                K,
                16,
                16,
                covars=covars,
                packed=False,
            )
            torch.cuda.synchronize()
            if not bool(torch.isfinite(image).all()) or float(image.max()) <= 0.0:
                raise RuntimeError("its test render came out empty")
            _probe_result = GsplatStatus(installed_version(), True, "")
        except Exception as err:  # noqa: BLE001 - any failure (import, compile, launch) means: not usable
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            if len(reason) > 300:
                reason = reason[:297] + "..."
            _probe_result = GsplatStatus(installed_version(), False, f"its CUDA kernels do not load ({reason})")
        return _probe_result


def choose_backend(device_type: str, backend: str = "auto") -> str:
    """ "gsplat" or "torch" for tensors on ``device_type``.

    "auto": gsplat on CUDA when its kernels work, else the pure-torch rasterizer (with one
    notice per process on CUDA). "gsplat": gsplat or an error. "torch"/"cpu": pure torch.
    """
    if backend in ("torch", "cpu"):
        return "torch"
    if backend == "gsplat":
        status = gsplat_status()
        if not status.usable:
            from ..core.errors import DreamWaltzError

            raise DreamWaltzError(f"gsplat cannot render here: {status.reason}.", f"To use it, {FIX}.")
        return "gsplat"
    if backend != "auto":
        raise ValueError(f"unknown rasterizer backend {backend!r} (auto, gsplat or torch)")
    if device_type != "cuda":
        return "torch"
    status = gsplat_status()
    if status.usable:
        return "gsplat"
    notice(status)
    return "torch"


def job_rasterizer(device_type: str, requested: str = "auto") -> tuple[str, str]:
    """Stage 2's rasterizer for a job, decided when it starts (gsplat's check, and any compiling of
    its kernels, happens here, before stage 1, not at the first stage-2 render): (the line the job
    log and record state, a warning or ""). The warning is this process's notice (``notice`` logs
    no second one). ``requested`` "gsplat" raises when its kernels do not work here, in one line
    with the fix."""
    global _notice_given
    if requested == "gsplat" and device_type != "cuda":
        from ..core.errors import DreamWaltzError

        raise DreamWaltzError(
            f"--rasterizer gsplat needs a CUDA GPU, but this job runs on {device_type}.",
            "Run it on a machine with an NVIDIA GPU, or leave --rasterizer at auto.",
        )
    if requested == "gsplat" or device_type == "cuda":
        status = gsplat_status()  # blocks: compiles gsplat's kernels now if they are not built
        if status.usable:
            return f"Rasterizer: gsplat {status.version} (CUDA kernels).", ""
        choose_backend(device_type, requested)  # "gsplat": the error, with gsplat's reason
        _notice_given = True
        return (
            "Rasterizer: DreamWaltz's pure-torch one on CUDA (slower).",
            f"gsplat cannot be used ({status.reason}): stage 2 renders with the pure-torch rasterizer, "
            f"which is much slower. To fix: {FIX}.",
        )
    return f"Rasterizer: DreamWaltz's pure-torch one ({device_type}).", ""


def notice(status: GsplatStatus) -> None:
    """One plain-words line per process: why gsplat is not used on the GPU, and the fix."""
    global _notice_given
    if _notice_given:
        return
    _notice_given = True
    log.warning(
        "gsplat cannot be used (%s): rendering with DreamWaltz's pure-torch rasterizer instead, "
        "which is slower. To fix: %s.",
        status.reason,
        FIX,
    )


def rasterizer_name(device_type: str) -> str:
    """What ``rasterize(backend="auto")`` uses on ``device_type``, without logging the notice."""
    if device_type != "cuda":
        return "torch"
    return "gsplat" if gsplat_status().usable else "torch"


def render(means, covariances, opacities, colors, viewmat, K, width, height, bg, eps2d, antialiased=False):
    """gsplat's ``rasterization`` for one camera: (image (H,W,3), alpha (H,W,1), means2d, radii (N,2))."""
    from gsplat import rasterization

    rendered, alpha, info = rasterization(
        means,
        None,
        None,
        opacities,
        colors,
        viewmat[None],
        K[None],
        width,
        height,
        backgrounds=bg[None],
        covars=covariances,
        eps2d=eps2d,
        packed=False,
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    radii = info["radii"][0]
    if radii.ndim == 1:  # gsplat before 1.5: one radius per Gaussian
        radii = radii[:, None].expand(-1, 2)
    return rendered[0], alpha[0], info["means2d"], radii
