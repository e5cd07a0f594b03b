"""A small procedural avatar for tests and benchmarks (pure numpy, no body-model files).

A ~1.7 m humanoid made of tubes along the 55 SMPL-X bones (fingers included), a head with a
jaw and eyes, smooth shape and face-only expression blendshapes, free Gaussians near the surface
and mesh-bound Gaussians on the hands and the face. Realistic enough to exercise skinning,
shape edits, expressions, import and rendering; generated avatars come from the real pipeline.
"""

from __future__ import annotations

import numpy as np

from .h3ga import SKIN_TOP_K, H3GAAvatar, new_manifest
from .joints import JOINT_INDEX, JOINT_NAMES, PARENTS

_BODY = {  # metres, +Y up, facing +Z, the subject's left on +X (right side mirrored)
    "pelvis": (0.0, 0.0, 0.0),
    "spine1": (0.0, 0.11, -0.01),
    "spine2": (0.0, 0.25, 0.0),
    "spine3": (0.0, 0.31, 0.01),
    "neck": (0.0, 0.52, -0.01),
    "head": (0.0, 0.60, 0.03),
    "jaw": (0.0, 0.57, 0.06),
    "left_eye_smplhf": (0.032, 0.665, 0.09),
    "left_hip": (0.06, -0.09, 0.0),
    "left_knee": (0.10, -0.47, 0.0),
    "left_ankle": (0.10, -0.87, -0.03),
    "left_foot": (0.11, -0.93, 0.10),
    "left_collar": (0.07, 0.43, 0.0),
    "left_shoulder": (0.17, 0.45, -0.01),
    "left_elbow": (0.43, 0.45, -0.02),
    "left_wrist": (0.68, 0.45, -0.01),
}
_FINGERS = {"index": 0.026, "middle": 0.006, "ring": -0.014, "pinky": -0.032}
_RADIUS = {
    "pelvis": 0.13,
    "spine": 0.13,
    "neck": 0.06,
    "head": 0.1,
    "hip": 0.08,
    "knee": 0.06,
    "ankle": 0.045,
    "foot": 0.035,
    "collar": 0.06,
    "shoulder": 0.05,
    "elbow": 0.04,
    "wrist": 0.03,
    "thumb": 0.009,
    "index": 0.008,
    "middle": 0.008,
    "ring": 0.008,
    "pinky": 0.007,
    "jaw": 0.04,
    "eye": 0.012,
}
RING = 8


def rest_joints_template() -> np.ndarray:
    """(55,3) joint positions of the procedural body at zero shape."""
    joints = dict(_BODY)
    for side, sx in (("left", 1.0), ("right", -1.0)):
        wx, wy, wz = _BODY["left_wrist"]
        for finger, z in _FINGERS.items():
            for i, dx in enumerate((0.09, 0.125, 0.15), start=1):
                joints[f"{side}_{finger}{i}"] = (sx * (wx + dx), wy, wz + z)
        for i, (dx, dz) in enumerate(((0.025, 0.03), (0.05, 0.045), (0.075, 0.055)), start=1):
            joints[f"{side}_thumb{i}"] = (sx * (wx + dx), wy - 0.01, wz + dz)
        if side == "right":
            for name in list(joints):
                if name.startswith("left_") and name.replace("left_", "right_", 1) not in joints:
                    x, y, z = joints[name]
                    joints[name.replace("left_", "right_", 1)] = (-x, y, z)
    return np.array([joints[n] for n in JOINT_NAMES], dtype=np.float64)


def _radius(name: str) -> float:
    for key, r in _RADIUS.items():
        if key in name:
            return r
    return 0.03


def _tube(start, end, radius, ring=RING, rings=3):
    axis = end - start
    length = max(np.linalg.norm(axis), 1e-6)
    d = axis / length
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    angles = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    ts = np.linspace(0.0, 1.0, rings)
    verts = np.array([start + t * axis + radius * (np.cos(a) * u + np.sin(a) * v) for t in ts for a in angles])
    faces = []
    for r in range(rings - 1):
        for i in range(ring):
            a, b = r * ring + i, r * ring + (i + 1) % ring
            c, e = a + ring, b + ring
            faces += [(a, b, e), (a, e, c)]
    return verts, np.array(faces), ts.repeat(ring)


def build_body(seed: int = 0):
    """Template vertices, faces, skin weights, joint regressor, shape and expression dirs, face mask."""
    joints = rest_joints_template()
    verts, faces, weights, reg_rows = [], [], [], {}
    face_mask = []
    n = 0
    for k, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        name = JOINT_NAMES[k]
        start = joints[parent]
        end = joints[k]
        if name in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
            start = joints[k] - np.array([0.0, 0.0, 0.02])
        tv, tf, ts = _tube(start, end, _radius(name))
        w = np.zeros((len(tv), 55))
        driver = k if name in ("jaw", "left_eye_smplhf", "right_eye_smplhf") else parent
        w[:, driver] = 1.0
        last = ts >= 1.0
        if driver != k:  # blend into the child at the far end, as a skin would
            w[last, driver], w[last, k] = 0.5, 0.5
        verts.append(tv)
        faces.append(tf + n)
        weights.append(w)
        ring_ids = n + np.nonzero(last)[0]
        reg_rows.setdefault(k, ring_ids)  # the far ring is centred on joint k
        if parent not in reg_rows and name not in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
            reg_rows[parent] = n + np.nonzero(ts <= 0.0)[0]
        face_mask.append(np.full(len(tv), name in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")))
        n += len(tv)
    template = np.concatenate(verts)
    faces = np.concatenate(faces).astype(np.int32)
    skin = np.concatenate(weights)
    is_face = np.concatenate(face_mask)
    regressor = np.zeros((55, len(template)))
    for k, ids in reg_rows.items():
        regressor[k, ids] = 1.0 / len(ids)
    # Shape: height, girth, leg length, shoulder width, then smooth random fields.
    rng = np.random.default_rng(seed)
    y = template[:, 1:2]
    dirs = [
        template * 0.04,
        np.concatenate([template[:, :1] * 0.1, np.zeros_like(y), template[:, 2:3] * 0.1], 1),
        np.concatenate([np.zeros_like(y), np.minimum(y, 0) * 0.06, np.zeros_like(y)], 1),
        np.concatenate([np.sign(template[:, :1]) * np.clip(y - 0.3, 0, None) * 0.2, np.zeros((len(y), 2))], 1),
    ]
    for _ in range(6):
        freq = rng.normal(size=3) * 3
        dirs.append(0.005 * np.sin(template @ freq + rng.uniform(0, 6))[:, None] * rng.normal(size=3))
    shape_dirs = np.stack(dirs, axis=2)
    exprs = []
    for i in range(5):
        field = np.zeros_like(template)
        field[is_face] = 0.006 * np.sin(template[is_face] * (4 + i) + i)[:, [1, 0, 2]]
        exprs.append(field)
    return joints, template, faces, skin, regressor, shape_dirs, np.stack(exprs, axis=2), is_face


def _top_k(weights: np.ndarray, k: int = SKIN_TOP_K):
    idx = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, idx, axis=1)
    w /= w.sum(axis=1, keepdims=True)
    return idx.astype(np.int32), w


def make_test_avatar(
    num_free: int = 2000, num_bound: int = 400, seed: int = 0, betas=None, prompt: str = "a procedural test avatar"
) -> H3GAAvatar:
    rng = np.random.default_rng(seed)
    _, template, faces, skin, regressor, shape_dirs, expr_dirs, is_face = build_body(seed)
    nb = shape_dirs.shape[2]
    betas = rng.normal(scale=0.5, size=nb) if betas is None else np.asarray(betas, dtype=np.float64)
    rest = template + shape_dirs @ betas
    rest_joints = regressor @ rest

    # Free Gaussians: on or just outside random body triangles, skinned like their triangle.
    bind = rng.integers(0, len(faces), num_free)
    bary = rng.dirichlet((2.0, 2.0, 2.0), num_free)
    tri = rest[faces[bind]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    means = np.einsum("nc,nci->ni", bary, tri) + normal * rng.uniform(0.0, 0.01, (num_free, 1))
    skin_joints, skin_weights = _top_k(np.einsum("nc,ncj->nj", bary, skin[faces[bind]]))

    # Mesh-bound Gaussians: hands and face.
    hand = (
        skin[
            :,
            [
                JOINT_INDEX[n]
                for n in JOINT_NAMES
                if "wrist" in n or any(f in n for f in ("index", "middle", "ring", "pinky", "thumb"))
            ],
        ].sum(1)
        > 0.5
    )
    candidates = np.nonzero((hand | is_face)[faces].all(axis=1))[0]
    bound_faces = rng.choice(candidates, num_bound)
    return H3GAAvatar(
        manifest=new_manifest(
            prompt=prompt,
            seed=seed,
            preset="test",
            body_kind="procedural",
            shape_names=["height", "girth", "leg_length", "shoulder_width"] + [f"shape_{i}" for i in range(4, nb)],
            expression_names=[f"face_unit_{i}" for i in range(expr_dirs.shape[2])],
        ),
        arrays={
            "rig/betas": betas,
            "rig/rest_joints": rest_joints,
            "rig/joint_regressor": regressor,
            "body/template_vertices": template,
            "body/faces": faces,
            "body/skin_weights": skin,
            "body/shape_dirs": shape_dirs,
            "body/expression_dirs": expr_dirs,
            "body/vertex_colors": np.clip(0.5 + 0.3 * np.sin(template * 7), 0, 1),
            "free/means": means,
            "free/log_scales": np.log(rng.uniform(0.006, 0.02, (num_free, 3))),
            "free/quats": rng.normal(size=(num_free, 4)),
            "free/opacity_logits": rng.normal(1.5, 0.5, num_free),
            "free/colors": rng.uniform(0.1, 0.9, (num_free, 3)),
            "free/skin_joints": skin_joints,
            "free/skin_weights": skin_weights,
            "free/bind_faces": bind,
            "free/bind_barycentrics": bary,
            "bound/faces": bound_faces,
            "bound/barycentrics": rng.dirichlet((3.0, 3.0, 3.0), num_bound),
            "bound/log_scales": np.log(
                np.concatenate([rng.uniform(0.003, 0.006, (num_bound, 2)), np.full((num_bound, 1), 0.001)], 1)
            ),
            "bound/quats": np.concatenate([np.ones((num_bound, 1)), np.zeros((num_bound, 3))], 1)
            + rng.normal(scale=0.1, size=(num_bound, 4)),
            "bound/opacity_logits": rng.normal(2.0, 0.3, num_bound),
            "bound/colors": rng.uniform(0.2, 0.8, (num_bound, 3)),
        },
    )
