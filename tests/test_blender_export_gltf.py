"""Issue 21: File > Export > DreamWaltz Avatar (.glb) from Blender: the skinned avatar with the
armature's action, and the current frame's splats, read back and checked against the scene."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.posing import pose_avatar
from dreamwaltz.core.testing import make_test_avatar

pytestmark = pytest.mark.blender
pytest.importorskip("pygltflib", reason="pygltflib (requirements.txt) is not installed")
from gltf_reference import attributes, load, relative, skinning_matrices, splat_primitive, splats_of  # noqa: E402


def test_animated_and_current_frame_glb_export(addon, tmp_path):
    import bpy

    from dreamwaltz_blender import api
    from dreamwaltz_blender.importer import space

    avatar = make_test_avatar(num_free=300, num_bound=80, seed=3)
    imported = api.import_avatar(str(write_h3ga(tmp_path / "a.h3ga", avatar)))
    rng = np.random.default_rng(1)
    poses, transl = rng.normal(scale=0.25, size=(3, 55, 3)), rng.normal(scale=0.2, size=(3, 3))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    for i in range(3):  # key three poses
        scene.frame_set(i + 1)
        api.set_pose(imported, poses[i], transl[i])
        for bone in imported.armature.pose.bones:
            bone.keyframe_insert("rotation_quaternion")
        imported.armature.pose.bones[0].keyframe_insert("location")
    scene.frame_set(2)
    bpy.context.view_layer.objects.active = imported.armature
    assert bpy.ops.export_scene.dreamwaltz_glb(filepath=str(tmp_path / "anim.glb"), animated=True) == {"FINISHED"}
    assert bpy.ops.export_scene.dreamwaltz_glb(filepath=str(tmp_path / "frame.glb"), animated=False) == {"FINISHED"}
    assert scene.frame_current == 2

    gltf, blob = load(tmp_path / "anim.glb")
    _, prim = splat_primitive(gltf)
    attrs = attributes(gltf, blob, prim)
    rest = splats_of(attrs)
    times = np.arange(3) / (scene.render.fps / scene.render.fps_base)
    n = avatar.num_free
    for k in range(3):  # skinned by the documented rule = the backend's pose of the keyed frame
        A = skinning_matrices(gltf, blob, times[k])
        M = np.einsum("nj,njab->nab", attrs["WEIGHTS_0"], A[attrs["JOINTS_0"].astype(int)])
        means = np.einsum("nab,nb->na", M[:, :3, :3], rest["means"]) + M[:, :3, 3]
        cov = M[:, :3, :3] @ rest["cov"] @ M[:, :3, :3].transpose(0, 2, 1)
        ref = pose_avatar(avatar, poses[k], transl=transl[k])
        assert np.abs(means[:n] - ref.means[:n]).max() < 1e-5
        assert relative(cov[:n], ref.covariances[:n]).max() < 1e-4

    # The current frame: the splats Blender shows, in glTF's +Y-up axes.
    gltf, blob = load(tmp_path / "frame.glb")
    got = splats_of(attributes(gltf, blob, splat_primitive(gltf)[1]))
    means, covs, _, _ = api.evaluated_splats(imported, bpy.context.evaluated_depsgraph_get())
    assert np.abs(got["means"] - space.points_to_smplx(means)).max() < 1e-5
    assert relative(got["cov"], space.matrices_to_smplx(covs)).max() < 1e-4
