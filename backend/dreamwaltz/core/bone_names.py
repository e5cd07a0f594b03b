"""Bone names of exported rigs, by convention: what each engine's auto-mapping recognises.

- ``smplx``: the avatar's own joint names (``core.joints``).
- ``mixamo``: Mixamo's ``mixamorig:`` names. Unity's Humanoid avatar auto-maps them, and so do
  most retargeting tools (Blender add-ons, Cascadeur, Mixamo's own uploader).
- ``unreal``: the UE5 mannequin's names (``pelvis``, ``spine_01``, ``upperarm_l``, ``ball_l``,
  ``index_01_l`` ...) under a ``root`` bone at the origin, as the mannequin has: what the IK
  Retargeter's auto-mapping and the mannequin's retarget chains expect.
- ``vrm``: VRM 1.0's humanoid bone names (``hips``, ``leftUpperArm``, ``leftThumbMetacarpal`` ...);
  the VRM file's ``VRMC_vrm.humanoid`` maps them to nodes.

Retargeting reads all of these back (``core/motion/data/aliases.json``): a file exported under
any convention is a motion source too.
"""

from __future__ import annotations

from .joints import JOINT_NAMES

CONVENTIONS = ("smplx", "mixamo", "unreal", "vrm")
# Conventions with a root bone at the origin above the pelvis (its name).
ROOT_BONE = {"unreal": "root"}

_CENTRE = {
    # smplx: (mixamo, unreal, vrm)
    "pelvis": ("Hips", "pelvis", "hips"),
    "spine1": ("Spine", "spine_01", "spine"),
    "spine2": ("Spine1", "spine_02", "chest"),
    "spine3": ("Spine2", "spine_03", "upperChest"),
    "neck": ("Neck", "neck_01", "neck"),
    "head": ("Head", "head", "head"),
    "jaw": ("Jaw", "jaw", "jaw"),
}
_SIDED = {
    # smplx without its side: (mixamo with {S} Left/Right, unreal with {s} l/r, vrm with {side} left/right)
    "hip": ("{S}UpLeg", "thigh_{s}", "{side}UpperLeg"),
    "knee": ("{S}Leg", "calf_{s}", "{side}LowerLeg"),
    "ankle": ("{S}Foot", "foot_{s}", "{side}Foot"),
    "foot": ("{S}ToeBase", "ball_{s}", "{side}Toes"),
    "collar": ("{S}Shoulder", "clavicle_{s}", "{side}Shoulder"),
    "shoulder": ("{S}Arm", "upperarm_{s}", "{side}UpperArm"),
    "elbow": ("{S}ForeArm", "lowerarm_{s}", "{side}LowerArm"),
    "wrist": ("{S}Hand", "hand_{s}", "{side}Hand"),
    "eye_smplhf": ("{S}Eye", "eye_{s}", "{side}Eye"),
}
_VRM_SEGMENTS = {
    "thumb": ("Metacarpal", "Proximal", "Distal"),
    "index": ("Proximal", "Intermediate", "Distal"),
    "middle": ("Proximal", "Intermediate", "Distal"),
    "ring": ("Proximal", "Intermediate", "Distal"),
    "pinky": ("Proximal", "Intermediate", "Distal"),
}
_VRM_FINGER = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
_MIXAMO_FINGER = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Pinky"}


def _name(joint: str, convention: str) -> str:
    if convention == "smplx":
        return joint
    column = CONVENTIONS.index(convention) - 1
    if joint in _CENTRE:
        name = _CENTRE[joint][column]
    else:
        side, rest = joint.split("_", 1)
        S, s = side.capitalize(), side[0]
        if rest in _SIDED:
            name = _SIDED[rest][column].format(S=S, s=s, side=side)
        else:  # a finger joint: index1 ... thumb3
            finger, segment = rest[:-1], int(rest[-1])
            if convention == "mixamo":
                name = f"{S}Hand{_MIXAMO_FINGER[finger]}{segment}"
            elif convention == "unreal":
                name = f"{finger}_{segment:02d}_{s}"
            else:
                name = f"{side}{_VRM_FINGER[finger]}{_VRM_SEGMENTS[finger][segment - 1]}"
    return f"mixamorig:{name}" if convention == "mixamo" else name


def bone_names(convention: str = "smplx") -> list[str]:
    """The 55 joints' names in ``convention``, in the avatar's joint order."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown bone-name convention {convention!r}: one of {', '.join(CONVENTIONS)}")
    return [_name(j, convention) for j in JOINT_NAMES]


# VRM 1.0's required humanoid bones (VRMC_vrm humanoid.schema.json): a file missing one is invalid.
VRM_REQUIRED = (
    "hips", "spine", "head",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
    "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand",
)  # fmt: skip
