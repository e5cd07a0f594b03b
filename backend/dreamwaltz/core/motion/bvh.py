"""A small BVH reader (pure numpy).

Written here because it must run inside Blender's Python (numpy only) and in the backend alike;
PyPI's BVH readers either need extra packages or return nested Python objects per frame that are
slow for 100k+ channels. Accepts any channel order, position channels on any joint, End Sites,
CRLF/tabs, and refuses empty, truncated or absurd files with a clear MotionError.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MotionError
from ..rotations import axis_angle_to_matrix
from .sequence import DEFAULT_MAX_FRAMES, check_frames, frame_ceiling

MAX_BVH_BYTES = 256 << 20  # text: at most ~128M numbers, 1 GiB as float64 (scaled with a raised frame ceiling)
MAX_HIERARCHY_BYTES = 4 << 20  # 1000 joints need ~200 kB
MAX_JOINTS = 1000
AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BVH:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J,3) rest offsets from the parent, in file units
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation"]
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> end-site offset
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (T, C)
    frame_time: float = 1.0 / 30.0

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def rest_positions(self) -> np.ndarray:
        """World positions of the joints in the rest pose (all rotations zero)."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def additive_positions(self) -> set[int]:
        """Joints below the root whose position channels hold a displacement from the OFFSET, not
        the position itself: the channels stay zero over the clip (under 0.1 % of the OFFSET) while
        the OFFSET is a real bone (MakeHuman writes six channels of zeros on its leg joints). By the BVH specification
        position channels replace the offset, which would fold those bones to nothing."""
        out, column = set(), 0
        for j, chans in enumerate(self.channels):
            cols = {name[0].upper(): column + i for i, name in enumerate(chans) if name[1:].lower() == "position"}
            column += len(chans)
            length = float(np.linalg.norm(self.offsets[j]))
            if self.parents[j] < 0 or len(cols) != 3 or length == 0 or self.frames.shape[0] == 0:
                continue
            values = self.frames[:, [cols["X"], cols["Y"], cols["Z"]]]
            if float(np.max(np.linalg.norm(values, axis=1))) < 1e-3 * length:
                out.add(j)
        return out

    def world_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per frame world rotations (T,J,3,3) and positions (T,J,3) by forward kinematics."""
        T, J = self.num_frames, len(self.names)
        local_R = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
        local_t = np.broadcast_to(self.offsets, (T, J, 3)).copy()
        column = 0
        additive = self.additive_positions()
        for j, chans in enumerate(self.channels):
            for name in chans:
                values = self.frames[:, column]
                column += 1
                axis = AXES[name[0].upper()]
                if name[1:].lower() == "position":
                    if j in additive:
                        local_t[:, j, axis] += values
                    else:
                        local_t[:, j, axis] = values  # position channels replace the offset
                else:
                    aa = np.zeros((T, 3))
                    aa[:, axis] = np.radians(values)
                    local_R[:, j] = local_R[:, j] @ axis_angle_to_matrix(aa)  # listed order = intrinsic order
        R = np.empty_like(local_R)
        P = np.empty_like(local_t)
        for j, p in enumerate(self.parents):
            if p < 0:
                R[:, j], P[:, j] = local_R[:, j], local_t[:, j]
            else:
                R[:, j] = R[:, p] @ local_R[:, j]
                P[:, j] = P[:, p] + np.einsum("tij,tj->ti", R[:, p], local_t[:, j])
        return R, P


class SampledClip:
    """A skeleton animation already sampled per frame, exposing what ``retarget_bvh`` reads from a
    ``BVH``: names, parents, rest positions, End Sites, and per frame each joint's world rotation
    relative to its rest and its world position. Made from an armature in Blender's scene
    (``dreamwaltz_blender/motion_source.py``) and from VRM animations (``vrma.py``)."""

    def __init__(self, names, parents, rest, end_sites, rotations, positions, fps):
        self.names = list(names)
        self.parents = list(parents)
        self._rest = np.asarray(rest, dtype=np.float64)  # (J,3) world heads at rest
        self.end_sites = end_sites  # joint -> rest offset of its tail (leaf bones only)
        self._R = rotations  # (T,J,3,3) world rotation relative to rest
        self._P = positions  # (T,J,3) world head positions
        self.frame_time = 1.0 / float(fps)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self._P.shape[0])

    def rest_positions(self) -> np.ndarray:
        return self._rest.copy()

    def world_transforms(self):
        return self._R.copy(), self._P.copy()


def read_bvh(path, max_frames=None) -> BVH:
    """A BVH file; its declared frame count is checked against the frame ceiling (``sequence``) from
    the head of the file, before the frames are read."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"'{path}' does not exist.", "Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise MotionError(f"'{path.name}' is empty.", "Export the motion again.")
    with open(path, "rb") as f:
        head = f.read(MAX_HIERARCHY_BYTES + 4096).decode("utf-8", errors="replace")
    declared = _declared_frames(head)
    channels = sum(int(n) for n in re.findall(r"(?i)\bCHANNELS\s+(\d{1,3})\b", head))
    if declared is not None and channels > 0:  # a clip without channels is refused for that (parse_bvh)
        check_frames(declared, f"'{path.name}'", max_frames, joints=len(_NAME_RE.findall(head)))
    limit = MAX_BVH_BYTES * max(1, -(-frame_ceiling(max_frames) // DEFAULT_MAX_FRAMES))
    if size > limit:
        raise MotionError(
            f"'{path.name}' is {size / 2**20:.0f} MB, over the {limit >> 20} MB limit.",
            "Split the clip into shorter takes.",
        )
    text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        return parse_bvh(text, max_frames)
    except MotionError as err:
        raise MotionError(f"'{path.name}': {err.message}", err.hint) from None


def _declared_frames(head: str):
    """The 'Frames: N' of a BVH's MOTION header if it is within ``head``, else None."""
    found = _MOTION_RE.search(head)
    match = re.match(r"\s*FRAMES\s*:?\s*(\d+)", head[found.end() :], re.IGNORECASE) if found else None
    return int(match.group(1)) if match else None


_MOTION_RE = re.compile(r"(?<!\S)MOTION(?!\S)", re.IGNORECASE)
_NAME_RE = re.compile(r"(?im)^([ \t]*(?:ROOT|JOINT))[ \t]+([^\r\n{]*?\S)[ \t]*(\{|\r?$)")
_MOTION_HEADER_RE = re.compile(r"\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")


def _check_rows(data: str, n_channels: int, n_frames: int, first_line: int) -> None:
    """Every motion row holds one number per channel of the hierarchy: a row of another length
    (a damaged file, or channels that disagree with the hierarchy) is refused naming its line."""
    row = 0
    lines = data.split("\n")
    for i, line in enumerate(lines):
        count = len(line.split())
        if count == 0:
            continue
        if count != n_channels and (count > n_channels or any(rest.strip() for rest in lines[i + 1 :])):
            number = first_line + i
            raise MotionError(
                f"line {number} holds {count} numbers, but the hierarchy declares {n_channels} channels per frame.",
                "The file is damaged or its hierarchy does not match its motion; export it again.",
            )
        row += 1
        if row >= n_frames:
            return


def parse_bvh(text: str, max_frames=None) -> BVH:
    # Only the hierarchy is split into Python tokens; the frames are parsed by numpy straight into
    # one float64 array (a token list of a big clip would take ~50 bytes per number).
    found = _MOTION_RE.search(text, 0, MAX_HIERARCHY_BYTES)
    hierarchy = text[: found.start()] if found else text[:MAX_HIERARCHY_BYTES]
    # Joint names may hold spaces (3ds Max's "Bip01 L Thigh"): the rest of the ROOT/JOINT line.
    spaced: list[str] = []

    def keep(match):
        spaced.append(match.group(2))
        return f"{match.group(1)} \x00{len(spaced) - 1}\x00{match.group(3)}"

    hierarchy = _NAME_RE.sub(keep, hierarchy)
    tokens = [
        spaced[int(t[1:-1])] if t.startswith("\x00") and t.endswith("\x00") and len(t) > 2 else t
        for t in hierarchy.split()
    ]
    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise MotionError("not a BVH file (it does not start with HIERARCHY).", "Choose a .bvh motion capture file.")
    names, parents, offsets, channels, end_sites = [], [], [], [], {}
    stack: list[int] = []
    i = 1

    def expect(word):
        nonlocal i
        if i >= len(tokens) or tokens[i].upper() != word:
            found = tokens[i] if i < len(tokens) else "end of file"
            raise MotionError(
                f"the hierarchy is malformed near token {i} (expected {word}, found {found!r}).",
                "The file is damaged; export it again.",
            )
        i += 1

    def floats(n):
        nonlocal i
        try:
            values = [float(t) for t in tokens[i : i + n]]
        except ValueError:
            raise MotionError(f"a number was expected near token {i}.", "The file is damaged.") from None
        if len(values) != n:
            raise MotionError("the file ends inside the hierarchy.", "The file is truncated.")
        if not all(np.isfinite(values)):
            raise MotionError(f"an OFFSET near token {i} is not a finite number.", "The file is damaged.")
        i += n
        return values

    while i < len(tokens):
        word = tokens[i].upper()
        if word in ("ROOT", "JOINT"):
            if word == "ROOT" and stack:
                raise MotionError("a second ROOT inside the hierarchy.", "The file is damaged.")
            if i + 1 >= len(tokens):
                raise MotionError("the file ends inside the hierarchy.", "The file is truncated.")
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
            expect("{")
            expect("OFFSET")
            offsets.append(floats(3))
            expect("CHANNELS")
            try:
                count = int(tokens[i])
            except (ValueError, IndexError):
                raise MotionError(f"bad CHANNELS count near token {i}.", "The file is damaged.") from None
            i += 1
            if not 0 <= count <= 6 or i + count > len(tokens):
                raise MotionError(
                    f"joint {names[-1]!r} declares {count} channels (CHANNELS takes 0 to 6).", "The file is damaged."
                )
            chans = tokens[i : i + count]
            for c in chans:
                if len(c) < 2 or c[0].upper() not in AXES or c[1:].lower() not in ("position", "rotation"):
                    raise MotionError(f"unknown channel {c!r} on joint {names[-1]!r}.", "The file is damaged.")
            channels.append(chans)
            i += count
            stack.append(len(names) - 1)
            if len(names) > MAX_JOINTS:
                raise MotionError(f"more than {MAX_JOINTS} joints.", "This is not a body motion capture.")
        elif word == "END":
            if not stack:
                raise MotionError("an End Site comes before any joint.", "The file is damaged; export it again.")
            i += 2  # "End Site"
            expect("{")
            expect("OFFSET")
            end_sites[stack[-1]] = np.array(floats(3))
            expect("}")
        elif word == "}":
            if not stack:
                raise MotionError("unbalanced braces in the hierarchy.", "The file is damaged.")
            stack.pop()
            i += 1
        else:
            raise MotionError(f"unexpected {tokens[i]!r} in the hierarchy.", "The file is damaged.")
    if not names:
        raise MotionError("the hierarchy has no joints.", "The file is damaged.")
    if stack:
        raise MotionError("the hierarchy is not closed.", "The file is truncated.")
    if found is None:
        raise MotionError("the MOTION section is missing.", "The file is truncated or damaged.")
    # MOTION: "Frames: N" "Frame Time: dt" then N rows.
    header = _MOTION_HEADER_RE.match(text, found.end())
    try:
        if header is None:
            raise ValueError
        words = header.groups()
        if (
            words[0].upper().rstrip(":") != "FRAMES"
            or words[2].upper() != "FRAME"
            or words[3].upper().rstrip(":") != "TIME"
        ):
            raise ValueError
        n_frames = int(words[1])
        frame_time = float(words[4])
    except ValueError:
        raise MotionError("the MOTION section is missing or malformed.", "The file is truncated or damaged.") from None
    if n_frames <= 0:
        raise MotionError("the clip has no frames.", "Export the motion again with its frames.")
    if not (1e-4 <= frame_time <= 10.0):  # also refuses 0, negative and NaN
        raise MotionError(
            f"'Frame Time' is {frame_time} s, not a plausible frame time (1e-4 to 10 s).",
            "The file is damaged; export the motion again.",
        )
    n_channels = sum(len(c) for c in channels)
    if n_channels == 0:
        raise MotionError(
            "no joint has channels, so the clip holds no motion.", "Export the motion again with its channels."
        )
    check_frames(n_frames, "the clip", max_frames, joints=len(names))
    data = text[header.end() :]
    expected = n_frames * n_channels
    _check_rows(data, n_channels, n_frames, text.count("\n", 0, header.end()) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns when the text does not end in a number
        try:
            values = np.fromstring(data, dtype=np.float64, sep=" ")  # bounded by the file's size
        except ValueError:
            values = np.zeros(0)
    if len(values) < expected:
        complete = len(values) // n_channels
        words = 0
        for _ in re.finditer(r"\S+", data):  # counted lazily: no token list
            words += 1
            if words >= expected:
                raise MotionError(
                    f"the motion data contains something that is not a number (after {len(values)} numbers).",
                    "The file is damaged.",
                )
        raise MotionError(
            f"the file declares {n_frames} frames but holds {complete}.",
            "It is truncated; export or download it again.",
        )
    frames = values[:expected].reshape(n_frames, n_channels)
    if not np.isfinite(frames).all():
        raise MotionError("the motion data contains NaN or infinite values.", "The file is damaged.")
    return BVH(names, parents, np.array(offsets, dtype=np.float64), channels, end_sites, frames, frame_time)
