"""The .h3ga file: bit-exact round trip, and hostile or damaged files refused with clear messages."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.errors import InvalidFileError
from dreamwaltz.core.h3ga import FORMAT_VERSION, read_h3ga, write_h3ga
from dreamwaltz.core.testing import make_test_avatar


@pytest.fixture(scope="module")
def avatar():
    return make_test_avatar(num_free=300, num_bound=60, seed=3)


@pytest.fixture
def good_file(avatar, tmp_path) -> Path:
    return write_h3ga(tmp_path / "good.h3ga", avatar)


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a zip member by member, letting ``change(name, data)`` alter/drop/add members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            result = change(info.filename, zin.read(info))
            if result is not None:
                zout.writestr(info.filename, result)
    return dst


def npy_bytes(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_round_trip_is_bit_exact_and_deterministic(avatar, good_file, tmp_path):
    back = read_h3ga(good_file)
    assert set(back.arrays) == set(avatar.arrays)
    for name, array in back.arrays.items():
        original = np.asarray(avatar.arrays[name]).astype(array.dtype)
        assert array.tobytes() == original.tobytes(), name
    again = write_h3ga(tmp_path / "again.h3ga", back)
    assert again.read_bytes() == good_file.read_bytes(), "writing the same avatar twice gives the same bytes"
    assert back.manifest["format"] == "h3ga" and back.manifest["version"] == FORMAT_VERSION
    assert back.manifest["num_free"] == 300 and back.manifest["num_bound"] == 60
    assert back.manifest["arrays"]["free/means"] == {"dtype": "float32", "shape": [300, 3]}


@pytest.mark.parametrize(
    "case, expected",
    [
        ("truncated", "not a valid zip"),
        ("not_zip", "not a valid zip"),
        ("traversal", "path traversal"),
        ("absolute", "path traversal"),
        ("pickled", "pickled objects are refused"),
        ("wrong_shape", "shape"),
        ("nan", "NaN"),
        ("zip_bomb", "zip bomb"),
        ("newer_version", "Update the DreamWaltz"),
        ("missing_array", "missing"),
        ("bad_face_index", "outside"),
        ("bad_weights", "sum to 1"),
        ("no_manifest", "no manifest"),
        ("wrong_dtype", "must be"),
    ],
)
def test_hostile_and_damaged_files_are_refused(good_file, tmp_path, case, expected):
    bad = tmp_path / f"{case}.h3ga"
    data = good_file.read_bytes()
    if case == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif case == "not_zip":
        bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif case in ("traversal", "absolute"):
        evil = "../../evil.npy" if case == "traversal" else "/etc/evil.npy"
        rewrite(good_file, bad, lambda n, d: d)
        with zipfile.ZipFile(bad, "a") as zf:
            zf.writestr(evil, b"x")
    elif case == "pickled":
        obj = np.array([{"rm -rf": 1}] * 300, dtype=object)
        rewrite(
            good_file,
            bad,
            lambda n, d: npy_bytes(obj, allow_pickle=True) if n == "arrays/free/opacity_logits.npy" else d,
        )
    elif case == "wrong_shape":

        def change(n, d):
            if n == "arrays/free/colors.npy":
                return npy_bytes(np.zeros((300, 4), np.float32))
            if n == "manifest.json":
                m = json.loads(d)
                m["arrays"]["free/colors"]["shape"] = [300, 4]
                return json.dumps(m).encode()
            return d

        rewrite(good_file, bad, change)
    elif case == "nan":
        means = read_h3ga(good_file)["free/means"].copy()
        means[7, 1] = np.nan
        rewrite(good_file, bad, lambda n, d: npy_bytes(means) if n == "arrays/free/means.npy" else d)
    elif case == "zip_bomb":
        rewrite(good_file, bad, lambda n, d: d)
        with zipfile.ZipFile(bad, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("previews/huge.png", b"\0" * (40 << 20))
    elif case == "newer_version":
        rewrite(
            good_file,
            bad,
            lambda n, d: (
                json.dumps(dict(json.loads(d), version=FORMAT_VERSION + 1)).encode() if n == "manifest.json" else d
            ),
        )
    elif case == "missing_array":
        rewrite(good_file, bad, lambda n, d: None if n == "arrays/bound/colors.npy" else d)
    elif case == "bad_face_index":
        faces = read_h3ga(good_file)["body/faces"].copy()
        faces[0, 0] = 10**6
        rewrite(good_file, bad, lambda n, d: npy_bytes(faces) if n == "arrays/body/faces.npy" else d)
    elif case == "bad_weights":
        w = read_h3ga(good_file)["free/skin_weights"] * 2
        rewrite(good_file, bad, lambda n, d: npy_bytes(w) if n == "arrays/free/skin_weights.npy" else d)
    elif case == "no_manifest":
        rewrite(good_file, bad, lambda n, d: None if n == "manifest.json" else d)
    elif case == "wrong_dtype":
        means = read_h3ga(good_file)["free/means"].astype(np.float64)
        rewrite(good_file, bad, lambda n, d: npy_bytes(means) if n == "arrays/free/means.npy" else d)
    with pytest.raises(InvalidFileError) as err:
        read_h3ga(bad)
    assert expected.lower() in str(err.value).lower(), str(err.value)
    assert bad.name in str(err.value), "the message names the file"


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(InvalidFileError, match="does not exist"):
        read_h3ga(tmp_path / "nope.h3ga")


def test_writer_refuses_inconsistent_avatars(avatar, tmp_path):
    broken = make_test_avatar(num_free=10, num_bound=5)
    broken.arrays["free/colors"] = np.zeros((11, 3))
    with pytest.raises(InvalidFileError, match="free/colors"):
        write_h3ga(tmp_path / "x.h3ga", broken)
    assert not (tmp_path / "x.h3ga").exists(), "nothing half-written is left behind"


def test_color_space_field_and_older_files(avatar, tmp_path):
    """Issue 23: the backend writes "srgb" (display values); files without the field are read as "srgb"."""
    from dreamwaltz.core import color
    from dreamwaltz.core.posing import pose_avatar

    written = read_h3ga(write_h3ga(tmp_path / "new.h3ga", avatar))
    assert written.manifest["color_space"] == "srgb" and color.color_space(written.manifest) == "srgb"
    old = make_test_avatar(num_free=50, num_bound=10, seed=3)
    del old.manifest["color_space"]
    old = read_h3ga(write_h3ga(tmp_path / "old.h3ga", old))
    assert "color_space" not in old.manifest and color.color_space(old.manifest) == "srgb"
    posed = pose_avatar(old)
    assert np.allclose(posed.colors[:50], old["free/colors"]), "display values pass through to renders and .ply"
    linear = make_test_avatar(num_free=50, num_bound=10, seed=3)
    linear.manifest["color_space"] = "linear"
    posed = pose_avatar(read_h3ga(write_h3ga(tmp_path / "linear.h3ga", linear)))
    assert np.allclose(posed.colors[:50], color.linear_to_srgb(linear["free/colors"]))
    source = tmp_path / "new.h3ga"
    for bad, message in (("acescg", "update"), (3, "color_space")):
        with zipfile.ZipFile(source) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        manifest = json.loads(members["manifest.json"])
        manifest["color_space"] = bad
        members["manifest.json"] = json.dumps(manifest).encode()
        with zipfile.ZipFile(tmp_path / "odd.h3ga", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        with pytest.raises(InvalidFileError, match="(?i)" + message):
            read_h3ga(tmp_path / "odd.h3ga")
