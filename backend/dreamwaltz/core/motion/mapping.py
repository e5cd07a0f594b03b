"""Which source bone drives which SMPL-X joint: name aliases of common rigs, editable mappings.

A mapping is a dict ``{smplx_joint_name: source_bone_name}``; ``save_mapping``/``load_mapping``
write and read it as JSON so a user can fix or extend the automatic one for an unknown rig.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import MotionError
from ..joints import JOINT_NAMES

# Normalised names (lower case, no separators, rig prefixes removed); "{s}" = l/left, "{S}" = r/right
# substituted per side. CMU cgspeed/MotionBuilder, DAZ, 3ds Max biped, Mixamo, MakeHuman, Unreal,
# Rigify-style names.
_SIDED = {
    "hip": ["{side}upleg", "{side}thigh", "{s}thigh", "thigh{s}", "upleg{s}", "{side}hip", "{s}hip", "hip{s}", "thigh{side}"],
    "knee": ["{side}leg", "{side}shin", "{s}shin", "shin{s}", "loleg{s}", "{side}knee", "{s}knee", "{side}calf", "calf{s}", "{s}calf"],
    "ankle": ["{side}foot", "{s}foot", "foot{s}", "{side}ankle", "{s}ankle", "ankle{s}"],
    "foot": ["{side}toebase", "{side}toe", "{s}toe", "toe{s}", "toe0{s}", "{side}toes", "{s}toe0", "ball{s}", "{side}ball", "{s}toes"],
    "collar": ["{side}shoulder", "{s}collar", "clavicle{s}", "{side}clavicle", "{s}clavicle", "{side}collar", "shoulder{s}"],
    "shoulder": ["{side}arm", "{s}shldr", "uparm{s}", "{side}upperarm", "{s}upperarm", "upperarm{s}", "{s}uparm", "{side}uparm"],
    "elbow": ["{side}forearm", "{s}forearm", "loarm{s}", "forearm{s}", "{side}lowerarm", "lowerarm{s}", "{s}loarm", "{side}elbow"],
    "wrist": ["{side}hand", "{s}hand", "hand{s}", "{side}wrist", "{s}wrist"],
    "eye_smplhf": ["{side}eye", "eye{s}", "{s}eye"],
}
_FINGERS = {"index": ["index", "handindex", "finger1"], "middle": ["mid", "middle", "handmiddle", "finger2"],
            "ring": ["ring", "handring", "finger3"], "pinky": ["pinky", "handpinky", "finger4", "little"],
            "thumb": ["thumb", "handthumb", "finger0"]}
_CENTRE = {
    "pelvis": ["hips", "hip", "pelvis", "root", "bip01", "bip001"],
    "spine1": ["lowerback", "abdomen", "spine", "spine1", "spine01", "abdomenlower"],
    "spine2": ["spine1", "spine2", "spine02", "abdomenupper", "abdomen2"],
    "spine3": ["spine2", "spine3", "chest", "spine03", "chestupper", "upperchest"],
    "neck": ["neck", "neck1", "neck01", "necklower"],
    "head": ["head"],
    "jaw": ["jaw", "lowerjaw"],
}
# A name can mean different SMPL-X joints in different rigs (Mixamo "Spine" is spine1, cgspeed
# "Spine" is spine2): resolution keeps the first joint in this order that claims a bone.
_PREFIX = re.compile(r"^(mixamorig\d*[:_]|bip0?0?1[ _]|cc_base_|def[-_]|orgbone[-_]|jnt[_-]?)", re.I)


def normalise(name: str) -> str:
    name = _PREFIX.sub("", name.strip())
    return re.sub(r"[^a-z0-9]", "", name.lower())


def alias_table() -> dict[str, list[str]]:
    """SMPL-X joint -> candidate normalised source names, most specific first."""
    table = {k: list(v) for k, v in _CENTRE.items()}
    for side, s, S in (("left", "l", "L"), ("right", "r", "R")):
        for joint, forms in _SIDED.items():
            table[f"{side}_{joint}"] = [f.format(side=side, s=s) for f in forms]
        for finger, stems in _FINGERS.items():
            for i in (1, 2, 3):
                names = []
                for stem in stems:
                    names += [f"{side}{stem}{i}", f"{s}{stem}{i}", f"{stem}{i}{s}", f"{side}hand{stem}{i}", f"{stem}{i}{side}",
                              f"{side}{stem}0{i}", f"{stem}0{i}{s}"]
                table[f"{side}_{finger}{i}"] = names
    return table


def auto_mapping(source_names: list[str]) -> dict[str, str]:
    """Map SMPL-X joints to source bones by aliases; each source bone drives at most one joint."""
    by_norm: dict[str, str] = {}
    # Helper joints such as MakeHuman's "__Index1_L" normalise like the real ones: prefer the latter.
    for name in sorted(source_names, key=lambda n: n.startswith("_")):
        by_norm.setdefault(normalise(name), name)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    table = alias_table()
    for joint in JOINT_NAMES:
        for alias in table.get(joint, []):
            source = by_norm.get(alias)
            if source is not None and source not in used:
                mapping[joint] = source
                used.add(source)
                break
    return mapping


REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "head")


def check_mapping(mapping: dict[str, str], source_names: list[str], where: str = "the motion") -> None:
    unknown = {j: b for j, b in mapping.items() if j not in JOINT_NAMES or b not in source_names}
    if unknown:
        raise MotionError(f"{where}: the mapping names bones that do not exist: {unknown}.",
                          "Fix the mapping file: keys are SMPL-X joint names, values are bone names of the clip.")
    missing = [j for j in REQUIRED if j not in mapping]
    if missing:
        unmapped = [b for b in source_names if b not in mapping.values()]
        raise MotionError(
            f"{where}: could not map these SMPL-X joints to the clip's skeleton: {', '.join(missing)}. "
            f"Unmapped source bones: {', '.join(unmapped[:40])}.",
            "Save the automatic mapping with save_mapping(), add the missing joints as "
            '{"left_knee": "YourKneeBone", ...} and pass it as mapping=PATH.',
        )


def save_mapping(mapping: dict[str, str], path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(dict(sorted(mapping.items())), indent=1), encoding="utf-8")
    return path


def load_mapping(path_or_dict) -> dict[str, str]:
    if isinstance(path_or_dict, dict):
        return dict(path_or_dict)
    try:
        data = json.loads(Path(path_or_dict).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise MotionError(f"the mapping file {path_or_dict} cannot be read ({err}).", "It must be a JSON object.") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise MotionError(f"the mapping file {path_or_dict} must map SMPL-X joint names to bone names.", "")
    return data
