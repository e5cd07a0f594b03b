"""Issue 21: glTF 2.0 binary export with KHR_gaussian_splatting (one posed frame, and the skinned,
animated avatar), read back with an independent reader (pygltflib) and checked by the Khronos
glTF Validator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, write_small_avatar  # noqa: E402
from web_helpers import validator_or_skip

from dreamwaltz.core.motion import TargetSkeleton, load_motion
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.core.rotations import quaternion_to_matrix
from dreamwaltz.core.splat_files import read_gaussian_ply

pytest.importorskip("pygltflib", reason="pygltflib (requirements.txt) is not installed")
from gltf_reference import (
    EXT,
    SH_C0,
    array,
    attributes,
    load,
    relative,
    skinning_matrices,  # noqa: E402
    splat_primitive,
    splats_of,
    triangle_frame,
)

ROOT = Path(__file__).resolve().parents[1]
MOCAP = ROOT / "backend" / "dreamwaltz" / "data" / "mocap"
WALK = MOCAP / "cmu_12_03_walk_cgspeed.bvh"
FRAMES = (100, 130)  # the clip exported with --motion


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The avatar, its file, and every kind of .glb the exporter writes (and the matching .ply)."""
    tmp = tmp_path_factory.mktemp("export")
    avatar, path = write_small_avatar(tmp)
    runs = {
        "posed.ply": ["--format", "ply", "--pose", WALK, "--frame", "200"],
        "posed.glb": ["--format", "glb", "--pose", WALK, "--frame", "200"],
        "posed_body.glb": ["--format", "glb", "--pose", WALK, "--frame", "200", "--with-body"],
        "rest.glb": ["--format", "glb"],
        "walk.glb": ["--format", "glb", "--motion", WALK, "--frames", f"{FRAMES[0]}:{FRAMES[1]}"],
        "walk_nobody.glb": ["--format", "glb", "--motion", WALK, "--frames", "0:3", "--no-body"],
    }
    for name, args in runs.items():
        out = cli("export", path, *args, "--out", tmp / name)
        assert out.returncode == 0, out.stderr
    return avatar, path, tmp


# ----------------------------------------------------------------------------- one posed frame


def test_posed_glb_holds_the_same_splats_as_the_ply_export(exported):
    avatar, _, tmp = exported
    gltf, blob = load(tmp / "posed.glb")
    assert EXT in gltf.extensionsUsed
    mesh, prim = splat_primitive(gltf)
    assert prim.mode == 0  # POINTS
    props = prim.extensions[EXT]
    assert props["kernel"] == "ellipse" and props["colorSpace"] == "srgb_rec709_display"
    got = splats_of(attributes(gltf, blob, prim))
    ply = read_gaussian_ply(tmp / "posed.ply")
    R = quaternion_to_matrix(np.stack([ply[f"rot_{i}"] for i in range(4)], 1))
    ply_cov = np.einsum("nij,nj,nkj->nik", R, np.exp(2 * np.stack([ply[f"scale_{i}"] for i in range(3)], 1)), R)
    assert np.abs(got["means"] - np.stack([ply["x"], ply["y"], ply["z"]], 1)).max() < 1e-5
    assert relative(got["cov"], ply_cov).max() < 1e-4
    assert np.allclose(got["quat_norm"], 1.0, atol=1e-6)
    assert np.all(got["opacities"] >= 0) and np.all(got["opacities"] <= 1)
    assert np.allclose(got["opacities"], 1 / (1 + np.exp(-ply["opacity"])), atol=1e-5)
    assert np.allclose(got["colors"], 0.5 + SH_C0 * np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1), atol=1e-5)
    # ... and both are the reference evaluator's pose of that frame.
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    ref = pose_avatar(avatar, seq.full_pose[200], transl=seq.transl[200])
    assert np.abs(got["means"] - ref.means).max() < 1e-5
    assert relative(got["cov"], ref.covariances).max() < 1e-4

    gltf, blob = load(tmp / "posed_body.glb")
    body = [p for m in gltf.meshes for p in m.primitives if p.mode == 4]
    assert len(body) == 1
    verts = attributes(gltf, blob, body[0])["POSITION"]
    assert np.abs(verts - ref.body.vertices).max() < 1e-5
    faces = array(gltf, blob, body[0].indices).reshape(-1, 3)
    assert np.array_equal(faces, avatar.arrays["body/faces"])


# ----------------------------------------------------------------------------- the skinned avatar


def test_animated_glb_skinned_by_the_documented_rule_is_the_posed_avatar(exported):
    avatar, _, tmp = exported
    gltf, blob = load(tmp / "walk.glb")
    seq = load_motion(WALK, TargetSkeleton.from_avatar(avatar))
    _, prim = splat_primitive(gltf)
    attrs = attributes(gltf, blob, prim)
    rest = splats_of(attrs)
    joints, weights = attrs["JOINTS_0"].astype(int), attrs["WEIGHTS_0"]
    body_prim = next(p for m in gltf.meshes for p in m.primitives if p.mode == 4)
    body = attributes(gltf, blob, body_prim)
    faces = array(gltf, blob, body_prim.indices).reshape(-1, 3).astype(int)
    n_free = avatar.num_free
    times = array(gltf, blob, gltf.animations[0].samplers[0].input)[:, 0]
    assert len(times) == FRAMES[1] - FRAMES[0]
    bound_error = []
    for k in (0, 11, FRAMES[1] - FRAMES[0] - 1):
        A = skinning_matrices(gltf, blob, times[k])
        # The rule of docs/EXPORT.md: M = sum_j w_j (world_j . inverseBind_j); centre M p, covariance L C L^T.
        M = np.einsum("nj,njab->nab", weights, A[joints])
        means = np.einsum("nab,nb->na", M[:, :3, :3], rest["means"]) + M[:, :3, 3]
        L = M[:, :3, :3]
        cov = L @ rest["cov"] @ L.transpose(0, 2, 1)
        Mb = np.einsum("nj,njab->nab", body["WEIGHTS_0"], A[body["JOINTS_0"].astype(int)])
        verts = np.einsum("nab,nb->na", Mb[:, :3, :3], body["POSITION"]) + Mb[:, :3, 3]

        ref = pose_avatar(avatar, seq.full_pose[FRAMES[0] + k], transl=seq.transl[FRAMES[0] + k])
        assert np.abs(verts - ref.body.vertices).max() < 1e-5
        assert np.abs(means[:n_free] - ref.means[:n_free]).max() < 1e-5
        assert relative(cov[:n_free], ref.covariances[:n_free]).max() < 1e-4
        # Standard rule: mesh-bound splats resolved to the body's skin approximate "follow the
        # posed triangle" (docs/EXPORT.md gives this bound).
        bound_error.append(np.abs(means[n_free:] - ref.means[n_free:]).max())
        assert bound_error[-1] < 3e-3  # measured 1.9 mm on this coarse test body
        assert np.median(relative(cov[n_free:], ref.covariances[n_free:])) < 0.05
        # Exact rule: a splat with a bind face sits at its barycentric point of the skinned
        # triangle, its covariance carried from the rest triangle's frame to the posed one's.
        face = attrs["_DREAMWALTZ_BIND_FACE"][:, 0]
        bound = face >= 0
        assert bound.sum() == avatar.num_bound and not bound[:n_free].any()
        tri = faces[face[bound].astype(int)]
        bary = attrs["_DREAMWALTZ_BIND_BARYCENTRIC"][bound]
        exact_means = np.einsum("mc,mci->mi", bary, verts[tri])
        F0, F1 = triangle_frame(body["POSITION"][tri]), triangle_frame(verts[tri])
        R = F1 @ F0.transpose(0, 2, 1)
        exact_cov = R @ rest["cov"][bound] @ R.transpose(0, 2, 1)
        assert np.abs(exact_means - ref.means[n_free:]).max() < 1e-5
        # float32 corners of centimetre-sized triangles tilt their frames by ~1e-5 rad: 1.0e-4 measured
        assert relative(exact_cov, ref.covariances[n_free:]).max() < 3e-4
    print("mesh-bound centre error of the standard rule (m):", bound_error)


def test_export_refuses_what_it_cannot_keep(exported):
    _, path, tmp = exported
    out = cli("export", path, "--format", "spz", "--motion", WALK, "--out", tmp / "x.spz")
    assert out.returncode == 2 and "--format glb" in out.stderr and "Traceback" not in out.stderr
    out = cli("export", path, "--format", "ply-seq", "--out", tmp / "seq")
    assert out.returncode == 2 and "--motion" in out.stderr
    out = cli("export", path, "--format", "glb", "--motion", WALK, "--betas", "1", "--out", tmp / "x.glb")
    assert out.returncode == 2 and "shape" in out.stderr
    out = cli("export", path, "--format", "glb", "--motion", WALK, "--frames", "5:2", "--out", tmp / "x.glb")
    assert out.returncode == 2 and "outside the clip" in out.stderr
    out = cli("export", path, "--format", "glb", "--frames", "0:3", "--out", tmp / "x.glb")
    assert out.returncode == 2 and "--frames needs --motion" in out.stderr
    assert not (tmp / "x.glb").exists()


# ----------------------------------------------------------------------------- the Khronos validator


# The released validator (2.0.0-dev.3.10, the newest on npm) predates extension-prefixed attribute
# semantics: it reports `KHR_gaussian_splatting:*` attributes as MESH_PRIMITIVE_INVALID_ATTRIBUTE
# (KhronosGroup/glTF-Validator issue 252, open) and cannot validate the extension itself.
# Those two and nothing else are allowed.
def expected_issue(message) -> bool:
    if message["code"] == "UNSUPPORTED_EXTENSION":
        return message["pointer"] == "/extensionsUsed/0"
    return message["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and message["pointer"].split("/attributes/")[
        -1
    ].startswith(f"{EXT}:")


def test_every_exported_glb_passes_the_khronos_validator(exported):
    command = validator_or_skip()
    _, _, tmp = exported
    files = sorted(tmp.glob("*.glb"))
    assert len(files) == 5
    out = subprocess.run(command + [str(f) for f in files], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for path, report in zip(files, json.loads(out.stdout)):
        unexpected = [m for m in report["issues"]["messages"] if not expected_issue(m) and m["severity"] <= 1]
        assert unexpected == [], (path.name, unexpected)
        assert report["issues"]["numErrors"] == sum(m["severity"] == 0 for m in report["issues"]["messages"])
        assert not report["issues"].get("truncated")
