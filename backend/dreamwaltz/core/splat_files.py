"""3D Gaussian splat files from other tools, pure numpy (Blender reads them with this module too).

``read_splats(path)`` reads:

- the standard 3DGS PLY (x y z, f_dc_0..2, f_rest_0..44 for spherical harmonics up to degree 3
  (channel-major: f_rest[c * K + k]), opacity (logit), scale_0..2 (log), rot_0..3 (w, x, y, z),
  any other properties ignored), as written by the Inria code, gsplat, nerfstudio and
  ``dreamwaltz export``;
- the compressed PLY of PlayCanvas / SuperSplat (``chunk`` element of 256-splat bounds,
  ``packed_position``/``packed_rotation``/``packed_scale``/``packed_color`` per splat, optional
  ``sh`` element of 8-bit f_rest);
- Niantic's SPZ, versions 2 and 3 (gzip container; 24-bit fixed-point positions, 8-bit
  everything else, smallest-three quaternions in v3) and version 4 (a plain 32-byte header, a table
  of contents, then one zstd stream per attribute; needs the ``zstandard`` package, which Blender
  ships with bpy);
- antimatter15's ``.splat`` (32 bytes per splat: float32 position and linear scale, RGBA8 display
  colour and opacity, quaternion w x y z as ``q * 128 + 128``; no SH).

PlayCanvas SOG (``meta.json`` + WebP textures, or a ``.sog`` zip of them) is refused in one line
naming splat-transform: reading it needs a WebP decoder, which Blender's Python does not have.

Hand-written because the importer runs inside Blender's Python, where the maintained readers
(``gsply``, which needs numba; ``spz``, a compiled extension) cannot be installed; the tests check
this reader against gsply's writers. Every reader checks declared counts against the file's size
before allocating, so a hostile header cannot make it allocate more than the file could hold.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidFileError

SH_C0 = 0.28209479177387814
# The real SH basis constants of degrees 1-3 (3DGS's convention; Blender's nodes use the same ones).
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
HEADER_LIMIT = 64 << 10
SH_REST = {0: 0, 1: 3, 2: 8, 3: 15}  # coefficients beyond the DC term, per degree
PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "<i2",
    "int16": "<i2",
    "ushort": "<u2",
    "uint16": "<u2",
    "int": "<i4",
    "int32": "<i4",
    "uint": "<u4",
    "uint32": "<u4",
    "float": "<f4",
    "float32": "<f4",
    "double": "<f8",
    "float64": "<f8",
}
SPZ_MAGIC = 0x5053474E  # "NGSP"
SPZ_COLOR_SCALE = 0.15
# The standard 3DGS PLY vertex layout (the Inria code's), which the reader below takes and
# ``splat_writers.write_gaussian_ply`` writes: position, normal (written as zeros, never read), the
# degree-0 SH, f_rest_* when the SH go higher, then opacity (logit), log-scales and the rotation w x y z.
PLY_POSITION = ("x", "y", "z")
PLY_NORMAL = ("nx", "ny", "nz")
PLY_SH_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
PLY_OPACITY = "opacity"
PLY_SCALE = ("scale_0", "scale_1", "scale_2")
PLY_ROTATION = ("rot_0", "rot_1", "rot_2", "rot_3")
PLY_REQUIRED = (*PLY_POSITION, *PLY_SH_DC, PLY_OPACITY, *PLY_SCALE, *PLY_ROTATION)  # what a reader needs


def gaussian_ply_fields(k: int = 0) -> list[str]:
    """The vertex properties of a 3DGS .ply, in order, with ``k`` higher SH coefficients per channel."""
    rest = [f"f_rest_{i}" for i in range(3 * k)]
    return [*PLY_POSITION, *PLY_NORMAL, *PLY_SH_DC, *rest, PLY_OPACITY, *PLY_SCALE, *PLY_ROTATION]


@dataclass
class SplatCloud:
    """Static Gaussians in the file's own frame and units."""

    means: np.ndarray  # (N, 3) float32
    log_scales: np.ndarray  # (N, 3) float32
    quats: np.ndarray  # (N, 4) float32, unit, (w, x, y, z)
    opacities: np.ndarray  # (N,) float32 in [0, 1]
    sh_dc: np.ndarray  # (N, 3) float32: colour = 0.5 + SH_C0 * sh_dc, a display (sRGB) value as 3DGS trains it
    sh_rest: np.ndarray  # (N, K, 3) float32, K = (degree + 1)^2 - 1 (0 for degree 0)
    source: str  # "ply", "compressed-ply", "spz" or "splat"

    def __len__(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return {v: k for k, v in SH_REST.items()}[self.sh_rest.shape[1]]

    @property
    def colors(self) -> np.ndarray:
        """The view-independent (DC) colour: display values, clipped to [0, 1]."""
        return np.clip(0.5 + SH_C0 * self.sh_dc, 0.0, 1.0)

    def covariance_square_roots(self) -> np.ndarray:
        """(N, 3, 3) L = R diag(scale), so L L^T is each Gaussian's covariance."""
        from .rotations import quaternion_to_matrix

        return (
            quaternion_to_matrix(self.quats.astype(np.float64)) * np.exp(self.log_scales.astype(np.float64))[:, None, :]
        )


def read_splats(path) -> SplatCloud:
    """A .ply (standard or compressed), .spz or .splat file; InvalidFileError naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        if (path / "meta.json").is_file():
            raise _sog_refusal(path)
        raise InvalidFileError(f"'{path}' is a folder.", "Choose a .ply, .spz or .splat splat file.")
    if not path.is_file():
        raise InvalidFileError(f"'{path}' does not exist.", "Choose a .ply, .spz or .splat splat file.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"ply\n" or head[:3] == b"ply":
        return _read_ply(path)
    if head == struct.pack("<I", SPZ_MAGIC):  # version 4 starts with the magic itself, not gzip's
        return _read_spz_v4(path)
    if head[:2] == b"\x1f\x8b" or path.suffix.lower() == ".spz":
        return _read_spz(path)
    if path.suffix.lower() == ".splat":
        return _read_antimatter_splat(path)
    if _is_sog(path, head):
        raise _sog_refusal(path)
    raise InvalidFileError(
        f"'{path.name}' is neither a PLY nor an SPZ splat file.",
        "Export the scene as a 3DGS .ply, a compressed .ply, an .spz or a .splat.",
    )


def _is_sog(path: Path, head: bytes) -> bool:
    """PlayCanvas SOG: a .sog zip, any zip holding meta.json, or the meta.json itself."""
    if head == b"PK\x03\x04":
        if path.suffix.lower() == ".sog":
            return True
        try:  # reads only the zip's central directory
            with zipfile.ZipFile(path) as z:
                return any(name.rsplit("/", 1)[-1] == "meta.json" for name in z.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
    if path.suffix.lower() == ".json":
        with open(path, "rb") as f:
            text = f.read(HEADER_LIMIT)
        return b'"means"' in text and b'"quats"' in text
    return False


def _sog_refusal(path: Path) -> InvalidFileError:
    source = f"{path.name}/meta.json" if path.is_dir() else path.name  # splat-transform reads the meta.json
    return InvalidFileError(
        f"'{path.name}' is PlayCanvas SOG (splats stored as WebP textures), which is not read here.",
        f"Convert it to .ply with PlayCanvas's splat-transform (`npx @playcanvas/splat-transform {source} out.ply`).",
    )


# ------------------------------------------------------------------------------------------ PLY


def read_ply_elements(path) -> dict[str, dict[str, np.ndarray]]:
    """Every element of a binary little-endian PLY with scalar properties: {element: {property: array}}."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InvalidFileError(
            f"'{path.name}' is not a PLY file (no header within {HEADER_LIMIT >> 10} KB).",
            "Choose a 3D Gaussian splatting .ply.",
        )
    body_start = head.index(b"\n", end) + 1
    lines = head[:end].decode("ascii", "replace").splitlines()
    formats = [l.split() for l in lines if l.startswith("format")]
    if not formats or formats[0][1:2] != ["binary_little_endian"]:
        kind = formats[0][1] if formats and len(formats[0]) > 1 else "unknown"
        raise InvalidFileError(
            f"'{path.name}' is a {kind} PLY; splat files are binary little-endian.",
            "Re-export it as binary little-endian (every splat tool's default).",
        )
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            if not parts[2].isdigit():
                raise InvalidFileError(f"'{path.name}': element '{parts[1]}' has count {parts[2]!r}.", "")
            elements.append((parts[1], int(parts[2]), []))
        elif parts[:1] == ["property"] and elements:
            if parts[1] == "list":
                raise InvalidFileError(
                    f"'{path.name}': element '{elements[-1][0]}' has list properties; splat files have none.",
                    "Choose a 3D Gaussian splatting .ply.",
                )
            if len(parts) != 3 or parts[1] not in PLY_TYPES:
                raise InvalidFileError(f"'{path.name}': unknown property line {line[:60]!r}.", "")
            elements[-1][2].append((parts[2], PLY_TYPES[parts[1]]))
    needed = sum(count * np.dtype(props).itemsize for _, count, props in elements if props)
    if body_start + needed > size:
        raise InvalidFileError(
            f"'{path.name}' is truncated: its header declares {needed} bytes of data, "
            f"the file has {size - body_start}.",
            "Export or download it again.",
        )
    out = {}
    offset = body_start
    for name, count, props in elements:
        dtype = np.dtype(props)
        table = np.fromfile(path, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
        out[name] = {prop: table[prop] for prop, _ in props}
    return out


def _read_ply(path: Path) -> SplatCloud:
    elements = read_ply_elements(path)
    vertex = elements.get("vertex")
    if vertex is None:
        raise InvalidFileError(f"'{path.name}' has no 'vertex' element.", "Choose a 3D Gaussian splatting .ply.")
    if "packed_position" in vertex:
        return _decode_compressed_ply(path, elements)
    missing = [p for p in PLY_REQUIRED if p not in vertex]
    if missing:
        raise InvalidFileError(
            f"'{path.name}' is not a 3D Gaussian splatting PLY: no {', '.join(missing[:4])}.",
            "A point cloud or mesh .ply is not a splat file; export the splats.",
        )
    f32 = lambda names: np.stack([vertex[n].astype(np.float32) for n in names], axis=1)
    rest = sorted((p for p in vertex if p.startswith("f_rest_")), key=lambda p: int(p[7:]) if p[7:].isdigit() else -1)
    k = len(rest) // 3
    if len(rest) % 3 or k not in SH_REST.values():
        raise InvalidFileError(
            f"'{path.name}' has {len(rest)} f_rest properties; 0, 9, 24 or 45 (degree 0-3) expected.", ""
        )
    n = len(vertex[PLY_POSITION[0]])
    sh_rest = f32(rest).reshape(n, 3, k).transpose(0, 2, 1) if k else np.zeros((n, 0, 3), np.float32)
    logits = np.clip(vertex[PLY_OPACITY].astype(np.float64), -60.0, 60.0)  # no overflow on damaged values
    return _finish(
        f32(PLY_POSITION),
        f32(PLY_SCALE),
        f32(PLY_ROTATION),
        1.0 / (1.0 + np.exp(-logits)),
        f32(PLY_SH_DC),
        sh_rest,
        "ply",
        path,
    )


def read_gaussian_ply(path) -> dict:
    """The splats of a file written by ``splat_writers.write_gaussian_ply`` (or any file with those fields)."""
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


def _unorm(values, shift: int, bits: int) -> np.ndarray:
    return ((values >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float64) / ((1 << bits) - 1)


def _decode_compressed_ply(path: Path, elements) -> SplatCloud:
    """PlayCanvas's layout: per 256-splat chunk, min/max of position, log-scale (and colour); per splat
    11-10-11 bit position and scale, 8-8-8-8 colour and opacity, 2+10+10+10 smallest-three rotation."""
    vertex, chunk = elements["vertex"], elements.get("chunk")
    n = len(vertex["packed_position"])
    bounds = [
        "min_x",
        "min_y",
        "min_z",
        "max_x",
        "max_y",
        "max_z",
        "min_scale_x",
        "min_scale_y",
        "min_scale_z",
        "max_scale_x",
        "max_scale_y",
        "max_scale_z",
    ]
    if chunk is None or any(b not in chunk for b in bounds) or len(chunk["min_x"]) * 256 < n:
        raise InvalidFileError(
            f"'{path.name}': compressed PLY without a complete 'chunk' element.",
            "Export it again from SuperSplat / splat-transform.",
        )
    c = np.arange(n) // 256
    lerp = lambda lo, hi, t: chunk[lo][c] * (1 - t) + chunk[hi][c] * t
    unpack3 = lambda packed: (_unorm(packed, 21, 11), _unorm(packed, 11, 10), _unorm(packed, 0, 11))
    px, py, pz = unpack3(vertex["packed_position"].astype(np.uint32))
    means = np.stack([lerp("min_x", "max_x", px), lerp("min_y", "max_y", py), lerp("min_z", "max_z", pz)], 1)
    sx, sy, sz = unpack3(vertex["packed_scale"].astype(np.uint32))
    log_scales = np.stack(
        [
            lerp("min_scale_x", "max_scale_x", sx),
            lerp("min_scale_y", "max_scale_y", sy),
            lerp("min_scale_z", "max_scale_z", sz),
        ],
        1,
    )
    color = vertex["packed_color"].astype(np.uint32)
    rgb = [_unorm(color, 24, 8), _unorm(color, 16, 8), _unorm(color, 8, 8)]
    if all(f"min_{ch}" in chunk and f"max_{ch}" in chunk for ch in "rgb"):
        rgb = [lerp(f"min_{ch}", f"max_{ch}", t) for ch, t in zip("rgb", rgb)]
    opacities = _unorm(color, 0, 8)
    rot = vertex["packed_rotation"].astype(np.uint32)
    norm = np.sqrt(2.0)  # the three smaller components lie in [-1/sqrt(2), 1/sqrt(2)]
    small = [(_unorm(rot, s, 10) - 0.5) * norm for s in (20, 10, 0)]
    largest = np.sqrt(np.maximum(0.0, 1.0 - sum(v * v for v in small)))
    which = (rot >> np.uint32(30)).astype(np.int64)
    quats = np.empty((n, 4))
    for slot in range(4):  # components in file order (w, x, y, z); `which` is the largest's slot
        others = [i for i in range(4) if i != slot]
        rows = which == slot
        quats[rows, slot] = largest[rows]
        for i, value in zip(others, small):
            quats[rows, i] = value[rows]
    sh_rest = np.zeros((n, 0, 3), np.float32)
    sh = elements.get("sh")
    if sh:
        names = sorted(sh, key=lambda p: int(p[7:]) if p.startswith("f_rest_") and p[7:].isdigit() else -1)
        k = len(names) // 3
        if len(names) % 3 or k not in SH_REST.values() or len(sh[names[0]]) != n:
            raise InvalidFileError(
                f"'{path.name}': its 'sh' element has {len(names)} properties for {len(sh[names[0]])} splats.", ""
            )
        coeffs = np.stack([(sh[p].astype(np.float64) / 256.0 - 0.5) * 8.0 for p in names], 1)
        sh_rest = coeffs.reshape(n, 3, k).transpose(0, 2, 1)
    return _finish(
        means, log_scales, quats, opacities, (np.stack(rgb, 1) - 0.5) / SH_C0, sh_rest, "compressed-ply", path
    )


# ------------------------------------------------------------------------------------------ SPZ


def _spz_header_checks(path: Path, n: int, degree: int, fractional_bits: int, limit: int) -> list[int]:
    """The bytes per splat of each attribute stream (positions, alphas, colours, scales, rotations,
    SH; SH only above degree 0), after the header checks every SPZ version shares."""
    if degree not in SH_REST or not 1 <= fractional_bits <= 24:
        raise InvalidFileError(
            f"'{path.name}': SPZ header has SH degree {degree}, {fractional_bits} fractional bits.", ""
        )
    k = SH_REST[degree]
    widths = [9, 1, 3, 3, 4] + ([3 * k] if k else [])
    if n * sum(widths) > limit:
        raise InvalidFileError(
            f"'{path.name}' declares {n} splats ({n * sum(widths) >> 20} MiB unpacked), over "
            f"the {limit >> 20} MiB limit.",
            "Raise DREAMWALTZ_MAX_READ_GB if it is real.",
        )
    return widths


def _read_spz(path: Path, max_bytes: int | None = None) -> SplatCloud:
    """SPZ versions 2 and 3: one gzip stream of a 16-byte header and the attributes one after another."""
    from .arrays import read_limit

    limit = max_bytes or read_limit()
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(16)
            if len(header) < 16:
                raise InvalidFileError(f"'{path.name}' is not an SPZ file (too short).", "")
            magic, version, n, degree, fractional_bits, _flags, _ = struct.unpack("<IIIBBBB", header)
            if magic != SPZ_MAGIC:
                raise InvalidFileError(f"'{path.name}' is not an SPZ file (magic {magic:#010x}).", "")
            if version not in (2, 3):
                raise InvalidFileError(
                    f"'{path.name}' is gzipped SPZ version {version}; this reader takes versions 2, 3 and 4.",
                    "Convert it with Niantic's spz tools to version 4, or to a .ply.",
                )
            widths = _spz_header_checks(path, n, degree, fractional_bits, limit)
            if version == 2:  # three 8-bit quaternion components instead of smallest-three's 32 bits
                widths[4] = 3
            payload = f.read(n * sum(widths))
    except (OSError, EOFError, zlib.error) as err:
        raise InvalidFileError(
            f"'{path.name}' is not a readable SPZ file ({err}).", "Export or download it again."
        ) from None
    if len(payload) != n * sum(widths):
        raise InvalidFileError(f"'{path.name}' is truncated: {len(payload)} of {n * sum(widths)} bytes.", "")
    buf = np.frombuffer(payload, dtype=np.uint8)
    streams, o = [], 0
    for width in widths:
        streams.append(buf[o : o + n * width])
        o += n * width
    return _decode_spz(path, version, n, fractional_bits, streams)


def _read_spz_v4(path: Path, max_bytes: int | None = None) -> SplatCloud:
    """SPZ version 4: a plain 32-byte header (magic, version, count, SH degree, fractional bits, flags,
    stream count, table-of-contents offset), optional vendor extension records up to that offset, a
    table of (compressed, uncompressed) u64 sizes, then one zstd stream per attribute in v3's order
    and encoding."""
    from .arrays import read_limit

    limit = max_bytes or read_limit()
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(32)
        if len(header) < 32:
            raise InvalidFileError(f"'{path.name}' is not an SPZ file (too short).", "")
        _, version, n, degree, fractional_bits, _flags, num_streams, toc = struct.unpack("<IIIBBBBI", header[:20])
        if version != 4:
            raise InvalidFileError(
                f"'{path.name}' is SPZ version {version} without gzip; this reader takes versions 2, 3 and 4.",
                "Convert it with Niantic's spz tools to version 4, or to a .ply.",
            )
        widths = _spz_header_checks(path, n, degree, fractional_bits, limit)
        if num_streams != len(widths):
            raise InvalidFileError(
                f"'{path.name}': SPZ v4 header lists {num_streams} streams; SH degree {degree} needs {len(widths)}.",
                "",
            )
        # Extension records (flag 0x2) sit between the header and the table: vendor metadata such as
        # camera limits, skipped like any reader that does not know them; positions stay in the file's frame.
        table_end = toc + 16 * num_streams
        if toc < 32 or table_end > size:
            raise InvalidFileError(f"'{path.name}' is truncated: its SPZ table of contents lies past the end.", "")
        f.seek(toc)
        table = [int(v) for v in np.frombuffer(f.read(16 * num_streams), dtype="<u8")]
        compressed, unpacked = table[0::2], table[1::2]
        for i, (width, got) in enumerate(zip(widths, unpacked)):
            if got != n * width:
                raise InvalidFileError(
                    f"'{path.name}': SPZ stream {i} unpacks to {got} bytes; {n} splats need {n * width}.", ""
                )
        if table_end + sum(compressed) > size:  # Python ints: a lying u64 cannot overflow the sum
            raise InvalidFileError(
                f"'{path.name}' is truncated: its streams declare {sum(compressed)} bytes, "
                f"the file has {size - table_end}.",
                "Export or download it again.",
            )
        try:  # only here: v2/v3 files and the other formats must not need it
            import zstandard
        except ImportError:
            raise InvalidFileError(
                f"'{path.name}' is SPZ version 4, whose zstd streams need the 'zstandard' package, "
                "which this Python lacks.",
                "Install zstandard (Blender ships it), or convert the file to SPZ version 3 or .ply.",
            ) from None
        streams = []
        for i, (packed, expected) in enumerate(zip(compressed, unpacked)):
            streams.append(np.frombuffer(_unzstd(zstandard, f.read(packed), expected, path, i), dtype=np.uint8))
    return _decode_spz(path, version, n, fractional_bits, streams)


def _unzstd(zstandard, data: bytes, expected: int, path: Path, index: int) -> bytes:
    """One zstd stream, read to at most one byte past ``expected``: a frame that claims or holds more
    (a zstd bomb) costs no more memory than the table of contents already allowed."""
    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        while len(out) <= expected:
            chunk = reader.read(expected + 1 - len(out))
            if not chunk:
                break
            out += chunk
    except zstandard.ZstdError as err:
        raise InvalidFileError(
            f"'{path.name}': SPZ stream {index} is not valid zstd ({err}).", "Export or download it again."
        ) from None
    if len(out) != expected:
        raise InvalidFileError(
            f"'{path.name}': SPZ stream {index} unpacks to {len(out)} bytes, not the {expected} its table says.",
            "Export or download it again.",
        )
    return bytes(out)


def _decode_spz(path: Path, version: int, n: int, fractional_bits: int, streams) -> SplatCloud:
    """Every SPZ version's attribute bytes (positions, alphas, colours, scales, rotations[, SH]) to a cloud."""
    pos = streams[0].reshape(n, 3, 3).astype(np.int32)
    fixed = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)
    fixed = np.where(fixed >= 1 << 23, fixed - (1 << 24), fixed)
    means = fixed / float(1 << fractional_bits)
    opacities = streams[1] / 255.0
    sh_dc = (streams[2].reshape(n, 3) / 255.0 - 0.5) / SPZ_COLOR_SCALE
    log_scales = streams[3].reshape(n, 3) / 16.0 - 10.0
    rot = streams[4].reshape(n, -1)
    xyzw = np.empty((n, 4))
    if version >= 3:  # smallest three: 2 bits for the largest's index, then 9-bit magnitude + sign each
        packed = rot.astype(np.uint32) @ (np.uint32(1) << np.arange(0, 32, 8, dtype=np.uint32))
        largest = (packed >> np.uint32(30)).astype(np.int64)
        work = packed.copy()
        total = np.zeros(n)
        for axis in (3, 2, 1, 0):
            here = largest != axis
            magnitude = (work & np.uint32(511)) / 511.0 / np.sqrt(2.0)
            value = np.where((work >> np.uint32(9)) & np.uint32(1), -magnitude, magnitude)
            xyzw[here, axis] = value[here]
            total += np.where(here, value * value, 0.0)
            work = np.where(here, work >> np.uint32(10), work)
        xyzw[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - total))
    else:
        xyzw[:, :3] = rot / 127.5 - 1.0
        xyzw[:, 3] = np.sqrt(np.maximum(0.0, 1.0 - (xyzw[:, :3] ** 2).sum(1)))
    if len(streams) > 5:
        sh_rest = (streams[5].reshape(n, -1, 3) - 128.0) / 128.0
    else:
        sh_rest = np.zeros((n, 0, 3))
    return _finish(means, log_scales, xyzw[:, [3, 0, 1, 2]], opacities, sh_dc, sh_rest, "spz", path)


# ------------------------------------------------------------------------------------- .splat

SPLAT_RECORD = np.dtype([("xyz", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def _read_antimatter_splat(path: Path, max_bytes: int | None = None) -> SplatCloud:
    """antimatter15's .splat: no header, 32-byte records; the size alone gives the count."""
    from .arrays import read_limit

    limit = max_bytes or read_limit()
    size = path.stat().st_size
    if size == 0 or size % SPLAT_RECORD.itemsize:
        raise InvalidFileError(
            f"'{path.name}' is not an antimatter15 .splat file: {size} bytes is not a whole number of "
            f"{SPLAT_RECORD.itemsize}-byte splats.",
            "Export or download it again, or convert it to .ply.",
        )
    if 4 * size > limit:  # the float64 working copies below are about four times the file
        raise InvalidFileError(
            f"'{path.name}' holds {size // SPLAT_RECORD.itemsize} splats, over the {limit >> 20} MiB limit.",
            "Raise DREAMWALTZ_MAX_READ_GB if it is real.",
        )
    raw = np.fromfile(path, dtype=SPLAT_RECORD)
    scales = raw["scale"].astype(np.float64)
    # Linear scales become the cloud's log scales. The writers store exp(log scale), so a zero is an
    # underflow (clamped to float32's smallest normal); a negative or NaN scale is damage, left
    # non-finite for _finish to refuse.
    log_scales = np.where(scales >= 0, np.log(np.maximum(scales, np.finfo(np.float32).tiny)), np.nan)
    rgba = raw["rgba"] / 255.0
    return _finish(
        raw["xyz"],
        log_scales,
        (raw["rot"] - 128.0) / 128.0,  # already w, x, y, z; _finish normalises
        rgba[:, 3],  # the opacity itself, sigmoid(logit) as the writers store it
        (rgba[:, :3] - 0.5) / SH_C0,  # display colour = 0.5 + SH_C0 * sh_dc
        np.zeros((len(raw), 0, 3)),
        "splat",
        path,
    )


def _finish(means, log_scales, quats, opacities, sh_dc, sh_rest, source, path) -> SplatCloud:
    quats = np.asarray(quats, dtype=np.float64)
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    cloud = SplatCloud(
        np.asarray(means, np.float32),
        np.asarray(log_scales, np.float32),
        (quats / np.where(norms > 0, norms, 1.0)).astype(np.float32),
        np.clip(np.asarray(opacities, np.float64), 0.0, 1.0).astype(np.float32),
        np.asarray(sh_dc, np.float32),
        np.asarray(sh_rest, np.float32),
        source,
    )
    for name in ("means", "log_scales", "sh_dc"):
        bad = ~np.isfinite(getattr(cloud, name)).all(axis=1)
        if bad.any():
            raise InvalidFileError(
                f"'{path.name}': {int(bad.sum())} splats have non-finite {name.replace('_', ' ')} "
                f"(first: splat {int(np.argmax(bad))}).",
                "Clean the file in SuperSplat and export it again.",
            )
    return cloud


def sh_basis(directions) -> np.ndarray:
    """(N, 15) real spherical-harmonic basis values beyond the DC term, 3DGS's convention and
    order (degree 1: -C1 y, C1 z, -C1 x; then degree 2 and 3), for unit ``directions`` (N, 3)."""
    x, y, z = np.asarray(directions, dtype=np.float64).T
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    c1, c2, c3 = SH_C1, SH_C2, SH_C3
    return np.stack(
        [
            -c1 * y,
            c1 * z,
            -c1 * x,
            c2[0] * xy,
            c2[1] * yz,
            c2[2] * (2 * zz - xx - yy),
            c2[3] * xz,
            c2[4] * (xx - yy),
            c3[0] * y * (3 * xx - yy),
            c3[1] * xy * z,
            c3[2] * y * (4 * zz - xx - yy),
            c3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            c3[4] * x * (4 * zz - xx - yy),
            c3[5] * z * (xx - yy),
            c3[6] * x * (xx - 3 * yy),
        ],
        axis=1,
    )


def view_colors(cloud: SplatCloud, camera_position) -> np.ndarray:
    """Display colours seen from ``camera_position`` (file frame): DC plus the view-dependent SH terms,
    clipped at 0 as 3DGS clips them."""
    return sh_view_colors(cloud.means, 0.5 + SH_C0 * cloud.sh_dc.astype(np.float64), cloud.sh_rest, camera_position)


def sh_view_colors(means, dc_colors, sh_rest, camera_position) -> np.ndarray:
    """``view_colors`` from raw arrays: (N,3) means, (N,3) DC display colours (0.5 + C0 * f_dc),
    (N,K,3) higher SH coefficients, all in the frame of ``camera_position``."""
    d = np.asarray(means, dtype=np.float64) - np.asarray(camera_position, dtype=np.float64)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    k = sh_rest.shape[1]
    color = np.asarray(dc_colors, dtype=np.float64)
    if k:
        color = color + np.einsum("nk,nkc->nc", sh_basis(d)[:, :k], np.asarray(sh_rest, dtype=np.float64))
    return np.maximum(color, 0.0)
