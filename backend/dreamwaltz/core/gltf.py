"""glTF 2.0 binary (.glb) export of avatars with Khronos ``KHR_gaussian_splatting``, pure numpy.

Two kinds of file (docs/EXPORT.md says what a loader must do with each):

- ``write_posed_glb``: one posed frame. A POINTS primitive with the extension's attributes
  (``POSITION``, ``KHR_gaussian_splatting:ROTATION`` unit quaternion x y z w, ``:SCALE`` linear
  standard deviations, ``:OPACITY`` in [0, 1], ``:SH_DEGREE_0_COEF_0``), and optionally the posed
  body mesh. Strictly standard: any viewer that supports the extension shows it.
- ``write_animated_glb``: the avatar as a glTF skin. The 55 joints are nodes with their rest
  transforms, the body mesh is skinned (``JOINTS_0``/``WEIGHTS_0``, top 4), the splats are a
  POINTS primitive in the rest pose with the extension's attributes plus ``JOINTS_0``/
  ``WEIGHTS_0``, and the motion is animation channels (a rotation per joint, the root's
  translation). The extension says nothing about skinning splats: the rule is in docs/EXPORT.md.

Written by hand rather than with pygltflib or trimesh because the Blender add-on's File > Export
uses this module too and the add-on ships with numpy only. Coordinates are the avatar's SMPL-X
space (metres, +Y up, facing +Z), which is glTF's own convention, so nothing is flipped.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .rotations import axis_angle_to_quaternion
from .splat_files import SH_C0
from .splat_writers import covariance_to_scale_rotation

EXTENSION = "KHR_gaussian_splatting"
ROTATION = f"{EXTENSION}:ROTATION"
SCALE = f"{EXTENSION}:SCALE"
OPACITY = f"{EXTENSION}:OPACITY"
SH0 = f"{EXTENSION}:SH_DEGREE_0_COEF_0"
COLOR_SPACE_SRGB = "srgb_rec709_display"  # the avatar's display (sRGB) colours: what 3DGS trains and .ply holds
GENERATOR = "DreamWaltz for Blender"
JOINTS_PER_SET = 4  # JOINTS_0/WEIGHTS_0: what every glTF skinning implementation reads
# Application-specific attributes (glTF: names start with "_") of the skinned file's splats that let
# a loader place mesh-bound splats exactly on the posed body triangle (docs/EXPORT.md, "exact rule").
BIND_FACE = "_DREAMWALTZ_BIND_FACE"  # SCALAR float: triangle of the body primitive's indices; -1: free splat
BIND_BARYCENTRIC = "_DREAMWALTZ_BIND_BARYCENTRIC"  # VEC3 float: barycentric coordinates in that triangle

FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
POINTS, TRIANGLES = 0, 4
_NUMPY = {FLOAT: "<f4", UNSIGNED_BYTE: "u1", UNSIGNED_SHORT: "<u2", UNSIGNED_INT: "<u4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


class GlbBuilder:
    """Accumulates accessors in one binary buffer and the glTF JSON around them."""

    def __init__(self):
        self.gltf = {
            "asset": {"version": "2.0", "generator": GENERATOR},
            "buffers": [],
            "bufferViews": [],
            "accessors": [],
            "meshes": [],
            "nodes": [],
            "scenes": [{"nodes": []}],
            "scene": 0,
        }
        self.blob = bytearray()
        self.extensions_used: set[str] = set()

    def accessor(
        self,
        array,
        kind: str,
        component: int = FLOAT,
        target: int | None = None,
        bounds: bool = False,
        normalized: bool = False,
    ) -> int:
        """Append ``array`` (count x width) as a tightly packed, 4-byte aligned accessor."""
        data = np.ascontiguousarray(np.asarray(array).reshape(-1, _WIDTH[kind]).astype(_NUMPY[component]))
        while len(self.blob) % 4:
            self.blob.append(0)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": data.nbytes}
        if target is not None:
            view["target"] = target
        self.blob += data.tobytes()
        self.gltf["bufferViews"].append(view)
        acc = {
            "bufferView": len(self.gltf["bufferViews"]) - 1,
            "componentType": component,
            "count": int(data.shape[0]),
            "type": kind,
        }
        if normalized:
            acc["normalized"] = True
        if bounds:  # from the stored (float32) values: the validator checks them exactly
            acc["min"] = [v.item() for v in data.min(axis=0)]
            acc["max"] = [v.item() for v in data.max(axis=0)]
        self.gltf["accessors"].append(acc)
        return len(self.gltf["accessors"]) - 1

    def buffer_view(self, data: bytes) -> int:
        """Raw bytes (an image) as a 4-byte aligned buffer view."""
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data
        return len(self.gltf["bufferViews"]) - 1

    def node(self, **fields) -> int:
        self.gltf["nodes"].append({k: v for k, v in fields.items() if v is not None})
        return len(self.gltf["nodes"]) - 1

    def mesh(self, name: str, primitives: list) -> int:
        self.gltf["meshes"].append({"name": name, "primitives": primitives})
        return len(self.gltf["meshes"]) - 1

    def to_bytes(self) -> bytes:
        while len(self.blob) % 4:
            self.blob.append(0)
        gltf = dict(self.gltf)
        gltf["buffers"] = [{"byteLength": len(self.blob)}]
        if self.extensions_used:
            gltf["extensionsUsed"] = sorted(self.extensions_used)
        gltf = {k: v for k, v in gltf.items() if v != []}
        text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 4)
        total = 12 + 8 + len(text) + 8 + len(self.blob)
        return b"".join(
            [
                struct.pack("<4sII", b"glTF", 2, total),
                struct.pack("<I4s", len(text), b"JSON"),
                text,
                struct.pack("<I4s", len(self.blob), b"BIN\x00"),
                bytes(self.blob),
            ]
        )

    def write(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path


# --------------------------------------------------------------------------- splats


def splat_primitive(b: GlbBuilder, means, covariances, colors, opacities, extra_attributes=None, extras=None) -> dict:
    """A POINTS primitive with ``KHR_gaussian_splatting``: each covariance factored as R diag(s^2) R^T.

    ``colors`` are display (sRGB) values, as ``posing.pose_avatar`` returns them; they are stored as
    the degree-0 spherical harmonic ``(rgb - 0.5) / SH_C0`` with colorSpace ``srgb_rec709_display``,
    and (for viewers without the extension) as ``COLOR_0``, converted to linear as the core
    specification defines ``COLOR_0``, with the opacity as alpha.
    """
    from .color import srgb_to_linear

    log_scales, quats_wxyz = covariance_to_scale_rotation(covariances)
    colors = np.asarray(colors, dtype=np.float64)
    opacities = np.clip(np.asarray(opacities, dtype=np.float64), 0.0, 1.0)
    fallback = np.concatenate([srgb_to_linear(np.clip(colors, 0.0, 1.0)), opacities[:, None]], axis=1)
    attributes = {
        "POSITION": b.accessor(means, "VEC3", target=ARRAY_BUFFER, bounds=True),
        "COLOR_0": b.accessor(fallback, "VEC4", target=ARRAY_BUFFER),
        ROTATION: b.accessor(quats_wxyz[:, [1, 2, 3, 0]], "VEC4", target=ARRAY_BUFFER),  # glTF order: x y z w
        SCALE: b.accessor(np.exp(log_scales), "VEC3", target=ARRAY_BUFFER),
        OPACITY: b.accessor(opacities, "SCALAR", target=ARRAY_BUFFER),
        SH0: b.accessor((colors - 0.5) / SH_C0, "VEC3", target=ARRAY_BUFFER),
    }
    attributes.update(extra_attributes or {})
    b.extensions_used.add(EXTENSION)
    primitive = {
        "attributes": attributes,
        "mode": POINTS,
        "extensions": {
            EXTENSION: {
                "kernel": "ellipse",
                "colorSpace": COLOR_SPACE_SRGB,
                "projection": "perspective",
                "sortingMethod": "cameraDistance",
            }
        },
    }
    if extras:
        primitive["extras"] = extras
    return primitive


def _body_primitive(b: GlbBuilder, avatar, vertices, extra_attributes=None) -> dict:
    from .color import linear_colors

    attributes = {"POSITION": b.accessor(vertices, "VEC3", target=ARRAY_BUFFER, bounds=True)}
    if "body/vertex_colors" in avatar.arrays:  # COLOR_0 is linear in glTF
        attributes["COLOR_0"] = b.accessor(
            linear_colors(avatar.manifest, avatar.arrays["body/vertex_colors"]), "VEC3", target=ARRAY_BUFFER
        )
    attributes.update(extra_attributes or {})
    faces = np.asarray(avatar.arrays["body/faces"])
    component = UNSIGNED_SHORT if len(vertices) < 65535 else UNSIGNED_INT
    indices = b.accessor(faces.reshape(-1, 1), "SCALAR", component, target=ELEMENT_ARRAY_BUFFER)
    return {"attributes": attributes, "indices": indices, "mode": TRIANGLES}


def write_posed_glb(path, posed, avatar=None, with_body: bool = False) -> Path:
    """One posed frame (a ``posing.PosedSplats``) as .glb; ``with_body`` adds the posed body mesh
    (needs ``avatar`` for its faces)."""
    b = GlbBuilder()
    splats = b.mesh("splats", [splat_primitive(b, posed.means, posed.covariances, posed.colors, posed.opacities)])
    b.gltf["scenes"][0]["nodes"].append(b.node(name="splats", mesh=splats))
    if with_body:
        body = b.mesh("body", [_body_primitive(b, avatar, posed.body.vertices)])
        b.gltf["scenes"][0]["nodes"].append(b.node(name="body", mesh=body))
    return b.write(path)


# --------------------------------------------------------------------------- skinned avatar


def top_k_weights(weights, k: int = JOINTS_PER_SET):
    """(N, J) dense skin weights -> (N, k) joint indices and weights renormalised to sum 1."""
    weights = np.asarray(weights, dtype=np.float64)
    idx = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    w = np.take_along_axis(weights, idx, axis=1)
    w = np.where(w > 0, w, 0.0)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return idx, w


def _skin_attributes(b: GlbBuilder, joints, weights) -> dict:
    """JOINTS_0/WEIGHTS_0 with unused slots at weight 0 (and joint 0) as the specification asks."""
    joints = np.where(weights > 0, joints, 0)
    weights = np.asarray(weights, dtype=np.float32)
    main = np.argmax(weights, axis=1)  # the float32 rounding residual goes to each largest weight
    weights[np.arange(len(weights)), main] += 1.0 - weights.sum(axis=1)
    return {
        "JOINTS_0": b.accessor(
            joints, "VEC4", UNSIGNED_BYTE if joints.max(initial=0) < 256 else UNSIGNED_SHORT, target=ARRAY_BUFFER
        ),
        "WEIGHTS_0": b.accessor(weights, "VEC4", target=ARRAY_BUFFER),
    }


def rest_splats(avatar):
    """Every splat of ``avatar`` in its rest pose, as the skinned file stores them.

    Returns means (N+M,3), covariances (N+M,3,3), display colours, opacities, and top-4 skin
    joints/weights: free splats keep their own; a mesh-bound splat is placed on its rest triangle
    (barycentric centre, covariance in the rest triangle frame) and gets the barycentric blend of
    the triangle's vertex weights, top 4. Free first, then bound, as ``posing.pose_avatar`` orders them.
    """
    from .color import display_colors
    from .posing import gaussian_covariances, pose_body, sigmoid, triangle_frames

    a = avatar.arrays
    body = pose_body(avatar)  # zero pose: its vertices are the rest vertices
    faces = np.asarray(a["body/faces"])[a["bound/faces"]]
    bary = a["bound/barycentrics"].astype(np.float64)
    bound_means = np.einsum("mc,mci->mi", bary, body.rest_vertices[faces])
    frames = triangle_frames(body.rest_vertices, faces)
    bound_cov = frames @ gaussian_covariances(a["bound/log_scales"], a["bound/quats"]) @ np.transpose(frames, (0, 2, 1))
    blended = np.einsum("mc,mcj->mj", bary, a["body/skin_weights"].astype(np.float64)[faces])
    bound_joints, bound_weights = top_k_weights(blended)
    free_joints = np.asarray(a["free/skin_joints"])
    free_weights = a["free/skin_weights"].astype(np.float64)
    if free_joints.shape[1] > JOINTS_PER_SET:  # files from other tools may keep more
        dense = np.zeros((len(free_joints), len(avatar.parents)))
        np.add.at(dense, (np.arange(len(free_joints))[:, None], free_joints), free_weights)
        free_joints, free_weights = top_k_weights(dense)
    elif free_joints.shape[1] < JOINTS_PER_SET:
        pad = JOINTS_PER_SET - free_joints.shape[1]
        free_joints = np.pad(free_joints, ((0, 0), (0, pad)))
        free_weights = np.pad(free_weights, ((0, 0), (0, pad)))
    return dict(
        means=np.concatenate([a["free/means"].astype(np.float64), bound_means]),
        covariances=np.concatenate([gaussian_covariances(a["free/log_scales"], a["free/quats"]), bound_cov]),
        colors=display_colors(avatar.manifest, np.concatenate([a["free/colors"], a["bound/colors"]])),
        opacities=np.concatenate([sigmoid(a["free/opacity_logits"]), sigmoid(a["bound/opacity_logits"])]),
        joints=np.concatenate([free_joints, bound_joints]),
        weights=np.concatenate([free_weights / free_weights.sum(axis=1, keepdims=True), bound_weights]),
        rest_vertices=body.rest_vertices,
        rest_joints=body.rest_joints,
    )


def _continuous(quats: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive keys lie in one hemisphere (the shortest slerp between keys)."""
    quats = quats.copy()
    for t in range(1, len(quats)):
        flip = np.sum(quats[t] * quats[t - 1], axis=-1) < 0
        quats[t][flip] *= -1
    return quats


def _skeleton(b: GlbBuilder, parents, names, rest_joints, root_name: str | None = None) -> list[int]:
    """Joint nodes with their rest offsets from the parent and no rotation, so a joint's rest world
    transform is a translation to its rest position, and a skin over them (``skins[0]``). With
    ``root_name``, a root bone at the origin above the first joint (the UE5 mannequin's), last in the
    skin's joints so the vertices' joint indices are the avatar's own. Returns the joint nodes."""
    joint_nodes = []
    for k, parent in enumerate(parents):
        offset = rest_joints[k] - (rest_joints[parent] if parent >= 0 else 0.0)
        joint_nodes.append(b.node(name=names[k], translation=[float(v) for v in offset]))
    for k, parent in enumerate(parents):
        if parent >= 0:
            b.gltf["nodes"][joint_nodes[parent]].setdefault("children", []).append(joint_nodes[k])
    tops = [joint_nodes[k] for k, p in enumerate(parents) if p < 0]
    ibm = np.tile(np.eye(4), (len(parents), 1, 1))
    ibm[:, :3, 3] = -np.asarray(rest_joints)
    skin_joints = list(joint_nodes)
    if root_name:
        root = b.node(name=root_name, children=tops)
        skin_joints.append(root)
        ibm = np.concatenate([ibm, np.eye(4)[None]])
        tops = [root]
    b.gltf["skins"] = [
        {
            "name": "skeleton",
            "joints": skin_joints,
            "skeleton": tops[0],
            "inverseBindMatrices": b.accessor(np.transpose(ibm, (0, 2, 1)), "MAT4"),  # column-major
        }
    ]
    b.gltf["scenes"][0]["nodes"].extend(tops)
    return joint_nodes


def _animation(b: GlbBuilder, joint_nodes, parents, rest_joints, full_pose, transl, fps: float, name: str) -> None:
    """One LINEAR sampler per joint rotation, one for each root joint's translation."""
    full_pose = np.asarray(full_pose, dtype=np.float64).reshape(len(full_pose), -1, 3)
    transl = np.asarray(transl, dtype=np.float64).reshape(-1, 3)
    T = len(full_pose)
    times = b.accessor(np.arange(T) / float(fps), "SCALAR", bounds=True)
    quats = _continuous(axis_angle_to_quaternion(full_pose))[..., [1, 2, 3, 0]]  # (T,J,4) x y z w
    samplers, channels = [], []
    for k in range(len(parents)):
        samplers.append({"input": times, "output": b.accessor(quats[:, k], "VEC4"), "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": joint_nodes[k], "path": "rotation"}})
    for k, parent in enumerate(parents):
        if parent < 0:
            samplers.append(
                {"input": times, "output": b.accessor(rest_joints[k] + transl, "VEC3"), "interpolation": "LINEAR"}
            )
            channels.append({"sampler": len(samplers) - 1, "target": {"node": joint_nodes[k], "path": "translation"}})
    b.gltf["animations"] = [{"name": name, "samplers": samplers, "channels": channels}]


def write_animated_glb(
    path, avatar, full_pose, transl, fps: float, name: str = "motion", with_body: bool = True
) -> Path:
    """The skinned avatar with a motion: ``full_pose`` (T,J,3) axis-angle, ``transl`` (T,3), ``fps``."""
    parents = avatar.parents
    rest = rest_splats(avatar)
    J_rest = rest["rest_joints"]
    b = GlbBuilder()
    scene = b.gltf["scenes"][0]["nodes"]
    joint_nodes = _skeleton(b, parents, avatar.joint_names, J_rest)

    n_free = int(avatar.arrays["free/means"].shape[0])
    extras = {
        "dreamwaltz": {
            "skinned_splats": "docs/EXPORT.md",
            "num_free": n_free,
            "num_bound": int(len(rest["means"]) - n_free),
        }
    }
    extra = _skin_attributes(b, rest["joints"], rest["weights"])
    if (
        with_body and len(avatar.arrays["body/faces"]) < 2**24
    ):  # float32 holds the face index exactly; the exact binding of mesh-bound splats refers to the body primitive's triangles
        n_bound = len(rest["means"]) - n_free
        face = np.concatenate([np.full(n_free, -1.0), avatar.arrays["bound/faces"].astype(np.float64)])
        bary = np.concatenate([np.zeros((n_free, 3)), avatar.arrays["bound/barycentrics"].astype(np.float64)])
        extra[BIND_FACE] = b.accessor(face, "SCALAR", target=ARRAY_BUFFER)
        extra[BIND_BARYCENTRIC] = b.accessor(bary, "VEC3", target=ARRAY_BUFFER)
        extras["dreamwaltz"]["exact_binding"] = [BIND_FACE, BIND_BARYCENTRIC]
        assert n_bound == len(avatar.arrays["bound/faces"])
    splat = splat_primitive(
        b, rest["means"], rest["covariances"], rest["colors"], rest["opacities"], extra_attributes=extra, extras=extras
    )
    scene.append(b.node(name="splats", mesh=b.mesh("splats", [splat]), skin=0))
    if with_body:
        joints, weights = top_k_weights(avatar.arrays["body/skin_weights"])
        body = _body_primitive(b, avatar, rest["rest_vertices"], _skin_attributes(b, joints, weights))
        scene.append(b.node(name="body", mesh=b.mesh("body", [body]), skin=0))
    _animation(b, joint_nodes, parents, J_rest, full_pose, transl, fps, name)
    return b.write(path)


# --------------------------------------------------------------------------- textured mesh (game engines)

VRM = "VRMC_vrm"
VRM_LICENSE_URL = "https://vrm.dev/licenses/1.0/"
# VRM 1.0 preset expressions from ARKit-named expression shape keys (the open body's 52):
# preset -> ((shape key, weight), ...). Expressions without a preset are written as custom ones.
VRM_PRESETS = {
    "happy": (("mouthSmileLeft", 1.0), ("mouthSmileRight", 1.0), ("cheekSquintLeft", 0.5), ("cheekSquintRight", 0.5)),
    "angry": (("browDownLeft", 1.0), ("browDownRight", 1.0), ("mouthFrownLeft", 0.6), ("mouthFrownRight", 0.6)),
    "sad": (("browInnerUp", 1.0), ("mouthFrownLeft", 1.0), ("mouthFrownRight", 1.0)),
    "relaxed": (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5), ("eyeSquintLeft", 0.4), ("eyeSquintRight", 0.4)),
    "surprised": (("eyeWideLeft", 1.0), ("eyeWideRight", 1.0), ("browInnerUp", 1.0), ("jawOpen", 0.5)),
    "aa": (("jawOpen", 1.0),),
    "ih": (("mouthStretchLeft", 0.6), ("mouthStretchRight", 0.6), ("jawOpen", 0.2)),
    "ou": (("mouthPucker", 1.0), ("mouthFunnel", 0.5)),
    "ee": (("mouthStretchLeft", 0.5), ("mouthStretchRight", 0.5), ("mouthSmileLeft", 0.3), ("mouthSmileRight", 0.3)),
    "oh": (("mouthFunnel", 1.0), ("jawOpen", 0.4)),
    "blink": (("eyeBlinkLeft", 1.0), ("eyeBlinkRight", 1.0)),
    "blinkLeft": (("eyeBlinkLeft", 1.0),),
    "blinkRight": (("eyeBlinkRight", 1.0),),
}

# Every preset name of VRM 1.0 (VRMC_vrm.expressions): a custom expression may not take one.
VRM_PRESET_NAMES = frozenset(VRM_PRESETS) | {"lookUp", "lookDown", "lookLeft", "lookRight", "neutral"}


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG. Written with the standard library (zlib) because this
    module stays numpy-only for the add-on; PNG's container is a few chunks around zlib data."""
    import zlib

    image = np.ascontiguousarray(image, dtype=np.uint8)
    H, W = image.shape[:2]
    raw = np.concatenate([np.zeros((H, 1), np.uint8), image.reshape(H, W * 3)], axis=1).tobytes()  # filter 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _textured_material(b: GlbBuilder, texture: np.ndarray, name: str) -> int:
    b.gltf.setdefault("samplers", []).append({"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071})
    b.gltf.setdefault("images", []).append({"bufferView": b.buffer_view(png_bytes(texture)), "mimeType": "image/png"})
    b.gltf.setdefault("textures", []).append(
        {"sampler": len(b.gltf["samplers"]) - 1, "source": len(b.gltf["images"]) - 1}
    )
    # Plain PBR, fully rough and not metallic: the base colour is what every importer (Blender's
    # glTF importer, hence its FBX exporter; Unity, Unreal, VRM apps) carries over. The texture is
    # the avatar's radiance with its lighting baked in; KHR_materials_unlit would show it as is in
    # three.js, but Blender imports it as an emission shader that its FBX exporter drops.
    b.gltf.setdefault("materials", []).append(
        {
            "name": name,
            "pbrMetallicRoughness": {
                "baseColorTexture": {"index": len(b.gltf["textures"]) - 1},
                "metallicFactor": 0.0,
                "roughnessFactor": 1.0,
            },
        }
    )
    return len(b.gltf["materials"]) - 1


def write_mesh_glb(
    path,
    mesh,
    avatar,
    convention: str = "smplx",
    motion=None,
    vrm_meta: dict | None = None,
    name: str = "avatar",
) -> Path:
    """A textured, skinned mesh (``meshbake.BakedMesh``: vertices, faces, uvs, normals, texture and
    ``source``, the body vertex each comes from) on the avatar's skeleton, bones named by
    ``convention`` (``core.bone_names``), the expression shape keys as morph targets. ``motion``:
    (full_pose (T,J,3), transl (T,3), fps, name) as an animation. ``vrm_meta``: write VRM 1.0
    (``VRMC_vrm``: humanoid, meta with these fields, expressions)."""
    from .bone_names import ROOT_BONE, bone_names

    parents = avatar.parents
    rest_joints = np.asarray(_rest_joints(avatar), np.float64)
    names = bone_names(convention)
    b = GlbBuilder()
    joint_nodes = _skeleton(b, parents, names, rest_joints, ROOT_BONE.get(convention))
    source = np.asarray(mesh.source)
    joints, weights = top_k_weights(np.asarray(avatar.arrays["body/skin_weights"], np.float64)[source])
    attributes = {
        "POSITION": b.accessor(mesh.vertices, "VEC3", target=ARRAY_BUFFER, bounds=True),
        "NORMAL": b.accessor(mesh.normals, "VEC3", target=ARRAY_BUFFER),
        "TEXCOORD_0": b.accessor(mesh.uvs, "VEC2", target=ARRAY_BUFFER),
        **_skin_attributes(b, joints, weights),
    }
    faces = np.asarray(mesh.faces)
    component = UNSIGNED_SHORT if len(mesh.vertices) < 65535 else UNSIGNED_INT
    primitive = {
        "attributes": attributes,
        "indices": b.accessor(faces.reshape(-1, 1), "SCALAR", component, target=ELEMENT_ARRAY_BUFFER),
        "mode": TRIANGLES,
        "material": _textured_material(b, mesh.texture, f"{name} texture"),
    }
    dirs = np.asarray(avatar.arrays["body/expression_dirs"], np.float64)[source]  # (V',3,E)
    expression_names = avatar.expression_names
    keys = [e for e in range(dirs.shape[2]) if np.abs(dirs[:, :, e]).max() > 1e-7]
    mesh_entry = {"name": name, "primitives": [primitive]}
    if keys:
        primitive["targets"] = [
            {"POSITION": b.accessor(dirs[:, :, e], "VEC3", target=ARRAY_BUFFER, bounds=True)} for e in keys
        ]
        mesh_entry["weights"] = [0.0] * len(keys)
        mesh_entry["extras"] = {"targetNames": [expression_names[e] for e in keys]}
    b.gltf["meshes"].append(mesh_entry)
    mesh_node = b.node(name=name, mesh=len(b.gltf["meshes"]) - 1, skin=0)
    b.gltf["scenes"][0]["nodes"].append(mesh_node)
    if motion is not None:
        full_pose, transl, fps, clip = motion
        _animation(b, joint_nodes, parents, rest_joints, full_pose, transl, fps, clip)
    if vrm_meta is not None:
        target_names = [expression_names[e] for e in keys]
        b.gltf["extensions"] = {VRM: _vrm(joint_nodes, mesh_node, target_names, vrm_meta)}
        b.extensions_used.add(VRM)
    return b.write(path)


def _rest_joints(avatar) -> np.ndarray:
    from .posing import pose_body

    return pose_body(avatar).rest_joints


def _vrm(joint_nodes: list[int], mesh_node: int, target_names: list[str], meta: dict) -> dict:
    """The ``VRMC_vrm`` extension (VRM 1.0): humanoid bones by the joints' VRM names, the meta, and
    expressions bound to the mesh's morph targets (presets from ARKit names, the rest custom)."""
    from .bone_names import bone_names

    human = {vrm: {"node": node} for vrm, node in zip(bone_names("vrm"), joint_nodes)}
    index = {n: i for i, n in enumerate(target_names)}
    preset, used = {}, set()
    for expression, binds in VRM_PRESETS.items():
        if all(key in index for key, _w in binds):
            preset[expression] = {
                "morphTargetBinds": [{"node": mesh_node, "index": index[k], "weight": w} for k, w in binds]
            }
            used.update(k for k, _w in binds)
    custom = {}
    for n, i in index.items():
        if n in used:
            continue
        expression = {"morphTargetBinds": [{"node": mesh_node, "index": i, "weight": 1.0}]}
        if n in VRM_PRESET_NAMES and n not in preset:  # a shape key named as a preset is that preset
            preset[n] = expression
        else:  # custom names must differ from the presets' (VRM 1.0 expressions)
            custom[n if n not in VRM_PRESET_NAMES else f"{n}_custom"] = expression
    meta = {
        "name": "DreamWaltz avatar",
        "authors": ["unknown"],
        "licenseUrl": VRM_LICENSE_URL,
        "avatarPermission": "onlyAuthor",
        "commercialUsage": "personalNonProfit",
        "creditNotation": "required",
        "allowRedistribution": False,
        "modification": "prohibited",
        **meta,
    }
    expressions = {"preset": preset}
    if custom:
        expressions["custom"] = custom
    return {"specVersion": "1.0", "humanoid": {"humanBones": human}, "meta": meta, "expressions": expressions}


# --------------------------------------------------------------------------- reading back


def read_glb(path) -> tuple[dict, bytes]:
    """(JSON, binary chunk) of a .glb: enough to check what a file holds (``dreamwaltz view``)."""
    from .errors import InvalidFileError

    raw = Path(path).read_bytes()
    bad = InvalidFileError(
        f"'{Path(path).name}' is not a .glb file.", "Export one: dreamwaltz export A.h3ga --format glb --out A.glb"
    )
    if len(raw) < 20 or raw[:4] != b"glTF":
        raise bad
    (json_len, kind), bin_chunk = struct.unpack_from("<I4s", raw, 12), b""
    if kind != b"JSON" or 20 + json_len > len(raw):
        raise bad
    try:
        gltf = json.loads(raw[20 : 20 + json_len])
    except ValueError:
        raise bad from None
    offset = 20 + json_len
    if offset + 8 <= len(raw):
        bin_len = struct.unpack_from("<I", raw, offset)[0]
        bin_chunk = raw[offset + 8 : offset + 8 + bin_len]
    return gltf, bin_chunk


def has_splats(gltf: dict) -> bool:
    return any(
        EXTENSION in (p.get("extensions") or {}) for m in gltf.get("meshes", []) for p in m.get("primitives", [])
    )
