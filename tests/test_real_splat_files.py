"""Splat files written by other people's tools (tests/data/real_splats/, licences in LICENSES.md):
each is read by ``read_splats`` with finite, plausible values, or refused in one line that names
the format and the converter. Pure numpy (gsply, where installed, cross-checks the SPZ v4 file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from splat_fuzz import damaged_copies_fail_cleanly

from dreamwaltz.core import splat_files
from dreamwaltz.core.errors import InvalidFileError

REAL = Path(__file__).parent / "data" / "real_splats"


def _sane(cloud, count, extent_max):
    assert len(cloud) == count and cloud.sh_degree == 0
    for name in ("means", "log_scales", "quats", "opacities", "sh_dc"):
        assert np.isfinite(getattr(cloud, name)).all(), name
    assert np.allclose(np.linalg.norm(cloud.quats, axis=1), 1.0, atol=1e-5)
    assert 0.0 <= cloud.opacities.min() and cloud.opacities.max() <= 1.0
    # A captured scene: metres-sized, splats of millimetres to centimetres, colours spread over [0, 1].
    spread = np.percentile(cloud.means, 99, axis=0) - np.percentile(cloud.means, 1, axis=0)
    assert (spread > 0.3).all() and (spread < extent_max).all(), spread
    assert 1e-4 < np.median(np.exp(cloud.log_scales)) < 0.05
    assert np.percentile(np.exp(cloud.log_scales), 99) < 0.5
    colors = cloud.colors
    assert colors.min() >= 0.0 and colors.max() <= 1.0
    assert 0.15 < colors.mean() < 0.85 and colors.std() > 0.05
    return cloud


def test_spz_version_4_reads():
    cloud = _sane(splat_files.read_splats(REAL / "playcanvas_biker.spz"), 152_746, 5.0)
    assert cloud.source == "spz"
    assert np.median(cloud.opacities) > 0.05  # alphas / 255, not logits


def test_spz_version_4_matches_gsply():
    gsply = pytest.importorskip("gsply", reason="gsply's own SPZ v4 reader is the cross-check")
    path = REAL / "playcanvas_biker.spz"
    ours, theirs = splat_files.read_splats(path), gsply.read_spz(str(path))
    assert np.allclose(ours.means, theirs.means, atol=1e-6)
    assert np.allclose(ours.log_scales, theirs.scales, atol=1e-6)
    assert np.allclose(ours.opacities, 1.0 / (1.0 + np.exp(-theirs.opacities)), atol=1e-5)
    assert np.allclose(ours.sh_dc, theirs.sh0, atol=1e-5)
    q = theirs.quats / np.linalg.norm(theirs.quats, axis=1, keepdims=True)
    assert np.abs((ours.quats * q).sum(1)).min() > 1 - 1e-5  # the same rotation (q and -q alike)


def test_antimatter15_splat_reads():
    path = REAL / "antimatter15_luma-seal.splat"
    cloud = _sane(splat_files.read_splats(path), 101_780, 5.0)
    assert cloud.source == "splat"
    # The conventions of the other readers: the record's colour is 0.5 + C0 * sh_dc, its alpha the
    # opacity, its linear scale exp(log_scale), its quaternion (w, x, y, z) as q * 128 + 128.
    first = np.fromfile(path, dtype=splat_files.SPLAT_RECORD, count=1)[0]
    assert np.allclose(0.5 + splat_files.SH_C0 * cloud.sh_dc[0], first["rgba"][:3] / 255.0, atol=1e-6)
    assert cloud.opacities[0] == pytest.approx(first["rgba"][3] / 255.0, abs=1e-6)
    assert np.allclose(np.exp(cloud.log_scales[0]), first["scale"], rtol=1e-5)
    q = (first["rot"] - 128.0) / 128.0
    assert np.allclose(cloud.quats[0], q / np.linalg.norm(q), atol=1e-6)


def test_compressed_ply_reads():
    assert _sane(splat_files.read_splats(REAL / "playcanvas_guitar.compressed.ply"), 90_854, 6.0).source == (
        "compressed-ply"
    )


@pytest.mark.parametrize("target", ["playcanvas_playbot_sog_lod4", "playcanvas_playbot_sog_lod4/meta.json"])
def test_playcanvas_sog_is_refused_in_one_line(target):
    with pytest.raises(InvalidFileError) as info:
        splat_files.read_splats(REAL / target)
    text = str(info.value)
    assert "\n" not in text and "PlayCanvas SOG" in text and "splat-transform" in text and "meta.json" in text


def test_sog_zip_and_bad_splat_sizes_are_refused(tmp_path):
    import zipfile

    sog = tmp_path / "scene.sog"
    with zipfile.ZipFile(sog, "w") as z:
        z.write(REAL / "playcanvas_playbot_sog_lod4" / "meta.json", "meta.json")
    with pytest.raises(InvalidFileError, match="PlayCanvas SOG") as info:
        splat_files.read_splats(sog)
    assert "scene.sog out.ply" in str(info.value)
    renamed = tmp_path / "scene.zip"
    renamed.write_bytes(sog.read_bytes())
    with pytest.raises(InvalidFileError, match="PlayCanvas SOG"):
        splat_files.read_splats(renamed)
    for size in (0, 33):
        odd = tmp_path / f"odd{size}.splat"
        odd.write_bytes(bytes(size))
        with pytest.raises(InvalidFileError, match="32-byte splats") as info:
            splat_files.read_splats(odd)
        assert "\n" not in str(info.value) and odd.name in str(info.value)


def _small_spz_v4(path, n=400, header_patch=None, table_patch=None, extra=b""):
    """The biker's first ``n`` splats re-packed as SPZ v4 (header, table of contents, zstd streams)."""
    import struct

    zstandard = pytest.importorskip("zstandard")
    raw = (REAL / "playcanvas_biker.spz").read_bytes()
    count = struct.unpack_from("<I", raw, 8)[0]
    table = np.frombuffer(raw[32 : 32 + 80], dtype="<u8").reshape(5, 2)
    offset, streams = 112, []
    for (packed, unpacked), width in zip(table, (9, 1, 3, 3, 4)):
        data = zstandard.ZstdDecompressor().decompress(
            raw[offset : offset + int(packed)], max_output_size=int(unpacked)
        )
        assert len(data) == count * width
        streams.append(zstandard.ZstdCompressor().compress(data[: n * width]))
        offset += int(packed)
    header = bytearray(raw[:32])
    struct.pack_into("<I", header, 8, n)
    for at, value in (header_patch or {}).items():
        header[at] = value
    sizes = [[len(s), n * w] for s, w in zip(streams, (9, 1, 3, 3, 4))]
    for (row, col), value in (table_patch or {}).items():
        sizes[row][col] = value
    path.write_bytes(bytes(header) + np.array(sizes, dtype="<u8").tobytes() + b"".join(streams) + extra)
    return path


def test_spz_version_4_damaged_or_lying_fails_cleanly(tmp_path):
    """Truncated, corrupted or lying v4 files: one-line InvalidFileError naming the file, never a
    big allocation or another exception."""
    good = _small_spz_v4(tmp_path / "small.spz")
    assert len(splat_files.read_splats(good)) == 400
    raw = good.read_bytes()
    rng = np.random.default_rng(3)
    damaged_copies_fail_cleanly(raw, tmp_path / "bad.spz", rng, trials=60, flips=4)
    lies = {
        "declares": dict(header_patch={11: 0x7F}),  # 2 billion splats
        "streams": dict(header_patch={15: 6}),  # an SH stream a degree-0 file cannot have
        "table of contents": dict(header_patch={16: 0xFF, 17: 0xFF}),
        "unpacks to": dict(table_patch={(0, 1): 1 << 40}),
        "truncated": dict(table_patch={(2, 0): 1 << 62}),
    }
    for words, patch in lies.items():
        with pytest.raises(InvalidFileError, match=words):
            splat_files.read_splats(_small_spz_v4(tmp_path / "liar.spz", **patch))


def test_spz_version_4_zstd_bomb_is_cut_off(tmp_path):
    """A stream that inflates past what its table says is refused after one byte too many."""
    import struct

    zstandard = pytest.importorskip("zstandard")
    n = 10
    bomb = zstandard.ZstdCompressor().compress(bytes(64 << 20))  # 64 MiB of zeros in a few KB
    header = struct.pack("<IIIBBBBI", splat_files.SPZ_MAGIC, 4, n, 0, 12, 0, 5, 32) + bytes(12)
    sizes = [[len(bomb), 9 * n]] + [[len(bomb), w * n] for w in (1, 3, 3, 4)]
    path = tmp_path / "bomb.spz"
    path.write_bytes(header + np.array(sizes, dtype="<u8").tobytes() + bomb * 5)
    with pytest.raises(InvalidFileError, match="unpacks to 91 bytes"):
        splat_files.read_splats(path)


def test_damaged_splat_records_are_refused(tmp_path):
    records = np.fromfile(REAL / "antimatter15_luma-seal.splat", dtype=splat_files.SPLAT_RECORD, count=50)
    for bad in (np.nan, -1.0, np.inf):
        damaged = records.copy()
        damaged["scale"][7, 1] = bad
        path = tmp_path / "bad.splat"
        damaged.tofile(path)
        with pytest.raises(InvalidFileError, match="non-finite log scales") as info:
            splat_files.read_splats(path)
        assert "bad.splat" in str(info.value) and "\n" not in str(info.value)
    zero = records.copy()
    zero["scale"][3] = 0.0  # an underflowed exp(log scale): a vanishing splat, not damage
    zero.tofile(tmp_path / "zero.splat")
    assert np.isfinite(splat_files.read_splats(tmp_path / "zero.splat").log_scales).all()


def test_scene_files_take_every_read_format():
    """A scene description (render-scene, Blender's Export DreamWaltz Scene) names .spz and .splat
    scenes as well as .ply: the same reader places them."""
    from dreamwaltz.core.scene import parse_scene, place_splat_file

    names = ["playcanvas_biker.spz", "antimatter15_luma-seal.splat", "playcanvas_guitar.compressed.ply"]
    scene = parse_scene(
        {
            "version": 1,
            "frames": [1, 1],
            "width": 64,
            "height": 64,
            "camera": {"keyframes": [{"frame": 1, "position": [0, 1, 5], "target": [0, 0, 0], "fov_deg": 40}]},
            "splats": [{"file": name} for name in names],
        },
        base=REAL,
    )
    assert [item.file.name for item in scene.splats] == names
    placed = place_splat_file(scene.splats[1].file, scene.splats[1].transform)
    assert len(placed.gaussians) == 101_780 and np.isfinite(placed.gaussians.covariances).all()
