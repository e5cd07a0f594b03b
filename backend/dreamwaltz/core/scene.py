"""Scene descriptions: several avatars, static 3D Gaussian splat scenes and a camera path (pure numpy).

A scene is a JSON file (docs/SCENES.md) that ``dreamwaltz render-scene`` renders and that
Blender's add-on can write: this module is the contract, and it imports nothing but numpy and
other ``core`` modules so the add-on can use it. Every coordinate is in the backend's space
(SMPL-X model space: metres, right-handed, +Y up, an avatar faces +Z at zero rotation).

    scene = load_scene("shot.json")                 # validated; paths resolved
    assets = load_assets(scene)                     # avatars, motions and splat files read
    splats = frame_gaussians(scene, assets, frame)  # every Gaussian of that frame, world space
    camera = scene.camera.at(frame, scene)          # a core.camera.Camera

``frame_gaussians`` is numpy only; the backend rasterizes its output in one depth-sorted pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera import Camera, intrinsics, look_at
from .errors import DreamWaltzError, InvalidFileError
from .motion.sequence import HARD_MAX_FRAMES as MAX_FRAMES
from .rotations import quaternion_to_matrix

SCENE_VERSION = 1
MAX_SIZE = 16384  # pixels per side
MAX_ITEMS = 10_000  # avatars, splat files or camera keys

AVATAR_FIELDS = ("name", "file", "location", "rotation", "scale", "motion", "start_frame", "loop", "betas")
SPLAT_FIELDS = ("name", "file", "location", "rotation", "scale")
SCENE_FIELDS = ("version", "avatars", "splats", "camera", "frames", "fps", "width", "height", "background")
KEY_FIELDS = ("frame", "position", "target", "fov_deg")
ORBIT_FIELDS = ("center", "radius", "height", "fov_deg", "degrees", "azimuth_deg")


# --------------------------------------------------------------------------- the schema


@dataclass
class Transform:
    """A similarity transform: x -> location + scale * R x (R from ``rotation``, w x y z)."""

    location: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))  # unit quaternion
    scale: float = 1.0

    @property
    def matrix(self) -> np.ndarray:
        return quaternion_to_matrix(self.rotation)

    def points(self, p: np.ndarray) -> np.ndarray:
        return self.location + self.scale * (np.asarray(p, dtype=np.float64) @ self.matrix.T)

    def covariances(self, cov: np.ndarray) -> np.ndarray:
        """R s^2 Sigma R^T: the covariance of a Gaussian after the transform."""
        R = self.scale * self.matrix
        return np.einsum("ij,njk,lk->nil", R, np.asarray(cov, dtype=np.float64), R)

    def inverse_points(self, p: np.ndarray) -> np.ndarray:
        """The points that ``points`` maps to ``p``."""
        return ((np.asarray(p, dtype=np.float64) - self.location) @ self.matrix) / self.scale


@dataclass
class AvatarItem:
    file: Path  # .h3ga, resolved against the scene file's folder
    transform: Transform
    motion: Path | None = None  # BVH or SMPL-X .npz/.npy; None = rest pose
    start_frame: int = 0  # the scene frame that shows the motion's first frame
    loop: bool = False  # repeat the motion; else hold its first/last pose outside it
    betas: np.ndarray | None = None  # shape edit; None = the avatar's own
    name: str = ""


@dataclass
class SplatItem:
    file: Path  # a 3DGS .ply
    transform: Transform
    name: str = ""


@dataclass
class CameraKey:
    frame: float
    position: np.ndarray
    target: np.ndarray
    fov_deg: float  # vertical field of view


@dataclass
class KeyframeCamera:
    keys: list  # CameraKey, sorted by frame

    def pose_at(self, frame: float):
        """(position, target, fov_deg) at ``frame``: linear between keys, held outside them."""
        frames = np.array([k.frame for k in self.keys], dtype=np.float64)
        if frame <= frames[0]:
            k = self.keys[0]
            return k.position, k.target, k.fov_deg
        if frame >= frames[-1]:
            k = self.keys[-1]
            return k.position, k.target, k.fov_deg
        i = int(np.searchsorted(frames, frame, side="right")) - 1
        a, b = self.keys[i], self.keys[i + 1]
        t = (frame - a.frame) / (b.frame - a.frame)
        return (
            a.position + t * (b.position - a.position),
            a.target + t * (b.target - a.target),
            a.fov_deg + t * (b.fov_deg - a.fov_deg),
        )

    def at(self, frame: float, scene: Scene) -> Camera:
        position, target, fov = self.pose_at(frame)
        return _camera(position, target, fov, scene.width, scene.height)


@dataclass
class OrbitCamera:
    """A camera circling ``center`` at ``radius`` (horizontal distance), ``height`` above it,
    looking at it. Azimuth 0 puts the camera on +Z (facing an unrotated avatar's front), 90 on +X.
    It turns by ``degrees`` over the frame range, the end excluded: 360 makes a seamless loop."""

    center: np.ndarray
    radius: float
    height: float = 0.0
    fov_deg: float = 40.0
    degrees: float = 360.0
    azimuth_deg: float = 0.0

    def pose_at(self, frame: float, scene: Scene):
        count = scene.frame_end - scene.frame_start + 1
        angle = math.radians(self.azimuth_deg + self.degrees * (frame - scene.frame_start) / count)
        position = self.center + np.array([self.radius * math.sin(angle), self.height, self.radius * math.cos(angle)])
        return position, self.center, self.fov_deg

    def at(self, frame: float, scene: Scene) -> Camera:
        position, target, fov = self.pose_at(frame, scene)
        return _camera(position, target, fov, scene.width, scene.height)


@dataclass
class Scene:
    avatars: list  # AvatarItem
    splats: list  # SplatItem
    camera: KeyframeCamera | OrbitCamera
    frame_start: int
    frame_end: int  # inclusive
    fps: float = 30.0
    width: int = 512
    height: int = 512
    background: np.ndarray = field(default_factory=lambda: np.zeros(3))  # display (sRGB) values in [0, 1]
    path: Path | None = None  # the file it was read from
    version: int = SCENE_VERSION

    @property
    def frames(self) -> range:
        return range(self.frame_start, self.frame_end + 1)

    def camera_at(self, frame: float) -> Camera:
        return self.camera.at(frame, self)


def _camera(position, target, fov_deg, width, height) -> Camera:
    return Camera(look_at(position, target), intrinsics(fov_deg, width, height), width, height)


# --------------------------------------------------------------------------- reading


class _Reader:
    """Checks one field at a time; every error names the file, the field and the fix."""

    def __init__(self, where: str, base: Path):
        self.where, self.base = where, base

    def fail(self, field_name: str, problem: str, fix: str):
        raise InvalidFileError(f"{self.where}: {field_name} {problem}", fix)

    def obj(self, value, name: str, allowed) -> dict:
        if not isinstance(value, dict):
            what = name or "the scene"
            self.fail(what, f"must be an object {{...}}, got {_show(value)}.", f"Write {what} as a JSON object.")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            self.fail(
                f"{name}.{unknown[0]}" if name else unknown[0],
                "is not a field of a scene description.",
                f"Check the spelling; the fields here are: {', '.join(allowed)} (docs/SCENES.md).",
            )
        return value

    def required(self, d: dict, key: str, name: str):
        if key not in d:
            self.fail(name, "is missing.", f'Add "{key}" (docs/SCENES.md).')
        return d[key]

    def number(self, value, name: str, low=-math.inf, high=math.inf, low_open=False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(name, f"must be a number, got {_show(value)}.", "Write a plain number, e.g. 1.5.")
        if value < low or value > high or (low_open and value <= low):
            lower = f"> {low:g}" if low_open else f">= {low:g}"
            bounds = lower if high == math.inf else f"{lower} and <= {high:g}"
            self.fail(name, f"is {value!r}; it must be {bounds}.", f"Give {name} a value {bounds}.")
        return float(value)

    def integer(self, value, name: str, low=-MAX_FRAMES, high=MAX_FRAMES) -> int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            self.fail(name, f"must be a whole number, got {_show(value)}.", "Write an integer, e.g. 24.")
        if not low <= value <= high:
            self.fail(name, f"is {int(value)}, outside {low} to {high}.", f"Give {name} a value from {low} to {high}.")
        return int(value)

    def vector(self, value, name: str, n: int = 3, low=-math.inf, high=math.inf, form: str = "[x, y, z]") -> np.ndarray:
        if not isinstance(value, (list, tuple)) or len(value) != n:
            self.fail(name, f"must be a list of {n} numbers, got {_show(value)}.", f"Write it as {form}.")
        return np.array([self.number(v, f"{name}[{i}]", low, high) for i, v in enumerate(value)], dtype=np.float64)

    def path(self, value, name: str, suffixes, kind: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            self.fail(name, f"must be a file path (a string), got {_show(value)}.", f"Give the path of {kind}.")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.base / path
        if path.suffix.lower() not in suffixes:
            self.fail(name, f"'{value}' is not {kind} (expected {' or '.join(suffixes)}).", f"Point {name} at {kind}.")
        if not path.is_file():
            self.fail(
                name,
                f"'{value}' does not exist (looked for {path}).",
                "Fix the path; relative paths are relative to the scene file's folder.",
            )
        return path

    def items(self, value, name: str) -> list:
        if not isinstance(value, list):
            self.fail(name, f"must be a list [...], got {_show(value)}.", f"Write {name} as a JSON list.")
        if len(value) > MAX_ITEMS:
            self.fail(name, f"has {len(value)} entries, over the {MAX_ITEMS} limit.", "Split the scene.")
        return value

    def transform(self, d: dict, name: str) -> Transform:
        location = self.vector(d.get("location", [0.0, 0.0, 0.0]), f"{name}.location")
        rotation = d.get("rotation", 0.0)
        if isinstance(rotation, (list, tuple)):
            q = self.vector(rotation, f"{name}.rotation", 4, form="[w, x, y, z]")
            norm = float(np.linalg.norm(q))
            if norm < 1e-8:
                self.fail(
                    f"{name}.rotation",
                    "is a zero quaternion.",
                    "Give a unit quaternion [w, x, y, z], e.g. [1, 0, 0, 0].",
                )
            q = q / norm
        else:
            if isinstance(rotation, bool) or not isinstance(rotation, (int, float)):
                self.fail(
                    f"{name}.rotation",
                    f"must be a yaw angle in degrees or a quaternion [w, x, y, z], got {_show(rotation)}.",
                    "Write e.g. 90 (turns the avatar's front from +Z to +X) or [1, 0, 0, 0].",
                )
            yaw = math.radians(self.number(rotation, f"{name}.rotation"))
            q = np.array([math.cos(yaw / 2), 0.0, math.sin(yaw / 2), 0.0])  # about +Y, the up axis
        scale = self.number(d.get("scale", 1.0), f"{name}.scale", 0.0, 1e6, low_open=True)
        return Transform(location, q, scale)


def _show(value) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_scene(data, base: Path = Path("."), where: str = "the scene") -> Scene:
    """A ``Scene`` from the decoded JSON ``data``; relative file paths resolve against ``base``."""
    r = _Reader(where, Path(base))
    d = r.obj(data, "", SCENE_FIELDS)
    version = r.integer(r.required(d, "version", "version"), "version", 1, 10**6)
    if version > SCENE_VERSION:
        r.fail(
            "version",
            f"is {version}; this DreamWaltz reads scene version {SCENE_VERSION}.",
            "Update DreamWaltz, or export the scene again from the add-on that matches it.",
        )

    frames = r.required(d, "frames", "frames")
    if not isinstance(frames, (list, tuple)) or len(frames) != 2:
        r.fail("frames", f"must be [start, end], got {_show(frames)}.", "Write e.g. [1, 48] (both frames included).")
    start, end = r.integer(frames[0], "frames[0]"), r.integer(frames[1], "frames[1]")
    if end < start:
        r.fail("frames", f"[{start}, {end}] is an empty range (end before start).", "Give end >= start, e.g. [1, 48].")
    if end - start + 1 > MAX_FRAMES:
        r.fail("frames", f"[{start}, {end}] has over {MAX_FRAMES} frames.", "Render a shorter range.")
    fps = r.number(d.get("fps", 30.0), "fps", 1e-3, 1000.0, low_open=True)
    width = r.integer(r.required(d, "width", "width"), "width", 1, MAX_SIZE)
    height = r.integer(r.required(d, "height", "height"), "height", 1, MAX_SIZE)
    background = r.vector(d.get("background", [0.0, 0.0, 0.0]), "background", 3, 0.0, 1.0, form="[r, g, b] (0 to 1)")

    avatars = []
    for i, a in enumerate(r.items(d.get("avatars", []), "avatars")):
        name = f"avatars[{i}]"
        a = r.obj(a, name, AVATAR_FIELDS)
        item = AvatarItem(
            file=r.path(r.required(a, "file", f"{name}.file"), f"{name}.file", (".h3ga",), "a .h3ga avatar"),
            transform=r.transform(a, name),
        )
        if a.get("motion") is not None:
            item.motion = r.path(
                a["motion"], f"{name}.motion", (".bvh", ".npz", ".npy"), "a motion file (BVH or SMPL-X .npz/.npy)"
            )
        item.start_frame = r.integer(a.get("start_frame", start), f"{name}.start_frame")
        loop = a.get("loop", False)
        if not isinstance(loop, bool):
            r.fail(f"{name}.loop", f"must be true or false, got {_show(loop)}.", "Write true or false.")
        item.loop = loop
        if a.get("betas") is not None:
            betas = a["betas"]
            if not isinstance(betas, list) or not betas:
                r.fail(
                    f"{name}.betas",
                    f"must be a list of numbers, got {_show(betas)}.",
                    "Write e.g. [0.5, -1.0] or leave it out.",
                )
            item.betas = np.array([r.number(b, f"{name}.betas[{k}]", -100.0, 100.0) for k, b in enumerate(betas)])
        name_value = a.get("name", "")
        if not isinstance(name_value, str):
            r.fail(
                f"{name}.name", f"must be a string, got {_show(name_value)}.", "Write a name in quotes or leave it out."
            )
        item.name = name_value
        avatars.append(item)

    splats = []
    for i, s in enumerate(r.items(d.get("splats", []), "splats")):
        name = f"splats[{i}]"
        s = r.obj(s, name, SPLAT_FIELDS)
        file = r.path(
            r.required(s, "file", f"{name}.file"),
            f"{name}.file",
            (".ply", ".spz", ".splat"),  # what read_splats reads, so Blender's imported .spz scenes export
            "a 3D Gaussian splatting .ply, .spz or .splat",
        )
        name_value = s.get("name", "")
        if not isinstance(name_value, str):
            r.fail(
                f"{name}.name", f"must be a string, got {_show(name_value)}.", "Write a name in quotes or leave it out."
            )
        splats.append(SplatItem(file, r.transform(s, name), name_value))
    if not avatars and not splats:
        r.fail(
            "avatars",
            "and splats are both empty: there is nothing to render.",
            "List at least one avatar or splat file.",
        )

    camera = _parse_camera(r, r.required(d, "camera", "camera"))
    return Scene(avatars, splats, camera, start, end, fps, width, height, background, None, version)


def _parse_camera(r: _Reader, c) -> KeyframeCamera | OrbitCamera:
    if isinstance(c, dict) and "orbit" in c:
        r.obj(c, "camera", ("orbit",))
        o = r.obj(c["orbit"], "camera.orbit", ORBIT_FIELDS)
        cam = OrbitCamera(
            center=r.vector(o.get("center", [0.0, 0.0, 0.0]), "camera.orbit.center"),
            radius=r.number(
                r.required(o, "radius", "camera.orbit.radius"), "camera.orbit.radius", 0.0, 1e6, low_open=True
            ),
            height=r.number(o.get("height", 0.0), "camera.orbit.height", -1e6, 1e6),
            fov_deg=r.number(o.get("fov_deg", 40.0), "camera.orbit.fov_deg", 0.0, 179.0, low_open=True),
            degrees=r.number(o.get("degrees", 360.0), "camera.orbit.degrees", -1e6, 1e6),
            azimuth_deg=r.number(o.get("azimuth_deg", 0.0), "camera.orbit.azimuth_deg", -1e6, 1e6),
        )
        return cam
    if isinstance(c, dict) and "keyframes" in c:
        r.obj(c, "camera", ("keyframes",))
        keys = []
        for i, k in enumerate(r.items(c["keyframes"], "camera.keyframes")):
            name = f"camera.keyframes[{i}]"
            k = r.obj(k, name, KEY_FIELDS)
            key = CameraKey(
                frame=r.number(r.required(k, "frame", f"{name}.frame"), f"{name}.frame", -MAX_FRAMES, MAX_FRAMES),
                position=r.vector(r.required(k, "position", f"{name}.position"), f"{name}.position"),
                target=r.vector(r.required(k, "target", f"{name}.target"), f"{name}.target"),
                fov_deg=r.number(k.get("fov_deg", 40.0), f"{name}.fov_deg", 0.0, 179.0, low_open=True),
            )
            if np.linalg.norm(key.target - key.position) < 1e-6:
                r.fail(
                    f"{name}.target", "is the camera's own position.", "Put the target somewhere the camera looks at."
                )
            keys.append(key)
        if not keys:
            r.fail("camera.keyframes", "is empty.", 'Give at least one {"frame", "position", "target"} key.')
        keys.sort(key=lambda k: k.frame)
        for a, b in zip(keys, keys[1:]):
            if a.frame == b.frame:
                r.fail("camera.keyframes", f"has two keys at frame {a.frame:g}.", "Keep one key per frame.")
        return KeyframeCamera(keys)
    r.fail(
        "camera",
        f'must be {{"keyframes": [...]}} or {{"orbit": {{...}}}}, got {_show(c)}.',
        "See docs/SCENES.md for both camera forms.",
    )


def load_scene(path) -> Scene:
    """Read and validate a scene JSON file (files it names must exist; they are read later)."""
    path = Path(path)
    where = f"'{path.name}'"
    if not path.is_file():
        raise InvalidFileError(f"{where} does not exist.", "Check the path of the scene file.")
    if path.stat().st_size > 64 * 2**20:
        raise InvalidFileError(f"{where} is over 64 MiB: not a scene description.", "Give the scene's .json file.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidFileError(f"{where} is not a text (UTF-8 JSON) file.", "Give the scene's .json file.") from None
    except json.JSONDecodeError as err:
        raise InvalidFileError(
            f"{where} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}).",
            "Fix the JSON syntax; docs/SCENES.md has an example.",
        ) from None
    except RecursionError:
        raise InvalidFileError(
            f"{where} is nested too deeply to be a scene description.", "Give the scene's .json file."
        ) from None
    scene = parse_scene(data, path.resolve().parent, where)
    scene.path = path
    return scene


def scene_to_dict(scene: Scene, relative_to: Path | None = None) -> dict:
    """The JSON form of ``scene`` (file paths relative to ``relative_to`` when they are below it)."""

    def p(path: Path) -> str:
        if relative_to is not None:
            try:
                return Path(path).resolve().relative_to(Path(relative_to).resolve()).as_posix()
            except ValueError:
                pass
        return str(path)

    def t(tr: Transform) -> dict:
        return {"location": tr.location.tolist(), "rotation": tr.rotation.tolist(), "scale": tr.scale}

    avatars = []
    for a in scene.avatars:
        entry = {"file": p(a.file), **t(a.transform), "start_frame": a.start_frame, "loop": a.loop}
        if a.name:
            entry["name"] = a.name
        if a.motion is not None:
            entry["motion"] = p(a.motion)
        if a.betas is not None:
            entry["betas"] = np.asarray(a.betas).tolist()
        avatars.append(entry)
    splats = [{"file": p(s.file), **t(s.transform), **({"name": s.name} if s.name else {})} for s in scene.splats]
    if isinstance(scene.camera, OrbitCamera):
        c = scene.camera
        camera = {
            "orbit": {
                "center": c.center.tolist(),
                "radius": c.radius,
                "height": c.height,
                "fov_deg": c.fov_deg,
                "degrees": c.degrees,
                "azimuth_deg": c.azimuth_deg,
            }
        }
    else:
        camera = {
            "keyframes": [
                {"frame": k.frame, "position": k.position.tolist(), "target": k.target.tolist(), "fov_deg": k.fov_deg}
                for k in scene.camera.keys
            ]
        }
    return {
        "version": scene.version,
        "frames": [scene.frame_start, scene.frame_end],
        "fps": scene.fps,
        "width": scene.width,
        "height": scene.height,
        "background": np.asarray(scene.background).tolist(),
        "camera": camera,
        "avatars": avatars,
        "splats": splats,
    }


# --------------------------------------------------------------------------- the frames' Gaussians


@dataclass
class Gaussians:
    """Splats in world space: colours are display (sRGB) values, opacities in [0, 1]."""

    means: np.ndarray  # (N, 3)
    covariances: np.ndarray  # (N, 3, 3)
    colors: np.ndarray  # (N, 3)
    opacities: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.means)

    def transformed(self, tr: Transform) -> Gaussians:
        return Gaussians(tr.points(self.means), tr.covariances(self.covariances), self.colors, self.opacities)

    @staticmethod
    def concatenate(parts) -> Gaussians:
        parts = list(parts)
        if not parts:
            return Gaussians(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0))
        return Gaussians(
            *(np.concatenate([getattr(g, f) for g in parts]) for f in ("means", "covariances", "colors", "opacities"))
        )


@dataclass
class PlacedSplats:
    """A splat file placed in the scene: its splats in world space with their base (DC) colours,
    and the file's own cloud when it has spherical harmonics beyond DC, whose colours depend on
    where the camera is."""

    gaussians: Gaussians  # world space
    transform: Transform
    cloud: object | None = None  # splat_files.SplatCloud, only with SH degree >= 1

    def seen_from(self, camera_position) -> Gaussians:
        """The splats with the colours a camera at ``camera_position`` (world) sees. The SH are
        defined in the file's frame, so the camera is taken into that frame, as Blender's
        nodes.scene_splat_tree does."""
        if self.cloud is None:
            return self.gaussians
        from .splat_files import view_colors

        local_camera = self.transform.inverse_points(np.asarray(camera_position, dtype=np.float64)[None])[0]
        g = self.gaussians
        return Gaussians(g.means, g.covariances, view_colors(self.cloud, local_camera), g.opacities)


@dataclass
class SceneAssets:
    avatars: list  # H3GAAvatar, one per scene avatar
    motions: list  # MotionSequence or None, resampled to the scene's fps
    splats: list  # PlacedSplats of each splat file (static)


def place_splat_file(path, transform: Transform, where: str = "") -> PlacedSplats:
    """A 3DGS scene file's splats (standard or compressed .ply, .spz, .splat: ``core/splat_files``) placed
    by ``transform``, keeping the spherical harmonics when the file has them."""
    from .posing import gaussian_covariances
    from .splat_files import read_splats

    path = Path(path)
    where = where or f"'{path.name}'"
    try:
        cloud = read_splats(path)
    except InvalidFileError as err:
        raise InvalidFileError(
            f"{where}: {err.message}",
            err.hint or "Give a 3D Gaussian splatting .ply (standard or compressed), .spz or .splat.",
        ) from None
    bad = (cloud.log_scales > 20).any(axis=1)
    if bad.any():
        raise InvalidFileError(
            f"{where}: '{path.name}' splat {int(np.argmax(bad))} has an absurd scale ({int(bad.sum())} such splats).",
            "Re-export the scene file.",
        )
    file_frame = Gaussians(
        cloud.means.astype(np.float64),
        gaussian_covariances(cloud.log_scales, cloud.quats),
        cloud.colors.astype(np.float64),
        cloud.opacities.astype(np.float64),
    )
    return PlacedSplats(file_frame.transformed(transform), transform, cloud if cloud.sh_degree > 0 else None)


def load_assets(scene: Scene) -> SceneAssets:
    """Read every file the scene names (avatars, motions resampled to the scene's fps, splat files)."""
    from .h3ga import read_h3ga
    from .motion import TargetSkeleton, load_motion

    where = f"'{scene.path.name}'" if scene.path is not None else "the scene"
    avatars, motions = [], []
    read, retargeted = {}, {}  # a file named by several entries (a crowd) is read once and shared
    for i, item in enumerate(scene.avatars):
        key = Path(item.file).resolve()
        if key not in read:
            try:
                read[key] = read_h3ga(item.file)
            except DreamWaltzError as err:
                raise type(err)(f"{where}: avatars[{i}].file: {err.message}", err.hint) from None
        avatar = read[key]
        if item.betas is not None and len(item.betas) != avatar.num_betas:
            raise InvalidFileError(
                f"{where}: avatars[{i}].betas has {len(item.betas)} values; '{item.file.name}' has {avatar.num_betas}.",
                f"Give {avatar.num_betas} betas, or leave betas out.",
            )
        motion = None
        if item.motion is not None:
            motion_key = (key, Path(item.motion).resolve())
            if motion_key not in retargeted:
                try:
                    retargeted[motion_key] = load_motion(item.motion, TargetSkeleton.from_avatar(avatar), fps=scene.fps)
                except DreamWaltzError as err:
                    raise type(err)(f"{where}: avatars[{i}].motion: {err.message}", err.hint) from None
            motion = retargeted[motion_key]
        avatars.append(avatar)
        motions.append(motion)
    splats = [place_splat_file(s.file, s.transform, f"{where}: splats[{i}].file") for i, s in enumerate(scene.splats)]
    return SceneAssets(avatars, motions, splats)


def motion_frame(item: AvatarItem, seq, frame: int) -> int:
    """The motion's frame index shown at scene ``frame``: held before/after the clip, or looped."""
    i = frame - item.start_frame
    return i % seq.num_frames if item.loop else min(max(i, 0), seq.num_frames - 1)


def avatar_gaussians(scene: Scene, assets: SceneAssets, index: int, frame: int) -> Gaussians:
    """Avatar ``index`` posed for scene ``frame`` (its motion's frame), in world space."""
    from .posing import pose_avatar

    item, avatar, seq = scene.avatars[index], assets.avatars[index], assets.motions[index]
    pose = transl = expression = None
    if seq is not None:
        k = motion_frame(item, seq, frame)
        pose, transl = seq.full_pose[k], seq.transl[k]
        if seq.expression is not None and avatar.manifest["body"].get("kind") == "smplx":
            expression = seq.expression[k, : avatar.num_expressions]  # as commands/export.py's load_pose
    posed = pose_avatar(avatar, pose, betas=item.betas, expression=expression, transl=transl)
    return Gaussians(posed.means, posed.covariances, posed.colors, posed.opacities).transformed(item.transform)


def frame_gaussians(scene: Scene, assets: SceneAssets, frame: int, avatars=None, splats: bool = True) -> Gaussians:
    """Every Gaussian of scene ``frame``: the posed avatars (all, or the indices in ``avatars``), then
    the static splats, coloured as seen from the frame's camera. The order does not matter to a
    depth-sorted rasterization."""
    indices = range(len(scene.avatars)) if avatars is None else avatars
    parts = [avatar_gaussians(scene, assets, i, frame) for i in indices]
    if splats and assets.splats:
        camera_position = scene.camera_at(frame).position
        parts += [placed.seen_from(camera_position) for placed in assets.splats]
    return Gaussians.concatenate(parts)
