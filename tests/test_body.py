"""Issue 3: the body models (open body and SMPL-X layout) and poses."""

from __future__ import annotations

import numpy as np
import pytest

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch

from dreamwaltz.body import LANDMARK_INDEX, BodyModel
from dreamwaltz.body.poses import apose, random_hand_pose, random_pose, sample_body_pose
from dreamwaltz.core.errors import BodyModelError
from dreamwaltz.core.joints import JOINT_INDEX, PARENTS, facts


@pytest.fixture(scope="module")
def body():
    return BodyModel.load("open")


def test_parents_match_smplx_exactly(body):
    reference = [j["parent"] for j in facts()["smplx_55_joints"]]
    assert body.parents == reference == list(PARENTS)


def test_the_kinematic_chain_matches_smplx_and_reads_nothing_back_from_the_device(body):
    """Issue 30: smplx's batch_rigid_transform walks the chain by indexing a Python list with the
    parents tensor's items: on a GPU, one host sync per joint (54 per forward). The body's own
    chain walks a plain tuple and gives smplx's transforms."""
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    from dreamwaltz.body.model import rigid_transforms
    from dreamwaltz.hostsync import HostSyncCounter

    g = torch.Generator().manual_seed(0)
    rot = batch_rodrigues(torch.randn(2 * 55, 3, generator=g) * 0.5).reshape(2, 55, 3, 3)
    joints = torch.randn(2, 55, 3, generator=g)
    for ours, theirs in zip(
        rigid_transforms(rot, joints, body.parents_tuple, body._parents),
        batch_rigid_transform(rot, joints, body._parents),
    ):
        assert torch.allclose(ours, theirs, atol=1e-6)
    assert isinstance(body.parents_tuple, tuple) and list(body.parents_tuple) == list(PARENTS)
    with HostSyncCounter() as syncs:
        body(full_pose=torch.randn(1, 55, 3, generator=g) * 0.3)
    assert syncs.total == 0, dict(syncs.kinds)
    with HostSyncCounter() as syncs:  # what the counter would have seen in smplx's loop
        batch_rigid_transform(rot, joints, body._parents)
    assert syncs.kinds["index"] == 54


def test_zero_pose_reproduces_the_rest_mesh(body):
    out = body()
    assert torch.allclose(out.vertices, out.rest_vertices, atol=1e-6)
    assert torch.allclose(out.joints, out.rest_joints, atol=1e-6)


def test_open_body_proportions_symmetry_and_weights(body):
    v = body().vertices[0].numpy()
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.55 < height < 1.85, height
    assert body.num_vertices > 5000 and body.num_betas >= 10 and body.num_expressions == 52
    assert np.allclose(body.skin_weights.sum(1).numpy(), 1.0, atol=1e-4)
    # Mirror symmetry: every vertex has a mirror partner within 5 mm.
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    idx = np.random.default_rng(0).choice(len(v), 400, replace=False)
    d = np.min(np.linalg.norm(v[None, :, :] - mirrored[idx, None, :], axis=2), axis=1)
    assert np.percentile(d, 95) < 0.005
    j = body().joints[0].numpy()
    assert j[JOINT_INDEX["left_shoulder"], 0] > 0.1 > -0.1 > j[JOINT_INDEX["right_shoulder"], 0], "left is +X"
    assert j[JOINT_INDEX["head"], 1] > j[0, 1] > j[JOINT_INDEX["left_ankle"], 1], "+Y is up"
    assert (
        v[:, 2].max() == v[np.argmax(v[:, 2]), 2]
        and body().landmarks[0, LANDMARK_INDEX["nose"], 2] > j[JOINT_INDEX["head"], 2]
    ), "faces +Z"
    arm = j[JOINT_INDEX["left_wrist"]] - j[JOINT_INDEX["left_shoulder"]]
    assert abs(arm[1]) < 0.05 * np.linalg.norm(arm) and abs(arm[2]) < 0.1 * np.linalg.norm(arm), "rest is a T-pose"


def test_lbs_of_a_known_rotation_moves_the_right_vertices(body):
    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["left_elbow"]] = [0.0, -np.pi / 2, 0.0]
    rest, bent = body(), body(full_pose=pose[None])
    moved = (torch.linalg.norm(bent.vertices - rest.vertices, dim=-1)[0] > 1e-3).numpy()
    w = body.skin_weights.numpy()
    forearm = w[:, [JOINT_INDEX[n] for n in ("left_elbow", "left_wrist", "left_middle1")]].sum(1) > 0.9
    torso = w[:, [JOINT_INDEX[n] for n in ("spine3", "right_shoulder", "right_elbow", "head", "left_hip")]].sum(1) > 0.9
    assert moved[forearm].mean() > 0.99 and not moved[torso].any()
    wrist = bent.joints[0, JOINT_INDEX["left_wrist"]] - bent.joints[0, JOINT_INDEX["left_elbow"]]
    assert abs(float(wrist[2])) > 0.8 * float(torch.linalg.norm(wrist)), "the forearm now points along z"


def test_each_expression_moves_only_the_face_and_the_jaw_opens_the_mouth(body):
    w = body.skin_weights.numpy()
    head = w[:, [JOINT_INDEX[n] for n in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf", "neck")]].sum(1) > 0.5
    dirs = body.expression_dirs.numpy()
    for e in range(body.num_expressions):
        moving = np.linalg.norm(dirs[:, :, e], axis=1) > 1e-3  # a millimetre: a visible change
        assert moving.any() and head[moving].all(), body.expression_names[e]
    lips = lambda out: float(
        out.landmarks[0, LANDMARK_INDEX["face_57"], 1] - out.landmarks[0, LANDMARK_INDEX["face_51"], 1]
    )
    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["jaw"]] = [0.35, 0, 0]
    assert lips(body(full_pose=pose[None])) < lips(body()) - 0.005, "the lower lip drops below the upper"


def test_shape_coefficients_have_names_and_change_height(body):
    assert body.shape_names[:6] == ["gender", "age", "muscle", "weight", "height", "proportions"]
    betas = torch.zeros(1, body.num_betas)
    betas[0, body.shape_names.index("height")] = 2.0
    h = lambda out: float(out.vertices[0, :, 1].max() - out.vertices[0, :, 1].min())
    assert h(body(betas=betas)) > h(body()) + 0.03


def synthetic_smplx(tmp_path, V=10475):
    """A file with SMPL-X's keys and shapes (random content, built here: never a real model)."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, V, (20908, 3))
    faces[: V // 3 * 1, 0] = np.arange(V // 3)  # every vertex in some triangle
    faces[: V - V // 3, 1] = np.arange(V // 3, V)
    weights = rng.random((V, 55))
    reg = rng.random((55, V))
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(
        path,
        v_template=rng.normal(size=(V, 3)) * 0.3,
        f=faces,
        J_regressor=reg / reg.sum(1, keepdims=True),
        kintree_table=np.stack([np.array([2**32 - 1] + list(PARENTS[1:])), np.arange(55)]),
        weights=weights / weights.sum(1, keepdims=True),
        shapedirs=rng.normal(size=(V, 3, 20)) * 0.01,
        posedirs=np.zeros((V, 3, 10)),
        lmk_faces_idx=rng.integers(0, 20908, 51),
        lmk_bary_coords=rng.dirichlet((1, 1, 1), 51),
        dynamic_lmk_faces_idx=rng.integers(0, 20908, (79, 17)),
        dynamic_lmk_bary_coords=rng.dirichlet((1, 1, 1), (79, 17)),
    )
    return path


def test_the_smplx_path_works_on_a_synthetic_file(tmp_path):
    body = BodyModel.load(synthetic_smplx(tmp_path), num_betas=10)
    assert body.kind == "smplx" and body.licensed and body.num_betas == 10 and body.num_expressions == 10
    pose = np.random.default_rng(1).normal(scale=0.2, size=(1, 55, 3))
    out = body(full_pose=pose)
    assert out.vertices.shape == (1, 10475, 3) and out.landmarks.shape == (1, 89, 3)
    assert torch.isfinite(out.vertices).all()


def test_bad_body_files_get_clear_errors(tmp_path):
    with pytest.raises(BodyModelError, match="does not exist"):
        BodyModel.load(tmp_path / "missing.npz")
    (tmp_path / "x.pkl").write_bytes(b"not really")
    with pytest.raises(BodyModelError, match="pickle"):
        BodyModel.load(tmp_path / "x.pkl")
    np.savez(tmp_path / "smpl.npz", v_template=np.zeros((10, 3)))
    with pytest.raises(BodyModelError, match="does not look like an SMPL-X"):
        BodyModel.load(tmp_path / "smpl.npz")


def test_poses_follow_the_paper():
    pose = apose()
    assert np.isclose(pose[JOINT_INDEX["left_shoulder"], 2], -np.pi / 4)
    assert np.isclose(pose[JOINT_INDEX["right_shoulder"], 2], np.pi / 4)
    assert np.isclose(abs(pose[JOINT_INDEX["left_hip"], 2]), 6 * np.pi / 180)
    assert not pose[25:].any(), "flat hands"
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = random_pose(rng)
        assert p[JOINT_INDEX["left_knee"], 0] >= 0, "knees bend one way"
        assert np.abs(p).max() < np.pi
    hand = random_hand_pose(rng, "left")
    assert hand.shape == (15, 3) and np.all(hand[:12, 2] <= 0), "left fingers curl towards the palm"
    bank = rng.normal(scale=0.1, size=(5, 21, 3))
    assert any(np.allclose(sample_body_pose(rng, bank)[1:22], b) for b in bank)


def test_the_pose_bank_holds_real_mocap_poses(body):
    from dreamwaltz.body.pose_bank import load_pose_bank

    bank = load_pose_bank(body().rest_joints[0].numpy())
    assert bank.shape[1:] == (21, 3) and len(bank) > 50
    knee = np.linalg.norm(bank[:, JOINT_INDEX["left_knee"] - 1], axis=1)
    assert np.ptp(knee) > np.radians(30), "walking cycles bend the knee through a wide range"
