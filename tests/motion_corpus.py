"""Issue 17's test corpus: a bundled clip rewritten into other rigs' conventions with known truth.

``rewrite(bvh, spec, path)`` writes a new BVH whose joints follow the source's world motion:
each spec row is (new name, new parent, source joint it follows, extra) where extra may be
``("twist", fraction)`` (a twist helper part-way along the source bone, rotating about it),
``("end", offset)`` (an End Site), ``("leaf", offset)`` (a leaf at a fixed offset from the followed joint, rotating on its own: props,
head-top and toe-end markers) or ``("floor",)`` (a root on the floor under the followed joint).
Joints whose place is not rigid to their new parent (because source joints between them were
dropped) get position channels, so the rewritten clip moves exactly like the source.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from dreamwaltz.core.rotations import axis_angle_to_matrix


def euler_zyx(R: np.ndarray) -> np.ndarray:
    """(T,3,3) -> degrees (z, y, x) with R = Rz @ Ry @ Rx (BVH 'Zrotation Yrotation Xrotation')."""
    y = np.arcsin(np.clip(-R[:, 2, 0], -1.0, 1.0))
    z = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    x = np.arctan2(R[:, 2, 1], R[:, 2, 2])
    return np.degrees(np.stack([z, y, x], axis=1))


def _rotation_about(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return axis_angle_to_matrix(angles[:, None] * axis[None, :])


def rewrite(bvh, spec, path, axes=np.eye(3), scale=1.0, frames=slice(None), jump=None) -> Path:
    """Write ``spec`` (see the module docstring) as a BVH clip at ``path``.

    ``axes``: rotation applied to everything (e.g. Y-up -> Z-up); ``scale``: unit change;
    ``frames``: which source frames; ``jump``: (first, last, height in source units) lifts the
    whole body along a parabola over those frames (a jump).
    """
    R_all, P_all = bvh.world_transforms()
    R_src, P_src = R_all[frames], P_all[frames]
    T = R_src.shape[0]
    rest_src = bvh.rest_positions()
    index = {n: i for i, n in enumerate(bvh.names)}
    rng = np.random.default_rng(7)
    names = [row[0] for row in spec]
    new_index = {n: i for i, n in enumerate(names)}
    W = np.empty((len(spec), T, 3, 3))
    P = np.empty((len(spec), T, 3))
    rest = np.empty((len(spec), 3))
    end_sites = {}
    for k, row in enumerate(spec):
        name, parent, follows = row[:3]
        extra = row[3] if len(row) > 3 else None
        s = index[follows]
        W[k], P[k], rest[k] = R_src[:, s], P_src[:, s], rest_src[s]
        if extra is None:
            continue
        if extra[0] == "end":
            end_sites[k] = np.asarray(extra[1], dtype=np.float64)
            continue
        if extra[0] == "twist":
            child = bvh.parents.index(s)  # the source bone's first child gives its direction
            bone = rest_src[child] - rest_src[s]
            rest[k] = rest_src[s] + extra[1] * bone
            P[k] = P_src[:, s] + extra[1] * np.einsum("tij,j->ti", R_src[:, s], bone)
            W[k] = R_src[:, s] @ _rotation_about(bone, np.radians(40 * np.sin(np.linspace(0, 6, T))))
        elif extra[0] == "leaf":
            offset = np.asarray(extra[1], dtype=np.float64)
            rest[k] = rest_src[s] + offset
            P[k] = P_src[:, s] + np.einsum("tij,j->ti", R_src[:, s], offset)
            W[k] = R_src[:, s] @ axis_angle_to_matrix(rng.normal(scale=0.3, size=(T, 3)))
        elif extra[0] == "floor":
            floor = rest_src[:, 1].min()
            rest[k] = [rest_src[s, 0], floor, rest_src[s, 2]]
            P[k] = np.stack([P_src[:, s, 0], np.full(T, floor), P_src[:, s, 2]], axis=1)
            W[k] = np.eye(3)
        if len(extra) > 2:
            end_sites[k] = np.asarray(extra[2], dtype=np.float64)
    if jump is not None:
        first, last, height = jump
        t = np.arange(T)
        lift = np.where(
            (t >= first) & (t <= last), 4 * height * (t - first) * (last - t) / max(last - first, 1) ** 2, 0.0
        )
        P[:, :, 1] += lift[None, :]
    # Into the new axes and units.
    W = np.einsum("ij,ktjl,ml->ktim", axes, W, axes)
    P = np.einsum("ij,ktj->kti", axes, P) * scale
    rest = rest @ axes.T * scale
    end_sites = {k: axes @ v * scale for k, v in end_sites.items()}
    # Default end sites: leaves without one get the followed source joint's end site (or none).
    for k, row in enumerate(spec):
        if k not in end_sites and not any(r[1] == row[0] for r in spec):
            s = index[row[2]]
            if s in bvh.end_sites and (len(row) < 4):
                end_sites[k] = axes @ bvh.end_sites[s] * scale

    parents = [new_index[row[1]] if row[1] is not None else -1 for row in spec]
    columns, channels = [], []
    tol = 1e-6 * float(np.ptp(rest, axis=0).max())
    for k, p in enumerate(parents):
        if p < 0:
            local_R, local_t, offset = W[k], P[k], rest[k]
        else:
            local_R = np.transpose(W[p], (0, 2, 1)) @ W[k]
            local_t = np.einsum("tji,tj->ti", W[p], P[k] - P[p])
            offset = rest[k] - rest[p]
        moves = p < 0 or np.abs(local_t - offset).max() > tol
        chans = (["Xposition", "Yposition", "Zposition"] if moves else []) + ["Zrotation", "Yrotation", "Xrotation"]
        channels.append(chans)
        if moves:
            columns.append(local_t)
        columns.append(euler_zyx(local_R))
    data = np.concatenate(columns, axis=1)

    lines = ["HIERARCHY"]

    def emit(k, depth):
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parents[k] < 0 else 'JOINT'} {names[k]}")
        lines.append(pad + "{")
        offset = rest[k] - (rest[parents[k]] if parents[k] >= 0 else 0.0)
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        lines.append(f"{pad}  CHANNELS {len(channels[k])} {' '.join(channels[k])}")
        kids = [c for c, q in enumerate(parents) if q == k]
        for c in kids:
            emit(c, depth + 1)
        if not kids and k in end_sites:
            e = end_sites[k]
            lines.extend(
                [f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", pad + "  }"]
            )
        lines.append(pad + "}")

    emit(parents.index(-1), 0)
    # Channel columns were gathered in spec order; the file lists joints depth-first.
    order = []
    stack = [parents.index(-1)]
    while stack:
        k = stack.pop()
        order.append(k)
        stack.extend(reversed([c for c, q in enumerate(parents) if q == k]))
    starts = np.cumsum([0] + [len(c) for c in channels])
    data = np.concatenate([data[:, starts[k] : starts[k + 1]] for k in order], axis=1)
    step = frames.step if isinstance(frames, slice) and frames.step else 1
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {bvh.frame_time * step:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in data]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


# --------------------------------------------------------------------------- conventions
# Each convention: spec rows built from the cgspeed clip (CMU 12_03), and the truth
# {smplx joint: new bone name} for the body joints.


def _sided(rows_for_side):
    out = []
    for side, S, s in (("left", "Left", "L"), ("right", "Right", "R")):
        out += rows_for_side(side, S, s)
    return out


def convention(name: str):
    """(spec, truth) for one of CONVENTIONS, on cgspeed joint names."""
    if name == "identity":
        spec = [("Hips", None, "Hips")]
        spec += _sided(
            lambda side, S, s: [
                (f"{s}HipJoint", "Hips", f"{s}HipJoint"),
                (f"{S}UpLeg", f"{s}HipJoint", f"{S}UpLeg"),
                (f"{S}Leg", f"{S}UpLeg", f"{S}Leg"),
                (f"{S}Foot", f"{S}Leg", f"{S}Foot"),
                (f"{S}ToeBase", f"{S}Foot", f"{S}ToeBase"),
            ]
        )
        spec += [
            ("LowerBack", "Hips", "LowerBack"),
            ("Spine", "LowerBack", "Spine"),
            ("Spine1", "Spine", "Spine1"),
            ("Neck", "Spine1", "Neck"),
            ("Neck1", "Neck", "Neck1"),
            ("Head", "Neck1", "Head"),
        ]
        spec += _sided(
            lambda side, S, s: [
                (f"{S}Shoulder", "Spine1", f"{S}Shoulder"),
                (f"{S}Arm", f"{S}Shoulder", f"{S}Arm"),
                (f"{S}ForeArm", f"{S}Arm", f"{S}ForeArm"),
                (f"{S}Hand", f"{S}ForeArm", f"{S}Hand"),
                (f"{S}FingerBase", f"{S}Hand", f"{S}FingerBase"),
                (f"{S}HandIndex1", f"{S}FingerBase", f"{S}HandIndex1"),
                (f"{s}Thumb", f"{S}Hand", f"{s}Thumb"),
            ]
        )
        truth = {
            "pelvis": "Hips",
            "spine1": "LowerBack",
            "spine2": "Spine",
            "spine3": "Spine1",
            "neck": "Neck",
            "head": "Head",
        }
        for side, S in (("left", "Left"), ("right", "Right")):
            truth.update(
                {
                    f"{side}_hip": f"{S}UpLeg",
                    f"{side}_knee": f"{S}Leg",
                    f"{side}_ankle": f"{S}Foot",
                    f"{side}_foot": f"{S}ToeBase",
                    f"{side}_collar": f"{S}Shoulder",
                    f"{side}_shoulder": f"{S}Arm",
                    f"{side}_elbow": f"{S}ForeArm",
                    f"{side}_wrist": f"{S}Hand",
                }
            )
        return spec, truth
    if name == "acclaim":  # LeftShoulder is the upper arm, LeftCollar the clavicle, LeftHand a finger base
        rename = {
            "Hips": "Hips",
            "LowerBack": "Abdomen",
            "Spine": "Spine",
            "Spine1": "Chest",
            "Neck": "Neck",
            "Neck1": "Neck1",
            "Head": "Head",
        }
        for S, s in (("Left", "L"), ("Right", "R")):
            rename.update(
                {
                    f"{s}HipJoint": f"{S}HipJoint",
                    f"{S}UpLeg": f"{S}Hip",
                    f"{S}Leg": f"{S}Knee",
                    f"{S}Foot": f"{S}Ankle",
                    f"{S}ToeBase": f"{S}Toe",
                    f"{S}Shoulder": f"{S}Collar",
                    f"{S}Arm": f"{S}Shoulder",
                    f"{S}ForeArm": f"{S}Elbow",
                    f"{S}Hand": f"{S}Wrist",
                    f"{S}FingerBase": f"{S}Hand",
                    f"{S}HandIndex1": f"{S}Fingers",
                    f"{s}Thumb": f"{S}Thumb",
                }
            )
        return _renamed(rename)
    if name == "mixamo":
        spec = [
            ("mixamorig:Hips", None, "Hips"),
            ("mixamorig:Spine", "mixamorig:Hips", "LowerBack"),
            ("mixamorig:Spine1", "mixamorig:Spine", "Spine"),
            ("mixamorig:Spine2", "mixamorig:Spine1", "Spine1"),
            ("mixamorig:Neck", "mixamorig:Spine2", "Neck"),
            ("mixamorig:Head", "mixamorig:Neck", "Head"),
            ("mixamorig:HeadTop_End", "mixamorig:Head", "Head", ("leaf", (0.0, 2.5, 0.3))),
        ]
        spec += _sided(
            lambda side, S, s: [
                (f"mixamorig:{S}Shoulder", "mixamorig:Spine2", f"{S}Shoulder"),
                (f"mixamorig:{S}Arm", f"mixamorig:{S}Shoulder", f"{S}Arm"),
                (f"mixamorig:{S}ForeArm", f"mixamorig:{S}Arm", f"{S}ForeArm"),
                (f"mixamorig:{S}Hand", f"mixamorig:{S}ForeArm", f"{S}Hand"),
                (f"mixamorig:{S}HandIndex1", f"mixamorig:{S}Hand", f"{S}HandIndex1"),
                (f"mixamorig:{S}HandThumb1", f"mixamorig:{S}Hand", f"{s}Thumb"),
                (f"mixamorig:{S}UpLeg", "mixamorig:Hips", f"{S}UpLeg"),
                (f"mixamorig:{S}Leg", f"mixamorig:{S}UpLeg", f"{S}Leg"),
                (f"mixamorig:{S}Foot", f"mixamorig:{S}Leg", f"{S}Foot"),
                (f"mixamorig:{S}ToeBase", f"mixamorig:{S}Foot", f"{S}ToeBase"),
                (f"mixamorig:{S}Toe_End", f"mixamorig:{S}ToeBase", f"{S}ToeBase", ("leaf", (0.0, -0.1, 1.0))),
            ]
        )
        truth = _truth(
            lambda S, s: {
                "hip": f"mixamorig:{S}UpLeg",
                "knee": f"mixamorig:{S}Leg",
                "ankle": f"mixamorig:{S}Foot",
                "foot": f"mixamorig:{S}ToeBase",
                "collar": f"mixamorig:{S}Shoulder",
                "shoulder": f"mixamorig:{S}Arm",
                "elbow": f"mixamorig:{S}ForeArm",
                "wrist": f"mixamorig:{S}Hand",
            },
            {
                "pelvis": "mixamorig:Hips",
                "spine1": "mixamorig:Spine",
                "spine2": "mixamorig:Spine1",
                "spine3": "mixamorig:Spine2",
                "neck": "mixamorig:Neck",
                "head": "mixamorig:Head",
            },
        )
        return spec, truth
    if name == "mixamo_viewer_sides":  # names from the viewer's side: the character's left limbs say Right
        spec, truth = convention("mixamo")
        swap = lambda n: n.replace("Left", "@").replace("Right", "Left").replace("@", "Right")
        spec = [(swap(r[0]), swap(r[1]) if r[1] else None) + tuple(r[2:]) for r in spec]
        return spec, {k: swap(v) for k, v in truth.items()}
    if name == "biped":
        spec = [
            ("Bip01", None, "Hips", ("floor",)),
            ("Bip01 Pelvis", "Bip01", "Hips"),
            ("Bip01 Spine", "Bip01 Pelvis", "LowerBack"),
            ("Bip01 Spine1", "Bip01 Spine", "Spine"),
            ("Bip01 Spine2", "Bip01 Spine1", "Spine1"),
            ("Bip01 Neck", "Bip01 Spine2", "Neck"),
            ("Bip01 Head", "Bip01 Neck", "Head"),
        ]
        spec += _sided(
            lambda side, S, s: [
                (f"Bip01 {s} Thigh", "Bip01 Pelvis", f"{S}UpLeg"),
                (f"Bip01 {s} Calf", f"Bip01 {s} Thigh", f"{S}Leg"),
                (f"Bip01 {s} Foot", f"Bip01 {s} Calf", f"{S}Foot"),
                (f"Bip01 {s} Toe0", f"Bip01 {s} Foot", f"{S}ToeBase"),
                (f"Bip01 {s} Clavicle", "Bip01 Spine2", f"{S}Shoulder"),
                (f"Bip01 {s} UpperArm", f"Bip01 {s} Clavicle", f"{S}Arm"),
                (f"Bip01 {s} Forearm", f"Bip01 {s} UpperArm", f"{S}ForeArm"),
                (f"Bip01 {s} Hand", f"Bip01 {s} Forearm", f"{S}Hand"),
                (f"Bip01 {s} Finger1", f"Bip01 {s} Hand", f"{S}HandIndex1"),
                (f"Bip01 {s} Finger0", f"Bip01 {s} Hand", f"{s}Thumb"),
            ]
        )
        truth = _truth(
            lambda S, s: {
                "hip": f"Bip01 {s} Thigh",
                "knee": f"Bip01 {s} Calf",
                "ankle": f"Bip01 {s} Foot",
                "foot": f"Bip01 {s} Toe0",
                "collar": f"Bip01 {s} Clavicle",
                "shoulder": f"Bip01 {s} UpperArm",
                "elbow": f"Bip01 {s} Forearm",
                "wrist": f"Bip01 {s} Hand",
            },
            {
                "pelvis": "Bip01 Pelvis",
                "spine1": "Bip01 Spine",
                "spine2": "Bip01 Spine1",
                "spine3": "Bip01 Spine2",
                "neck": "Bip01 Neck",
                "head": "Bip01 Head",
            },
        )
        return spec, truth
    if name == "unreal":  # root on the floor, side twist leaves
        spec = [
            ("root", None, "Hips", ("floor",)),
            ("pelvis", "root", "Hips"),
            ("spine_01", "pelvis", "LowerBack"),
            ("spine_02", "spine_01", "Spine"),
            ("spine_03", "spine_02", "Spine1"),
            ("neck_01", "spine_03", "Neck"),
            ("head", "neck_01", "Head"),
        ]
        spec += _sided(
            lambda side, S, s: [
                (f"thigh_{s.lower()}", "pelvis", f"{S}UpLeg"),
                (f"calf_{s.lower()}", f"thigh_{s.lower()}", f"{S}Leg"),
                (f"thigh_twist_01_{s.lower()}", f"thigh_{s.lower()}", f"{S}UpLeg", ("twist", 0.5)),
                (f"foot_{s.lower()}", f"calf_{s.lower()}", f"{S}Foot"),
                (f"ball_{s.lower()}", f"foot_{s.lower()}", f"{S}ToeBase"),
                (f"clavicle_{s.lower()}", "spine_03", f"{S}Shoulder"),
                (f"upperarm_{s.lower()}", f"clavicle_{s.lower()}", f"{S}Arm"),
                (f"upperarm_twist_01_{s.lower()}", f"upperarm_{s.lower()}", f"{S}Arm", ("twist", 0.5)),
                (f"lowerarm_{s.lower()}", f"upperarm_{s.lower()}", f"{S}ForeArm"),
                (f"lowerarm_twist_01_{s.lower()}", f"lowerarm_{s.lower()}", f"{S}ForeArm", ("twist", 0.6)),
                (f"hand_{s.lower()}", f"lowerarm_{s.lower()}", f"{S}Hand"),
                (f"index_01_{s.lower()}", f"hand_{s.lower()}", f"{S}HandIndex1"),
                (f"thumb_01_{s.lower()}", f"hand_{s.lower()}", f"{s}Thumb"),
            ]
        )
        truth = _truth(
            lambda S, s: {
                "hip": f"thigh_{s.lower()}",
                "knee": f"calf_{s.lower()}",
                "ankle": f"foot_{s.lower()}",
                "foot": f"ball_{s.lower()}",
                "collar": f"clavicle_{s.lower()}",
                "shoulder": f"upperarm_{s.lower()}",
                "elbow": f"lowerarm_{s.lower()}",
                "wrist": f"hand_{s.lower()}",
            },
            {
                "pelvis": "pelvis",
                "spine1": "spine_01",
                "spine2": "spine_02",
                "spine3": "spine_03",
                "neck": "neck_01",
                "head": "head",
            },
        )
        return spec, truth
    if name == "minimal19":  # one chest joint, no collars, no hands
        spec = [
            ("Hips", None, "Hips"),
            ("Spine", "Hips", "Spine"),
            ("Chest", "Spine", "Spine1"),
            ("Neck", "Chest", "Neck1"),
            ("Head", "Neck", "Head"),
        ]
        spec += _sided(
            lambda side, S, s: [
                (f"{S}UpperArm", "Chest", f"{S}Arm"),
                (f"{S}LowerArm", f"{S}UpperArm", f"{S}ForeArm"),
                (f"{S}Hand", f"{S}LowerArm", f"{S}Hand", ("end", (1.5 if S == "Left" else -1.5, 0.0, 0.0))),
                (f"{S}UpLeg", "Hips", f"{S}UpLeg"),
                (f"{S}Leg", f"{S}UpLeg", f"{S}Leg"),
                (f"{S}Foot", f"{S}Leg", f"{S}Foot"),
                (f"{S}Toe", f"{S}Foot", f"{S}ToeBase"),
            ]
        )
        truth = _truth(
            lambda S, s: {
                "hip": f"{S}UpLeg",
                "knee": f"{S}Leg",
                "ankle": f"{S}Foot",
                "foot": f"{S}Toe",
                "shoulder": f"{S}UpperArm",
                "elbow": f"{S}LowerArm",
                "wrist": f"{S}Hand",
            },
            {"pelvis": "Hips", "spine1": "Spine", "spine3": "Chest", "neck": "Neck", "head": "Head"},
        )
        assert len(spec) == 19
        return spec, truth
    if name == "makehuman_old":
        rename = {
            "Hips": "hips",
            "LowerBack": "spine",
            "Spine": "spine1",
            "Spine1": "chest",
            "Neck": "neck",
            "Neck1": "neck1",
            "Head": "head",
        }
        for S, s in (("Left", "l"), ("Right", "r")):
            big = s.upper()
            rename.update(
                {
                    f"{big}HipJoint": f"{s}buttock",
                    f"{S}UpLeg": f"{s}hip",
                    f"{S}Leg": f"{s}knee",
                    f"{S}Foot": f"{s}ankle",
                    f"{S}ToeBase": f"{s}toe",
                    f"{S}Shoulder": f"{s}collar",
                    f"{S}Arm": f"{s}shoulder",
                    f"{S}ForeArm": f"{s}elbow",
                    f"{S}Hand": f"{s}wrist",
                    f"{S}FingerBase": f"{s}hand",
                    f"{S}HandIndex1": f"{s}fingers",
                    f"{big}Thumb": f"{s}thumb",
                }
            )
        return _renamed(rename)
    if name == "twist_and_prop":  # in-chain twist bones (DAZ Genesis style), side twist leaves, a prop
        spec, truth = convention("identity")
        out = []
        for row in spec:
            if row[0] in ("LeftForeArm", "RightForeArm"):
                S = row[0][:-7]
                out.append((f"{S}ArmTwist", f"{S}Arm", f"{S}Arm", ("twist", 0.5)))
                out.append((row[0], f"{S}ArmTwist", row[2]))
                out.append((f"{S}ForeArmRoll", row[0], row[2], ("twist", 0.5)))
                continue
            if row[0] in ("LeftHand", "RightHand"):
                out.append((row[0], f"{row[0][:-4]}ForeArmRoll", row[2]))
                continue
            out.append(row)
        out.append(("RightHandProp", "RightHand", "RightHand", ("leaf", (0.0, -0.5, 0.5), (0.0, 0.0, 4.0))))
        out.append(("LeftUpLegTwist", "LeftUpLeg", "LeftUpLeg", ("twist", 0.4)))
        return out, truth
    raise KeyError(name)


def _truth(per_side, centre):
    truth = dict(centre)
    for side, S, s in (("left", "Left", "L"), ("right", "Right", "R")):
        truth.update({f"{side}_{k}": v for k, v in per_side(S, s).items()})
    return truth


def _renamed(rename):
    spec, truth = convention("identity")
    spec = [(rename[r[0]], rename[r[1]] if r[1] else None) + tuple(r[2:]) for r in spec]
    return spec, {k: rename[v] for k, v in truth.items()}


CONVENTIONS = (
    "identity",
    "acclaim",
    "mixamo",
    "mixamo_viewer_sides",
    "biped",
    "unreal",
    "minimal19",
    "makehuman_old",
    "twist_and_prop",
)
ZUP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # Y-up -> Z-up: (x, y, z) -> (x, -z, y)


# ----------------------------------------------------------------------------- issue 32: refusals and huge files


def bvh_text(joints: list, frames: int = 3) -> str:
    """A BVH text from (name, parent index, offset, end-site offset or None), zero motion."""
    children = {i: [k for k, j in enumerate(joints) if j[1] == i] for i in range(len(joints))}

    def block(i, depth):
        name, parent, off, end = joints[i]
        pad = "  " * depth
        kind = "ROOT" if parent < 0 else "JOINT"
        chans = (
            "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
            if parent < 0
            else "3 Zrotation Xrotation Yrotation"
        )
        out = f"{pad}{kind} {name}\n{pad}{{\n{pad}  OFFSET {off[0]} {off[1]} {off[2]}\n{pad}  CHANNELS {chans}\n"
        for k in children[i]:
            out += block(k, depth + 1)
        if end is not None:
            out += f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET {end[0]} {end[1]} {end[2]}\n{pad}  }}\n"
        return out + f"{pad}}}\n"

    n = 3 + 3 * len(joints)
    rows = "\n".join(" ".join(["0"] * n) for _ in range(frames))
    return f"HIERARCHY\n{block(0, 0)}MOTION\nFrames: {frames}\nFrame Time: 0.0333333\n{rows}\n"


def quadruped():
    """A dog-like skeleton with 3ds Max Biped names: spine level, four legs to the floor, a tail."""
    j = [("Bip01 Pelvis", -1, (0, 60, 0), None)]

    def leg(parent, side, x, names):
        j.append((f"Bip01 {side} {names[0]}", parent, (x, -5, 0), None))
        j.append((f"Bip01 {side} {names[1]}", len(j) - 1, (0, -25, 0), None))
        j.append((f"Bip01 {side} {names[2]}", len(j) - 1, (0, -25, 0), (0, -5, 4)))

    leg(0, "L", 10, ("Thigh", "Calf", "Foot"))
    leg(0, "R", -10, ("Thigh", "Calf", "Foot"))
    j.append(("Bip01 Tail", 0, (0, 5, -10), (0, 0, -30)))
    j.append(("Bip01 Spine", 0, (0, 0, 20), None))
    j.append(("Bip01 Spine1", len(j) - 1, (0, 0, 30), None))
    chest = len(j) - 1
    leg(chest, "L", 10, ("UpperArm", "Forearm", "Hand"))
    leg(chest, "R", -10, ("UpperArm", "Forearm", "Hand"))
    j.append(("Bip01 Neck", chest, (0, 5, 10), None))
    j.append(("Bip01 Head", len(j) - 1, (0, 15, 15), (0, 5, 15)))
    return j


MILLION = 1_000_000


def million_frame_npz(path: Path) -> Path:
    """An AMASS-style SMPL-X .npz of 1,000,000 frames (poses (T,165) float32, 660 MB unpacked),
    written in chunks so the test itself never holds it."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (MILLION, 165)}
    chunk = np.zeros((10_000, 165), np.float32).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("poses.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for _ in range(MILLION // 10_000):
                f.write(chunk)
        zf.writestr("mocap_framerate.npy", _npy(np.array(30.0)))
    return path


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
