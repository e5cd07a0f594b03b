"""Hostile splat files (issue 16's rules for issue 19's readers): damaged, truncated or lying files
give an InvalidFileError naming the file, in bounded memory, never another exception."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from splat_fuzz import damaged_copies_fail_cleanly

from dreamwaltz.core import splat_files
from dreamwaltz.core.errors import InvalidFileError

gsply = pytest.importorskip("gsply", reason="gsply writes the valid files these tests damage")


def _valid_files(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    args = (
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.normal(-3, 0.5, (n, 3)).astype(np.float32),
        q.astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.normal(scale=0.2, size=(n, 15, 3)).astype(np.float32),
    )
    ply = tmp_path / "s.ply"
    gsply.plywrite(str(ply), *args)
    compressed = tmp_path / "s.compressed.ply"
    data = gsply.compress_to_bytes(*args)
    compressed.write_bytes(data if isinstance(data, bytes) else data[0])
    spz = tmp_path / "s.spz"
    gsply.write_spz(
        str(spz),
        gsply.GSData(means=args[0], scales=args[1], quats=args[2], opacities=args[3], sh0=args[4], shN=args[5]),
    )
    return [ply, compressed, spz]


def test_truncated_and_corrupted_splat_files_fail_cleanly(tmp_path):
    rng = np.random.default_rng(1)
    for path in _valid_files(tmp_path):
        raw = path.read_bytes()
        assert len(splat_files.read_splats(path)) == 300
        damaged_copies_fail_cleanly(raw, tmp_path / f"bad{path.suffix}", rng, trials=40, flips=8)


def test_lying_headers_do_not_allocate(tmp_path):
    """Declared counts far beyond the file: refused before any big allocation."""
    ply = tmp_path / "huge.ply"
    ply.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\n"
        + b"".join(
            f"property float {p}\n".encode()
            for p in [
                "x",
                "y",
                "z",
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
        )
        + b"end_header\n"
        + bytes(56)
    )
    with pytest.raises(InvalidFileError, match="truncated"):
        splat_files.read_splats(ply)
    spz = tmp_path / "huge.spz"
    spz.write_bytes(gzip.compress(struct.pack("<IIIBBBB", splat_files.SPZ_MAGIC, 3, 3_000_000_000, 3, 12, 0, 0)))
    with pytest.raises(InvalidFileError, match="declares"):
        splat_files.read_splats(spz)
    ascii_ply = tmp_path / "ascii.ply"
    ascii_ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n")
    with pytest.raises(InvalidFileError, match="ascii PLY"):
        splat_files.read_splats(ascii_ply)
