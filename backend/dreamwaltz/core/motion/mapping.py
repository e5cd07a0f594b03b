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

from ..errors import MotionError
from ..joints import JOINT_NAMES

ALIASES_PATH = Path(__file__).with_name("data") / "aliases.json"
SIDES = (("left", "l"), ("right", "r"))

# Joints without which a body cannot be driven; the rest stay at rest when the clip lacks them.
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "head")


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


def resolve_mapping(source_names, user=None) -> dict[str, str]:
    """The automatic mapping with ``user`` (dict or JSON path) laid over it."""
    mapping = auto_mapping(source_names)
    if user is None:
        return mapping
    for joint, bone in load_mapping(user).items():
        if not bone:
            mapping.pop(joint, None)
            continue
        for other in [j for j, b in mapping.items() if b == bone and j != joint]:
            del mapping[other]  # the user's choice wins: a bone drives one joint
        mapping[joint] = bone
    return mapping


HOW_TO_MAP = ('Write a JSON file such as {"left_knee": "YourKneeBone", "right_knee": ...} (keys: SMPL-X joint '
              "names, values: the clip's bone names; only the joints to add or fix) and pass it as mapping=PATH "
              "(Blender: Apply Motion > Bone Mapping; backend: --mapping PATH). save_mapping() writes the automatic "
              "mapping as a starting point.")


def check_mapping(mapping: dict[str, str], source_names, where: str = "the motion") -> None:
    unknown = {j: b for j, b in mapping.items() if j not in JOINT_NAMES or b not in source_names}
    if unknown:
        raise MotionError(f"{where}: the mapping names joints or bones that do not exist: {unknown}.",
                          "Keys must be SMPL-X joint names (e.g. left_knee), values bone names of the clip. " + HOW_TO_MAP)
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
    if not isinstance(data, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                             for k, v in data.items()):
        raise MotionError(f"{where} must be a JSON object mapping SMPL-X joint names to bone names.", HOW_TO_MAP)
    bad = [k for k in data if k not in JOINT_NAMES]
    if bad:
        raise MotionError(f"{where}: {', '.join(bad[:10])} {'is not an SMPL-X joint' if len(bad) == 1 else 'are not SMPL-X joints'}.",
                          f"Keys are SMPL-X joint names: {', '.join(JOINT_NAMES[:22])}, ... " + HOW_TO_MAP)
    return data
