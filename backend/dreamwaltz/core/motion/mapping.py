"""Which source bone drives which SMPL-X joint: name aliases of common rigs, editable mappings.

The aliases are data (``data/aliases.json``: CMU cgspeed/MotionBuilder, Mixamo, DAZ, 3ds Max
biped, MakeHuman, Unreal, Character Creator, Rigify), compared case-, prefix- and
separator-insensitively. A mapping is a dict ``{smplx_joint_name: source_bone_name}``;
``save_mapping``/``load_mapping`` write and read it as JSON. A user mapping is laid over the
automatic one, so a file only needs the joints the aliases got wrong or missed (a joint mapped
to ``null`` or ``""`` is left unmapped).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MotionError
from ..joints import JOINT_NAMES
from . import structure

ALIASES_PATH = Path(__file__).with_name("data") / "aliases.json"
SIDES = (("left", "l"), ("right", "r"))

# Joints without which a body cannot be driven; the rest stay at rest when the clip lacks them.
REQUIRED = (
    "pelvis",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "head",
)


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(ALIASES_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _prefix() -> re.Pattern:
    return re.compile("^(" + "|".join(_data()["prefixes"]) + ")", re.I)


def normalise(name: str) -> str:
    """'mixamorig:LeftUpLeg' -> 'leftupleg', 'Bip01 L Thigh' -> 'lthigh', 'UpLeg_L' -> 'uplegl'."""
    name = _prefix().sub("", name.strip())
    return re.sub(r"[^a-z0-9]", "", name.lower())


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[str, ...]]:
    data = _data()
    table: dict[str, list[str]] = {k: list(v) for k, v in data["centre"].items()}
    for side, s in SIDES:
        for joint, forms in data["sided"].items():
            table[f"{side}_{joint}"] = [f.format(side=side, s=s) for f in forms]
        biped = data["biped_fingers"]
        for finger, stems in data["finger_stems"].items():
            for i in (1, 2, 3):
                names = [form.format(side=side, s=s, stem=stem, i=i) for stem in stems for form in data["finger_forms"]]
                names.append(biped["forms"][i - 1].format(s=s, n=biped[finger]))
                if finger == "thumb" and i == 1:
                    names += [f.format(side=side, s=s) for f in data["single_thumb"]]
                table[f"{side}_{finger}{i}"] = names
    return {k: tuple(v) for k, v in table.items()}


def alias_table() -> dict[str, list[str]]:
    """SMPL-X joint -> candidate normalised source names, most specific first."""
    return {k: list(v) for k, v in _table().items()}


def auto_mapping(source_names) -> dict[str, str]:
    """Map SMPL-X joints to source bones by aliases; each source bone drives at most one joint."""
    by_norm: dict[str, str] = {}
    # Helper joints such as MakeHuman's "__Index1_L" normalise like the real ones: prefer the latter.
    for name in sorted(source_names, key=lambda n: n.startswith("_")):
        by_norm.setdefault(normalise(name), name)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    table = _table()
    for joint in JOINT_NAMES:
        for alias in table.get(joint, ()):
            source = by_norm.get(alias)
            if source is not None and source not in used:
                mapping[joint] = source
                used.add(source)
                break
    return mapping


@lru_cache(maxsize=1)
def _reverse() -> dict[str, str]:
    """Normalised alias -> SMPL-X joint, for fingers, eyes and jaw (first alias wins)."""
    out: dict[str, str] = {}
    for joint in JOINT_NAMES:
        if (
            joint in ("jaw",)
            or joint.endswith("_eye_smplhf")
            or any(f in joint for f in ("thumb", "index", "middle", "ring", "pinky"))
        ):
            for alias in _table().get(joint, ()):
                out.setdefault(alias, joint)
    return out


def _unsided(joint: str) -> str:
    return joint.split("_", 1)[1] if joint.startswith(("left_", "right_")) else joint


LIMBS = (("hip", "knee", "ankle", "foot"), ("collar", "shoulder", "elbow", "wrist"))


def _names_along_limbs(info: dict, mapping: dict, names) -> list[str]:
    """In a posed reference frame (the rest pose was not a standing human) a foot on tiptoe or an
    arm hanging from a leaning body makes the structure's joint choice along a limb ambiguous: the
    names break the tie, where they name the limb's joints in order along the very chain the
    structure found for that side. Changes ``mapping`` in place; returns notes."""
    sk = info["sk"]
    index = {n: i for i, n in enumerate(names)}
    by_name = auto_mapping(names)
    notes = []
    for side in ("left", "right"):
        for limb, anchor in zip(LIMBS, ("pelvis", "spine3")):
            keys = [f"{side}_{j}" for j in limb]
            named = {k: by_name[k] for k in keys if k in by_name}
            if not all(k in named for k in keys[1:3]) or anchor not in mapping:
                continue
            deepest = max((index[mapping[k]] for k in keys if k in mapping), key=lambda j: len(sk.chain_to_root(j)))
            chain = set(sk.path(index[mapping[anchor]], deepest)) | set(sk.descendants(deepest))
            order = [index[named[k]] for k in keys if k in named]
            if not all(j in chain for j in order) or any(
                b not in sk.chain_to_root(a) or a == b for a, b in zip(order[1:], order[:-1])
            ):
                continue
            changed = [k for k in keys if mapping.get(k) != named.get(k)]
            if not changed:
                continue
            for k in keys:
                mapping.pop(k, None)
            for other in [k for k, b in mapping.items() if b in named.values()]:
                del mapping[other]  # a bone drives one joint
            mapping.update(named)
            notes.append(f"{side} {'leg' if limb[0] == 'hip' else 'arm'}: the bone names decide along the limb.")
    return notes


def structural_mapping(names, parents, rest, end_sites=None, posed: bool = False) -> tuple[dict[str, str], list[str]]:
    """The mapping found from the hierarchy and rest pose (see ``structure``), with a report.
    ``posed``: ``rest`` is a frame of the clip, not its rest pose (names then break ties along limbs).

    Raises ``StructureError`` when the skeleton does not look like a standing human.
    """
    info = structure.analyse(names, parents, rest, end_sites)
    sk, up = info["sk"], info["up"]
    notes = []
    forward = info["forward"]
    if forward is None:  # no feet to say where the front is: the names' sides, else the convention
        by_name = auto_mapping(names)
        index = {n: i for i, n in enumerate(names)}
        if "left_hip" in by_name and "right_hip" in by_name:
            left = sk.rest[index[by_name["left_hip"]]] - sk.rest[index[by_name["right_hip"]]]
            left = left - (left @ up) * up
            forward = structure.AXES[int(np.argmax(structure.AXES @ np.cross(left, up)))]
            notes.append("No feet to tell the front: left and right taken from the bone names.")
        else:
            forward = structure.conventional_forward(up)
            notes.append("No feet and no side names: the clip is assumed to face the usual way for its up axis.")
    left = structure.left_axis(up, forward)
    mapping = structure.sided(info, left)
    if posed:
        notes += _names_along_limbs(info, mapping, names)
    used = set(mapping.values())
    reverse = _reverse()
    # Fingers: by name inside each hand, the side from the hand's place.
    for wrist, side in structure.limb_sides(info, left).items():
        for j in sk.descendants(wrist)[1:]:
            joint = reverse.get(normalise(names[j]))
            if joint is None or names[j] in used or names[j].startswith("_"):
                continue
            joint = f"{side}_{_unsided(joint)}" if joint.startswith(("left_", "right_")) else joint
            if joint in mapping or "eye" in joint or joint == "jaw":
                continue
            mapping[joint] = names[j]
            used.add(names[j])
    # Jaw and eyes: by name under the head, eyes' sides from their place.
    head = info["head"]
    for j in sorted(sk.descendants(head)[1:], key=lambda j: names[j].startswith("_")):
        joint = reverse.get(normalise(names[j]))
        if joint is None or names[j] in used:
            continue
        if joint.endswith("_eye_smplhf"):
            side = "left" if float((sk.rest[j] - sk.rest[head]) @ left) > 0 else "right"
            joint = f"{side}_eye_smplhf"
        elif joint != "jaw":
            continue
        if joint not in mapping:
            mapping[joint] = names[j]
            used.add(names[j])
    return mapping, notes


def build_mapping(
    source_names, user=None, parents=None, rest=None, end_sites=None, posed: bool = False
) -> tuple[dict[str, str], list[str]]:
    """The automatic mapping (structure first when the hierarchy is given, names otherwise) with
    ``user`` (dict or JSON path) laid over it, and a report of what mapped to what and why."""
    by_name = auto_mapping(source_names)
    how: dict[str, str] = {}
    notes: list[str] = []
    mapping = None
    if parents is not None and rest is not None:
        try:
            mapping, notes = structural_mapping(source_names, parents, rest, end_sites, posed)
            for joint, bone in mapping.items():
                named = [j for j, b in by_name.items() if b == bone]
                if by_name.get(joint) == bone:
                    how[joint] = "structure, the name agrees"
                elif named:
                    how[joint] = f"structure (the name alone suggests {named[0]})"
                else:
                    how[joint] = "structure"
        except structure.StructureError as err:
            notes.append(f"The skeleton's structure was not recognised ({err}): bones mapped by name only.")
            mapping = None
    if mapping is None:
        mapping = dict(by_name)
        how = {joint: "name" for joint in mapping}
    if user is not None:
        for joint, bone in load_mapping(user).items():
            if not bone:
                mapping.pop(joint, None)
                how.pop(joint, None)
                continue
            for other in [j for j, b in mapping.items() if b == bone and j != joint]:
                del mapping[other]  # the user's choice wins: a bone drives one joint
                how.pop(other, None)
            mapping[joint] = bone
            how[joint] = "your mapping"
    report = [f"{joint} <- {mapping[joint]} ({how.get(joint, '')})" for joint in JOINT_NAMES if joint in mapping]
    unmapped = [b for b in source_names if b not in set(mapping.values())]
    if unmapped:
        report.append(f"not used ({len(unmapped)}): {', '.join(unmapped[:40])}{' ...' if len(unmapped) > 40 else ''}")
    return mapping, notes + report


def resolve_mapping(source_names, user=None, parents=None, rest=None, end_sites=None) -> dict[str, str]:
    """The automatic mapping with ``user`` (dict or JSON path) laid over it."""
    return build_mapping(source_names, user, parents, rest, end_sites)[0]


HOW_TO_MAP = (
    'Write a JSON file such as {"left_knee": "YourKneeBone", "right_knee": ...} (keys: SMPL-X joint '
    "names, values: the clip's bone names; only the joints to add or fix) and pass it as mapping=PATH "
    "(Blender: Apply Motion > Bone Mapping; backend: --mapping PATH). save_mapping() writes the automatic "
    "mapping as a starting point."
)


def check_mapping(mapping: dict[str, str], source_names, where: str = "the motion") -> None:
    unknown = {j: b for j, b in mapping.items() if j not in JOINT_NAMES or b not in source_names}
    if unknown:
        raise MotionError(
            f"{where}: the mapping names joints or bones that do not exist: {unknown}.",
            "Keys must be SMPL-X joint names (e.g. left_knee), values bone names of the clip. " + HOW_TO_MAP,
        )
    missing = [j for j in REQUIRED if j not in mapping]
    if missing:
        unmapped = [b for b in source_names if b not in mapping.values()]
        raise MotionError(
            f"{where}: could not map these SMPL-X joints to the clip's skeleton: {', '.join(missing)}. "
            f"Unmapped source bones: {', '.join(unmapped[:60])}{' ...' if len(unmapped) > 60 else ''}.",
            HOW_TO_MAP,
        )


def save_mapping(mapping: dict[str, str], path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(dict(sorted(mapping.items())), indent=1), encoding="utf-8")
    return path


def load_mapping(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        data = dict(path_or_dict)
        where = "the mapping"
    else:
        where = f"the mapping file {path_or_dict}"
        try:
            data = json.loads(Path(path_or_dict).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MotionError(f"{where} cannot be read ({err}).", HOW_TO_MAP) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()
    ):
        raise MotionError(f"{where} must be a JSON object mapping SMPL-X joint names to bone names.", HOW_TO_MAP)
    bad = [k for k in data if k not in JOINT_NAMES]
    if bad:
        raise MotionError(
            f"{where}: {', '.join(bad[:10])} {'is not an SMPL-X joint' if len(bad) == 1 else 'are not SMPL-X joints'}.",
            f"Keys are SMPL-X joint names: {', '.join(JOINT_NAMES[:22])}, ... " + HOW_TO_MAP,
        )
    return data
