"""Bone mapping from the skeleton's structure: hierarchy and rest pose first, names second.

Pure numpy (Blender's Python has no scipy). The body is found the same way on any rig:

1. **Up** is the axis (of +-X, +-Y, +-Z) along which the two lowest extremities sit on different
   long branches at the same height (the feet), among the axes the skeleton is tall along.
2. **Legs**: the two lowest tips; their paths meet at the pelvis. Along each leg the hip is the
   first joint whose bone points down (a side bone from the pelvis centre, e.g. cgspeed's
   ``LHipJoint`` or DAZ's ``lButtock``, does not), the ankle the last joint reached by a downward
   bone, the knee the joint that splits hip-ankle most evenly, the foot (SMPL-X's toe joint) the
   next joint after the ankle.
3. **Head**: the highest tip left; **arms**: the two tips whose branches leave the pelvis-head path
   with the longest reach. The arms' attachment is the chest (``spine3``); spine joints in between
   are ``spine1``/``spine2`` by order; the neck is the first joint of the head branch, the head
   the common ancestor of the tips above it.
4. Along an arm the wrist is the first joint that branches (fingers) or ends the chain; the
   shoulder the first joint as far from the body's mid-line as the hip joints are (a clavicle
   starts near the mid-line: it is the first link, before the long upper arm, whatever it is
   called); the elbow the joint that splits shoulder-wrist most evenly; the collar the joint
   before the shoulder.
5. **Left/right** from geometry: forward is where the toes point, left = up x forward.

Names only break ties and tell twist helpers (``...Twist``/``...Roll``) from the joints they sit
between; fingers, jaw and eyes are recognised by name inside the hand/head found above, with the
side from geometry. Everything else (twist bones, props, face rigs) is left unmapped: harmless.
"""

from __future__ import annotations

import re

import numpy as np

AXES = np.concatenate([np.eye(3), -np.eye(3)])
DOWNWARD = 0.7  # cos to "down" above which a bone counts as hanging down (A-pose legs: 0.98)
TWIST_RE = re.compile(r"twist|roll|helper|share", re.I)


class StructureError(Exception):
    """The hierarchy does not look like a standing human; the caller falls back to names."""


class Skeleton:
    """Hierarchy helpers over (names, parents, rest positions, end sites)."""

    def __init__(self, names, parents, rest, end_sites=None):
        self.names = list(names)
        self.parents = [int(p) for p in parents]
        self.rest = np.asarray(rest, dtype=np.float64)
        self.n = len(self.names)
        self.children = [[] for _ in range(self.n)]
        for j, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(j)
        # Several root bones (an FBX rig's IK and foot-roll controls beside its skeleton): the body
        # is the hierarchy with the most joints; the others' tips are not extremities of the body.
        roots = [j for j, p in enumerate(self.parents) if p < 0]
        root_of = {}
        for r in roots:
            stack = [r]
            while stack:
                k = stack.pop()
                root_of[k] = r
                stack.extend(self.children[k])
        main = max(roots, key=lambda r: sum(1 for v in root_of.values() if v == r)) if roots else -1
        self.tip_point = {}
        for j in range(self.n):
            if not self.children[j] and root_of.get(j, main) == main:
                end = (end_sites or {}).get(j)
                self.tip_point[j] = self.rest[j] + (np.asarray(end) if end is not None else 0.0)
        body = [j for j in range(self.n) if root_of.get(j, main) == main]
        points = np.concatenate([self.rest[body], np.array(list(self.tip_point.values())).reshape(-1, 3)])
        self.extent = points.max(axis=0) - points.min(axis=0)
        self.size = float(np.linalg.norm(self.extent))
        if not self.size > 0:
            raise StructureError("the rest pose has no extent")

    def chain_to_root(self, j):
        out = []
        while j >= 0:
            out.append(j)
            j = self.parents[j]
        return out

    def path(self, a, b):
        """Joints from a to b through their common ancestor (both included)."""
        up_a, up_b = self.chain_to_root(a), self.chain_to_root(b)
        common = next((x for x in up_a if x in set(up_b)), None)
        if common is None:
            raise StructureError("its joints are not one hierarchy (several roots)")
        return up_a[: up_a.index(common) + 1] + up_b[: up_b.index(common)][::-1]

    def lca(self, joints):
        chains = [self.chain_to_root(j) for j in joints]
        shared = set(chains[0]).intersection(*map(set, chains[1:]))
        return next((x for x in chains[0] if x in shared), None)  # None: in different hierarchies

    def descendants(self, j):
        out, stack = [], [j]
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(self.children[k])
        return out

    def tips_under(self, j):
        return [k for k in self.descendants(j) if k in self.tip_point]

    def reach(self, a, tip) -> float:
        """How far ``tip``'s end lies from joint ``a`` along the chain (bone lengths, whatever the pose)."""
        return self.path_length(self.path(a, tip)) + float(np.linalg.norm(self.tip_point[tip] - self.rest[tip]))

    def path_length(self, joints):
        pts = self.rest[joints]
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) if len(joints) > 1 else 0.0


def _two_lowest(sk: Skeleton, up: np.ndarray, tips):
    """The lowest tip and the lowest one on another long branch, or None."""
    order = sorted(tips, key=lambda t: float(sk.tip_point[t] @ up))
    first = order[0]
    for other in order[1:]:
        meet = sk.lca([first, other])
        if meet is not None and sk.reach(meet, first) > 0.2 * sk.size and sk.reach(meet, other) > 0.2 * sk.size:
            return first, other, meet
    return None


def find_up(sk: Skeleton) -> np.ndarray:
    tips = list(sk.tip_point)
    if len(tips) < 3:
        raise StructureError("fewer than three extremities")
    best, best_score = None, np.inf
    for axis in AXES:
        k = int(np.argmax(np.abs(axis)))
        if sk.extent[k] < 0.6 * sk.extent.max():
            continue
        found = _two_lowest(sk, axis, tips)
        if found is None:
            continue
        a, b, _ = found
        score = abs(float((sk.tip_point[a] - sk.tip_point[b]) @ axis)) / sk.extent[k]
        # The feet are the lowest points by far; a hand at the end of a T-pose arm ties with the
        # other hand only across the body, where the head is the next extreme: prefer axes whose
        # lowest pair is well below the root.
        score -= 0.1 * float((sk.rest[0] - sk.tip_point[a]) @ axis) / sk.extent[k]
        if score < best_score:
            best, best_score = axis, score
    if best is None:
        raise StructureError("no two legs found")
    return best


def _distinct_next(sk, chain, i):
    """The first joint after chain[i] at a distinct position (or None)."""
    eps = 0.01 * sk.size
    for j in chain[i + 1 :]:
        if np.linalg.norm(sk.rest[j] - sk.rest[chain[i]]) > eps:
            return j
    return None


def _is_twist(sk, j) -> bool:
    return bool(TWIST_RE.search(sk.names[j]))


def _split(sk, chain, lo, hi):
    """The joint strictly between chain[lo] and chain[hi] that splits them most evenly."""
    best, best_val = None, -1.0
    for i in range(lo + 1, hi):
        j = chain[i]
        if _is_twist(sk, j):
            continue
        val = min(np.linalg.norm(sk.rest[j] - sk.rest[chain[lo]]), np.linalg.norm(sk.rest[chain[hi]] - sk.rest[j]))
        if val > best_val + 1e-9 * sk.size:
            best, best_val = i, val
    return best


def _ankle_by_length(sk, chain, hip):
    """The ankle of a bent leg (a running stride as the rest pose): the last joint from which the
    rest of the foot is at least 12 % of the leg's length along the bones (thigh and shin are
    the long bones, the foot and toes the short ones)."""
    tip = chain[-1]
    total = sk.reach(chain[hip], tip)
    found = None
    for i in range(hip + 2, len(chain)):
        if sk.reach(chain[i], tip) >= 0.12 * total:
            found = i
    return found


def map_leg(sk: Skeleton, chain, up, pelvis_point=None) -> dict:
    """chain: joints from below the pelvis down to the foot tip.

    A joint sitting on the pelvis (CMU's zero-length ``LHipJoint``, whose bone is the side bone out
    to the real hip) is never the hip, even when that side bone slopes down.
    """
    down = -up
    eps = 0.01 * sk.size
    hip = ankle = None
    for i, j in enumerate(chain):
        nxt = _distinct_next(sk, chain, i)
        if nxt is None:
            continue
        d = sk.rest[nxt] - sk.rest[j]
        cos = float(d @ down) / np.linalg.norm(d)
        on_pelvis = pelvis_point is not None and np.linalg.norm(sk.rest[j] - pelvis_point) < eps
        if cos > DOWNWARD and hip is None and not _is_twist(sk, j) and not on_pelvis:
            hip = i
        if cos > DOWNWARD and hip is not None:
            ankle = chain.index(nxt)
    if hip is not None and (ankle is None or ankle <= hip + 1):
        ankle = _ankle_by_length(sk, chain, hip)
    if hip is None or ankle is None or ankle <= hip + 1:
        raise StructureError("a leg without a thigh and a shin")
    # The ankle: the first of the joints at the end of the last downward bone (zero-length helpers after it).
    knee = _split(sk, chain, hip, ankle)
    if knee is None:
        raise StructureError("a leg without a knee")
    out = {"hip": chain[hip], "knee": chain[knee], "ankle": chain[ankle]}
    for j in chain[ankle + 1 :]:
        if np.linalg.norm(sk.rest[j] - sk.rest[chain[ankle]]) > eps and not _is_twist(sk, j):
            out["foot"] = j
            break
    return out


def _branches(sk, j, main_child):
    """Children of j other than main_child that are not twist/helper leaves lying on j's bone."""
    out = []
    for c in sk.children[j]:
        if c == main_child:
            continue
        if _is_twist(sk, c) and not sk.children[c]:
            continue
        out.append(c)
    return out


def map_arm(sk: Skeleton, chain, up, axis_point, hip_width) -> dict:
    """chain: joints from the chest's child out to the arm's tip.

    ``axis_point``: a point on the body's vertical mid-line; ``hip_width``: how far the hip joints
    sit from it. The shoulder is the first joint as far out as the hips (a clavicle starts near
    the mid-line, however long it is), the elbow the joint that splits shoulder-wrist most evenly.
    """
    eps = 0.01 * sk.size
    wrist = None
    for i, j in enumerate(chain):
        if i < 2:
            continue
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        if nxt is None or _branches(sk, j, nxt):
            wrist = i
            break
    if wrist is None:
        main = [j for j in chain if not _is_twist(sk, j)]
        if len(main) == 2 and main[-1] in sk.tip_point and sk.reach(main[-1], main[-1]) > eps:
            # An upper arm and a forearm ending in its End Site (a robot's two-bone arm): no hand.
            return {"shoulder": main[0], "elbow": main[1]}
        raise StructureError("an arm without a hand")
    # A zero-length joint at the wrist (cgspeed's FingerBase) is not the wrist: the first one is.
    while wrist > 0 and np.linalg.norm(sk.rest[chain[wrist]] - sk.rest[chain[wrist - 1]]) < eps:
        wrist -= 1

    def out_from_axis(j):
        d = sk.rest[j] - axis_point
        return float(np.linalg.norm(d - (d @ up) * up))

    best = None
    for i in range(0, wrist - 1):
        if not _is_twist(sk, chain[i]) and out_from_axis(chain[i]) >= 0.8 * hip_width:
            best = i
            break
    if best is None:
        raise StructureError("an arm without an upper arm")
    elbow = _split(sk, chain, best, wrist)
    if elbow is None:
        raise StructureError("an arm without an elbow")
    out = {"shoulder": chain[best], "elbow": chain[elbow], "wrist": chain[wrist]}
    # The collar: the latest joint before the shoulder at a real distance from it (helpers that sit
    # nearer the spine with the same job, like MakeHuman's __Clavicle_L, lose to the deeper one).
    far = [(i, np.linalg.norm(sk.rest[chain[best]] - sk.rest[chain[i]])) for i in range(best)]
    far = [(i, d) for i, d in far if d > eps and not _is_twist(sk, chain[i])]
    if far:
        longest = max(d for _, d in far)
        out["collar"] = chain[max(i for i, d in far if d >= 0.5 * longest)]
    return out


def _farthest_tip(sk, start, tips, anchor):
    return max(tips, key=lambda t: float(np.linalg.norm(sk.tip_point[t] - anchor)))


def _check_standing(sk, up, pelvis, chest, head_tip, arm_tips, feet) -> None:
    """A standing human's head is above its pelvis and chest, and its hands
    hang well above its feet; a quadruped's (or a creature's) does not, whatever its bones are called."""
    points = np.concatenate([sk.rest, np.array(list(sk.tip_point.values()))]) @ up
    height = float(np.ptp(points))
    body = sk.tip_point[head_tip] - sk.rest[pelvis]
    rise = float(body @ up)
    if rise < 0.25 * height or rise < 0.7 * float(np.linalg.norm(body)):
        raise StructureError("its head is not above its pelvis (the body is not upright)")
    if float(sk.tip_point[head_tip] @ up) < float(sk.rest[chest] @ up):
        raise StructureError("no head above the chest")
    floor = min(float(sk.tip_point[f] @ up) for f in feet)
    if any(float(sk.tip_point[t] @ up) - floor < 0.15 * height for t in arm_tips):
        raise StructureError("its front limbs reach the floor")


def analyse(names, parents, rest, end_sites=None) -> dict:
    """{'joints': {smplx_body_joint: source index}, 'up', 'forward', 'hands': {side: wrist}, 'head'}."""
    sk = Skeleton(names, parents, rest, end_sites)
    up = find_up(sk)
    tips = list(sk.tip_point)
    found = _two_lowest(sk, up, tips)
    foot_a, foot_b, pelvis = found
    legs = []
    for foot in (foot_a, foot_b):
        path = sk.path(pelvis, foot)[1:]
        legs.append(map_leg(sk, path, up, sk.rest[pelvis]))
    leg_joints = set()
    for foot in (foot_a, foot_b):
        leg_joints.update(sk.path(pelvis, foot)[1:])
        top = sk.path(pelvis, foot)[1]
        leg_joints.update(sk.descendants(top))
    rest_tips = [t for t in tips if t not in leg_joints]
    if len(rest_tips) < 3:
        raise StructureError("no arms and head")
    # Head: the highest remaining tip; arms: the two longest branches off the pelvis-head path.
    head_tip = max(rest_tips, key=lambda t: float(sk.tip_point[t] @ up))
    axis_path = sk.path(pelvis, head_tip)
    on_axis = set(axis_path)

    def attach(t):
        j = t
        while j not in on_axis:
            j = sk.parents[j]
            if j < 0:
                return None
        return j

    reach = {}
    for t in rest_tips:
        a = attach(t)
        if a is None or a == t:
            continue
        reach[t] = (a, float(np.linalg.norm(sk.tip_point[t] - sk.rest[a])))
    arm_tips = []
    for t in sorted(reach, key=lambda t: -reach[t][1]):
        # Long enough to be an arm: measured along the chain, so arms hanging down (the classic
        # Biovision rest pose) count as much as arms held out.
        if sk.reach(reach[t][0], t) < 0.2 * sk.size:
            continue
        if all(sk.lca([t, other]) in on_axis for other in arm_tips):
            arm_tips.append(t)
        if len(arm_tips) == 2:
            break
    if len(arm_tips) < 2:
        raise StructureError("fewer than two arms")
    chest = max((reach[t][0] for t in arm_tips), key=axis_path.index)
    _check_standing(sk, up, pelvis, chest, head_tip, arm_tips, (foot_a, foot_b))
    arms = []
    axis_point = sk.rest[pelvis]
    hip_width = np.mean([np.linalg.norm((d := sk.rest[leg["hip"]] - axis_point) - (d @ up) * up) for leg in legs])
    for t in arm_tips:
        a = reach[t][0]
        path = sk.path(a, t)[1:]
        arms.append(map_arm(sk, path, up, axis_point, hip_width))
    if axis_path.index(chest) >= len(axis_path) - 1:
        raise StructureError("no head above the arms")
    # Spine: joints between pelvis and chest on the path, ancestors of the pelvis left out.
    pelvis_ancestors = set(sk.chain_to_root(pelvis))
    spine = [j for j in axis_path[1 : axis_path.index(chest)] if j not in pelvis_ancestors]
    joints = {"pelvis": pelvis, "spine3": chest}
    for name, j in zip(("spine1", "spine2"), spine[:1] + spine[-1:] if len(spine) > 2 else spine):
        joints[name] = j
    neck_path = axis_path[axis_path.index(chest) + 1 :]
    head_root = neck_path[0]
    above = sk.tips_under(head_root)
    head = sk.lca(above)
    if not sk.children[head] and head != head_root:
        # A single chain ending in a head-top marker (Mixamo's HeadTop_End): the head joint is the
        # one nearest the SMPL-X head height above the chest (16 % of the body height).
        height = float(np.ptp(np.concatenate([sk.rest, np.array(list(sk.tip_point.values()))]) @ up))
        candidates = neck_path[1 : neck_path.index(head) + 1] if head in neck_path else [head]
        head = min(candidates, key=lambda j: abs(float((sk.rest[j] - sk.rest[chest]) @ up) - 0.16 * height))
    if head != head_root:
        joints["neck"] = head_root
    joints["head"] = head

    # Facing: where the toes point (ankle -> foot tip), else a conventional front for the up axis.
    forward = np.zeros(3)
    for leg, foot in zip(legs, (foot_a, foot_b)):
        d = sk.tip_point[foot] - sk.rest[leg["ankle"]]
        forward += d - (d @ up) * up
    if np.linalg.norm(forward) < 0.02 * sk.size:
        forward = None
    else:
        forward = AXES[int(np.argmax(AXES @ forward))]
    return {
        "sk": sk,
        "up": up,
        "forward": forward,
        "legs": legs,
        "arms": arms,
        "joints": joints,
        "head": head,
        "head_root": head_root,
    }


def sided(info: dict, left: np.ndarray) -> dict:
    """Body joints with sides: the leg/arm on the +left side of the body is the left one."""
    sk = info["sk"]
    out = {k: sk.names[v] for k, v in info["joints"].items()}
    for limbs, key in ((info["legs"], "knee"), (info["arms"], "elbow")):
        pos = [float(sk.rest[limb[key]] @ left) for limb in limbs]
        if abs(pos[0] - pos[1]) < 1e-9 * sk.size:
            raise StructureError("limbs on no side")
        order = ("left", "right") if pos[0] > pos[1] else ("right", "left")
        for side, limb in zip(order, limbs):
            for joint, j in limb.items():
                out[f"{side}_{joint}"] = sk.names[j]
    return out


def limb_sides(info: dict, left: np.ndarray) -> dict:
    """{wrist source index: side} for naming fingers."""
    sk = info["sk"]
    arms = info["arms"]
    pos = [float(sk.rest[a["elbow"]] @ left) for a in arms]
    order = ("left", "right") if pos[0] > pos[1] else ("right", "left")
    return {arm["wrist"]: side for side, arm in zip(order, arms) if "wrist" in arm}


def conventional_forward(up: np.ndarray) -> np.ndarray:
    """BVH's convention: Y-up clips face +Z; Z-up ones (Blender, 3ds Max, MakeHuman) face -Y."""
    k = int(np.argmax(np.abs(up)))
    return {1: np.array([0.0, 0, 1]), 2: np.array([0.0, -1, 0]), 0: np.array([0.0, 0, 1])}[k]


def left_axis(up: np.ndarray, forward: np.ndarray | None) -> np.ndarray:
    return np.cross(up, forward)
