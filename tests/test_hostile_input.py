"""Issue 16: hostile and careless input to every reader gives a one-line DreamWaltzError naming the
file and the problem, within a memory ceiling; nothing is unpickled.

Each case is a small crafted file in tmp_path. The memory ceiling is measured with tracemalloc
(numpy reports its array allocations to it): a reader that trusted a header would allocate
gigabytes, a bounded one stays under a few MiB.
"""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from dreamwaltz.core import h3ga as h3ga_module
from dreamwaltz.core.errors import DreamWaltzError
from dreamwaltz.core.h3ga import read_h3ga, write_h3ga
from dreamwaltz.core.motion import TargetSkeleton, load_motion, read_bvh, resample
from dreamwaltz.core.motion.sequence import MotionSequence
from dreamwaltz.core.testing import make_test_avatar

CEILING = 48 << 20  # bytes a refused read may allocate at its peak


def refused(fn, *names, ceiling=CEILING) -> DreamWaltzError:
    """Run ``fn``; it must raise a one-line DreamWaltzError mentioning ``names``, under ``ceiling``."""
    tracemalloc.start()
    try:
        with pytest.raises(DreamWaltzError) as info:
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    print(f"{type(info.value).__name__}: {message}")  # pytest -s shows every message
    assert "\n" not in message, message
    for name in names:
        assert name.lower() in message.lower(), message
    assert peak < ceiling, f"peak {peak / 2**20:.0f} MiB for a refused file: {message}"
    return info.value


def npy_header(shape, descr="<f4", fortran=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return buf.getvalue()


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- .h3ga


@pytest.fixture(scope="module")
def good_avatar(tmp_path_factory):
    return write_h3ga(
        tmp_path_factory.mktemp("good") / "good.h3ga", make_test_avatar(num_free=300, num_bound=100, seed=1)
    )


def rewrite(src, dst, change, extra=()):
    """Copy a .h3ga, passing (name, bytes) of each member through ``change`` (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def with_manifest(src, dst, edit):
    def change(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()

    return rewrite(src, dst, change)


def test_a_zip_bomb_under_the_old_caps_is_refused_before_inflating(good_avatar, tmp_path):
    """A member that inflates far past what its manifest entry needs (here 300 float32s + 48 MiB of
    zeros, ~50 kB compressed): refused after its header, never inflated or allocated."""
    bomb = tmp_path / "bomb.h3ga"
    with zipfile.ZipFile(good_avatar) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != "arrays/free/opacity_logits.npy":
                zout.writestr(info.filename, zin.read(info))
        with zout.open("arrays/free/opacity_logits.npy", "w", force_zip64=True) as f:
            f.write(npy_header((300,)))
            chunk = bytes(8 << 20)
            for _ in range(6):
                f.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    refused(lambda: read_h3ga(bomb), "bomb.h3ga", "opacity_logits", "zip bomb")


def future_zip_version(src, dst):
    """A copy of the zip ``src`` whose first central-directory entry says it needs zip version 9.9
    (Python's zipfile raises NotImplementedError, not BadZipFile, for that)."""
    data = bytearray(src.read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 6 : entry + 8] = (99).to_bytes(2, "little")  # "version needed to extract"
    dst.write_bytes(bytes(data))
    return dst


def test_a_zip_from_a_future_zip_version_is_refused_in_one_line(good_avatar, tmp_path, target):
    """Found by fuzzing the track reader: every zip-based reader (avatar, motion .npz, track)."""
    from dreamwaltz.core.tracks import load_track

    refused(lambda: read_h3ga(future_zip_version(good_avatar, tmp_path / "future.h3ga")), "future.h3ga", "zip")
    np.savez(tmp_path / "motion.npz", poses=np.zeros((4, 55, 3)), mocap_framerate=30.0)
    motion = future_zip_version(tmp_path / "motion.npz", tmp_path / "future_motion.npz")
    refused(lambda: load_motion(motion, target), "future_motion.npz", "zip")
    refused(
        lambda: load_track(future_zip_version(tmp_path / "motion.npz", tmp_path / "future.track.npz")),
        "future.track.npz",
        "npz",
    )


def test_a_file_of_highly_compressed_arrays_is_refused_as_a_bomb(tmp_path, monkeypatch):
    """Declared counts agree, each member is exactly its array, but the whole compresses 1000:1."""
    N = 100_000
    avatar = make_test_avatar(num_free=N, num_bound=10, seed=0)
    for name in list(avatar.arrays):
        if name.startswith("free/"):
            avatar.arrays[name] = np.zeros_like(np.asarray(avatar.arrays[name]))
    avatar.arrays["free/quats"][:, 0] = 1  # writable, valid; compresses just as well
    avatar.arrays["free/skin_weights"][:, 0] = 1
    avatar.arrays["free/bind_barycentrics"][:, 0] = 1
    path = write_h3ga(tmp_path / "zeros.h3ga", avatar)
    monkeypatch.setattr(h3ga_module, "BOMB_CHECK_BYTES", 1 << 20)
    refused(lambda: read_h3ga(path), "zeros.h3ga", "zip bomb")


def test_declared_counts_over_the_ceiling_are_refused_and_the_ceiling_can_be_raised(good_avatar, tmp_path, monkeypatch):
    def huge(m):
        m["num_free"] = 10**9
        for name, entry in m["arrays"].items():
            if name.startswith("free/"):
                entry["shape"][0] = 10**9

    path = with_manifest(good_avatar, tmp_path / "huge.h3ga", huge)
    refused(lambda: read_h3ga(path), "huge.h3ga", "GiB", "DREAMWALTZ_MAX_READ_GB")
    # Raised far enough, the ceiling no longer refuses it, and the per-member bound does.
    monkeypatch.setenv("DREAMWALTZ_MAX_READ_GB", "1000")
    refused(lambda: read_h3ga(path), "huge.h3ga", "free/")
    monkeypatch.setenv("DREAMWALTZ_MAX_READ_GB", "lots")
    refused(lambda: read_h3ga(path), "DREAMWALTZ_MAX_READ_GB")


def test_a_shape_whose_byte_count_overflows_is_refused(good_avatar, tmp_path):
    def overflow(m):
        m["arrays"]["deform/w"] = {"dtype": "float32", "shape": [2**62, 2**62, 2**62]}

    path = with_manifest(good_avatar, tmp_path / "overflow.h3ga", overflow)
    path = rewrite(
        path,
        tmp_path / "overflow2.h3ga",
        lambda n, d: d,
        extra=[("arrays/deform/w.npy", npy_header((2**62, 2**62, 2**62)))],
    )
    refused(lambda: read_h3ga(path), "overflow2.h3ga", "deform/w")


def test_an_npy_header_disagreeing_with_the_manifest_is_refused_before_allocating(good_avatar, tmp_path):
    path = rewrite(
        good_avatar,
        tmp_path / "header.h3ga",
        lambda n, d: npy_header((10**11,)) + d[-1200:] if n == "arrays/free/opacity_logits.npy" else d,
    )
    refused(lambda: read_h3ga(path), "header.h3ga", "opacity_logits", "shape")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("body", "smplx", "'body' must be an object"),
        ("parents", 5, "'parents' must be a list"),
        ("prompt", 5, "'prompt' must be text"),
        ("seed", "zero", "'seed' must be a whole number"),
        ("joint_names", [1, 2], "'joint_names' must be a list of names"),
        ("arrays", [], "'arrays' must be"),
        ("num_free", -3, "'num_free' must be a whole number >= 0"),
        ("version", "1", "'version'"),
        ("body.shape_names", "beta", "'body.shape_names' must be a list"),
        ("body.num_vertices", 1.5, "'body.num_vertices'"),
        ("body.licensed_smplx_data", "no", "'body.licensed_smplx_data'"),
        ("arrays.free/means", {"dtype": "float32", "shape": ["300", 3]}, "arrays.free/means.shape"),
        ("arrays.free/means", {"dtype": 4, "shape": [300, 3]}, "arrays.free/means"),
        ("arrays.free/means", {"dtype": "float32", "shape": [300, 3, 1]}, "dimensions"),
    ],
)
def test_manifest_fields_of_the_wrong_type_are_refused(good_avatar, tmp_path, field, value, expected):
    def edit(m):
        *parents, last = field.split(".", 1) if field.startswith(("body.", "arrays.")) else [field]
        (m[parents[0]] if parents else m)[last] = value

    path = with_manifest(good_avatar, tmp_path / "types.h3ga", edit)
    refused(lambda: read_h3ga(path), "types.h3ga", expected)


@pytest.mark.parametrize("depth", [40, 200_000])
def test_deeply_nested_manifests_are_refused(good_avatar, tmp_path, depth):
    def change(name, data):
        if name != "manifest.json":
            return data
        return data[:-1] + b', "notes": ' + b"[" * depth + b"]" * depth + b"}"

    path = rewrite(good_avatar, tmp_path / "nested.h3ga", change)
    refused(lambda: read_h3ga(path), "nested.h3ga", "nested")


@pytest.mark.parametrize("length", [0.0, 1e20, 3e38])
def test_zero_or_huge_quaternions_are_refused_without_overflow(tmp_path, length):
    """A quaternion of length 1e20 squares past float32's range: it must be refused in one line,
    not silently become a splat of zero size."""
    avatar = make_test_avatar(num_free=40, num_bound=10, seed=2)
    path = write_h3ga(tmp_path / "ok.h3ga", avatar)

    def change(name, data):
        if name != "arrays/free/quats.npy":
            return data
        quats = np.load(io.BytesIO(data))
        quats[3] = [length, 0, 0, 0]
        return npy_bytes(quats)

    bad = rewrite(path, tmp_path / "quats.h3ga", change)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        refused(lambda: read_h3ga(bad), "quats.h3ga", "free/quats")


def test_the_good_file_still_reads_within_its_own_size(good_avatar):
    tracemalloc.start()
    try:
        avatar = read_h3ga(good_avatar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = sum(a.nbytes for a in avatar.arrays.values())
    assert peak < 3 * size + (4 << 20), "arrays are read into place, not read whole and copied again"


# ----------------------------------------------------------------------------- BVH

HIERARCHY = """HIERARCHY
ROOT Hips
{
OFFSET 0 0 0
CHANNELS %s
JOINT Spine
{
OFFSET 0 10 0
CHANNELS 3 Zrotation Xrotation Yrotation
End Site
{
OFFSET 0 10 0
}
}
}
"""


def bvh(tmp_path, text, name="clip.bvh"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("zero_channels_many_frames", "no joint has channels"),
        ("many_frames", "Frames"),
        ("end_site_first", "End Site comes before any joint"),
        ("frame_time_zero", "Frame Time"),
        ("frame_time_nan", "Frame Time"),
        ("frame_time_negative", "Frame Time"),
        ("huge_channel_count", "channels"),
        ("nan_offset", "OFFSET"),
        ("declares_more_frames", "holds"),
        ("not_a_number", "not a number"),
    ],
)
def test_hostile_bvh_files_are_refused_within_memory(tmp_path, case, expected):
    six = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    motion = "MOTION\nFrames: %s\nFrame Time: %s\n"
    row = " ".join(["0"] * 9) + "\n"
    if case == "zero_channels_many_frames":
        text = (
            HIERARCHY.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 0") % "0"
            + motion % (10**8, 0.03)
            + "\n" * 10
        )
    elif case == "many_frames":
        text = HIERARCHY % six + motion % (10**8, 0.03) + row * 3
    elif case == "end_site_first":
        text = "HIERARCHY\nEnd Site\n{\nOFFSET 0 0 0\n}\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 0\n}\n" + motion % (
            1,
            0.03,
        )
    elif case.startswith("frame_time"):
        value = {"zero": "0", "nan": "nan", "negative": "-0.03"}[case.rsplit("_", 1)[1]]
        text = HIERARCHY % six + motion % (2, value) + row * 2
    elif case == "huge_channel_count":
        text = HIERARCHY % "1000000000 Xrotation" + motion % (1, 0.03)
    elif case == "nan_offset":
        text = HIERARCHY.replace("OFFSET 0 10 0", "OFFSET nan 10 0", 1) % six + motion % (1, 0.03) + row
    elif case == "declares_more_frames":
        text = HIERARCHY % six + motion % (50_000, 0.03) + row * 3
    else:
        text = HIERARCHY % six + motion % (2, 0.03) + row + "0 0 0 zero 0 0 0 0 0\n"
    path = bvh(tmp_path, text)
    refused(lambda: read_bvh(path), "clip.bvh", expected)


def test_a_good_bvh_still_reads(tmp_path):
    path = bvh(
        tmp_path,
        HIERARCHY % "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
        + "MOTION\nFrames: 2\nFrame Time: 0.0333\n"
        + "1 2 3 4 5 6 7 8 9\n" * 2,
    )
    clip = read_bvh(path)
    assert clip.frames.shape == (2, 9) and clip.frames[1, 8] == 9


# ----------------------------------------------------------------------------- SMPL-family motion files


@pytest.fixture(scope="module")
def target():
    avatar = make_test_avatar(num_free=50, num_bound=10, seed=0)
    return TargetSkeleton.from_avatar(avatar)


def npz_with(path, members: dict):
    """A .npz whose members are raw bytes (crafted headers) or arrays."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data if isinstance(data, bytes) else npy_bytes(data))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty", "empty"),
        ("not_zip", "not a zip"),
        ("huge_header", "ceiling of 100,000 frames"),  # issue 32: the frame ceiling, from the header
        ("huge_header_small_limit", "needs"),
        ("wrong_ndim", "dimensions"),
        ("pickled", "pickled"),
        ("rate_zero", "frame rate"),
        ("rate_nan", "frame rate"),
        ("rate_negative", "frame rate"),
        ("rate_tiny", "frame rate"),
        ("npy_overflow", "GiB"),
    ],
)
def test_hostile_motion_files_are_refused_within_memory(tmp_path, target, case, expected):
    T = 4
    path = tmp_path / "motion.npz"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not_zip":
        path.write_bytes(b"this is not a zip archive at all")
    elif case == "huge_header":  # 2.4 TB declared
        npz_with(path, {"poses": npy_header((10**9, 55, 3), "<f8") + bytes(64)})
    elif case == "huge_header_small_limit":  # 123 GiB in 50,000 frames, declared in a member of 64 bytes
        npz_with(path, {"poses": npy_header((50_000, 330_000), "<f8") + bytes(64)})
    elif case == "wrong_ndim":
        npz_with(path, {"poses": np.zeros(165)})
    elif case == "pickled":
        npz_with(path, {"poses": np.array([{"x": 1}] * 3, dtype=object)})
    elif case.startswith("rate_"):
        rate = {"zero": 0.0, "nan": np.nan, "negative": -30.0, "tiny": 1e-6}[case[5:]]
        np.savez(path, poses=np.zeros((T, 55, 3)), mocap_framerate=rate)
    elif case == "npy_overflow":
        path = tmp_path / "motion.npy"
        path.write_bytes(npy_header((10, 2**62, 2**62), "<f8") + bytes(16))
    if case == "huge_header_small_limit":
        os.environ["DREAMWALTZ_MAX_READ_GB"] = "1000"
        try:
            refused(lambda: load_motion(path, target), path.name, expected)
        finally:
            del os.environ["DREAMWALTZ_MAX_READ_GB"]
        return
    refused(lambda: load_motion(path, target, fps=30), path.name, expected)


def test_a_slow_frame_rate_cannot_make_a_huge_resampled_clip():
    seq = MotionSequence(0.1, np.zeros((1000, 55, 3)), np.zeros((1000, 3)), source="slow.npz")
    refused(lambda: resample(seq, 10_000), "slow.npz", "ceiling")
    for bad in (0, -1, float("nan"), 1e-6):
        refused(lambda bad=bad: resample(seq, bad), "frame rate")


# ----------------------------------------------------------------------------- body model files


@pytest.fixture(scope="module")
def open_body_arrays():
    from dreamwaltz.body.model import OPEN_BODY_PATH
    from dreamwaltz.core.arrays import read_npz

    return read_npz(OPEN_BODY_PATH, "open body", kinds="fiubUS")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty", "empty"),
        ("not_zip", "not a zip"),
        ("wrong_ndim", "dimensions"),
        ("huge_header", "GiB"),
        ("bad_faces", "vertex indices"),
        ("nan", "NaN"),
    ],
)
def test_hostile_body_files_are_refused(tmp_path, open_body_arrays, case, expected):
    from dreamwaltz.body.model import BodyModel

    path = tmp_path / "SMPLX_NEUTRAL.npz"
    arrays = dict(open_body_arrays)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not_zip":
        path.write_bytes(b"\x89PNG not an npz")
    else:
        if case == "wrong_ndim":
            arrays["v_template"] = arrays["v_template"].ravel()
        elif case == "bad_faces":
            arrays["f"] = arrays["f"].copy()
            arrays["f"][0, 0] = 10**7
        elif case == "nan":
            arrays["shapedirs"] = arrays["shapedirs"].copy()
            arrays["shapedirs"][0, 0, 0] = np.nan
        members = dict(arrays)
        if case == "huge_header":
            members["posedirs"] = npy_header((10475, 3, 10**9), "<f8") + bytes(32)
        npz_with(path, members)
    refused(lambda: BodyModel.load(path), "SMPLX_NEUTRAL.npz", expected, ceiling=256 << 20)


# ----------------------------------------------------------------------------- fuzzing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Bounded for CI (a few seconds each); DREAMWALTZ_FUZZ_EXAMPLES=5000 DREAMWALTZ_FUZZ_RANDOM=1 for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("DREAMWALTZ_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=not os.environ.get("DREAMWALTZ_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=list(HealthCheck),
)
FUZZ_CEILING = 96 << 20
INTERESTING = [
    b"0",
    b"-1",
    b"1e308",
    b"nan",
    b"inf",
    b"99999999999",
    b"}",
    b"{",
    b"End",
    b"ROOT",
    b"JOINT",
    b"CHANNELS",
    b"MOTION",
    b"Frames:",
    b"\x00",
    b"\xff",
    b"[",
    b"]",
    b'"',
    b"-",
    b".",
]


def only_valid_or_refused(fn):
    """The outcome is a result or a DreamWaltzError, nothing else, under the memory ceiling."""
    tracemalloc.start()
    try:
        try:
            fn()
        except DreamWaltzError as err:
            assert "\n" not in str(err), str(err)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < FUZZ_CEILING, f"peak {peak / 2**20:.0f} MiB"


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, position, payload in edits:
        if not out:
            break
        i = position % len(out)
        if kind == 0:
            out[i : i + len(payload)] = payload  # overwrite
        elif kind == 1:
            out[i:i] = payload  # insert
        elif kind == 2:
            del out[i : i + 1 + len(payload)]  # delete
        else:
            del out[i:]  # truncate
    return bytes(out)


EDITS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 2**31),
        st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(INTERESTING)),
    ),
    min_size=1,
    max_size=4,
)


class Quiet(tuple):
    """Fixture values whose repr stays short in failure reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} items>"


@pytest.fixture(scope="module")
def small_avatar_members(tmp_path_factory):
    path = write_h3ga(
        tmp_path_factory.mktemp("fuzz") / "small.h3ga", make_test_avatar(num_free=40, num_bound=20, seed=3)
    )
    with zipfile.ZipFile(path) as zf:
        return Quiet((path.read_bytes(), {i.filename: zf.read(i) for i in zf.infolist()}))


def zip_members(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@FUZZ
@given(edits=EDITS)
def test_fuzz_h3ga_bytes(small_avatar_members, tmp_path_factory, edits):
    raw, _ = small_avatar_members
    path = tmp_path_factory.getbasetemp() / "fuzz-bytes.h3ga"
    path.write_bytes(mutate(raw, edits))
    only_valid_or_refused(lambda: read_h3ga(path))


@FUZZ
@given(member=st.integers(0, 10**6), edits=EDITS)
def test_fuzz_h3ga_members(small_avatar_members, tmp_path_factory, member, edits):
    """Mutations inside a member (manifest JSON, .npy headers and data) behind a valid zip and CRC."""
    _, members = small_avatar_members
    names = sorted(members)
    name = "manifest.json" if member % 3 == 0 else names[member % len(names)]
    changed = dict(members)
    data = members[name]
    if name.endswith(".npy") and member % 2:  # aim at the header
        changed[name] = mutate(data[:128], edits) + data[128:]
    else:
        changed[name] = mutate(data, edits)
    path = tmp_path_factory.getbasetemp() / "fuzz-members.h3ga"
    path.write_bytes(zip_members(changed))
    only_valid_or_refused(lambda: read_h3ga(path))


SMALL_BVH = (
    HIERARCHY % "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    + "MOTION\nFrames: 3\nFrame Time: 0.0333\n"
    + "0 90 0 10 20 30 5 6 7\n" * 3
).encode()


@FUZZ
@given(edits=EDITS)
def test_fuzz_bvh(tmp_path_factory, target, edits):
    path = tmp_path_factory.getbasetemp() / "fuzz.bvh"
    path.write_bytes(mutate(SMALL_BVH, edits))
    only_valid_or_refused(lambda: load_motion(path, target, fps=30))


@pytest.fixture(scope="module")
def motion_members():
    T = 3
    rng = np.random.default_rng(0)
    return Quiet(
        [
            {
                "poses.npy": npy_bytes(rng.normal(scale=0.2, size=(T, 165))),
                "trans.npy": npy_bytes(rng.normal(size=(T, 3))),
                "mocap_framerate.npy": npy_bytes(np.array(60.0)),
            }
        ]
    )


@FUZZ
@given(member=st.integers(0, 2), header=st.booleans(), edits=EDITS)
def test_fuzz_motion_npz(tmp_path_factory, target, motion_members, member, header, edits):
    members = motion_members[0]
    name = sorted(members)[member]
    changed = dict(members)
    data = members[name]
    changed[name] = mutate(data[:128], edits) + data[128:] if header else mutate(data, edits)
    path = tmp_path_factory.getbasetemp() / "fuzz-motion.npz"
    path.write_bytes(zip_members(changed))
    only_valid_or_refused(lambda: load_motion(path, target, fps=30))


@pytest.fixture(scope="module")
def track_files(tmp_path_factory):
    """A small person track in the project's own .track.npz and in the .smpl (smplcodec) layout."""
    from reenact_shot import write_smpl_file

    from dreamwaltz.core.tracks import Track, TrackCamera, make_person, write_track

    T, rng = 4, np.random.default_rng(5)
    full = np.zeros((T, 55, 3))
    full[:, :22] = rng.normal(scale=0.3, size=(T, 22, 3))
    person = make_person(np.arange(T), full, rng.normal(size=(T, 3)), np.repeat(rng.normal(size=(1, 10)), T, axis=0))
    K = np.tile([[150.0, 0, 80], [0, 150, 60], [0, 0, 1]], (T, 1, 1))
    track = Track([person], TrackCamera(K, 160, 120), 30.0, "camera", "fuzz")
    folder = tmp_path_factory.mktemp("tracks")
    paths = [write_track(folder / "t.track.npz", track), write_smpl_file(folder / "t.smpl", track)]
    return Quiet([(p.name, p.read_bytes()) for p in paths])


@FUZZ
@given(which=st.integers(0, 1), edits=EDITS)
def test_fuzz_track_files(tmp_path_factory, track_files, which, edits):
    """The reenactment's track readers: bytes anywhere, zip structure included."""
    from dreamwaltz.core.tracks import load_track

    name, data = track_files[which]
    path = tmp_path_factory.getbasetemp() / f"fuzz-{name}"
    path.write_bytes(mutate(data, edits))
    only_valid_or_refused(lambda: load_track(path))


# ----------------------------------------------------------------------------- through the CLI and Blender


@pytest.mark.parametrize("rate", [0.0, float("nan"), -24.0])
def test_export_refuses_a_motion_with_a_bad_frame_rate_in_one_line(good_avatar, tmp_path, capsys, rate):
    from dreamwaltz.cli import main

    motion = tmp_path / "pose.npz"
    np.savez(motion, poses=np.zeros((3, 55, 3)), mocap_framerate=rate)
    out = tmp_path / "posed.ply"
    assert main(["export", str(good_avatar), "--pose", str(motion), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 'pose.npz'") and "frame rate" in err and "\n" not in err, err
    assert not out.exists()


@pytest.mark.blender
def test_blender_import_refuses_a_manifest_of_the_wrong_types_and_adds_nothing(addon, good_avatar, tmp_path):
    import bpy

    from dreamwaltz_blender import api

    path = with_manifest(good_avatar, tmp_path / "typed.h3ga", lambda m: m.update(prompt=5))
    before = (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.armatures))
    with pytest.raises(DreamWaltzError, match="'prompt' must be text"):
        api.import_avatar(str(path))
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.armatures)) == before
