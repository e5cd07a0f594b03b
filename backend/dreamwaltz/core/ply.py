"""Standard 3D Gaussian Splatting .ply files (binary little-endian), pure numpy.

The layout common splat viewers read: x y z, nx ny nz, f_dc_0..2 (SH degree 0: (rgb - 0.5) /
0.28209479), opacity (logit), scale_0..2 (log), rot_0..3 (w, x, y, z). ``rgb`` is a display (sRGB)
value: 3DGS trains its SH on sRGB photographs and viewers (SIBR, SuperSplat, antimatter15/splat,
gsplat's viewer) composite the decoded colour straight to the screen. Callers pass display
colours (``posing.pose_avatar`` and the add-on's ``evaluated_splats`` return them). Written here rather than
with gsplat's exporter because Blender's File > Export uses it too, and Blender has no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InvalidFileError
from .rotations import matrix_to_quaternion
from .splat_files import SH_C0

FIELDS = [
    "x",
    "y",
    "z",
    "nx",
    "ny",
    "nz",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
]


def covariance_to_scale_rotation(cov: np.ndarray):
    """(N,3,3) -> log-scales (N,3) and unit quaternions (N,4) with R diag(s^2) R^T = cov."""
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    values = np.maximum(values, 1e-14)
    det = np.linalg.det(vectors)
    vectors[:, :, 0] *= np.where(det < 0, -1.0, 1.0)[:, None]  # a proper rotation
    return 0.5 * np.log(values), matrix_to_quaternion(vectors)


def write_gaussian_ply(path, means, covariances, colors, opacities, sh_rest=None) -> Path:
    """``sh_rest`` (N, K, 3), optional: the higher SH coefficients (K = 3, 8 or 15), written as the
    standard f_rest_* properties (channel-major: f_rest[c * K + k])."""
    means = np.asarray(means, dtype=np.float64)
    n = len(means)
    log_scales, quats = covariance_to_scale_rotation(covariances)
    opacities = np.clip(np.asarray(opacities, dtype=np.float64), 1e-6, 1 - 1e-6)
    rest = np.zeros((n, 0, 3)) if sh_rest is None else np.asarray(sh_rest, dtype=np.float64)
    k = rest.shape[1]
    fields = FIELDS[:9] + [f"f_rest_{i}" for i in range(3 * k)] + FIELDS[9:]
    data = np.zeros((n, len(fields)), dtype=np.float32)
    data[:, 0:3] = means
    data[:, 6:9] = (np.asarray(colors, dtype=np.float64) - 0.5) / SH_C0
    data[:, 9 : 9 + 3 * k] = np.transpose(rest, (0, 2, 1)).reshape(n, 3 * k)
    data[:, 9 + 3 * k] = np.log(opacities / (1 - opacities))
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


def read_gaussian_ply(path) -> dict:
    """The splats of a file written by ``write_gaussian_ply`` (or any file with those fields)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise InvalidFileError(f"'{Path(path).name}' is not a PLY file.", "")
    lines = raw[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise InvalidFileError(f"'{Path(path).name}' is not a binary little-endian PLY.", "")
    count = next(int(l.split()[2]) for l in lines if l.startswith("element vertex"))
    names = [l.split()[2] for l in lines if l.startswith("property float")]
    body = np.frombuffer(raw[end + len(b"end_header\n") :], dtype="<f4")
    if body.size != count * len(names):
        raise InvalidFileError(f"'{Path(path).name}' is truncated.", "")
    table = body.reshape(count, len(names))
    return {name: table[:, i] for i, name in enumerate(names)}
