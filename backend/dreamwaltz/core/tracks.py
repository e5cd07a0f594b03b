"""Tracks: monocular motion capture of a video, per person and per frame (pure numpy; Blender and
backend share it). Formats, keys and frames: docs/REENACT.md.

    track = load_track("shot.track.npz")             # or a SMPLer-X folder, AMASS .npz, .smpl
    person = track.person(0)
    person.frames (N,) video frame indices, person.full_pose (N,55,3) SMPL-X order,
    person.transl (N,3), person.betas (N,B); track.camera.K (T,3,3) pixels, OpenCV axes

Conventions. Poses are axis-angle in the smplx full-pose order (global, body 21, jaw, eyes, left
hand 15, right hand 15); SMPL (24-joint) tracks keep joints 0-21 and leave jaw, eyes and hands
neutral (SMPL's two hand joints have no SMPL-X counterpart). ``transl`` is smplx's: the posed body
is the model posed about its rest pelvis, then moved by ``transl``. ``track.frame`` says where the
body is: "camera" (OpenCV camera coordinates: x right, y down, z forward, metres), or "world"
(then ``camera.world_to_camera`` (T,4,4) places the camera when the tool gave it). ``K`` is per
video frame, in pixels, pixel centres at integer + 0.5 as everywhere in the project.

Readers here need numpy only. Torch files (GVHMR ``.pt``) and opt-in pickles (TRAM, WHAM,
4D-Humans/PHALP) are read in the backend (``dreamwaltz.tracks_io``), which writes this module's
own ``.track.npz``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .arrays import read_npz
from .errors import TrackError
from .motion.sequence import HARD_MAX_FRAMES as MAX_FRAMES

FORMAT_NAME = "dreamwaltz-track"
FORMAT_VERSION = 1
FRAMES = ("camera", "world")
MAX_PEOPLE = 256
MAX_BETAS = 400


@dataclass
class TrackCamera:
    K: np.ndarray  # (T,3,3) intrinsics in pixels, one per video frame
    width: int = 0  # image size in pixels; 0 = not in the file (taken from the video)
    height: int = 0
    world_to_camera: np.ndarray | None = (
        None  # (T,4,4) OpenCV axes; None when the body is in the camera frame or the tool gave none
    )

    @property
    def num_frames(self) -> int:
        return int(self.K.shape[0])


@dataclass
class TrackPerson:
    frames: np.ndarray  # (N,) int64, strictly increasing video frame indices the person is in
    full_pose: np.ndarray  # (N,55,3) axis-angle, smplx order
    transl: np.ndarray  # (N,3) metres
    betas: np.ndarray  # (N,B) shape per frame (tools that give one shape repeat it)
    expression: np.ndarray | None = None  # (N,E)
    model: str = "smplx"  # the body model the tool fitted: "smplx" or "smpl" (poses already in smplx order)
    gender: str = "neutral"

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def index_of(self, frame: int) -> int | None:
        """Row of video frame ``frame``, or None when the person is not in it."""
        i = int(np.searchsorted(self.frames, frame))
        return i if i < len(self.frames) and int(self.frames[i]) == frame else None


@dataclass
class Track:
    persons: list
    camera: TrackCamera | None
    fps: float | None = None  # None: not in the file (the video's rate is used)
    frame: str = "camera"  # where the bodies are: "camera" or "world"
    source: str = ""
    notes: list = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        """Video frames the track covers: the camera's count, else one past the last frame with a person."""
        if self.camera is not None:
            return self.camera.num_frames
        return max((int(p.frames[-1]) + 1 for p in self.persons if p.num_frames), default=0)

    def person(self, index: int) -> TrackPerson:
        if not 0 <= index < len(self.persons):
            have = f"people 0 to {len(self.persons) - 1}" if self.persons else "no people"
            raise TrackError(
                f"The track ({self.source or 'track'}) has no person {index}; it has {have}.",
                "Pick one of those with --person.",
            )
        return self.persons[index]

    def viewmat(self, t: int) -> np.ndarray:
        """World-to-camera (4,4) at video frame ``t`` for bodies in this track's frame."""
        if self.frame == "camera":
            return np.eye(4)
        if self.camera is None or self.camera.world_to_camera is None:
            raise TrackError(
                f"The track ({self.source or 'track'}) has its bodies in a world frame without camera extrinsics.",
                "Use the tool's camera-frame output (e.g. GVHMR smpl_params_incam), or add world_to_camera.",
            )
        return self.camera.world_to_camera[t]

    def check_video(self, num_frames: int, width: int, height: int) -> None:
        """Refuse a track made for another video (frame count, image size)."""
        if self.camera is None:
            raise TrackError(
                f"The track ({self.source or 'track'}) has no camera intrinsics.",
                "Give a camera (K per frame) with the track; see docs/REENACT.md.",
            )
        if self.camera.num_frames != num_frames:
            raise TrackError(
                f"The track ({self.source}) covers {self.camera.num_frames} frames but the video has {num_frames}.",
                "Use the track made from this video (or trim the video to match).",
            )
        if self.camera.width and (self.camera.width, self.camera.height) != (width, height):
            raise TrackError(
                f"The track ({self.source}) is for {self.camera.width}x{self.camera.height} images but the video is "
                f"{width}x{height}.",
                "Use the track made from this video at its own resolution.",
            )
        last = max((int(p.frames[-1]) for p in self.persons if p.num_frames), default=-1)
        if last >= num_frames:
            raise TrackError(
                f"The track ({self.source}) has a person in frame {last}, past the video's {num_frames} frames.",
                "Use the track made from this video.",
            )

    def with_image_size(self, width: int, height: int) -> Track:
        if self.camera is None or self.camera.width:
            return self
        return replace(self, camera=replace(self.camera, width=int(width), height=int(height)))


# ------------------------------------------------------------------ shared helpers


def _bad(where: str, message: str, fix: str = "The file is damaged or not a track; export it again.") -> TrackError:
    return TrackError(f"{where}: {message}", fix)


def _floats(value, where: str, name: str, shape: tuple) -> np.ndarray:
    """``value`` as finite float64 of ``shape`` (-1 = any), else a TrackError naming the field."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _bad(where, f"'{name}' is not an array of numbers.") from None
    if a.ndim != len(shape) or any(s not in (-1, n) for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"
        raise _bad(where, f"'{name}' has shape {a.shape}, expected {want}.")
    if not np.isfinite(a).all():
        raise _bad(where, f"'{name}' contains NaN or infinite values.")
    return a


def full_pose_from_parts(
    global_orient, body_pose, jaw=None, leye=None, reye=None, left_hand=None, right_hand=None, where: str = "the track"
) -> tuple[np.ndarray, str]:
    """(N,55,3) smplx full pose from per-part axis-angles; ``body_pose`` of 21 joints (SMPL-X,
    SMPL+H) or 23 (SMPL: its two hand joints are dropped). Returns the pose and "smplx"/"smpl"."""
    g = np.asarray(global_orient, dtype=np.float64).reshape(-1, 3)
    n = g.shape[0]
    body = np.asarray(body_pose, dtype=np.float64).reshape(n, -1)
    if body.shape[1] not in (63, 69):
        raise _bad(
            where, f"the body pose has {body.shape[1]} values per frame; SMPL-X has 63 (21 joints), SMPL 69 (23)."
        )
    model = "smplx" if body.shape[1] == 63 else "smpl"
    full = np.zeros((n, 55, 3))
    full[:, 0] = g
    full[:, 1:22] = body.reshape(n, -1, 3)[:, :21]
    for index, part in ((22, jaw), (23, leye), (24, reye)):
        if part is not None:
            full[:, index] = np.asarray(part, dtype=np.float64).reshape(n, 3)
    for start, part in ((25, left_hand), (40, right_hand)):
        if part is not None:
            p = np.asarray(part, dtype=np.float64).reshape(n, -1)
            if p.shape[1] != 45:
                raise _bad(
                    where, f"a hand pose has {p.shape[1]} values per frame, expected 45 (15 joints, axis-angle)."
                )
            full[:, start : start + 15] = p.reshape(n, 15, 3)
    if not np.isfinite(full).all():
        raise _bad(where, "the poses contain NaN or infinite values.")
    return full, model


def make_person(
    frames, full_pose, transl, betas, expression=None, model="smplx", gender="neutral", where: str = "the track"
) -> TrackPerson:
    """A validated person: sorted unique frames, matching row counts, finite numbers."""
    frames = np.asarray(frames)
    if frames.ndim != 1 or frames.dtype.kind not in "iu":
        raise _bad(where, f"the frame indices must be a 1-D integer array, not {frames.dtype} {frames.shape}.")
    frames = frames.astype(np.int64)
    n = len(frames)
    if n > MAX_FRAMES:
        raise _bad(where, f"{n} frames is over the {MAX_FRAMES} limit.", "Split the video.")
    if n and (frames[0] < 0 or np.any(np.diff(frames) <= 0)):
        raise _bad(where, "the frame indices must be increasing and not negative.")
    full_pose = _floats(full_pose, where, "full_pose", (n, 55, 3))
    transl = _floats(transl, where, "transl", (n, 3))
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim == 1:
        betas = np.repeat(betas[None], n, axis=0)
    betas = _floats(betas, where, "betas", (n, -1))
    if betas.shape[1] > MAX_BETAS:
        raise _bad(where, f"'betas' has {betas.shape[1]} values per frame, over {MAX_BETAS}.")
    if expression is not None:
        expression = _floats(expression, where, "expression", (n, -1))
    if model not in ("smplx", "smpl"):
        raise _bad(where, f"the body model is {model!r}; a track holds 'smplx' or 'smpl'.")
    return TrackPerson(frames, full_pose, transl, betas, expression, model, str(gender))


def make_camera(
    K, width=0, height=0, world_to_camera=None, num_frames: int | None = None, where: str = "the track"
) -> TrackCamera:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim == 2:
        K = np.repeat(K[None], 1 if num_frames is None else num_frames, axis=0)
    K = _floats(K, where, "K", (-1 if num_frames is None else num_frames, 3, 3))
    if not (np.all(K[:, 0, 0] > 0) and np.all(K[:, 1, 1] > 0)):
        raise _bad(where, "'K' has a focal length that is not positive.")
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]):
        raise _bad(where, "'K' is not an intrinsics matrix (its last row must be 0, 0, 1).")
    if world_to_camera is not None:
        world_to_camera = _floats(world_to_camera, where, "world_to_camera", (K.shape[0], 4, 4))
    width, height = int(width), int(height)
    if width < 0 or height < 0 or width > 65536 or height > 65536:
        raise _bad(where, f"the image size {width}x{height} is not plausible.")
    return TrackCamera(K, width, height, world_to_camera)


def intrinsics_matrix(fx, fy, cx, cy) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def _check_fps(fps, where: str) -> float | None:
    if fps is None:
        return None
    value = float(fps)
    if not (0.1 <= value <= 10_000.0):  # also refuses NaN
        raise _bad(where, f"the frame rate {fps!r} is not a frame rate (0.1 to 10000 fps).")
    return value


def _check_track(track: Track, where: str) -> Track:
    if track.frame not in FRAMES:
        raise _bad(where, f"the body frame is {track.frame!r}; it must be 'camera' or 'world'.")
    if len(track.persons) > MAX_PEOPLE:
        raise _bad(where, f"{len(track.persons)} people is over the {MAX_PEOPLE} limit.")
    if track.camera is not None:
        for k, p in enumerate(track.persons):
            if p.num_frames and p.frames[-1] >= track.camera.num_frames:
                raise _bad(
                    where,
                    f"person {k} is in frame {int(p.frames[-1])} but the camera has {track.camera.num_frames} frames.",
                )
    track.fps = _check_fps(track.fps, where)
    return track


def world_to_camera_from_pair(in_camera: TrackPerson, in_world: TrackPerson, rest_pelvis) -> np.ndarray:
    """(N,4,4) world-to-camera per frame from one person given in both frames (GVHMR's incam and
    global): the rigid motion taking the world body onto the camera body. Rotation: R = Rc Rw^T of
    the root orientations (exact). Translation: the pelvis, p = rest_pelvis + transl, maps onto its
    camera-frame self, so ``rest_pelvis`` ((3,) or (N,3), the tracked model's rest pelvis at the
    tracked shape) matters only as far as (I - R) times its error."""
    from .rotations import axis_angle_to_matrix

    if list(in_camera.frames) != list(in_world.frames):
        raise TrackError(
            "The camera-frame and world-frame bodies cover different frames.", "Use one tool run's output."
        )
    Rc = axis_angle_to_matrix(in_camera.full_pose[:, 0])
    Rw = axis_angle_to_matrix(in_world.full_pose[:, 0])
    R = Rc @ np.transpose(Rw, (0, 2, 1))
    j0 = np.broadcast_to(np.asarray(rest_pelvis, np.float64), in_camera.transl.shape)
    out = np.tile(np.eye(4), (len(R), 1, 1))
    out[:, :3, :3] = R
    out[:, :3, 3] = (j0 + in_camera.transl) - np.einsum("nij,nj->ni", R, j0 + in_world.transl)
    return out


# ------------------------------------------------------------------ the project's own file


def write_track(path, track: Track) -> Path:
    """The project's track file: a plain ``.npz`` (no pickles), layout in docs/REENACT.md."""
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION),
        "frame": np.array(track.frame),
        "fps": np.array(np.nan if track.fps is None else track.fps),
        "num_people": np.array(len(track.persons)),
        "source": np.array(track.source),
    }
    if track.camera is not None:
        arrays["K"] = track.camera.K
        arrays["image_size"] = np.array([track.camera.width, track.camera.height], dtype=np.int64)
        if track.camera.world_to_camera is not None:
            arrays["world_to_camera"] = track.camera.world_to_camera
    for k, p in enumerate(track.persons):
        arrays[f"person{k}/frames"] = p.frames
        arrays[f"person{k}/full_pose"] = p.full_pose
        arrays[f"person{k}/transl"] = p.transl
        arrays[f"person{k}/betas"] = p.betas
        arrays[f"person{k}/model"] = np.array(p.model)
        arrays[f"person{k}/gender"] = np.array(p.gender)
        if p.expression is not None:
            arrays[f"person{k}/expression"] = p.expression
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _text(data: dict, key: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    return str(value.reshape(()).item()) if value.size == 1 else default


def read_track_file(path) -> Track:
    path = Path(path)
    where = f"'{path.name}'"
    data = read_npz(path, where, error=TrackError, kinds="fiubUS")
    if _text(data, "format") != FORMAT_NAME:
        raise _bad(
            where,
            "is not a DreamWaltz track file (no format 'dreamwaltz-track').",
            "Convert the tool's output with the readers in docs/REENACT.md.",
        )
    version = int(data["version"]) if "version" in data and data["version"].size == 1 else 0
    if version != FORMAT_VERSION:
        raise _bad(
            where,
            f"is track format version {version}; this DreamWaltz reads version {FORMAT_VERSION}.",
            "Update DreamWaltz, or write the track again.",
        )
    count = int(data["num_people"]) if "num_people" in data and data["num_people"].size == 1 else -1
    if not 0 <= count <= MAX_PEOPLE:
        raise _bad(where, "has no valid 'num_people'.")
    persons = []
    for k in range(count):
        pre = f"person{k}/"
        missing = [key for key in ("frames", "full_pose", "transl", "betas") if pre + key not in data]
        if missing:
            raise _bad(where, f"person {k} lacks {', '.join(pre + m for m in missing)}.")
        persons.append(
            make_person(
                data[pre + "frames"],
                data[pre + "full_pose"],
                data[pre + "transl"],
                data[pre + "betas"],
                data.get(pre + "expression"),
                _text(data, pre + "model", "smplx"),
                _text(data, pre + "gender", "neutral"),
                where=f"{where} person {k}",
            )
        )
    camera = None
    if "K" in data:
        size = data.get("image_size", np.zeros(2, np.int64))
        if size.shape != (2,) or size.dtype.kind not in "iu":
            raise _bad(where, "'image_size' must be two integers (width, height).")
        camera = make_camera(data["K"], size[0], size[1], data.get("world_to_camera"), where=where)
    fps = float(data["fps"]) if "fps" in data and data["fps"].size == 1 else math.nan
    track = Track(
        persons,
        camera,
        None if math.isnan(fps) else fps,
        _text(data, "frame", "camera"),
        _text(data, "source") or path.name,
    )
    return _check_track(track, where)


# ------------------------------------------------------------------ SMPLer-X folders

_SMPLERX_NAME = re.compile(r"^(\d+)_(\d+)$")


def read_smplerx(folder, first_index: int = 1, num_frames: int | None = None, fps: float | None = None) -> Track:
    """A SMPLer-X result folder: ``smplx/{frame:05d}_{box}.npz`` (camera-frame SMPL-X parameters)
    and ``meta/{frame:05d}_{box}.json`` (``focal`` [fx, fy], ``princpt`` [cx, cy]).

    SMPLer-X numbers frames as its demo extracts them (from 1: ``first_index``). It detects people
    per frame without tracking, so person k is the k-th box of each frame; its camera is per box
    (focal and principal point follow the crop), so the track's K per frame is the one of the
    lowest-numbered box in it (the person reenacted should be that one: see docs/REENACT.md).
    """
    folder = Path(folder)
    if folder.name == "smplx" and (folder.parent / "meta").is_dir():
        folder = folder.parent
    where = f"SMPLer-X folder '{folder.name}'"
    smplx_dir, meta_dir = folder / "smplx", folder / "meta"
    if not smplx_dir.is_dir():
        raise TrackError(
            f"{where} has no 'smplx' subfolder.", "Point to SMPLer-X's output folder (with smplx/ and meta/)."
        )
    rows: dict[int, list] = {}
    cams: dict[int, tuple] = {}
    files = sorted(smplx_dir.glob("*.npz"))
    if not files:
        raise TrackError(f"{where}: 'smplx' holds no .npz files.", "Run SMPLer-X's demo with saving on.")
    for f in files:
        m = _SMPLERX_NAME.match(f.stem)
        if not m:
            raise _bad(where, f"'{f.name}' is not named FRAME_BOX.npz as SMPLer-X names its results.")
        t, box = int(m.group(1)) - first_index, int(m.group(2))
        if t < 0:
            raise _bad(
                where, f"'{f.name}' numbers a frame before {first_index}.", "Pass first_index=0 if frames start at 0."
            )
        d = read_npz(f, f"{where}/{f.name}", error=TrackError)
        need = [k for k in ("global_orient", "body_pose", "betas", "transl") if k not in d]
        if need:
            raise _bad(where, f"'{f.name}' lacks {', '.join(need)}.")
        full, model = full_pose_from_parts(
            d["global_orient"].reshape(1, 3),
            d["body_pose"].reshape(1, -1),
            d.get("jaw_pose"),
            d.get("leye_pose"),
            d.get("reye_pose"),
            d.get("left_hand_pose"),
            d.get("right_hand_pose"),
            where=f"{where}/{f.name}",
        )
        expr = d["expression"].reshape(1, -1) if "expression" in d else None
        rows.setdefault(box, []).append((t, full[0], d["transl"].reshape(3), d["betas"].reshape(-1), expr, model))
        meta = meta_dir / f"{f.stem}.json"
        if meta.is_file():
            if meta.stat().st_size > 1 << 20:
                raise _bad(where, f"'meta/{meta.name}' is over 1 MB.")
            try:
                info = json.loads(meta.read_text(encoding="utf-8"))
                fx, fy = (float(v) for v in info["focal"])
                cx, cy = (float(v) for v in info["princpt"])
            except (ValueError, KeyError, TypeError) as err:
                raise _bad(
                    where, f"'meta/{meta.name}' has no readable 'focal' and 'princpt' ({type(err).__name__})."
                ) from None
            if t not in cams or box < cams[t][0]:
                cams[t] = (box, intrinsics_matrix(fx, fy, cx, cy))
    persons = []
    for box in sorted(rows):
        r = sorted(rows[box], key=lambda row: row[0])
        expr = np.concatenate([row[4] for row in r]) if all(row[4] is not None for row in r) else None
        persons.append(
            make_person(
                [row[0] for row in r],
                np.stack([row[1] for row in r]),
                np.stack([row[2] for row in r]),
                np.stack([row[3] for row in r]),
                expr,
                r[0][5],
                where=where,
            )
        )
    camera = None
    if cams:
        count = max(max(cams) + 1, num_frames or 0, max(int(p.frames[-1]) + 1 for p in persons))
        known = np.array(sorted(cams))
        K = np.empty((count, 3, 3))
        for t in range(count):  # frames with nobody: the nearest frame's camera
            K[t] = cams[int(known[np.argmin(np.abs(known - t))])][1]
        camera = make_camera(K, where=where)
    return _check_track(Track(persons, camera, fps, "camera", f"{folder.name} (SMPLer-X)"), where)


# ------------------------------------------------------------------ AMASS-style npz, .smpl


def read_camera_json(path, num_frames: int | None = None) -> TrackCamera:
    """A camera sidecar: ``{"K": 3x3 or per-frame list, "width", "height", "world_to_camera": optional}``."""
    path = Path(path)
    where = f"'{path.name}'"
    if path.stat().st_size > 64 << 20:
        raise _bad(where, "is over 64 MB.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise _bad(where, f"is not JSON ({type(err).__name__}).") from None
    if not isinstance(info, dict) or "K" not in info:
        raise _bad(where, "has no 'K' (3x3 intrinsics in pixels, or one per frame).")
    return make_camera(
        info["K"],
        info.get("width", 0),
        info.get("height", 0),
        info.get("world_to_camera"),
        num_frames=num_frames if np.asarray(info["K"]).ndim == 2 else None,
        where=where,
    )


def _sidecar(path: Path) -> Path | None:
    side = path.with_name(path.name.split(".")[0] + ".camera.json")
    return side if side.is_file() else None


def read_amass_track(path, camera: TrackCamera | None = None, frame: str | None = None) -> Track:
    """An AMASS-style ``.npz`` (``poses`` (N,165) SMPL-X or (N,156) SMPL+H or (N,72) SMPL, ``trans``,
    ``betas``) with an optional camera: arrays ``K`` ((3,3) or (N,3,3)), ``world_to_camera``,
    ``image_size``, ``frame`` ("camera"/"world"), else a ``NAME.camera.json`` sidecar.

    Unlike the motion reader (docs/MOTION.md), axes are kept as the file has them: a track's body
    must stay in the frame its camera was solved in."""
    path = Path(path)
    where = f"'{path.name}'"
    data = read_npz(path, where, error=TrackError, kinds="fiubUS")
    poses = data.get("poses")
    if poses is None or poses.dtype.kind not in "fiu" or poses.ndim != 2:
        raise _bad(where, "has no 2-D 'poses' array.", "An AMASS-style track has poses (N,165), (N,156) or (N,72).")
    n = poses.shape[0]
    p = poses.astype(np.float64)
    if p.shape[1] == 165:
        full, model = p.reshape(n, 55, 3), "smplx"
    elif p.shape[1] == 156:
        full, model = full_pose_from_parts(
            p[:, :3], p[:, 3:66], left_hand=p[:, 66:111], right_hand=p[:, 111:156], where=where
        )
    elif p.shape[1] == 72:
        full, model = full_pose_from_parts(p[:, :3], p[:, 3:72], where=where)
    else:
        raise _bad(where, f"'poses' has {p.shape[1]} values per frame; known: 165 (SMPL-X), 156 (SMPL+H), 72 (SMPL).")
    trans = data.get("trans", np.zeros((n, 3)))
    betas = np.asarray(data.get("betas", np.zeros(10)), np.float64)
    frames = data.get("frame_ids", np.arange(n))
    fps = None
    for key in ("mocap_frame_rate", "mocap_framerate", "fps"):
        if key in data and data[key].size == 1:
            fps = float(data[key])
            break
    if camera is None and "K" in data:
        size = data.get("image_size", np.zeros(2, np.int64)).reshape(-1)
        count = int(frames[-1]) + 1 if len(frames) else n
        camera = make_camera(
            data["K"],
            size[0],
            size[1],
            data.get("world_to_camera"),
            num_frames=count if data["K"].ndim == 2 else None,
            where=where,
        )
    elif camera is None and _sidecar(path):
        camera = read_camera_json(_sidecar(path), int(frames[-1]) + 1 if len(frames) else n)
    frame = frame or _text(data, "frame", "world" if camera is None or camera.world_to_camera is not None else "camera")
    person = make_person(frames, full, trans, betas, None, model, _text(data, "gender", "neutral"), where=where)
    return _check_track(Track([person], camera, fps, frame, path.name), where)


def read_smpl_codec(path, camera: TrackCamera | None = None, frame: str | None = None) -> Track:
    """A Meshcapade ``.smpl`` file (smplcodec's layout: an ``.npz`` with camelCase keys
    ``bodyPose`` (N,22,3) global + body, ``headPose`` (N,3,3) jaw + eyes, ``leftHandPose`` /
    ``rightHandPose`` (N,15,3), ``bodyTranslation`` (N,3), ``shapeParameters`` (B,),
    ``expressionParameters``, ``frameRate``, ``frameCount``, ``smplVersion``). It holds no camera:
    give one, or a ``NAME.camera.json`` sidecar. Read here with the project's own bounded,
    pickle-free npz reader (smplcodec's ``SMPLCodec.from_file`` reads the same keys)."""
    path = Path(path)
    where = f"'{path.name}'"
    data = read_npz(path, where, error=TrackError, kinds="fiubUS")
    version = int(data["smplVersion"]) if "smplVersion" in data and data["smplVersion"].size == 1 else 2
    if version not in (0, 1, 2):  # smplcodec's SMPLVersion: SMPL 0, SMPLH 1, SMPLX 2
        raise _bad(
            where, f"is an smplcodec file for model {version}; DreamWaltz reads SMPL (0), SMPL+H (1) and SMPL-X (2)."
        )
    if "bodyPose" not in data:
        raise _bad(where, "has no 'bodyPose' (a .smpl file without motion).", "Export the motion from Meshcapade.")
    body = data["bodyPose"].astype(np.float64)
    n = body.shape[0]
    if body.ndim != 3 or body.shape[2] != 3 or body.shape[1] not in (22, 24):
        raise _bad(where, f"'bodyPose' has shape {body.shape}; expected (N,22,3) or (N,24,3).")
    head = data.get("headPose")
    head = None if head is None else head.reshape(n, 3, 3)
    full, model = full_pose_from_parts(
        body[:, 0],
        body[:, 1:],
        None if head is None else head[:, 0],
        None if head is None else head[:, 1],
        None if head is None else head[:, 2],
        data.get("leftHandPose"),
        data.get("rightHandPose"),
        where=where,
    )
    trans = data.get("bodyTranslation", np.zeros((n, 3)))
    betas = data.get("shapeParameters", np.zeros(10))
    expr = data.get("expressionParameters")
    fps = float(data["frameRate"]) if "frameRate" in data and data["frameRate"].size == 1 else None
    gender = {0: "neutral", 1: "male", 2: "female"}.get(
        int(data["gender"]) if "gender" in data and data["gender"].size == 1 else 0, "neutral"
    )
    if camera is None and _sidecar(path):
        camera = read_camera_json(_sidecar(path), n)
    frame = frame or ("camera" if camera is not None and camera.world_to_camera is None else "world")
    person = make_person(np.arange(n), full, trans, betas, expr, model, gender, where=where)
    return _check_track(Track([person], camera, fps, frame, path.name), where)


# ------------------------------------------------------------------ dispatch

BACKEND_ONLY = {
    ".pt": "a GVHMR torch file",
    ".pth": "a torch file",
    ".pkl": "a pickle",
    ".npy": "a TRAM pickle (np.save of a dict)",
}


def load_track(path, **kwargs) -> Track:
    """Any track format readable with numpy alone, by what the path is (docs/REENACT.md)."""
    return layout_guard(_load_track, path, **kwargs)


def layout_guard(reader, path, *args, **kwargs):
    """``reader(path, ...)``, with an array of the wrong size or a missing key deep in a file (which
    numpy reports as ValueError/KeyError/IndexError/TypeError) turned into one clear TrackError."""
    try:
        return reader(path, *args, **kwargs)
    except TrackError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as err:
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise TrackError(
            f"'{Path(path).name}' does not have the layout its format needs ({type(err).__name__}: {detail}).",
            "Give the tool's unmodified output; formats and keys: docs/REENACT.md.",
        ) from None


def _load_track(path, **kwargs) -> Track:
    path = Path(path)
    if path.is_dir():
        return read_smplerx(path, **kwargs)
    if not path.is_file():
        raise TrackError(f"'{path}' does not exist.", "Check the path to the track.")
    suffix = path.suffix.lower()
    if suffix == ".smpl":
        return read_smpl_codec(path, **kwargs)
    if suffix in BACKEND_ONLY:
        raise TrackError(
            f"'{path.name}' is {BACKEND_ONLY[suffix]}; only the backend reads it.",
            "Convert it with `dreamwaltz track convert` (see docs/REENACT.md) and load the .track.npz.",
        )
    if suffix == ".npz":
        if _peek_format(path) != FORMAT_NAME:
            return read_amass_track(path, **kwargs)
        track = read_track_file(path)
        if kwargs.get("frame") not in (None, track.frame):
            raise TrackError(
                f"'{path.name}' has its bodies in the {track.frame} frame, not the {kwargs['frame']} frame.",
                "Drop --frame, or convert the tool's output again with the frame you want.",
            )
        return track
    raise TrackError(
        f"'{path.name}': unknown track format '{suffix or path.name}'.",
        "Known: .track.npz, a SMPLer-X folder, AMASS-style .npz, .smpl; in the backend also GVHMR .pt and "
        "(opt-in) TRAM/WHAM/4D-Humans pickles.",
    )


def _peek_format(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "dreamwaltz-track" if "format.npy" in zf.namelist() else ""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise TrackError(f"'{path.name}' is not a readable .npz file.", "Export the track again.") from None


def body_up(track: Track, person: TrackPerson) -> np.ndarray:
    """The ground's normal in the track's frame: world +Y, or (camera frame) the tracked root's mean
    up axis. The backend's reenactment and Blender's shot both stand the avatar on this ground."""
    from .rotations import axis_angle_to_matrix

    if track.frame == "world":
        return np.array([0.0, 1.0, 0.0])
    up = axis_angle_to_matrix(person.full_pose[:, 0])[:, :, 1].mean(axis=0)
    return up / max(float(np.linalg.norm(up)), 1e-9)
