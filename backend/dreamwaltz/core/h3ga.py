"""The ``.h3ga`` avatar file, version 1: the one definition, pure numpy (docs/FORMAT.md).

A zip holding ``manifest.json``, arrays as ``arrays/<group>/<name>.npy`` and optional
``previews/*.png``. The reader treats every file as hostile: it bounds sizes before reading,
never unpickles, parses ``.npy`` headers itself before loading, and checks every array's dtype,
shape, finiteness and index ranges, and how the arrays agree with each other. A bad file raises
``InvalidFileError`` with what is wrong and what to do.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InvalidFileError
from .joints import JOINT_NAMES, NUM_JOINTS, PARENTS
from .version import __version__

FORMAT_NAME = "h3ga"
FORMAT_VERSION = 1
COORDINATE_SYSTEM = "smplx: metres, right-handed, +Y up, the body faces +Z"
MAX_TOTAL_BYTES = 4 << 30  # uncompressed; a 1M-splat avatar is ~200 MB
MAX_MANIFEST_BYTES = 16 << 20
MAX_PREVIEW_BYTES = 32 << 20
SKIN_TOP_K = 4

# name -> (dtype, shape with symbols, required). Symbols: V vertices, F faces, N free Gaussians,
# M mesh-bound Gaussians, B betas, E expressions, J joints (55), K skin top-k (4).
ARRAY_SPECS: dict[str, tuple[str, tuple, bool]] = {
    "rig/betas": ("float32", ("B",), True),
    "rig/rest_joints": ("float32", ("J", 3), True),
    "rig/joint_regressor": ("float32", ("J", "V"), True),
    "body/template_vertices": ("float32", ("V", 3), True),
    "body/faces": ("int32", ("F", 3), True),
    "body/skin_weights": ("float32", ("V", "J"), True),
    "body/shape_dirs": ("float32", ("V", 3, "B"), True),
    "body/expression_dirs": ("float32", ("V", 3, "E"), True),
    "body/vertex_colors": ("float32", ("V", 3), False),
    "free/means": ("float32", ("N", 3), True),
    "free/log_scales": ("float32", ("N", 3), True),
    "free/quats": ("float32", ("N", 4), True),
    "free/opacity_logits": ("float32", ("N",), True),
    "free/colors": ("float32", ("N", 3), True),
    "free/skin_joints": ("int32", ("N", "K"), True),
    "free/skin_weights": ("float32", ("N", "K"), True),
    "free/bind_faces": ("int32", ("N",), True),
    "free/bind_barycentrics": ("float32", ("N", 3), True),
    "bound/faces": ("int32", ("M",), True),
    "bound/barycentrics": ("float32", ("M", 3), True),
    "bound/log_scales": ("float32", ("M", 3), True),
    "bound/quats": ("float32", ("M", 4), True),
    "bound/opacity_logits": ("float32", ("M",), True),
    "bound/colors": ("float32", ("M", 3), True),
}
OPTIONAL_PREFIXES = ("deform/",)  # pose-dependent network weights: backend-only, free-form floats
_MEMBER_RE = re.compile(r"^(manifest\.json|arrays/[a-z_]+/[a-z0-9_]+\.npy|previews/[A-Za-z0-9_.-]+\.png)$")


@dataclass
class H3GAAvatar:
    manifest: dict
    arrays: dict[str, np.ndarray]
    previews: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def num_vertices(self) -> int:
        return int(self.arrays["body/template_vertices"].shape[0])

    @property
    def num_free(self) -> int:
        return int(self.arrays["free/means"].shape[0])

    @property
    def num_bound(self) -> int:
        return int(self.arrays["bound/faces"].shape[0])

    @property
    def num_splats(self) -> int:
        return self.num_free + self.num_bound

    @property
    def num_betas(self) -> int:
        return int(self.arrays["rig/betas"].shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.arrays["body/expression_dirs"].shape[2])

    @property
    def joint_names(self) -> list[str]:
        return list(self.manifest.get("joint_names", JOINT_NAMES))

    @property
    def parents(self) -> list[int]:
        return [int(p) for p in self.manifest.get("parents", PARENTS)]

    @property
    def shape_names(self) -> list[str]:
        return list(self.manifest["body"].get("shape_names") or [f"beta_{i:02d}" for i in range(self.num_betas)])

    @property
    def expression_names(self) -> list[str]:
        names = self.manifest["body"].get("expression_names")
        return list(names or [f"expression_{i:03d}" for i in range(self.num_expressions)])


def new_manifest(*, prompt: str = "", negative_prompt: str = "", seed: int = 0, preset: str = "",
                 body_kind: str = "open", gender: str = "neutral", licensed_smplx_data: bool = False,
                 shape_names=None, expression_names=None, extra: Optional[dict] = None) -> dict:
    """A manifest with the fields writers must fill; counts and the array index are added on write."""
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "generator": f"dreamwaltz {__version__}",
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": int(seed),
        "preset": preset,
        "body": {"kind": body_kind, "gender": gender, "licensed_smplx_data": bool(licensed_smplx_data),
                 "shape_names": list(shape_names or []), "expression_names": list(expression_names or [])},
        "coordinate_system": COORDINATE_SYSTEM,
        "joint_names": list(JOINT_NAMES),
        "parents": list(PARENTS),
    }
    manifest.update(extra or {})
    return manifest


# --------------------------------------------------------------------------- writing

def write_h3ga(path, avatar: H3GAAvatar) -> Path:
    """Validate and write ``avatar``; identical avatars give identical bytes. Atomic (temp + rename)."""
    arrays = {name: _canonical(name, a) for name, a in avatar.arrays.items()}
    manifest = json.loads(json.dumps(avatar.manifest))  # a deep, JSON-clean copy
    manifest.setdefault("format", FORMAT_NAME)
    manifest.setdefault("version", FORMAT_VERSION)
    body = manifest.setdefault("body", {})
    body.update(num_vertices=int(arrays["body/template_vertices"].shape[0]),
                num_faces=int(arrays["body/faces"].shape[0]),
                num_betas=int(arrays["rig/betas"].shape[0]),
                num_expressions=int(arrays["body/expression_dirs"].shape[2]))
    manifest["num_free"] = int(arrays["free/means"].shape[0])
    manifest["num_bound"] = int(arrays["bound/faces"].shape[0])
    manifest["arrays"] = {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in sorted(arrays.items())}
    validate(H3GAAvatar(manifest, arrays, dict(avatar.previews)))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".h3ga-", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            _add(zf, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.save(buf, arrays[name], allow_pickle=False)
                _add(zf, f"arrays/{name}.npy", buf.getvalue())
            for name in sorted(avatar.previews):
                _add(zf, f"previews/{name}", avatar.previews[name])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; an avatar is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: reproducible bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _canonical(name: str, array) -> np.ndarray:
    array = np.asarray(array)
    spec = ARRAY_SPECS.get(name)
    if spec is not None:
        return np.ascontiguousarray(array.astype(spec[0], copy=False))
    if name.startswith(OPTIONAL_PREFIXES):
        return np.ascontiguousarray(array.astype(np.float32, copy=False))
    raise InvalidFileError(f"Unknown array {name!r} for a .h3ga file.", "Only the arrays in docs/FORMAT.md can be stored.")


# --------------------------------------------------------------------------- reading

def read_h3ga(path, max_total_bytes: int = MAX_TOTAL_BYTES) -> H3GAAvatar:
    """Read and fully validate an avatar file."""
    path = Path(path)
    where = f"'{path.name}'"
    if not path.is_file():
        raise InvalidFileError(f"{where} does not exist.", "Check the path.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InvalidFileError(f"{where} is not a DreamWaltz avatar: it is not a valid zip archive ({err}).",
                               "It may be truncated or damaged; generate or download it again.") from None
    with zf:
        infos = zf.infolist()
        _check_members(infos, where, max_total_bytes)
        by_name = {i.filename: i for i in infos}
        if "manifest.json" not in by_name:
            raise InvalidFileError(f"{where} has no manifest.json: it is not a .h3ga avatar.", "")
        manifest = _read_manifest(zf, by_name["manifest.json"], where)
        index = manifest.get("arrays")
        if not isinstance(index, dict):
            raise InvalidFileError(f"{where}: the manifest has no array index.", "The file is damaged.")
        arrays = {}
        for name, declared in index.items():
            member = by_name.get(f"arrays/{name}.npy")
            if member is None:
                raise InvalidFileError(f"{where}: array {name!r} is listed in the manifest but missing.",
                                       "The file is incomplete; generate or export it again.")
            arrays[name] = _read_npy(zf, member, name, declared, where)
        undeclared = [n for n in by_name if n.startswith("arrays/") and n[7:-4] not in index]
        if undeclared:
            raise InvalidFileError(f"{where}: arrays not in the manifest: {', '.join(undeclared[:5])}.", "The file is damaged.")
        previews = {n[len("previews/"):]: _read_bounded(zf, by_name[n], MAX_PREVIEW_BYTES, where)
                    for n in by_name if n.startswith("previews/")}
    avatar = H3GAAvatar(manifest, arrays, previews)
    validate(avatar, where)
    return avatar


def _check_members(infos, where: str, max_total_bytes: int) -> None:
    total = 0
    seen = set()
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name or ":" in name:
            raise InvalidFileError(f"{where} contains an unsafe member name {name!r} (path traversal).",
                                   "Do not open this file: it was not written by DreamWaltz.")
        if not _MEMBER_RE.match(name):
            raise InvalidFileError(f"{where} contains an unexpected member {name!r}.", "It is not a DreamWaltz avatar file.")
        if name in seen:
            raise InvalidFileError(f"{where} contains {name!r} twice.", "The file is damaged.")
        seen.add(name)
        if info.file_size < 0 or info.file_size > max_total_bytes:
            raise InvalidFileError(f"{where}: member {name!r} declares {info.file_size} bytes, over the limit.",
                                   "The file is damaged or hostile (zip bomb).")
        total += info.file_size
    if total > max_total_bytes:
        raise InvalidFileError(f"{where} would unpack to {total / 2**30:.1f} GiB, over the {max_total_bytes / 2**30:.0f} GiB limit.",
                               "The file is damaged or hostile (zip bomb).")


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    if info.file_size > limit:
        raise InvalidFileError(f"{where}: {info.filename!r} is too large ({info.file_size} bytes).",
                               "The file is damaged or hostile (zip bomb).")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, EOFError, OSError, zlib_error()) as err:
        raise InvalidFileError(f"{where}: {info.filename!r} cannot be read ({err}).",
                               "The file is truncated or damaged; generate or download it again.") from None
    if len(data) != info.file_size:
        raise InvalidFileError(f"{where}: {info.filename!r} holds more or less data than it declares.", "The file is damaged.")
    return data


def zlib_error():
    import zlib

    return zlib.error


def _read_manifest(zf, info, where: str) -> dict:
    raw = _read_bounded(zf, info, MAX_MANIFEST_BYTES, where)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidFileError(f"{where}: manifest.json is not valid JSON ({err}).", "The file is damaged.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise InvalidFileError(f"{where} is not a DreamWaltz avatar (format {manifest.get('format') if isinstance(manifest, dict) else None!r}).", "")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise InvalidFileError(f"{where}: unknown format version {version!r}.", "The file is damaged.")
    if version > FORMAT_VERSION:
        raise InvalidFileError(f"{where} uses .h3ga version {version}; this DreamWaltz reads version {FORMAT_VERSION}.",
                               "Update the DreamWaltz add-on / backend to open it.")
    return manifest


def _read_npy(zf, info, name: str, declared, where: str) -> np.ndarray:
    if not isinstance(declared, dict) or "dtype" not in declared or "shape" not in declared:
        raise InvalidFileError(f"{where}: the manifest entry of {name!r} is malformed.", "The file is damaged.")
    spec = ARRAY_SPECS.get(name)
    if spec is None and not name.startswith(OPTIONAL_PREFIXES):
        raise InvalidFileError(f"{where}: unknown array {name!r}.", "It was not written by this version of DreamWaltz.")
    raw = _read_bounded(zf, info, MAX_TOTAL_BYTES, where)
    buf = io.BytesIO(raw)
    try:
        major, _minor = np.lib.format.read_magic(buf)
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(buf)
    except (ValueError, OSError) as err:
        raise InvalidFileError(f"{where}: array {name!r} is not a valid .npy ({err}).", "The file is damaged.") from None
    if dtype.hasobject or dtype.kind not in "fiub":
        raise InvalidFileError(f"{where}: array {name!r} has dtype {dtype}, which DreamWaltz never writes (pickled objects are refused).",
                               "Do not open this file: it may be hostile.")
    expected_dtype = spec[0] if spec else "float32"
    if str(dtype) != expected_dtype or str(dtype) != declared["dtype"]:
        raise InvalidFileError(f"{where}: array {name!r} is {dtype} but must be {expected_dtype}.", "The file is damaged.")
    if list(shape) != list(declared["shape"]):
        raise InvalidFileError(f"{where}: array {name!r} has shape {tuple(shape)} but the manifest says {tuple(declared['shape'])}.",
                               "The file is damaged.")
    payload = len(raw) - buf.tell()
    if payload != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise InvalidFileError(f"{where}: array {name!r} holds {payload} bytes, not what its shape {tuple(shape)} needs.",
                               "The file is truncated or damaged.")
    buf.seek(0)
    array = np.load(buf, allow_pickle=False)
    return np.asfortranarray(array) if fortran else array


# --------------------------------------------------------------------------- validation

def validate(avatar: H3GAAvatar, where: str = "the avatar") -> None:
    """Shapes agree, values are finite, indices are in range, weights are weights."""
    a, m = avatar.arrays, avatar.manifest

    def bad(message: str, hint: str = "The file is damaged; generate or export it again.") -> InvalidFileError:
        return InvalidFileError(f"{where}: {message}", hint)

    missing = [n for n, (_, _, required) in ARRAY_SPECS.items() if required and n not in a]
    if missing:
        raise bad(f"missing arrays {', '.join(missing)}.")
    sizes = {"J": NUM_JOINTS, "K": SKIN_TOP_K,
             "V": a["body/template_vertices"].shape[0] if a["body/template_vertices"].ndim == 2 else -1,
             "F": a["body/faces"].shape[0] if a["body/faces"].ndim == 2 else -1,
             "N": a["free/means"].shape[0] if a["free/means"].ndim == 2 else -1,
             "M": a["bound/faces"].shape[0] if a["bound/faces"].ndim == 1 else -1,
             "B": a["rig/betas"].shape[0] if a["rig/betas"].ndim == 1 else -1,
             "E": a["body/expression_dirs"].shape[2] if a["body/expression_dirs"].ndim == 3 else -1}
    for name, array in a.items():
        spec = ARRAY_SPECS.get(name)
        if spec is None:
            if not name.startswith(OPTIONAL_PREFIXES):
                raise bad(f"unknown array {name!r}.")
            continue
        dtype, shape, _ = spec
        expected = tuple(sizes[s] if isinstance(s, str) else s for s in shape)
        if array.dtype != np.dtype(dtype):
            raise bad(f"array {name!r} is {array.dtype}, must be {dtype}.")
        if array.shape != expected:
            raise bad(f"array {name!r} has shape {array.shape}, expected {expected} (from the other arrays).")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise bad(f"array {name!r} contains NaN or infinite values.")
    if sizes["V"] < 3 or sizes["F"] < 1:
        raise bad("the body mesh is empty.")
    _in_range(a["body/faces"], sizes["V"], "body/faces", bad)
    _in_range(a["free/skin_joints"], NUM_JOINTS, "free/skin_joints", bad)
    _in_range(a["free/bind_faces"], sizes["F"], "free/bind_faces", bad)
    _in_range(a["bound/faces"], sizes["F"], "bound/faces", bad)
    for name in ("body/skin_weights", "free/skin_weights"):
        w = a[name]
        if (w < -1e-6).any() or (len(w) and np.abs(w.sum(axis=1) - 1.0).max() > 1e-3):
            raise bad(f"{name} must be non-negative and sum to 1 per row.")
    for name in ("free/bind_barycentrics", "bound/barycentrics"):
        b = a[name]
        if len(b) and ((b < -1e-4).any() or np.abs(b.sum(axis=1) - 1.0).max() > 1e-3):
            raise bad(f"{name} are not valid barycentric coordinates.")
    for name in ("free/quats", "bound/quats"):
        if len(a[name]) and (np.linalg.norm(a[name], axis=1) < 1e-8).any():
            raise bad(f"{name} contains zero quaternions.")
    if np.abs(a["rig/joint_regressor"].sum(axis=1) - 1.0).max() > 1e-2:
        raise bad("rig/joint_regressor rows must sum to 1.")
    parents = m.get("parents", list(PARENTS))
    if list(parents) != list(PARENTS) or list(m.get("joint_names", JOINT_NAMES)) != list(JOINT_NAMES):
        raise bad("the skeleton is not the 55-joint SMPL-X skeleton.")
    names = m.get("body", {}).get("expression_names") or []
    if names and len(names) != sizes["E"]:
        raise bad(f"{len(names)} expression names for {sizes['E']} expressions.")
    names = m.get("body", {}).get("shape_names") or []
    if names and len(names) != sizes["B"]:
        raise bad(f"{len(names)} shape names for {sizes['B']} betas.")


def _in_range(index: np.ndarray, upper: int, name: str, bad) -> None:
    if index.size and (index.min() < 0 or index.max() >= upper):
        raise bad(f"{name} has indices outside 0..{upper - 1}.")
