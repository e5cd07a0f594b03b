"""Splat files out: the standard 3D Gaussian Splatting .ply (binary little-endian) and Niantic's .spz.

The .ply has the layout common splat viewers read (``splat_files.gaussian_ply_fields``): x y z,
nx ny nz, f_dc_0..2 (SH degree 0: (rgb - 0.5) / 0.28209479), opacity (logit), scale_0..2 (log),
rot_0..3 (w, x, y, z). ``rgb`` is a display (sRGB) value: 3DGS trains its SH on sRGB photographs
and viewers (SIBR, SuperSplat, antimatter15/splat, gsplat's viewer) composite the decoded colour
straight to the screen. Callers pass display colours (``posing.pose_avatar`` and the add-on's
``evaluated_splats`` return them). Written here rather than with gsplat's exporter because
Blender's File > Export uses it too, and Blender has no torch: the .ply writer is pure numpy.

The .spz writer hands the splats to ``gsply`` (the backend's ``[spz]`` extra), imported only when
it is called; Blender never calls it. The KHR_gaussian_splatting .glb writer stays in ``gltf.py``,
with the glTF buffers, skins and animations it shares with the animated and mesh .glb files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .rotations import matrix_to_quaternion
from .splat_files import SH_C0, gaussian_ply_fields

SPZ_PACKAGE = "gsply==0.4.6"  # what write_spz asks the user to install


def covariance_to_scale_rotation(cov: np.ndarray):
    """(N,3,3) -> log-scales (N,3) and unit quaternions (N,4) with R diag(s^2) R^T = cov."""
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    values = np.maximum(values, 1e-14)
    det = np.linalg.det(vectors)
    vectors[:, :, 0] *= np.where(det < 0, -1.0, 1.0)[:, None]  # a proper rotation
    return 0.5 * np.log(values), matrix_to_quaternion(vectors)


def _stored_values(covariances, colors, opacities):
    """What both files store (float64): log-scales, quaternions (w x y z), opacity logits and the
    degree-0 SH of the display colours."""
    log_scales, quats = covariance_to_scale_rotation(covariances)
    opacities = np.clip(np.asarray(opacities, dtype=np.float64), 1e-6, 1 - 1e-6)
    sh_dc = (np.asarray(colors, dtype=np.float64) - 0.5) / SH_C0
    return log_scales, quats, np.log(opacities / (1 - opacities)), sh_dc


def write_gaussian_ply(path, means, covariances, colors, opacities, sh_rest=None) -> Path:
    """``sh_rest`` (N, K, 3), optional: the higher SH coefficients (K = 3, 8 or 15), written as the
    standard f_rest_* properties (channel-major: f_rest[c * K + k])."""
    means = np.asarray(means, dtype=np.float64)
    n = len(means)
    log_scales, quats, logits, sh_dc = _stored_values(covariances, colors, opacities)
    rest = np.zeros((n, 0, 3)) if sh_rest is None else np.asarray(sh_rest, dtype=np.float64)
    k = rest.shape[1]
    fields = gaussian_ply_fields(k)
    data = np.zeros((n, len(fields)), dtype=np.float32)
    data[:, 0:3] = means
    data[:, 6:9] = sh_dc
    data[:, 9 : 9 + 3 * k] = np.transpose(rest, (0, 2, 1)).reshape(n, 3 * k)
    data[:, 9 + 3 * k] = logits
    data[:, 10 + 3 * k : 13 + 3 * k] = log_scales
    data[:, 13 + 3 * k : 17 + 3 * k] = quats
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {f}\n" for f in fields) + "end_header\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(data.astype("<f4").tobytes())
    return path


def write_spz(path: Path, posed) -> Path:
    """One posed frame as Niantic's .spz (gzip, version 3) with gsply, a maintained SPZ writer.

    The coordinates are written as they are: the avatar's +Y-up, +Z-front space is SPZ's own
    internal convention (RUB, that of three.js and glTF), so no axis is flipped.
    """
    from .errors import DreamWaltzError

    try:
        from gsply import GSData
        from gsply import write_spz as gsply_write_spz
        from gsply.gsdata import create_ply_format
    except ImportError:
        raise DreamWaltzError(
            "--format spz needs the gsply package, which is not installed.",
            f"Install it: pip install '{SPZ_PACKAGE}' (or the backend's [spz] extra).",
        ) from None
    log_scales, quats, logits, sh_dc = _stored_values(posed.covariances, posed.colors, posed.opacities)
    n = len(posed.means)
    data = GSData(
        means=np.asarray(posed.means, np.float32),
        scales=log_scales.astype(np.float32),
        quats=quats.astype(np.float32),  # w x y z, as gsply's PLY format holds them
        opacities=logits.astype(np.float32),
        sh0=sh_dc.astype(np.float32),
        shN=np.zeros((n, 0, 3), np.float32),
        _format=create_ply_format(sh_degree=0),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    gsply_write_spz(path, data, version=3)
    return path
