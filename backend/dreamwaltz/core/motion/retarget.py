"""Retarget a skeleton animation onto an SMPL-X avatar (pure numpy, shared by Blender and backend).

Method: bring the source into SMPL-X axes (up and left detected from its rest skeleton), take
each mapped source bone's world rotation relative to its rest, and give the matching SMPL-X joint
the same world rotation composed with a rest-alignment rotation (the one turning the avatar's rest
bone direction onto the source's). Local rotations follow from the world ones. Unmapped joints
keep their rest orientation relative to their parent. The root path is scaled by the leg-length
ratio and a ground pass keeps the soles on the floor at contact and never below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MotionError
from ..joints import JOINT_INDEX, JOINT_NAMES, PARENTS
from ..rotations import align as smallest_rotation
from ..rotations import matrix_to_axis_angle
from . import structure
from .bvh import BVH
from .mapping import build_mapping, check_mapping
from .sequence import MotionSequence

# The child whose direction defines a joint's bone, in preference order.
BONE_CHILD = {
    "left_hip": ["left_knee"],
    "right_hip": ["right_knee"],
    "left_knee": ["left_ankle"],
    "right_knee": ["right_ankle"],
    "left_ankle": ["left_foot"],
    "right_ankle": ["right_foot"],
    "spine1": ["spine2", "spine3", "neck", "head"],
    "spine2": ["spine3", "neck", "head"],
    "spine3": ["neck", "head"],
    "neck": ["head"],
    "left_collar": ["left_shoulder"],
    "right_collar": ["right_shoulder"],
    "left_shoulder": ["left_elbow"],
    "right_shoulder": ["right_elbow"],
    "left_elbow": ["left_wrist"],
    "right_elbow": ["right_wrist"],
    "left_wrist": ["left_middle1", "left_index1", "left_ring1"],
    "right_wrist": ["right_middle1", "right_index1", "right_ring1"],
}
for _side in ("left", "right"):
    for _finger in ("index", "middle", "ring", "pinky", "thumb"):
        BONE_CHILD[f"{_side}_{_finger}1"] = [f"{_side}_{_finger}2"]
        BONE_CHILD[f"{_side}_{_finger}2"] = [f"{_side}_{_finger}3"]
FEET = ("left_ankle", "left_foot", "right_ankle", "right_foot")
# Ground pass (ground_offsets): a sole lower than CONTACT_M above the floor and slower than
# CONTACT_SPEED (m/s, horizontal) is in contact; the per-frame offset is smoothed over SMOOTH_S
# seconds, then held within the limits (contact soles at most CONTACT_MAX_M up, never more than
# BELOW_MAX_M down).
CONTACT_M, CONTACT_SPEED = 0.08, 1.0
SMOOTH_S = 0.04
CONTACT_MAX_M, BELOW_MAX_M = 0.015, 0.005
BODY_SAMPLES = 800  # body mesh vertices sampled for keep_above_floor
DRIFT_S = 2.0  # the source's floor level is taken over this window (trackers drift; jumps are shorter)


@dataclass
class TargetSkeleton:
    rest_joints: np.ndarray  # (55,3) SMPL-X space at the avatar's shape
    sole_points: np.ndarray  # (P,3) rest positions of points that touch the ground
    sole_joints: np.ndarray  # (P,) the ankle or foot joint each sole point belongs to (its side)
    ground_y: float  # height of the ground under the rest pose
    # Skinning of the sole points, (P,K) joint indices and weights: the points then move as the
    # evaluated body's vertices do (linear blend skinning); without them, rigidly with sole_joints.
    skin_joints: np.ndarray | None = None
    skin_weights: np.ndarray | None = None
    # A sample of the whole body mesh's vertices (rest positions, skinning): no part of the posed
    # body (a hand on the floor, a knee) may go through the floor either.
    body_points: np.ndarray | None = None
    body_skin_joints: np.ndarray | None = None
    body_skin_weights: np.ndarray | None = None

    @classmethod
    def from_avatar(cls, avatar) -> TargetSkeleton:
        """Soles from the avatar's body mesh at its shape (``from_mesh``)."""
        a = avatar.arrays
        rest = a["body/template_vertices"] + a["body/shape_dirs"] @ a["rig/betas"].astype(np.float64)
        return cls.from_mesh(a["rig/rest_joints"], rest, a["body/skin_weights"])

    @classmethod
    def from_mesh(cls, rest_joints, vertices, weights) -> TargetSkeleton:
        """Soles from a skinned body mesh (SMPL-X space, ``weights`` (V,55)): per foot, the vertices
        skinned mostly to the ankle and foot that can touch the floor: the lowest ones (the sole),
        and, from the lower part of the foot, the rearmost (heel) and foremost (toe tip), which go
        lowest when the foot rolls. They keep their full skinning, so the floor pass sees the
        evaluated body's sole, not a point rigid to a joint."""
        rest_joints = np.asarray(rest_joints, dtype=np.float64)
        vertices = np.asarray(vertices, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        ground = float(vertices[:, 1].min())
        picked, sides = [], []
        for side in ("left", "right"):
            ids = np.array([JOINT_INDEX[f"{side}_ankle"], JOINT_INDEX[f"{side}_foot"]])
            own = np.nonzero(weights[:, ids].sum(axis=1) > 0.5)[0]
            if len(own) == 0:
                continue
            y = vertices[own, 1]
            low = own[np.argsort(y)[: max(4, len(own) // 20)]]
            lower = own[y <= y.min() + 0.35 * (y.max() - y.min())]
            k = max(2, len(own) // 50)
            order = lower[np.argsort(vertices[lower, 2])]
            chosen = np.unique(np.concatenate([low, order[:k], order[-k:]]))
            picked.append(chosen)
            sides.append(ids[np.argmax(weights[chosen][:, ids], axis=1)])
        if not picked:
            return cls.from_joints(rest_joints, ground_y=ground)
        chosen = np.concatenate(picked)
        body = np.unique(np.linspace(0, len(vertices) - 1, min(len(vertices), BODY_SAMPLES)).astype(int))
        return cls(
            rest_joints,
            vertices[chosen],
            np.concatenate(sides),
            ground,
            *_top_weights(weights[chosen]),
            vertices[body],
            *_top_weights(weights[body]),
        )

    @classmethod
    def coerce(cls, target) -> TargetSkeleton:
        """A TargetSkeleton from itself, an avatar (``H3GAAvatar``) or rest joints (55,3)."""
        if isinstance(target, cls):
            return target
        if hasattr(target, "arrays"):
            return cls.from_avatar(target)
        return cls.from_joints(target)

    @classmethod
    def from_joints(cls, rest_joints, ground_y: float | None = None) -> TargetSkeleton:
        """Without a mesh: soles a little below the ankles and toes."""
        rest_joints = np.asarray(rest_joints, dtype=np.float64)
        if rest_joints.shape != (55, 3) or not np.isfinite(rest_joints).all():
            raise MotionError(
                f"the target rest joints must be a finite (55, 3) array, not {rest_joints.shape}.",
                "Pass the avatar's rig/rest_joints (SMPL-X joint order, metres, Y up).",
            )
        idx = np.array([JOINT_INDEX[n] for n in FEET])
        if ground_y is None:
            ground_y = float(rest_joints[idx, 1].min() - 0.05)
        soles = rest_joints[idx].copy()
        soles[:, 1] = ground_y
        return cls(rest_joints, soles, idx, ground_y)


def _snap(v: np.ndarray) -> np.ndarray:
    axis = np.zeros(3)
    k = int(np.argmax(np.abs(v)))
    axis[k] = np.sign(v[k])
    return axis


def forward_kinematics_batch(local_R: np.ndarray, rest_joints: np.ndarray, transl: np.ndarray):
    """World rotations (T,55,3,3) and joint positions (T,55,3) in SMPL-X space."""
    T = local_R.shape[0]
    W = np.empty_like(local_R)
    P = np.empty((T, len(PARENTS), 3))
    for k, p in enumerate(PARENTS):
        if p < 0:
            W[:, k] = local_R[:, k]
            P[:, k] = rest_joints[k] + transl
        else:
            W[:, k] = W[:, p] @ local_R[:, k]
            P[:, k] = P[:, p] + np.einsum("tij,j->ti", W[:, p], rest_joints[k] - rest_joints[p])
    return W, P


def _top_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,55) skinning weights -> the four strongest joints per point and their weights (summing to 1)."""
    top = np.argsort(-weights, axis=1)[:, :4]
    top_w = np.take_along_axis(weights, top, axis=1)
    return top, top_w / np.maximum(top_w.sum(axis=1, keepdims=True), 1e-12)


def skinned_points(W, P, rest_joints, points, joints, weights) -> np.ndarray:
    """(T,N,3) rest ``points`` posed by linear blend skinning (``joints``/``weights`` (N,K)), as the
    body mesh's vertices are."""
    out = np.zeros((W.shape[0],) + points.shape)
    for slot in range(joints.shape[1]):  # one influence at a time: (T,N,3,3) at most
        j = joints[:, slot]
        out += weights[:, slot, None] * (P[:, j] + np.einsum("tpij,pj->tpi", W[:, j], points - rest_joints[j]))
    return out


def sole_points(W, P, target: TargetSkeleton) -> np.ndarray:
    """(T,P,3) the target's sole points where the posed body puts them (linear blend skinning with
    their own weights; rigid to their joint when the target has no skinning)."""
    if target.skin_joints is None:
        offsets = target.sole_points - target.rest_joints[target.sole_joints]
        return P[:, target.sole_joints] + np.einsum("tpij,pj->tpi", W[:, target.sole_joints], offsets)
    return skinned_points(W, P, target.rest_joints, target.sole_points, target.skin_joints, target.skin_weights)


def body_lowest(W, P, target: TargetSkeleton, chunk: int = 4096) -> np.ndarray | None:
    """(T,) height of the posed body mesh's lowest sampled vertex above the ground (None: no mesh)."""
    if target.body_points is None:
        return None
    out = np.empty(W.shape[0])
    for a in range(0, W.shape[0], chunk):  # bounded memory on long clips
        pts = skinned_points(
            W[a : a + chunk],
            P[a : a + chunk],
            target.rest_joints,
            target.body_points,
            target.body_skin_joints,
            target.body_skin_weights,
        )
        out[a : a + chunk] = pts[:, :, 1].min(axis=1) - target.ground_y
    return out


def keep_above_floor(lowest: np.ndarray, fps: float) -> np.ndarray:
    """(T,) upward shift that keeps the body's lowest point out of the floor, eased in and out."""
    lift = np.maximum(0.0, -lowest)
    if not lift.any():
        return lift
    r = max(1, int(np.ceil(3 * SMOOTH_S * fps)))
    held = np.max(np.lib.stride_tricks.sliding_window_view(np.pad(lift, r, mode="edge"), 2 * r + 1), axis=1)
    return np.maximum(_smooth(held, SMOOTH_S * fps), lift)


def sole_heights(W, P, target: TargetSkeleton) -> np.ndarray:
    """(T,) height of the lowest sole point above the ground."""
    return sole_points(W, P, target)[:, :, 1].min(axis=1) - target.ground_y


def foot_heights(W, P, target: TargetSkeleton) -> np.ndarray:
    """(T,2) height of the lowest sole point of the left and of the right foot."""
    heights = sole_points(W, P, target)[:, :, 1] - target.ground_y
    left = np.isin(target.sole_joints, [JOINT_INDEX["left_ankle"], JOINT_INDEX["left_foot"]])
    out = np.full((heights.shape[0], 2), np.inf)
    if left.any():
        out[:, 0] = heights[:, left].min(axis=1)
    if (~left).any():
        out[:, 1] = heights[:, ~left].min(axis=1)
    return out


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along time (edges held)."""
    if sigma < 0.5 or len(x) < 3:
        return x
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    return np.convolve(np.pad(x, radius, mode="edge"), kernel, mode="valid")


def foot_speeds(W, P, target: TargetSkeleton, fps: float) -> np.ndarray:
    """(T,2) horizontal speed (m/s) of the left and right soles (their mean point)."""
    points = sole_points(W, P, target)
    left = np.isin(target.sole_joints, [JOINT_INDEX["left_ankle"], JOINT_INDEX["left_foot"]])
    out = np.zeros((points.shape[0], 2))
    if points.shape[0] < 2:
        return out
    for f, sel in enumerate((left, ~left)):
        if sel.any():
            centre = points[:, sel][:, :, [0, 2]].mean(axis=1)
            step = np.linalg.norm(np.diff(centre, axis=0), axis=1) * fps
            out[:, f] = np.concatenate([step[:1], 0.5 * (step[1:] + step[:-1]), step[-1:]])
    return out


def _floor_level(lowest: np.ndarray, fps: float) -> np.ndarray:
    """(T,) the source's floor height around each frame: the 5th percentile of the lowest sole's
    heights within DRIFT_S seconds, evaluated every few frames and interpolated (bounded memory)."""
    T = len(lowest)
    half = max(1, int(round(DRIFT_S * fps / 2)))
    if T <= 2 * half + 1:
        return np.full(T, np.percentile(lowest, 5))
    stride = max(1, half // 4)
    centres = np.unique(np.concatenate([np.arange(0, T, stride), [T - 1]]))
    levels = [np.percentile(lowest[max(0, c - half) : c + half + 1], 5) for c in centres]
    return np.interp(np.arange(T), centres, levels)


def ground_offsets(feet: np.ndarray, speeds: np.ndarray | None = None, fps: float = 30.0) -> np.ndarray:
    """Vertical shift per frame: the supporting sole on the ground, never below it, flight untouched.

    ``feet`` (T,2) or (T,) sole heights, ``speeds`` (T,2) horizontal sole speeds. The source's own
    floor height is unknown (and video trackers let it drift by tens of centimetres over a clip), so
    the clip is first shifted to put its contact level on the ground: the low 5 % of the lowest
    sole's heights within DRIFT_S around each frame (a one-frame pose: that frame). A frame has
    contact where its lowest sole is under CONTACT_M, or a sole under 1.5 times that is slower than
    CONTACT_SPEED; on frames with a foot in
    contact the lowest sole is put on the ground; frames without (jumps, runs' flight phases)
    take the correction interpolated from the contacts around them, so they stay airborne. The
    correction is smoothed (no popping) and held within CONTACT_MAX_M above and BELOW_MAX_M below.
    """
    feet = np.asarray(feet, dtype=np.float64)
    if feet.ndim == 1:
        feet = feet[:, None]
    lowest = feet.min(axis=1)
    base = -_floor_level(lowest, fps)
    h = feet + base[:, None]
    low = h.min(axis=1)
    slow = np.ones_like(h, dtype=bool) if speeds is None else np.asarray(speeds) < CONTACT_SPEED
    # Low enough is contact whatever the speed (clips that slide their feet); slow feet count a little higher.
    contact = (low < CONTACT_M) | ((h < 1.5 * CONTACT_M) & slow).any(axis=1)
    frames = np.arange(len(low))
    if contact.any():
        offset = np.interp(frames, frames[contact], -low[contact])
    else:
        offset = np.zeros(len(low))
    offset = _smooth(offset, SMOOTH_S * fps)
    offset = np.where(contact, np.minimum(offset, CONTACT_MAX_M - low), offset)
    offset = np.maximum(offset, -BELOW_MAX_M - low)
    return base + offset


UP_AXES = {
    "x": (1.0, 0, 0),
    "y": (0, 1.0, 0),
    "z": (0, 0, 1.0),
    "-x": (-1.0, 0, 0),
    "-y": (0, -1.0, 0),
    "-z": (0, 0, -1.0),
}


def source_basis(rest: np.ndarray, mapping: dict, index: dict, up_axis: str = "auto") -> np.ndarray:
    """Rows: the source's left, up and forward axes (snapped), i.e. source -> SMPL-X axes.

    Up is head over feet and left is left hip/shoulder minus right in the reference pose, so Y-up,
    Z-up (and any other axis-aligned) captures all stand up facing +Z. ``up_axis`` ("y", "z", "-y",
    ...) overrides the detected up axis.
    """

    def at(joint):
        return rest[index[mapping[joint]]]

    if up_axis != "auto" and up_axis.lower() not in UP_AXES:
        raise MotionError(f"up_axis {up_axis!r} is not one of auto, {', '.join(UP_AXES)}.", "Choose one of them.")
    if up_axis == "auto":
        up = _snap(at("head") - 0.5 * (at("left_ankle") + at("right_ankle")))
    else:
        up = np.array(UP_AXES[up_axis.lower()])
    left = at("left_hip") - at("right_hip")
    if "left_shoulder" in mapping and "right_shoulder" in mapping:
        left = left + at("left_shoulder") - at("right_shoulder")
    left = _snap(left - (left @ up) * up)
    if abs(left @ up) > 0.5:
        raise MotionError(
            "the clip's skeleton has its left-right axis along its up axis.",
            "The bone mapping is probably wrong (left/right or head/feet swapped).",
        )
    forward = np.cross(left, up)
    return np.stack([left, up, forward])


# Plausible source units (metres per file unit), named for the notes only: the retargeting
# itself needs no units, because the root path is scaled by the leg-length ratio.
UNITS = (("metres", 1.0), ("decimetres", 0.1), ("inches", 0.0254), ("centimetres", 0.01), ("millimetres", 0.001))


def guess_units(height: float) -> str:
    """The unit in which a standing skeleton's head-over-ankle height is nearest 1.45 m."""
    if height <= 0:
        return "unknown units"
    return min(UNITS, key=lambda u: abs(np.log(height * u[1] / 1.45)))[0]


def _align_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,3),(T,3) -> (T,3,3): per frame the smallest rotation turning a onto b."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    K = np.zeros(a.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    R = np.eye(3) + K + K @ K / np.maximum(1.0 + c, 1e-12)[..., None, None]
    flip = c < -1 + 1e-9
    for t in np.nonzero(flip)[0]:  # exactly opposite: rare, do those frames one by one
        R[t] = smallest_rotation(a[t], b[t])
    return R


def _bone_target(
    name: str,
    k: int,
    s: int,
    mapping: dict,
    index: dict,
    ends: dict,
    rest: np.ndarray,
    P_src: np.ndarray,
    R_src: np.ndarray,
    min_len: float,
):
    """The point that gives SMPL-X joint ``name``'s bone its direction, in the source and target.

    The first mapped child (in BONE_CHILD order) at a real distance from the joint; zero-length
    source bones (cgspeed's Neck sits on Spine1) fall through to the next candidate; a joint with
    no mapped child uses the source bone's End Site. Returns (source rest point, source points per
    frame, target rest joint index) or None.
    """
    for child in BONE_CHILD.get(name, []):
        if child in mapping:
            c = index[mapping[child]]
            if np.linalg.norm(rest[c] - rest[s]) > min_len:
                return rest[c], P_src[:, c], JOINT_INDEX[child]
    if s in ends and BONE_CHILD.get(name) and np.linalg.norm(ends[s]) > min_len:
        end = ends[s]  # in the reference pose; R_src is relative to it
        return rest[s] + end, P_src[:, s] + R_src[:, s] @ end, JOINT_INDEX[BONE_CHILD[name][0]]
    return None


def reference_pose(bvh: BVH, R_src: np.ndarray, P_src: np.ndarray):
    """The pose the skeleton is analysed and aligned in: the rest pose when it looks like a standing
    human, else the first of a few frames that does (a video tracker's or a capture suite's zero
    pose may have every bone along X).

    Returns (joint positions (J,3), world rotations (J,3,3), End Sites {joint: offset in that pose},
    label, reasons); label is None (and the rest pose returned) when no pose looks human.
    """
    J = len(bvh.names)
    rest = bvh.rest_positions()
    reasons = []
    try:
        structure.analyse(bvh.names, bvh.parents, rest, bvh.end_sites)
        return rest, np.broadcast_to(np.eye(3), (J, 3, 3)), dict(bvh.end_sites), "rest pose", reasons
    except structure.StructureError as err:
        reasons.append(f"rest pose: {err}")
    T = P_src.shape[0]
    for t in dict.fromkeys(np.linspace(0, T - 1, min(T, 9)).round().astype(int).tolist()):
        ends = {j: R_src[t, j] @ e for j, e in bvh.end_sites.items()}
        try:
            structure.analyse(bvh.names, bvh.parents, P_src[t], ends)
        except structure.StructureError as err:
            reasons.append(f"frame {t + 1}: {err}")
            continue
        return P_src[t] - P_src[t, 0] + rest[0], R_src[t], ends, f"frame {t + 1}", reasons
    return rest, np.broadcast_to(np.eye(3), (J, 3, 3)), dict(bvh.end_sites), None, reasons


def retarget_bvh(
    bvh: BVH,
    target: TargetSkeleton,
    mapping=None,
    in_place: bool = False,
    scale: float = 1.0,
    keep_on_ground: bool = True,
    source: str = "",
    up_axis: str = "auto",
) -> MotionSequence:
    """A parsed BVH clip as an SMPL-X sequence for ``target`` (see the module docstring);
    ``up_axis`` overrides the detected up axis of the source ("y", "z", "-y", ...)."""
    where = source or "the clip"
    index = {name: i for i, name in enumerate(bvh.names)}
    R_src, P_src = bvh.world_transforms()
    rest, ref_R, ends, label, reasons = reference_pose(bvh, R_src, P_src)
    if label is None and mapping is None:
        raise MotionError(
            f"{where}: its skeleton does not look like a standing human ({'; '.join(reasons[:2])}), "
            "so it is not retargeted (quadrupeds, creatures and props are not supported).",
            "If it is a humanoid, give a bone mapping (mapping=PATH, see docs/MOTION.md).",
        )
    mapping, report = build_mapping(bvh.names, mapping, bvh.parents, rest, ends, posed=label not in (None, "rest pose"))
    check_mapping(mapping, bvh.names, where)
    if label not in (None, "rest pose"):
        report.insert(0, f"The rest pose does not look like a standing human: {label} is the reference pose.")
    # Rotations relative to the reference pose (the rest pose when it is a standing human).
    R_src = R_src @ np.transpose(ref_R, (0, 2, 1))[None]
    B = source_basis(rest, mapping, index, up_axis)
    T = bvh.num_frames
    rest_joints = target.rest_joints

    def leg(points, hip, knee, ankle):
        return np.linalg.norm(points[knee] - points[hip]) + np.linalg.norm(points[ankle] - points[knee])

    src_leg = np.mean(
        [
            leg(rest, index[mapping[f"{s}_hip"]], index[mapping[f"{s}_knee"]], index[mapping[f"{s}_ankle"]])
            for s in ("left", "right")
        ]
    )
    tgt_leg = np.mean(
        [
            leg(rest_joints, JOINT_INDEX[f"{s}_hip"], JOINT_INDEX[f"{s}_knee"], JOINT_INDEX[f"{s}_ankle"])
            for s in ("left", "right")
        ]
    )
    if not src_leg > 1e-9:
        raise MotionError(f"{where}: its legs have no length in the rest pose.", "The skeleton is damaged.")
    min_len = 1e-3 * src_leg  # shorter source bones have no usable direction

    # World rotation of each SMPL-X joint = the source bone's rotation relative to its rest
    # (delta, in SMPL-X axes) after the rest alignment A (avatar rest bone -> source rest bone),
    # then a swing C that puts the bone exactly on the source's direction when unmapped source
    # joints sit in between (cgspeed's FingerBase, Neck1, DAZ twist bones): those joints rotate
    # the bone too, and only the composed world positions know by how much.
    world = np.empty((T, 55, 3, 3))
    align = {}
    for k, name in enumerate(JOINT_NAMES):
        parent = PARENTS[k]
        if name not in mapping:
            world[:, k] = world[:, parent] if parent >= 0 else np.eye(3)
            align[k] = align.get(parent, np.eye(3))
            continue
        s = index[mapping[name]]
        delta = B @ R_src[:, s] @ B.T
        A = align.get(parent, np.eye(3)) if parent >= 0 else np.eye(3)
        bone = _bone_target(name, k, s, mapping, index, ends, rest, P_src, R_src, min_len)
        if bone is None:
            world[:, k] = delta @ A
        else:
            rest_point, points, child = bone
            d_src = B @ (rest_point - rest[s])
            d_tgt = rest_joints[child] - rest_joints[k]
            if np.linalg.norm(d_tgt) > 1e-9:
                A = smallest_rotation(d_tgt, d_src)
            moved = (points - P_src[:, s]) @ B.T  # the source bone's direction per frame
            swing = _align_batch(np.einsum("tij,j->ti", delta, d_src), moved)
            world[:, k] = swing @ delta @ A
        align[k] = A
    local = np.empty_like(world)
    local[:, 0] = world[:, 0]
    for k in range(1, 55):
        local[:, k] = np.transpose(world[:, PARENTS[k]], (0, 2, 1)) @ world[:, k]

    # Root path scaled by the leg-length ratio (and the user's scale).
    # The source's leg length as its frames have it (position channels on every joint may disagree
    # with the hierarchy's offsets, even in their units): the median over the clip.
    sides = [[index[mapping[f"{s}_{j}"]] for j in ("hip", "knee", "ankle")] for s in ("left", "right")]
    moving = np.median(
        [
            np.linalg.norm(P_src[:, k] - P_src[:, h], axis=-1) + np.linalg.norm(P_src[:, a] - P_src[:, k], axis=-1)
            for h, k, a in sides
        ],
        axis=1,
    ).mean()
    ratio = tgt_leg / (moving if moving > 1e-9 else src_leg) * float(scale)
    root = P_src[:, index[mapping["pelvis"]]] @ B.T
    hips = [index[mapping["left_hip"]], index[mapping["right_hip"]]]
    if np.linalg.norm(rest[index[mapping["pelvis"]]] - rest[hips].mean(axis=0)) > 0.5 * src_leg:
        # The source's pelvis bone is far from its hip joints (a rig whose hips bone sits on the
        # floor): the avatar's hips follow the source's hips, its pelvis above them as in its rest.
        between = rest_joints[[JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]].mean(axis=0) - rest_joints[0]
        root = P_src[:, hips].mean(axis=1) @ B.T - np.einsum("tij,j->ti", world[:, 0], between) / ratio
        report.insert(0, "The pelvis bone is far from the hip joints: the root follows the hip joints.")
    transl = (root - np.array([root[0, 0], root[:, 1].mean(), root[0, 2]])) * ratio
    if in_place:
        transl[:, [0, 2]] = 0.0
    if keep_on_ground:
        W, P = forward_kinematics_batch(local, rest_joints, transl)
        offsets = ground_offsets(foot_heights(W, P, target), foot_speeds(W, P, target, bvh.fps), bvh.fps)
        transl[:, 1] += offsets
        lowest = body_lowest(W, P, target)
        if lowest is not None:  # a hand, a knee or a leaning body: no part of the mesh under the floor
            transl[:, 1] += keep_above_floor(lowest + offsets, bvh.fps)
    height = float(
        (
            rest[index[mapping["head"]]]
            - 0.5 * (rest[index[mapping["left_ankle"]]] + rest[index[mapping["right_ankle"]]])
        )
        @ B[1]
    )
    notes = [
        f"Source skeleton: {height:.3g} file units from ankles to head (looks like {guess_units(height)}); "
        f"root motion scaled by the leg-length ratio {ratio:.4g}."
    ]
    if not any(f"left_{f}1" in mapping for f in ("index", "middle", "thumb")):
        notes.append("The clip has no finger bones: fingers stay at rest.")
    return MotionSequence(
        bvh.fps, matrix_to_axis_angle(local), transl, None, mapping, source, notes + report, B, float(ratio)
    )


def resample(seq: MotionSequence, fps: float, max_frames=None) -> MotionSequence:
    """The same motion at another frame rate (slerp rotations, lerp translation), same duration."""
    from ..rotations import axis_angle_to_quaternion, quaternion_slerp, quaternion_to_axis_angle
    from .sequence import check_fps, check_frames

    fps = check_fps(fps, "the frame rate to resample to")
    check_fps(seq.fps, f"{seq.source or 'the motion'}: its frame rate")
    if abs(fps - seq.fps) < 1e-6 or seq.num_frames < 2:
        return seq
    duration = (seq.num_frames - 1) / seq.fps
    where = f"{seq.source or 'the motion'} resampled from {seq.fps:g} to {fps:g} fps"
    check_frames(int(round(duration * fps)) + 1, where, max_frames)  # bound the allocation before making it
    times = np.arange(int(round(duration * fps)) + 1) / fps
    src = np.minimum(times * seq.fps, seq.num_frames - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, seq.num_frames - 1)
    t = src - i0
    q = axis_angle_to_quaternion(seq.full_pose)
    pose = quaternion_to_axis_angle(quaternion_slerp(q[i0], q[i1], np.broadcast_to(t[:, None], (len(t), 55))))
    lerp = lambda x: x[i0] + (x[i1] - x[i0]) * t.reshape((-1,) + (1,) * (x.ndim - 1))
    expression = lerp(seq.expression) if seq.expression is not None else None
    return MotionSequence(fps, pose, lerp(seq.transl), expression, seq.mapping, seq.source, seq.notes)
