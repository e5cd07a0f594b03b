"""Issue 31 in Blender: Bake Textured Mesh puts the avatar's mesh on its own armature, and the
CLI's FBX comes back through Blender's FBX importer with the same bones, rest pose, mesh and motion."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.testing import make_test_avatar

pytestmark = pytest.mark.blender
CLIP = Path(__file__).resolve().parent / "data" / "real_bvh" / "mocapbank_test.bvh"


def _world_vertices(obj, depsgraph):
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float64)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    m = np.array(obj.matrix_world, dtype=np.float64)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def _nearest(a, b):
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a)[0]


def _surface_distance(points, obj, depsgraph):
    """Distance from each point to the evaluated surface of ``obj`` (world space)."""
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    m = np.array(obj.matrix_world, dtype=np.float64)
    verts = [Vector(m[:3, :3] @ np.array(v.co) + m[:3, 3]) for v in mesh.vertices]
    tree = BVHTree.FromPolygons(verts, [tuple(p.vertices) for p in mesh.polygons])
    evaluated.to_mesh_clear()
    return np.array([tree.find_nearest(Vector(p))[3] for p in points])


def test_bake_textured_mesh_rides_the_avatars_armature(addon, tmp_path):
    import bpy
    from conftest import BACKEND_PYTHON

    from dreamwaltz_blender import api

    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=3000, num_bound=600, seed=3))
    bpy.context.scene.cursor.location = (1.5, 0.0, 0.0)
    avatar = api.import_avatar(str(path))
    before = set(bpy.data.objects)
    obj = api.bake_mesh(avatar, texture_size=256, python=BACKEND_PYTHON)
    assert set(bpy.data.objects) - before == {obj}, "only the baked mesh is added (the importer's rig is gone)"
    assert obj.parent == avatar.armature and obj.modifiers[0].type == "ARMATURE"
    assert obj.modifiers[0].object == avatar.armature
    joints = {g.name for g in obj.vertex_groups}
    assert {"pelvis", "left_knee", "right_wrist", "head"} <= joints
    images = [n.image for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE"]
    assert images and images[0].packed_file is not None and images[0].size[0] == 256
    keys = {k.name for k in obj.data.shape_keys.key_blocks}
    expressions = {k for k in avatar.body.data.shape_keys.key_blocks.keys() if k.startswith("expression:")}
    assert expressions and expressions <= keys, "the expression shape keys came along, named as the body's"

    depsgraph = bpy.context.evaluated_depsgraph_get()
    gap = _surface_distance(_world_vertices(obj, depsgraph), avatar.body, depsgraph)
    # The test avatar's splats are large (sigma up to 2 cm): its visible surface lies 2-5 cm out.
    assert np.median(gap) < 0.05 and gap.max() < 0.12, "at rest the mesh wraps the avatar's body where it stands"

    rng = np.random.default_rng(0)
    pose = np.zeros((55, 3))
    pose[[1, 2, 16, 17, 18, 19]] = rng.normal(0, 0.5, (6, 3))  # hips, shoulders, elbows
    api.set_pose(avatar, pose, transl=(0.3, 0.0, 0.2))
    depsgraph = bpy.context.evaluated_depsgraph_get()
    posed_gap = _surface_distance(_world_vertices(obj, depsgraph), avatar.body, depsgraph)
    change = np.abs(posed_gap - gap)
    assert np.median(change) < 0.005 and np.percentile(change, 95) < 0.02, "posed, it keeps to the body: skinned"

    rest = _world_vertices(obj, depsgraph)
    api.set_expression(avatar, np.full(len(expressions), 2.0))
    moved = np.linalg.norm(_world_vertices(obj, bpy.context.evaluated_depsgraph_get()) - rest, axis=1)
    assert moved.max() > 1e-3, "the panel's expression sliders move the baked mesh too"

    with pytest.raises(api.errors.DreamWaltzError, match="No local backend"):
        api.bake_mesh(avatar, 256, python=str(tmp_path / "no-python"))
    assert set(bpy.data.objects) - before == {obj}, "a failed bake adds nothing"


def test_fbx_export_reimports_with_the_same_bones_mesh_and_motion(blender, tmp_path):
    import bpy
    from conftest import BACKEND_PYTHON

    from dreamwaltz.core.gltf import read_glb
    from dreamwaltz.core.motion import TargetSkeleton, load_motion
    from dreamwaltz.core.posing import pose_body

    avatar = make_test_avatar(num_free=3000, num_bound=600, seed=3)
    path = write_h3ga(tmp_path / "a.h3ga", avatar)
    common = [BACKEND_PYTHON, "-m", "dreamwaltz", "export", str(path), "--texture", "128", "--motion", str(CLIP)]
    for fmt, out in (("fbx", tmp_path / "a.fbx"), ("mesh-glb", tmp_path / "a.glb")):
        run = subprocess.run(
            [*common, "--format", fmt, "--frames", "0:30", "--out", str(out)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-2000:]

    # The reference: the .glb's own rest mesh, skin and motion, posed here by linear blend skinning.
    gltf, blob = read_glb(tmp_path / "a.glb")

    def accessor(i):
        acc = gltf["accessors"][i]
        view = gltf["bufferViews"][acc["bufferView"]]
        width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
        dtype = {5126: "<f4", 5121: "u1", 5123: "<u2", 5125: "<u4"}[acc["componentType"]]
        data = np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"])
        return data.reshape(acc["count"], width).astype(np.float64)

    attrs = gltf["meshes"][0]["primitives"][0]["attributes"]
    rest_vertices = accessor(attrs["POSITION"])
    skin_joints, skin_weights = accessor(attrs["JOINTS_0"]).astype(int), accessor(attrs["WEIGHTS_0"])
    seq = load_motion(CLIP, TargetSkeleton.from_avatar(avatar))
    fps = float(seq.fps)

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = round(fps), round(fps) / fps  # clip time = scene time
    bpy.ops.import_scene.fbx(filepath=str(tmp_path / "a.fbx"))
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    images = [n.image for n in mesh.active_material.node_tree.nodes if n.type == "TEX_IMAGE"]
    assert images and tuple(images[0].size) == (128, 128), "the texture is embedded and comes back"
    names = avatar.joint_names
    assert set(rig.data.bones.keys()) == set(names), "the same bones, no leaf bones added"
    for k, parent in enumerate(avatar.parents):
        bone = rig.data.bones[names[k]]
        assert (bone.parent.name if bone.parent else None) == (names[parent] if parent >= 0 else None)
    to_blender = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # +Y up -> +Z up, as Blender shows glTF
    rest_joints = pose_body(avatar).rest_joints
    rig_world = np.array(rig.matrix_world, dtype=np.float64)
    heads = np.array([rig_world[:3, :3] @ np.array(rig.data.bones[n].head_local) + rig_world[:3, 3] for n in names])
    assert np.abs(heads - rest_joints @ to_blender.T).max() < 1e-3, "the same rest pose (joint positions, 1 mm)"

    m = np.array(mesh.matrix_world, dtype=np.float64)
    data = np.array([m[:3, :3] @ np.array(v.co) + m[:3, 3] for v in mesh.data.vertices])
    assert _nearest(data, rest_vertices @ to_blender.T).max() < 1e-3, "the same mesh (1 mm)"
    action = rig.animation_data.action
    assert round(action.frame_range[1] - action.frame_range[0]) == 29, "exactly the 30 frames of the clip"
    start = int(round(action.frame_range[0]))  # the clip's first frame (Blender's FBX importer starts at 1)
    for frame in (0, 14, 29):
        scene.frame_set(int(round(start)) + frame)
        body = pose_body(avatar, seq.full_pose[frame], transl=seq.transl[frame])
        G = body.skinning_transforms  # (55,4,4) rest -> posed
        blended = np.einsum("vk,vkij->vij", skin_weights, G[skin_joints])
        expected = np.einsum("vij,vj->vi", blended[:, :3, :3], rest_vertices) + blended[:, :3, 3]
        got = _world_vertices(mesh, bpy.context.evaluated_depsgraph_get())
        gap = _nearest(got, expected @ to_blender.T)
        assert gap.max() < 1e-3, f"frame {frame}: the animated FBX mesh is {gap.max() * 1000:.1f} mm off"
