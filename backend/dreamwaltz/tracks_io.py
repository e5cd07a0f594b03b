"""Track readers that need the backend: GVHMR's torch file, and (opt-in) the pickles of TRAM,
WHAM and 4D-Humans/PHALP through a restricted unpickler. Everything ends as ``core.tracks.Track``;
``dreamwaltz track convert`` writes it as the project's own ``.track.npz`` the add-on reads.
Layouts: docs/REENACT.md.

Why a restricted unpickler: a pickle is a program; ``pickle.load`` runs whatever callables it
names (``os.system`` included). Those tools save plain numbers in containers, so the loader below
resolves only numpy's array/dtype/scalar rebuilders, torch's tensor rebuilders (storages are
re-read with ``torch.load(weights_only=True)``), joblib's array wrapper (rebuilt here, not by
joblib) and plain containers; any other name is refused before anything runs. Even so, a pickle
is read only when the user opts in (``--allow-pickle``).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import pickle
import zlib
from pathlib import Path

import numpy as np

from .core.errors import TrackError
from .core.rotations import matrix_to_axis_angle
from .core.tracks import (
    Track,
    TrackCamera,
    _check_track,
    full_pose_from_parts,
    intrinsics_matrix,
    layout_guard,
    load_track,
    make_camera,
    make_person,
    world_to_camera_from_pair,
)

MAX_PICKLE_BYTES = 4 << 30  # decompressed
PICKLE_SUFFIXES = (".pkl", ".pickle", ".npy", ".joblib")


# ------------------------------------------------------------------ restricted unpickler


class _JoblibArray:
    """Stand-in for joblib's NumpyArrayWrapper: its state says dtype/shape/order; the raw bytes follow
    in the stream right after it (joblib's layout), read by ``_SafeUnpickler.load_build``."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a joblib array wrapper without its dict state")
        self.state = state


def _safe_load_from_bytes(b):
    import torch

    return torch.load(io.BytesIO(b), weights_only=True)  # a storage saved inside a pickle: tensors only


def _allowed() -> dict:
    import numpy.core.multiarray as multiarray

    allowed = {
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "int"): int,
        ("builtins", "float"): float,
        ("builtins", "complex"): complex,
        ("builtins", "bool"): bool,
        ("builtins", "str"): str,
        ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "slice"): slice,
        ("builtins", "range"): range,
        ("collections", "OrderedDict"): __import__("collections").OrderedDict,
        ("collections", "defaultdict"): __import__("collections").defaultdict,
        ("copyreg", "_reconstructor"): None,  # filled below, only for the allowed classes
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArray,
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _frombuffer
    for name in (
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool_",
        "str_",
        "bytes_",
        "longlong",
        "ulonglong",
    ):
        if hasattr(np, name):
            allowed[("numpy", name)] = getattr(np, name)
    for name in (
        "Float64DType",
        "Float32DType",
        "Float16DType",
        "Int64DType",
        "Int32DType",
        "Int16DType",
        "Int8DType",
        "UInt8DType",
        "UInt16DType",
        "UInt32DType",
        "UInt64DType",
        "BoolDType",
        "StrDType",
        "BytesDType",
        "LongLongDType",
        "ULongLongDType",
    ):
        dtypes = getattr(np, "dtypes", None)
        if dtypes is not None and hasattr(dtypes, name):
            allowed[("numpy.dtypes", name)] = getattr(dtypes, name)
    try:
        import torch
        import torch._utils as tu

        allowed[("torch._utils", "_rebuild_tensor_v2")] = tu._rebuild_tensor_v2
        allowed[("torch._utils", "_rebuild_tensor")] = tu._rebuild_tensor
        allowed[("torch.storage", "_load_from_bytes")] = _safe_load_from_bytes
        allowed[("torch", "Size")] = torch.Size
        for name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
            allowed[("torch", name)] = getattr(torch, name)
        allowed[("torch", "device")] = torch.device
    except ImportError:
        pass
    return allowed


def _frombuffer(buf, dtype, shape, order):
    # numpy >= 1.26's protocol-5 array pickles rebuild through numpy.core.numeric._frombuffer
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its BUILD can be extended for joblib
    def __init__(self, file):
        super().__init__(file)
        self._allowed = _allowed()
        self._allowed[("copyreg", "_reconstructor")] = self._reconstructor

    def find_class(self, module, name):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        raise pickle.UnpicklingError(f"refused {module}.{name} (only arrays, tensors and plain containers are read)")

    def _reconstructor(self, cls, base, state):
        if cls is not _JoblibArray and cls not in (dict, list, set):
            raise pickle.UnpicklingError(f"refused to rebuild {getattr(cls, '__name__', cls)}")
        return base.__new__(cls) if state is None else base.__new__(cls, state)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id (this is a torch.save archive: read it as .pt)")

    def load_build(self):
        super().load_build()
        if isinstance(self.stack[-1], _JoblibArray):
            wrapper = self.stack.pop()
            self.stack.append(_read_joblib_array(wrapper.state, self))

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def _read_joblib_array(state: dict, unpickler: _SafeUnpickler) -> np.ndarray:
    dtype, shape, order = state.get("dtype"), state.get("shape"), state.get("order", "C")
    if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
        raise pickle.UnpicklingError("a joblib array without dtype/shape")
    if dtype.hasobject:
        raise pickle.UnpicklingError("refused a joblib array of Python objects")
    read = (
        unpickler.read
    )  # the unframer's read: the current pickle frame first, then the file (joblib writes the bytes after a frame)
    if state.get("numpy_array_alignment_bytes") is not None:
        pad = read(1)
        if len(pad) != 1:
            raise pickle.UnpicklingError("truncated joblib array")
        read(pad[0])
    count = int(np.prod(shape)) if shape else 1
    nbytes = count * dtype.itemsize
    if nbytes > MAX_PICKLE_BYTES:
        raise pickle.UnpicklingError("a joblib array larger than the read limit")
    data = read(nbytes)
    if len(data) != nbytes:
        raise pickle.UnpicklingError("truncated joblib array data")
    array = np.frombuffer(data, dtype=dtype, count=count).copy()
    return array.reshape(shape[::-1]).T if order == "F" else array.reshape(shape)


def _open_stream(path: Path) -> bytes:
    """The pickle bytes of a plain, joblib-compressed (zlib/gzip/bz2/xz/lzma) or ``np.save``'d object file."""
    raw = path.read_bytes() if path.stat().st_size <= MAX_PICKLE_BYTES else None
    if raw is None:
        raise TrackError(f"'{path.name}' is over {MAX_PICKLE_BYTES >> 30} GB.", "Split the track.")
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        elif raw[:3] == b"BZh":
            raw = bz2.decompress(raw)
        elif raw[:6] == b"\xfd7zXZ\x00" or raw[:3] == b"\x5d\x00\x00":
            raw = lzma.decompress(raw)
        elif raw[:1] == b"\x78":
            raw = zlib.decompress(raw)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as err:
        raise TrackError(
            f"'{path.name}' cannot be decompressed ({err}).", "The file is damaged; export it again."
        ) from None
    if raw[:6] == b"\x93NUMPY":  # np.save of a dict (TRAM): a .npy header, then the pickle
        major = raw[6]
        hlen = int.from_bytes(raw[8:10], "little") if major == 1 else int.from_bytes(raw[8:12], "little")
        start = (10 if major == 1 else 12) + hlen
        header = raw[start - hlen : start].decode("latin1")
        if "'descr': '|O'" not in header:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
            return pickle.dumps(arr)  # a plain array: rebuilt by the same allowed path
        raw = raw[start:]
    return raw


def safe_unpickle(path, allow_pickle: bool = False):
    """The object in a pickle file, through the restricted unpickler, only with ``allow_pickle``."""
    path = Path(path)
    if not allow_pickle:
        raise TrackError(
            f"'{path.name}' is a pickle; reading one can run code hidden in it, so it is off by default.",
            "If you trust the file, pass --allow-pickle (only arrays and plain containers are accepted).",
        )
    data = _open_stream(path)
    try:
        obj = _SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise TrackError(
            f"'{path.name}' was refused: {err}.",
            "Only numbers in dicts/lists are read from pickles; re-save the result as .npz.",
        ) from None
    except (
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        RuntimeError,
        OverflowError,
        MemoryError,
    ) as err:
        raise TrackError(
            f"'{path.name}' is not a readable pickle ({type(err).__name__}: {err}).",
            "The file is damaged; export it again.",
        ) from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.ndim == 0:
        obj = obj.item()  # np.save of a dict (TRAM): the dict itself
    return obj


# ------------------------------------------------------------------ format readers


def _np(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _rest_pelvis_open_body(betas: np.ndarray) -> np.ndarray:
    """Rest pelvis (N,3) of the open body at ``betas``: the stand-in for the tracked SMPL-X model's."""
    import torch

    from .body import BodyModel

    body = BodyModel.load("open", dtype=torch.float64)
    b = np.zeros((betas.shape[0], body.num_betas))
    n = min(body.num_betas, betas.shape[1])
    b[:, :n] = betas[:, :n]
    with torch.no_grad():
        return body(betas=torch.as_tensor(b)).rest_joints[:, 0].numpy()


def _gvhmr_person(params: dict, key: str, where: str):
    need = [k for k in ("global_orient", "body_pose", "betas", "transl") if k not in params]
    if need:
        raise TrackError(f"{where}: '{key}' lacks {', '.join(need)}.", "The file is damaged; run GVHMR again.")
    g = _np(params["global_orient"]).astype(np.float64)
    n = g.reshape(-1, 3).shape[0]
    full, model = full_pose_from_parts(g, _np(params["body_pose"]), where=where)
    return make_person(
        np.arange(n),
        full,
        _np(params["transl"]).reshape(n, 3),
        _np(params["betas"]).reshape(n, -1),
        model=model,
        where=where,
    )


def read_gvhmr(path, frame: str = "camera", fps: float | None = None, rest_pelvis=None) -> Track:
    """GVHMR's ``hmr4d_results.pt``: ``smpl_params_incam`` / ``smpl_params_global`` dicts of
    ``global_orient`` (N,3), ``body_pose`` (N,63), ``betas`` (N,10), ``transl`` (N,3) (SMPL-X), and
    ``K_fullimg`` (N,3,3). ``frame``: "camera" (incam, the default: matches the video) or "world"
    (GVHMR's gravity-aligned, y-up frame). GVHMR stores no extrinsics; for "world" they are
    recovered from the two bodies (``core.tracks.world_to_camera_from_pair``) with ``rest_pelvis``
    (default: the open body's at the tracked shape, a few cm off SMPL-X's: see docs/REENACT.md)."""
    import torch

    path = Path(path)
    where = f"'{path.name}'"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds; any of them means "not a plain tensor file"
        raise TrackError(
            f"{where} is not a GVHMR result readable safely ({type(err).__name__}: {str(err).splitlines()[0][:160]}).",
            "Give the hmr4d_results.pt that GVHMR's demo wrote.",
        ) from None
    if not isinstance(data, dict) or "smpl_params_incam" not in data:
        raise TrackError(f"{where} has no 'smpl_params_incam'.", "Give the hmr4d_results.pt that GVHMR's demo wrote.")
    person = _gvhmr_person(data["smpl_params_incam"], "smpl_params_incam", where)
    n = person.num_frames
    camera = None
    if "K_fullimg" in data:
        K = _np(data["K_fullimg"]).astype(np.float64)
        camera = make_camera(K, num_frames=n if K.ndim == 2 else None, where=where)
    key = "smpl_params_incam"
    if frame == "world":
        key = "smpl_params_global"
        if key not in data:
            raise TrackError(f"{where} has no '{key}'.", "Use --frame camera, or GVHMR's full output.")
        world = _gvhmr_person(data[key], key, where)
        pelvis = _rest_pelvis_open_body(world.betas) if rest_pelvis is None else rest_pelvis
        if camera is not None:
            camera.world_to_camera = world_to_camera_from_pair(person, world, pelvis)
        person = world
    return _check_track(Track([person], camera, fps, frame, f"{path.name} (GVHMR {key})"), where)


def read_tram(path, allow_pickle: bool = False, fps: float | None = None) -> Track:
    """TRAM's ``hps/hps_track_{k}.npy`` (``pred_rotmat`` (N,24,3,3), ``pred_shape`` (N,10),
    ``pred_trans`` (N,1,3) camera frame, ``frame`` (N,)) — one file is one person; every
    ``hps_track_*.npy`` in the folder (or the folder ``hps`` beside it) is read in order —
    with ``camera.npy`` (``img_focal``, ``img_center``, ``pred_cam_R``/``pred_cam_T``:
    camera-to-world) from the result folder when it is there."""
    path = Path(path)
    files = sorted(path.glob("hps_track_*.npy")) if path.is_dir() else [path]
    if path.is_dir() and not files and (path / "hps").is_dir():
        files = sorted((path / "hps").glob("hps_track_*.npy"))
    if not files:
        raise TrackError(
            f"'{path.name}' has no hps_track_*.npy files.", "Point to TRAM's results folder or one hps_track file."
        )
    files.sort(key=lambda f: int("".join(c for c in f.stem if c.isdigit()) or 0))
    persons = []
    last = 0
    for f in files:
        d = safe_unpickle(f, allow_pickle)
        where = f"'{f.name}'"
        if not isinstance(d, dict) or "pred_rotmat" not in d:
            raise TrackError(f"{where} has no 'pred_rotmat'.", "Give TRAM's hps_track_*.npy files.")
        R = _np(d["pred_rotmat"]).astype(np.float64)
        n = R.shape[0]
        if R.shape[1:] != (24, 3, 3):
            raise TrackError(
                f"{where}: 'pred_rotmat' has shape {R.shape}, expected (N, 24, 3, 3).", "The file is damaged."
            )
        aa = matrix_to_axis_angle(R.reshape(-1, 3, 3)).reshape(n, 24, 3)
        full, model = full_pose_from_parts(aa[:, 0], aa[:, 1:], where=where)
        frames = _np(d.get("frame", np.arange(n))).astype(np.int64).reshape(-1)
        persons.append(
            make_person(
                frames,
                full,
                _np(d["pred_trans"]).reshape(n, 3),
                _np(d["pred_shape"]).reshape(n, -1),
                model=model,
                where=where,
            )
        )
        last = max(last, int(frames[-1]) + 1)
    camera = None
    root = files[0].parent.parent if files[0].parent.name == "hps" else files[0].parent
    cam_file = root / "camera.npy"
    if cam_file.is_file():
        c = safe_unpickle(cam_file, allow_pickle)
        f = float(np.asarray(_np(c["img_focal"])).reshape(-1)[0])
        cx, cy = (float(v) for v in np.asarray(_np(c["img_center"])).reshape(-1)[:2])
        R, T = _np(c["pred_cam_R"]).astype(np.float64), _np(c["pred_cam_T"]).astype(np.float64)
        count = max(last, R.shape[0])
        w2c = np.tile(np.eye(4), (R.shape[0], 1, 1))
        w2c[:, :3, :3] = np.transpose(R, (0, 2, 1))  # TRAM's R, T take camera points to the world
        w2c[:, :3, 3] = -np.einsum("nji,nj->ni", R, T.reshape(-1, 3))
        camera = make_camera(intrinsics_matrix(f, f, cx, cy), num_frames=count, where=f"'{cam_file.name}'")
        camera.world_to_camera = w2c if R.shape[0] == count else None
    track = Track(persons, camera, fps, "camera", f"{path.name} (TRAM)")
    return _check_track(track, f"'{path.name}'")


def read_wham(
    path,
    allow_pickle: bool = False,
    frame: str = "camera",
    width: int = 0,
    height: int = 0,
    fps: float | None = None,
    num_frames: int = 0,
) -> Track:
    """WHAM's ``wham_output.pkl`` (joblib): {subject id: {``pose`` (N,72) camera frame,
    ``trans`` (N,3), ``pose_world``, ``trans_world``, ``betas`` (N,10), ``frame_ids`` (N,)}}. It
    stores no intrinsics; WHAM's demo assumes focal = image diagonal and the centre as principal
    point, which this reader uses when the image size is given (the reenact command passes the
    video's)."""
    path = Path(path)
    obj = safe_unpickle(path, allow_pickle)
    where = f"'{path.name}'"
    if not isinstance(obj, dict) or not obj:
        raise TrackError(f"{where} is not WHAM output (a dict of subjects).", "Give WHAM's wham_output.pkl.")
    pose_key, trans_key = ("pose", "trans") if frame == "camera" else ("pose_world", "trans_world")
    persons, last = [], 0
    for sid in sorted(obj, key=lambda k: (str(type(k)), k)):
        d = obj[sid]
        if not isinstance(d, dict) or pose_key not in d:
            raise TrackError(f"{where}: subject {sid!r} has no '{pose_key}'.", "Give WHAM's wham_output.pkl.")
        pose = _np(d[pose_key]).astype(np.float64)
        n = pose.shape[0]
        full, model = full_pose_from_parts(pose[:, :3], pose[:, 3:72], where=where)
        frames = _np(d.get("frame_ids", d.get("frame_id", np.arange(n)))).astype(np.int64).reshape(-1)
        persons.append(
            make_person(
                frames, full, _np(d[trans_key]).reshape(n, 3), _np(d["betas"]).reshape(n, -1), model=model, where=where
            )
        )
        last = max(last, int(frames[-1]) + 1)
    camera = None
    if width and height:
        f = math.hypot(width, height)
        camera = make_camera(
            intrinsics_matrix(f, f, width / 2.0, height / 2.0),
            width,
            height,
            num_frames=max(last, num_frames),
            where=where,
        )
    return _check_track(Track(persons, camera, fps, frame, f"{path.name} (WHAM)"), where)


PHALP_FOCAL, PHALP_CROP = 5000.0, 256.0  # 4D-Humans' defaults: the focal of its 256 px crops


def read_phalp(path, allow_pickle: bool = False, fps: float | None = None) -> Track:
    """4D-Humans / PHALP's ``.pkl`` (joblib, often compressed): {frame name: {``tid`` [ids],
    ``smpl`` [{``global_orient`` (1,3,3), ``body_pose`` (23,3,3), ``betas`` (10,)}], ``camera``
    [(3,) translation in the camera frame], ``size`` [(h, w)]}}; frames in sorted name order.
    Intrinsics: 4D-Humans' focal (5000 px at its 256 px crop) scaled to the longer image side,
    principal point at the centre. Layout not checked against a real file here (unmeasured)."""
    path = Path(path)
    obj = safe_unpickle(path, allow_pickle)
    where = f"'{path.name}'"
    if not isinstance(obj, dict) or not obj:
        raise TrackError(f"{where} is not PHALP output (a dict of frames).", "Give 4D-Humans' results .pkl.")
    names = sorted(obj)
    rows: dict = {}
    size = None
    for t, name in enumerate(names):
        d = obj[name]
        if not isinstance(d, dict) or "smpl" not in d:
            raise TrackError(f"{where}: frame {name!r} has no 'smpl'.", "Give 4D-Humans' results .pkl.")
        ids = list(d.get("tid", d.get("tracked_ids", [])))
        for j, tid in enumerate(ids):
            s = d["smpl"][j]
            R = np.concatenate(
                [_np(s["global_orient"]).reshape(1, 3, 3), _np(s["body_pose"]).reshape(23, 3, 3)]
            ).astype(np.float64)
            aa = matrix_to_axis_angle(R)
            rows.setdefault(tid, []).append(
                (
                    t,
                    aa,
                    _np(d["camera"][j]).reshape(3).astype(np.float64),
                    _np(s["betas"]).reshape(-1).astype(np.float64),
                )
            )
        if size is None and d.get("size"):
            size = [int(v) for v in np.asarray(_np(d["size"][0])).reshape(-1)[:2]]
    persons = []
    for tid in sorted(rows, key=lambda k: (str(type(k)), k)):
        r = rows[tid]
        aa = np.stack([row[1] for row in r])
        full, model = full_pose_from_parts(aa[:, 0], aa[:, 1:], where=where)
        persons.append(
            make_person(
                [row[0] for row in r],
                full,
                np.stack([row[2] for row in r]),
                np.stack([row[3] for row in r]),
                model=model,
                where=where,
            )
        )
    camera = None
    if size:
        h, w = size
        f = PHALP_FOCAL / PHALP_CROP * max(h, w)
        camera = make_camera(intrinsics_matrix(f, f, w / 2.0, h / 2.0), w, h, num_frames=len(names), where=where)
    return _check_track(Track(persons, camera, fps, "camera", f"{path.name} (4D-Humans/PHALP)"), where)


def read_prompthmr(path, allow_pickle: bool = False, frame: str = "world", fps: float | None = None) -> Track:
    """PromptHMR's ``results.pkl`` (joblib): ``people`` {id: {``frames`` (N,), ``smplx_world``
    {``pose`` (N,165) smplx full pose, ``shape`` (N,10), ``trans`` (N,3)}}} and ``camera_world``
    {``Rcw``, ``Tcw`` (world to camera; else ``Rwc``, ``Twc`` inverted), ``img_focal``,
    ``img_center``}. The bodies are in PromptHMR's world frame (``frame`` "world"); a
    ``smplx_cam`` entry, when a version writes one, gives "camera". Layout from PromptHMR's
    pipeline/pipeline.py; not checked against a real file here (unmeasured)."""
    path = Path(path)
    obj = safe_unpickle(path, allow_pickle)
    where = f"'{path.name}'"
    if not isinstance(obj, dict) or not isinstance(obj.get("people"), dict):
        raise TrackError(f"{where} is not PromptHMR output (no 'people').", "Give PromptHMR's results.pkl.")
    key = "smplx_world" if frame == "world" else "smplx_cam"
    persons, last = [], 0
    for pid in sorted(obj["people"], key=lambda k: (str(type(k)), k)):
        d = obj["people"][pid]
        if not isinstance(d, dict) or not isinstance(d.get(key), dict):
            raise TrackError(
                f"{where}: person {pid!r} has no '{key}'.",
                "Use --frame world (PromptHMR's bodies are in its world frame).",
            )
        pose = _np(d[key]["pose"]).astype(np.float64)
        n = pose.shape[0]
        if pose.reshape(n, -1).shape[1] != 165:
            raise TrackError(
                f"{where}: person {pid!r} '{key}.pose' has {pose.reshape(n, -1).shape[1]} values per frame, not 165.",
                "The file is damaged.",
            )
        frames = _np(d.get("frames", np.arange(n))).astype(np.int64).reshape(-1)
        persons.append(
            make_person(
                frames,
                pose.reshape(n, 55, 3),
                _np(d[key]["trans"]).reshape(n, 3),
                _np(d[key]["shape"]).reshape(n, -1),
                model="smplx",
                where=where,
            )
        )
        last = max(last, int(frames[-1]) + 1)
    camera = None
    cam = obj.get("camera_world") if isinstance(obj.get("camera_world"), dict) else obj.get("camera")
    if isinstance(cam, dict) and "img_focal" in cam:
        f = float(np.asarray(_np(cam["img_focal"])).reshape(-1)[0])
        cx, cy = (float(v) for v in np.asarray(_np(cam["img_center"])).reshape(-1)[:2])
        w2c = None
        if "Rcw" in cam and "Tcw" in cam:
            R, T = _np(cam["Rcw"]).astype(np.float64), _np(cam["Tcw"]).astype(np.float64).reshape(-1, 3)
            w2c = np.tile(np.eye(4), (len(R), 1, 1))
            w2c[:, :3, :3], w2c[:, :3, 3] = R, T
        elif "Rwc" in cam and "Twc" in cam:
            R, T = _np(cam["Rwc"]).astype(np.float64), _np(cam["Twc"]).astype(np.float64).reshape(-1, 3)
            w2c = np.tile(np.eye(4), (len(R), 1, 1))
            w2c[:, :3, :3] = np.transpose(R, (0, 2, 1))
            w2c[:, :3, 3] = -np.einsum("nji,nj->ni", R, T)
        count = max(last, 0 if w2c is None else len(w2c))
        camera = make_camera(intrinsics_matrix(f, f, cx, cy), num_frames=count, where=where)
        camera.world_to_camera = w2c if w2c is not None and len(w2c) == count else None
    return _check_track(Track(persons, camera, fps, frame, f"{path.name} (PromptHMR)"), where)


def load_any_track(
    path,
    allow_pickle: bool = False,
    kind: str | None = None,
    width: int = 0,
    height: int = 0,
    frame: str | None = None,
    num_frames: int = 0,
) -> Track:
    """Every format: the pure-numpy ones (``core.tracks.load_track``), GVHMR ``.pt``, and opt-in pickles.
    ``kind`` names a pickle's tool when its name does not ("tram", "wham", "phalp", "prompthmr").
    ``width``, ``height``, ``num_frames``: the tracked video's, for formats that do not store them
    (WHAM's intrinsics; SMPLer-X and WHAM cameras end with the last detection otherwise)."""
    return layout_guard(_load_any_track, path, allow_pickle, kind, width, height, frame, num_frames)


def _load_any_track(path, allow_pickle, kind, width, height, frame, num_frames) -> Track:
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and (list(path.glob("hps_track_*.npy")) or (path / "hps").is_dir()):
        return read_tram(path, allow_pickle)
    if suffix in (".pt", ".pth"):
        return read_gvhmr(path, frame or "camera")
    if suffix in PICKLE_SUFFIXES:
        if not path.is_file():
            raise TrackError(f"'{path}' does not exist.", "Check the path to the track.")
        name = path.name.lower()
        if not allow_pickle:
            safe_unpickle(path, False)  # raises the opt-in error, whatever the file holds
        kind = kind or ("tram" if name.startswith("hps_track") else "wham" if "wham" in name else None)
        if kind == "prompthmr":
            return read_prompthmr(path, allow_pickle, frame or "world")
        if kind == "tram":
            return read_tram(path, allow_pickle)
        if kind == "wham":
            return read_wham(path, allow_pickle, frame or "camera", width, height, num_frames=num_frames)
        if kind == "phalp":
            return read_phalp(path, allow_pickle)
        obj = safe_unpickle(path, allow_pickle)  # guess from the content
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "pose" in v for v in obj.values()):
            return read_wham(path, allow_pickle, frame or "camera", width, height, num_frames=num_frames)
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "smpl" in v for v in obj.values()):
            return read_phalp(path, allow_pickle)
        if isinstance(obj, dict) and isinstance(obj.get("people"), dict):
            return read_prompthmr(path, allow_pickle, frame or "world")
        raise TrackError(
            f"'{path.name}': unknown track pickle layout.",
            "Name the tool with --track-kind (tram, wham, phalp, prompthmr).",
        )
    if path.is_dir():
        return load_track(path, num_frames=num_frames or None)
    return load_track(path) if frame is None else load_track(path, frame=frame)


__all__ = [
    "TrackCamera",
    "load_any_track",
    "read_gvhmr",
    "read_phalp",
    "read_prompthmr",
    "read_tram",
    "read_wham",
    "safe_unpickle",
]
