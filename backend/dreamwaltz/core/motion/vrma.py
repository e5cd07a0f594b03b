"""VRM animations (``.vrma``: glTF binary with the ``VRMC_vrm_animation`` extension), read as a
motion source: the extension names each node's VRM humanoid bone, so the bone mapping needs no
guessing (``VRM_TO_SMPLX``).

Pure numpy and json (it must run inside Blender's Python). The GLB container, accessors and
animation samplers are read here because no library in Blender's Python reads glTF animation
into arrays; only float accessors, LINEAR/STEP interpolation (CUBICSPLINE keeps its values, not
its tangents) and node TRS are needed. The rest pose is the nodes' own (the VRMA specification's
T-pose); every frame gives each node's world rotation relative to it and its world position, the
clip that ``retarget_bvh`` reads.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import MotionError
from ..rotations import quaternion_slerp, quaternion_to_matrix
from .bvh import SampledClip
from .sequence import check_frames

MAX_VRMA_BYTES = 256 << 20
SAMPLE_FPS = 60.0
COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}

_FINGERS = {"Thumb": ("Metacarpal", "Proximal", "Distal"), "Index": None, "Middle": None, "Ring": None, "Little": None}
VRM_TO_SMPLX = {
    "hips": "pelvis",
    "spine": "spine1",
    "chest": "spine2",
    "upperChest": "spine3",
    "neck": "neck",
    "head": "head",
    "jaw": "jaw",
    "leftEye": "left_eye_smplhf",
    "rightEye": "right_eye_smplhf",
}
for _side in ("left", "right"):
    _S = _side.capitalize()
    VRM_TO_SMPLX.update(
        {
            f"{_side}UpperLeg": f"{_side}_hip",
            f"{_side}LowerLeg": f"{_side}_knee",
            f"{_side}Foot": f"{_side}_ankle",
            f"{_side}Toes": f"{_side}_foot",
            f"{_side}Shoulder": f"{_side}_collar",
            f"{_side}UpperArm": f"{_side}_shoulder",
            f"{_side}LowerArm": f"{_side}_elbow",
            f"{_side}Hand": f"{_side}_wrist",
        }
    )
    for _finger, _segments in _FINGERS.items():
        smplx = "pinky" if _finger == "Little" else _finger.lower()
        for _i, _segment in enumerate(_segments or ("Proximal", "Intermediate", "Distal"), 1):
            VRM_TO_SMPLX[f"{_side}{_finger}{_segment}"] = f"{_side}_{smplx}{_i}"


def _bad(where: str, what: str) -> MotionError:
    return MotionError(f"{where}: {what}", "Export the VRM animation again (.vrma, VRMC_vrm_animation 1.0).")


def _glb(path: Path, where: str) -> tuple[dict, bytes]:
    data = path.read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise _bad(where, "not a glTF binary (a .vrma starts with 'glTF').")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2 or length > len(data):
        raise _bad(
            where, f"glTF version {version}, length {length} of {len(data)} bytes: not a readable glTF 2.0 file."
        )
    chunks, pos = {}, 12
    while pos + 8 <= length:
        size, kind = struct.unpack_from("<I4s", data, pos)
        chunks.setdefault(kind, data[pos + 8 : pos + 8 + size])
        pos += 8 + size
    if b"JSON" not in chunks:
        raise _bad(where, "it has no JSON chunk.")
    try:
        gltf = json.loads(chunks[b"JSON"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(where, f"its JSON chunk cannot be read ({err}).") from None
    if not isinstance(gltf, dict):
        raise _bad(where, "its JSON chunk is not an object.")
    return gltf, chunks.get(b"BIN\x00", b"")


def _accessor(gltf: dict, binary: bytes, index, where: str) -> np.ndarray:
    """A float accessor as a (count, components) float64 array (sparse accessors are refused)."""
    try:
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        if acc.get("componentType") != 5126 or "sparse" in acc or view.get("buffer", 0) != 0:
            raise ValueError("only float accessors in the GLB's own buffer are read")
        width = COMPONENTS[acc["type"]]
        count = int(acc["count"])
        start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
        stride = int(view.get("byteStride", 0)) or 4 * width
        if count < 0 or start < 0 or start + stride * max(count - 1, 0) + 4 * width > len(binary):
            raise ValueError("the data lies outside the binary chunk")
        raw = np.frombuffer(
            binary, dtype="<f4", count=(stride // 4) * (count - 1) + width if count else 0, offset=start
        )
        out = np.lib.stride_tricks.as_strided(raw, (count, width), (stride, 4)) if count else raw.reshape(0, width)
        out = out.astype(np.float64)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise _bad(where, f"accessor {index} cannot be read ({err}).") from None
    if not np.isfinite(out).all():
        raise _bad(where, f"accessor {index} holds NaN or infinite values.")
    return out


def _sample(times: np.ndarray, values: np.ndarray, at: np.ndarray, rotation: bool, step: bool) -> np.ndarray:
    """Keyframes sampled at ``at`` (clamped at both ends): slerp for rotations, lerp otherwise."""
    i1 = np.clip(np.searchsorted(times, at, side="right"), 1, max(len(times) - 1, 1))
    i0 = i1 - 1
    if len(times) == 1:
        return np.repeat(values[:1], len(at), axis=0)
    span = np.maximum(times[i1] - times[i0], 1e-12)
    t = np.clip((at - times[i0]) / span, 0.0, 1.0)
    if step:
        t = (t >= 1.0).astype(np.float64)
    if rotation:
        return quaternion_slerp(values[i0], values[i1], t)
    return values[i0] + (values[i1] - values[i0]) * t[:, None]


def read_vrma(path, max_frames=None) -> tuple[SampledClip, dict[str, str]]:
    """A ``.vrma`` as a sampled clip (at SAMPLE_FPS) and its bone mapping (SMPL-X joint -> node name)."""
    path = Path(path)
    where = f"'{path.name}'"
    if not path.is_file():
        raise MotionError(f"'{path}' does not exist.", "Check the path.")
    if path.stat().st_size > MAX_VRMA_BYTES:
        raise _bad(where, f"it is over {MAX_VRMA_BYTES >> 20} MB.")
    gltf, binary = _glb(path, where)
    try:
        bones = gltf["extensions"]["VRMC_vrm_animation"]["humanoid"]["humanBones"]
        nodes = gltf["nodes"]
        animation = gltf["animations"][0]
    except (KeyError, IndexError, TypeError):
        raise _bad(where, "it has no VRMC_vrm_animation humanoid, nodes or animation.") from None
    J = len(nodes)
    parents = [-1] * J
    for j, node in enumerate(nodes):
        for c in node.get("children", []):
            if not (isinstance(c, int) and 0 <= c < J) or parents[c] != -1:
                raise _bad(where, f"node {j} has a bad child {c!r}.")
            parents[c] = j
    names = [str(n.get("name") or f"node{j}") for j, n in enumerate(nodes)]
    if len(set(names)) != J:
        names = [f"{n}.{j}" for j, n in enumerate(names)]
    order = _topological(parents, where)
    rest_q = np.array([_quat(n.get("rotation", [0, 0, 0, 1]), where) for n in nodes])  # w, x, y, z
    rest_t = np.array([np.asarray(n.get("translation", [0, 0, 0]), np.float64) for n in nodes])
    if rest_t.shape != (J, 3) or not np.isfinite(rest_t).all():
        raise _bad(where, "a node's translation is not three finite numbers.")
    # Keyframes per node and path, and the clip's length.
    keys, end = {}, 0.0
    for ch in animation.get("channels", []):
        node, kind = ch.get("target", {}).get("node"), ch.get("target", {}).get("path")
        if kind not in ("rotation", "translation") or not isinstance(node, int) or not 0 <= node < J:
            continue
        sampler = animation["samplers"][ch["sampler"]]
        times = _accessor(gltf, binary, sampler["input"], where)[:, 0]
        values = _accessor(gltf, binary, sampler["output"], where)
        interpolation = sampler.get("interpolation", "LINEAR")
        if interpolation == "CUBICSPLINE":
            values = values[1::3]  # in-tangent, value, out-tangent
        if len(times) == 0 or len(values) != len(times) or np.any(np.diff(times) < 0):
            raise _bad(where, f"the keyframes of node {node}'s {kind} do not match their times.")
        if kind == "rotation":
            values = values[:, [3, 0, 1, 2]]  # glTF x, y, z, w -> w, x, y, z
        keys[(node, kind)] = (times, values, interpolation == "STEP")
        end = max(end, float(times[-1]))
    frames = int(np.floor(end * SAMPLE_FPS + 1e-6)) + 1
    check_frames(frames, where, max_frames, joints=J)
    at = np.arange(frames) / SAMPLE_FPS
    local_R = np.broadcast_to(quaternion_to_matrix(rest_q), (frames, J, 3, 3)).copy()
    local_t = np.broadcast_to(rest_t, (frames, J, 3)).copy()
    for (node, kind), (times, values, step) in keys.items():
        sampled = _sample(times, values, at, kind == "rotation", step)
        if kind == "rotation":
            local_R[:, node] = quaternion_to_matrix(sampled)
        else:
            local_t[:, node] = sampled
    # Only the hierarchy that holds the hips (a .vrma may carry other root nodes: look-at targets).
    hips = bones.get("hips", {}).get("node") if isinstance(bones.get("hips"), dict) else None
    if not (isinstance(hips, int) and 0 <= hips < J):
        raise _bad(where, "its humanoid has no hips node.")
    root = hips
    while parents[root] >= 0:
        root = parents[root]
    keep = [j for j in order if _under(j, root, parents)]
    rest_W, rest_P = _world(quaternion_to_matrix(rest_q)[None], rest_t[None], parents, order)
    W, P = _world(local_R, local_t, parents, order)
    R = W @ np.transpose(rest_W, (0, 1, 3, 2))
    keep = sorted(keep)
    new_index = {j: i for i, j in enumerate(keep)}
    names = [names[j] for j in keep]
    parents = [new_index.get(parents[j], -1) for j in keep]
    R, P, rest_P = R[:, keep], P[:, keep], rest_P[:, keep]
    mapping = {}
    table = dict(VRM_TO_SMPLX)
    if "upperChest" not in bones:
        table["chest"] = "spine3"  # the arms hang from it, as from SMPL-X's spine3
    for bone, ref in bones.items():
        node = ref.get("node") if isinstance(ref, dict) else None
        if bone in table and node in new_index:
            mapping[table[bone]] = names[new_index[node]]
    return SampledClip(names, parents, rest_P[0], {}, R, P, SAMPLE_FPS), mapping


def _under(j: int, root: int, parents) -> bool:
    while j >= 0:
        if j == root:
            return True
        j = parents[j]
    return False


def _quat(xyzw, where: str) -> np.ndarray:
    q = np.asarray(xyzw, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-6:
        raise _bad(where, f"a node's rotation {xyzw!r} is not a quaternion.")
    return q[[3, 0, 1, 2]]


def _topological(parents, where: str) -> list[int]:
    order, seen = [], set()
    for j in range(len(parents)):
        chain = []
        while j >= 0 and j not in seen:
            if j in chain:
                raise _bad(where, "its node hierarchy has a cycle.")
            chain.append(j)
            j = parents[j]
        for k in reversed(chain):
            seen.add(k)
            order.append(k)
    return order


def _world(local_R, local_t, parents, order):
    W = np.empty_like(local_R)
    P = np.empty_like(local_t)
    for j in order:
        p = parents[j]
        if p < 0:
            W[:, j], P[:, j] = local_R[:, j], local_t[:, j]
        else:
            W[:, j] = W[:, p] @ local_R[:, j]
            P[:, j] = P[:, p] + np.einsum("tij,tj->ti", W[:, p], local_t[:, j])
    return W, P
