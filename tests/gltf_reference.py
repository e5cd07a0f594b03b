"""An independent reader of the .glb files DreamWaltz exports (pygltflib + numpy), with the
skinned-splat rule of docs/EXPORT.md written from the documentation, for the export tests."""

from __future__ import annotations

import json

import numpy as np
import pygltflib

from dreamwaltz.core.rotations import quaternion_to_matrix

EXT = "KHR_gaussian_splatting"
SH_C0 = 0.28209479177387814


def load(path):
    gltf = pygltflib.GLTF2().load_binary(str(path))
    return gltf, gltf.binary_blob()


def array(gltf, blob, index) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: "<f4", 5121: "u1", 5123: "<u2", 5125: "<u4"}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = view.byteStride or np.dtype(dtype).itemsize * width
    raw = np.frombuffer(
        blob, dtype="u1", count=stride * (acc.count - 1) + np.dtype(dtype).itemsize * width, offset=start
    )
    rows = np.lib.stride_tricks.as_strided(raw, (acc.count, np.dtype(dtype).itemsize * width), (stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width).astype(np.float64)


def attributes(gltf, blob, primitive) -> dict:
    attrs = (
        json.loads(primitive.attributes.to_json())
        if hasattr(primitive.attributes, "to_json")
        else vars(primitive.attributes)
    )
    return {name: array(gltf, blob, idx) for name, idx in attrs.items() if idx is not None}


def splat_primitive(gltf):
    found = [(m, p) for m in gltf.meshes for p in m.primitives if EXT in (p.extensions or {})]
    assert len(found) == 1
    return found[0]


def splats_of(attrs) -> dict:
    """Centres, covariances, display colours and opacities by the extension's definitions."""
    q = attrs[f"{EXT}:ROTATION"]  # x y z w
    R = quaternion_to_matrix(q[:, [3, 0, 1, 2]])
    s = attrs[f"{EXT}:SCALE"]
    return {
        "means": attrs["POSITION"],
        "cov": np.einsum("nij,nj,nkj->nik", R, s**2, R),
        "colors": attrs[f"{EXT}:SH_DEGREE_0_COEF_0"] * SH_C0 + 0.5,
        "opacities": attrs[f"{EXT}:OPACITY"][:, 0],
        "quat_norm": np.linalg.norm(q, axis=1),
    }


def relative(a, b):
    return np.linalg.norm(a - b, axis=(1, 2)) / np.linalg.norm(b, axis=(1, 2))


def node_world_matrices(gltf, blob, time: float) -> np.ndarray:
    """Each node's world matrix at ``time``: its TRS, with the animation's LINEAR channels applied."""
    trs = [
        {
            "t": np.array(n.translation or [0, 0, 0], float),
            "r": np.array(n.rotation or [0, 0, 0, 1], float),
            "s": np.array(n.scale or [1, 1, 1], float),
        }
        for n in gltf.nodes
    ]
    for ch in gltf.animations[0].channels:
        sampler = gltf.animations[0].samplers[ch.sampler]
        times = array(gltf, blob, sampler.input)[:, 0]
        values = array(gltf, blob, sampler.output)
        i = int(np.clip(np.searchsorted(times, time, side="right") - 1, 0, len(times) - 2))
        u = float(np.clip((time - times[i]) / (times[i + 1] - times[i]), 0, 1))
        if ch.target.path == "rotation":  # slerp
            a, b = values[i], values[i + 1] * np.sign(np.dot(values[i], values[i + 1]) or 1)
            angle = np.arccos(np.clip(np.dot(a, b), -1, 1))
            v = a if angle < 1e-9 else (np.sin((1 - u) * angle) * a + np.sin(u * angle) * b) / np.sin(angle)
            trs[ch.target.node]["r"] = v
        else:
            trs[ch.target.node][{"translation": "t", "scale": "s"}[ch.target.path]] = (1 - u) * values[i] + u * values[
                i + 1
            ]
    local = np.tile(np.eye(4), (len(trs), 1, 1))
    for k, p in enumerate(trs):
        local[k, :3, :3] = quaternion_to_matrix(p["r"][[3, 0, 1, 2]]) * p["s"]
        local[k, :3, 3] = p["t"]
    parent = {c: k for k, n in enumerate(gltf.nodes) for c in (n.children or [])}
    world = np.zeros_like(local)

    def resolve(k):
        if not world[k, 3, 3]:
            world[k] = local[k] if k not in parent else resolve(parent[k]) @ local[k]
        return world[k]

    for k in range(len(trs)):
        resolve(k)
    return world


def skinning_matrices(gltf, blob, time):
    skin = gltf.skins[0]
    world = node_world_matrices(gltf, blob, time)[skin.joints]
    ibm = array(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    return world @ ibm


def triangle_frame(corners) -> np.ndarray:
    """Columns: the unit edge from corner 0 to 1, normal x edge, the unit normal (docs/EXPORT.md)."""
    e1 = corners[:, 1] - corners[:, 0]
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return np.stack([e1, np.cross(n, e1), n], axis=2)
