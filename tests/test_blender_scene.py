"""Issue 19: 3DGS scenes in Blender, drawn by the avatars' drawing path (import, SH colour, occlusion)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dreamwaltz.core import splat_files
from dreamwaltz.core.errors import InvalidFileError

MOCAP = Path(__file__).resolve().parents[1] / "backend" / "dreamwaltz" / "data" / "mocap"

gsply = pytest.importorskip("gsply", reason="gsply (the independent splat reader/writer) is not installed")

UP = {"Y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), "-Y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])}


def random_splats(n=300, seed=0, degree=3):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return dict(
        means=rng.normal(scale=0.8, size=(n, 3)).astype(np.float32),
        scales=rng.normal(-3.0, 0.5, size=(n, 3)).astype(np.float32),
        quats=q.astype(np.float32),
        opacities=rng.normal(size=n).astype(np.float32),
        sh0=rng.normal(scale=0.6, size=(n, 3)).astype(np.float32),
        shN=rng.normal(scale=0.15, size=(n, splat_files.SH_REST[degree], 3)).astype(np.float32),
    )


def write_file(kind, path, s):
    if kind == "ply":
        gsply.plywrite(str(path), s["means"], s["scales"], s["quats"], s["opacities"], s["sh0"], s["shN"])
    elif kind == "compressed":
        data = gsply.compress_to_bytes(s["means"], s["scales"], s["quats"], s["opacities"], s["sh0"], s["shN"])
        path.write_bytes(data if isinstance(data, bytes) else data[0])
    else:
        gsply.write_spz(
            str(path),
            gsply.GSData(
                means=s["means"],
                scales=s["scales"],
                quats=s["quats"],
                opacities=s["opacities"],
                sh0=s["sh0"],
                shN=s["shN"],
            ),
        )
    return path


def decoded_by_gsply(kind, path):
    """What the independent reader makes of the file (its quantisation included)."""
    g = gsply.read_spz(str(path)) if kind == "spz" else gsply.plyread(str(path))
    return splat_files.SplatCloud(
        np.asarray(g.means),
        np.asarray(g.scales),
        np.asarray(g.quats),
        1 / (1 + np.exp(-np.asarray(g.opacities, dtype=np.float64))),
        np.asarray(g.sh0),
        np.asarray(g.shN).reshape(len(g.means), -1, 3),
        kind,
    )


def _camera(bpy, location):
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    cam.location = location
    return cam


@pytest.mark.parametrize(
    "kind,suffix,up", [("ply", "ply", "-Y"), ("compressed", "compressed.ply", "Y"), ("spz", "spz", "Y")]
)
def test_splat_scene_imports_equal_to_the_file(addon, tmp_path, kind, suffix, up):
    """Positions, covariances, opacities and view-dependent (SH degree 3) colours as Blender evaluates
    them equal the file as gsply reads it, within the format's quantisation."""
    import bpy

    from dreamwaltz_blender import api

    s = random_splats(seed=1)
    path = write_file(kind, tmp_path / f"scene.{suffix}", s)
    truth = decoded_by_gsply(kind, path)
    ours = splat_files.read_splats(path)
    assert ours.sh_degree == 3 and len(ours) == len(truth)
    cam = _camera(bpy, (0.4, -4.0, 0.9))
    if kind == "spz":  # through File > Import, as an artist would
        assert bpy.ops.import_scene.dreamwaltz_splats(filepath=str(path), up_axis=up) == {"FINISHED"}
        obj = bpy.context.scene.objects[path.stem]
    else:
        obj = api.import_splat_scene(str(path), up_axis=up)
    bpy.context.view_layer.update()
    means, cov, colors, opacities = api.evaluated_scene_splats(obj)

    R = UP[up]
    assert np.abs(means - truth.means @ R.T).max() < 2e-3  # compressed PLY: 11/10-bit positions per chunk
    L = truth.covariance_square_roots()
    expected_cov = R @ (L @ np.transpose(L, (0, 2, 1))) @ R.T
    rel = np.linalg.norm(cov - expected_cov, axis=(1, 2)) / np.linalg.norm(expected_cov, axis=(1, 2))
    assert np.median(rel) < 0.02 and rel.max() < 0.1, (np.median(rel), rel.max())  # 8-bit log-scales in SPZ
    assert np.abs(opacities - truth.opacities).max() < 0.01
    from dreamwaltz_blender import compat

    if compat.HAS_GEOMETRY_SET:  # 4.2 cannot read evaluated instance attributes (the SH colour) back
        expected = splat_files.view_colors(truth, R.T @ np.array(cam.location))  # camera in the file's frame
        assert np.abs(colors - expected).max() < 0.04, np.abs(colors - expected).max()
        assert np.abs(colors - truth.colors).max() > 0.2, "the colours depend on the view (SH), not only the DC term"
    if kind == "spz":  # the import's viewport density thins the viewport only
        api.set_viewport_density(obj, 0.25)
        bpy.context.view_layer.update()
        from blender_render import shown_splat_count

        shown = shown_splat_count(bpy, obj)
        assert 0.1 * len(truth) < shown < 0.4 * len(truth)


def test_spherical_harmonics_and_quaternions_follow_3dgs_conventions(addon, tmp_path):
    """Known values: SH coefficient 1 is -C1 * y (C1 = 0.4886025); rot_0..3 is (w, x, y, z)."""
    import bpy

    from dreamwaltz_blender import api

    s = random_splats(n=1, degree=1)
    s["means"][:] = 0.0
    s["sh0"][:] = 0.0
    s["shN"][:] = 0.0
    s["shN"][0, 0] = (1.0, 0.0, 0.0)  # red follows -C1 * y of the view direction
    s["scales"][:] = np.log([0.3, 0.05, 0.05])
    s["quats"][:] = (np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4))  # 90 degrees about +Z (w, x, y, z)
    s["opacities"][:] = 3.0
    path = write_file("ply", tmp_path / "one.ply", s)
    obj = api.import_splat_scene(str(path), up_axis="Z")  # Blender frame = file frame
    api.set_standard_view(bpy.context.scene)
    from blender_render import render_to_array

    from dreamwaltz_blender import compat

    for side, expected in ((-1.0, 0.5 - 0.4886025), (1.0, 0.5 + 0.4886025)):  # looking along +Y, then -Y
        cam = _look(bpy, (0.0, side * 1.0, 0.0), (0.0, 0.0, 0.0))
        cam.data.lens = 100
        # 64 samples: Blender's own splats (5.3) are transparent stochastically, a few samples are noisy.
        image = render_to_array(bpy, tmp_path / "one.png", size=16, samples=64)
        assert image[8, 8, 3] > 0.8 and image[8, 8, 0] == pytest.approx(expected, abs=0.01), image[8, 8]
        assert np.allclose(image[8, 8, 1:3], 0.5, atol=0.01)
        if compat.HAS_GEOMETRY_SET:  # 4.2 cannot read evaluated instance attributes back
            _, cov, colors, _ = api.evaluated_scene_splats(obj)
            assert colors[0, 0] == pytest.approx(expected, abs=2e-3)
        bpy.data.objects.remove(cam, do_unlink=True)
    _, cov, _, _ = api.evaluated_scene_splats(obj)
    # The long axis (scale 0.3 along local x) turned onto +Y.
    assert np.allclose(np.diag(cov[0]), [0.05**2, 0.3**2, 0.05**2], rtol=1e-4)


def test_bad_splat_files_change_nothing(addon, tmp_path):
    import bpy

    from dreamwaltz_blender import api

    errors = __import__("dreamwaltz.core.errors", fromlist=["DreamWaltzError"])
    before = (len(bpy.data.objects), len(bpy.data.meshes))
    mesh_ply = tmp_path / "mesh.ply"
    mesh_ply.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
        b"property float z\nend_header\n" + np.zeros(3, "<f4").tobytes()
    )
    truncated = tmp_path / "cut.ply"
    write_file("ply", truncated, random_splats(n=20))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    liar = tmp_path / "liar.spz"
    import gzip
    import struct

    liar.write_bytes(gzip.compress(struct.pack("<IIIBBBB", splat_files.SPZ_MAGIC, 3, 2_000_000_000, 3, 12, 0, 0)))
    for path, words in ((mesh_ply, "not a 3D Gaussian splatting PLY"), (truncated, "truncated"), (liar, "declares")):
        with pytest.raises(errors.DreamWaltzError, match=words) as info:
            api.import_splat_scene(str(path))
        assert path.name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidFileError):
        splat_files.read_splats(tmp_path / "missing.ply")
    assert (len(bpy.data.objects), len(bpy.data.meshes)) == before


def _flat_avatar(color, seed):
    """The test avatar in one flat colour, splats 1.5x as large (a solid silhouette)."""
    from dreamwaltz.core.testing import make_test_avatar

    avatar = make_test_avatar(num_free=1500, num_bound=300, seed=seed)
    for group in ("free", "bound"):
        n = len(avatar.arrays[f"{group}/colors"])
        avatar.arrays[f"{group}/colors"] = np.tile(color, (n, 1))
        avatar.arrays[f"{group}/log_scales"] = avatar.arrays[f"{group}/log_scales"] + np.log(1.5)
        avatar.arrays[f"{group}/opacity_logits"] = np.full(n, 5.0)
    return avatar


def _emissive_plane(bpy, name, size, location, rotation, color):
    mesh = bpy.data.meshes.new(name)
    h = size / 2
    mesh.from_pydata([(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)], [], [(0, 1, 2, 3)])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler = location, rotation
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*color, 1.0)
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emission.outputs[0], out.inputs["Surface"])
    mesh.materials.append(mat)
    return obj


def _renders_alone_and_together(bpy, tmp_path, objects_by_name, engine="CYCLES"):
    """Renders of each group of objects alone (alpha masks) and of all together (colours)."""
    from blender_render import render_to_array

    alone = {}
    for name in objects_by_name:
        for other, group in objects_by_name.items():
            for obj in group:
                obj.hide_render = other != name
        alone[name] = render_to_array(bpy, tmp_path / f"alone_{name}.png", size=96, samples=16, engine=engine)[..., 3]
    for group in objects_by_name.values():
        for obj in group:
            obj.hide_render = False
    return alone, render_to_array(bpy, tmp_path / "together.png", size=96, samples=16, engine=engine)


def _look(bpy, location, target):
    import mathutils

    cam = _camera(bpy, location)
    cam.rotation_euler = (mathutils.Vector(target) - cam.location).to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    return cam


@pytest.mark.parametrize("engine", ["CYCLES", "EEVEE"])
def test_avatars_and_a_mesh_wall_hide_each_other_by_depth(addon, tmp_path, engine):
    """A red avatar in front, a blue one 1 m behind it and to the side, a grey wall between them
    covering part of the blue one: each pixel shows the nearest thing, in Cycles and in Eevee."""
    import bpy

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz_blender import api

    scene = bpy.context.scene
    red = api.import_avatar(
        str(write_h3ga(tmp_path / "red.h3ga", _flat_avatar((0.9, 0.05, 0.05), 1))), set_view_transform=True
    )
    scene.cursor.location = (0.2, 1.0, 0.0)
    blue = api.import_avatar(str(write_h3ga(tmp_path / "blue.h3ga", _flat_avatar((0.05, 0.1, 0.9), 2))))
    wall = _emissive_plane(bpy, "Wall", 1.0, (0.8, 0.5, 0.9), (np.pi / 2, 0, 0), (0.5, 0.5, 0.5))
    _look(bpy, (0.2, -4.0, 0.9), (0.2, 0.0, 0.9))
    parts = {"red": [red.splats], "blue": [blue.splats], "wall": [wall]}  # bodies stay hidden (splat display)
    try:
        alone, together = _renders_alone_and_together(bpy, tmp_path, parts, engine)
    except RuntimeError as err:  # no OpenGL at all on this machine
        pytest.skip(f"{engine} cannot render here: {err}")
    solid = {k: v > 0.8 for k, v in alone.items()}
    rgb = together[..., :3]
    regions = {
        "red over blue": (solid["red"] & solid["blue"], 0),
        "wall over blue": (solid["wall"] & solid["blue"] & (alone["red"] < 0.02), None),
        "blue alone": (solid["blue"] & (alone["red"] < 0.02) & (alone["wall"] < 0.02), 2),
    }
    for name, (mask, channel) in regions.items():
        assert mask.sum() >= 10, f"the shot has a '{name}' region ({mask.sum()} px)"
        pixels = rgb[mask]
        if channel is None:  # the wall's grey, not blue
            assert np.abs(pixels - pixels.mean(axis=1, keepdims=True)).max(axis=1).mean() < 0.05, name
        else:
            assert (pixels.argmax(axis=1) == channel).mean() > 0.95, f"{name}: {pixels.mean(axis=0)}"


@pytest.mark.parametrize("room_importer", ["addon", "blender"])
@pytest.mark.parametrize("engine", ["CYCLES", "EEVEE"])
def test_an_avatar_stands_inside_a_splat_scene(addon, tmp_path, engine, room_importer):
    """A 3DGS room (a back wall of splats behind the avatar, a pillar of splats in front of it):
    the avatar covers the wall and the pillar covers the avatar, in one render (Cycles, Eevee). The
    room comes from the add-on's importer or from Blender's own File > Import > .ply (5.3+)."""
    import bpy

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz_blender import api, compat

    if room_importer == "blender" and not compat.HAS_NATIVE_SPLATS:
        pytest.skip("Blender before 5.3 has no Gaussian splat importer of its own")

    rng = np.random.default_rng(4)
    # File frame +Z up (imported with up_axis "Z"): a green wall at y = +1.5, a yellow pillar at y = -0.6.
    wall = np.stack(np.meshgrid(np.linspace(-1.5, 1.5, 40), [1.5], np.linspace(0.0, 2.2, 30)), -1).reshape(-1, 3)
    pillar = np.stack(np.meshgrid(np.linspace(0.05, 0.3, 6), [-0.6], np.linspace(0.0, 2.2, 40)), -1).reshape(-1, 3)
    means = np.concatenate([wall, pillar]).astype(np.float32)
    n = len(means)
    colour = np.concatenate([np.tile([0.1, 0.8, 0.1], (len(wall), 1)), np.tile([0.9, 0.85, 0.1], (len(pillar), 1))])
    s = dict(
        means=means + rng.normal(scale=0.002, size=means.shape).astype(np.float32),
        scales=np.full((n, 3), np.log(0.05), np.float32),
        quats=np.tile([1.0, 0, 0, 0], (n, 1)).astype(np.float32),
        opacities=np.full(n, 6.0, np.float32),
        sh0=((colour - 0.5) / splat_files.SH_C0).astype(np.float32),
        shN=np.zeros((n, 0, 3), np.float32),
    )
    ply = write_file("ply", tmp_path / "room.ply", s)
    if room_importer == "blender":  # file axes = Blender axes, as up_axis "Z" gives the add-on's import
        assert bpy.ops.wm.ply_import(filepath=str(ply), forward_axis="Y", up_axis="Z") == {"FINISHED"}
        room = bpy.context.selected_objects[0]
    else:
        room = api.import_splat_scene(str(ply), up_axis="Z")
    avatar = api.import_avatar(
        str(write_h3ga(tmp_path / "red.h3ga", _flat_avatar((0.9, 0.05, 0.05), 1))), set_view_transform=True
    )
    _look(bpy, (0.0, -4.0, 1.0), (0.0, 0.0, 1.0))
    room_only = splat_files.read_splats(tmp_path / "room.ply")
    assert len(room_only) == n
    try:
        alone, together = _renders_alone_and_together(
            bpy, tmp_path, {"avatar": [avatar.splats], "room": [room]}, engine
        )
    except RuntimeError as err:  # no OpenGL at all on this machine
        pytest.skip(f"{engine} cannot render here: {err}")
    rgb = together[..., :3]
    avatar_px = alone["avatar"] > 0.8
    pillar_px = (rgb[..., 0] > 0.6) & (rgb[..., 1] > 0.6) & (rgb[..., 2] < 0.3)  # yellow in the full render
    red_px = (rgb.argmax(axis=-1) == 0) & (together[..., 3] > 0.5) & ~pillar_px  # the avatar, not the green wall
    in_front_of_wall = avatar_px & ~pillar_px
    assert in_front_of_wall.sum() > 100 and (red_px & in_front_of_wall).sum() > 0.95 * in_front_of_wall.sum(), (
        "the avatar covers the wall behind it"
    )
    assert (avatar_px & pillar_px).sum() >= 10, "the pillar in front covers part of the avatar"
    assert (red_px & (alone["avatar"] < 0.02)).sum() < 5, "no red where the avatar is not"


def test_a_crowd_shares_one_copy_of_the_splat_data(addon, tmp_path):
    """A second import of the same file and a duplicate share the splat mesh; each avatar keeps its
    own pose and shape, and its splats sit where its own armature puts them."""
    import bpy

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.joints import JOINT_INDEX
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api

    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=300, num_bound=60, seed=5))
    first = api.import_avatar(str(path))
    meshes, vertices = len(bpy.data.meshes), sum(len(m.vertices) for m in bpy.data.meshes)
    bpy.context.scene.cursor.location = (1.5, 0.0, 0.0)
    second = api.import_avatar(str(path))
    twin = api.duplicate_avatar(first, offset=(-1.5, 0.0, 0.0))
    assert second.splats.data == first.splats.data == twin.splats.data, "one splat mesh for the three"
    added = sum(len(m.vertices) for m in bpy.data.meshes) - vertices
    assert len(bpy.data.meshes) == meshes + 2 and added == 2 * len(first.body.data.vertices), "only bodies are added"

    bpy.context.view_layer.update()
    base, _, _, _ = api.evaluated_splats(first)
    for other, shift in ((second, (1.5, 0, 0)), (twin, (-1.5, 0, 0))):
        means, _, _, _ = api.evaluated_splats(other)
        assert np.abs(means - (base + np.array(shift))).max() < 1e-5, "each stands where it was put"

    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["left_shoulder"]] = [0, 0, -1.0]
    api.set_pose(twin, pose)
    api.set_shape(second, np.full(len(second.armature["dreamwaltz_betas0"]), 1.5))
    bpy.context.view_layer.update()
    assert np.abs(api.evaluated_splats(first)[0] - base).max() < 1e-6, "the original is untouched"
    moved = np.linalg.norm(api.evaluated_splats(twin)[0] - (base + np.array((-1.5, 0, 0))), axis=1)
    assert moved.max() > 0.1, "the duplicate has its own pose"
    reshaped = np.linalg.norm(api.evaluated_splats(second)[0] - (base + np.array((1.5, 0, 0))), axis=1)
    assert reshaped.max() > 0.01, "the second import has its own shape"


def test_layout_places_avatars_on_a_grid_and_along_a_path(addon, tmp_path):
    import bpy

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api

    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=100, num_bound=20, seed=6))
    first = api.import_avatar(str(path))
    crowd = [first] + [api.duplicate_avatar(first, offset=(0, 0, 0)) for _ in range(3)]
    bpy.context.view_layer.update()
    root = lambda a: np.array(a.armature.matrix_world @ a.armature.pose.bones["pelvis"].head)
    api.layout_avatars(crowd, columns=2, spacing=2.0, origin=(1.0, 1.0, 0.0))
    bpy.context.view_layer.update()
    spots = np.array([root(a)[:2] for a in crowd])
    assert np.allclose(spots, [[1, 1], [3, 1], [1, 3], [3, 3]], atol=1e-5)

    curve = bpy.data.curves.new("Path", "CURVE")
    spline = curve.splines.new("POLY")
    spline.points.add(1)
    spline.points[0].co, spline.points[1].co = (0.0, 0.0, 0.0, 1.0), (0.0, 6.0, 0.0, 1.0)
    path_obj = bpy.data.objects.new("Path", curve)
    bpy.context.scene.collection.objects.link(path_obj)
    api.layout_avatars(crowd, path=path_obj)
    bpy.context.view_layer.update()
    spots = np.array([root(a) for a in crowd])
    assert np.allclose(spots[:, :2], [[0, 0], [0, 2], [0, 4], [0, 6]], atol=1e-5)
    forward = np.array(crowd[1].armature.matrix_world.to_3x3()) @ np.array([0.0, -1.0, 0.0])
    assert np.allclose(forward, [0, 1, 0], atol=1e-6), "they face along the path (+Y)"


@pytest.mark.parametrize("room_importer", ["addon", "blender"])
def test_a_blender_scene_exports_to_what_render_scene_draws(addon, tmp_path, room_importer):
    """File > Export > DreamWaltz Scene: the backend's scene (load_scene + frame_gaussians) holds the
    Gaussians Blender draws at each frame (a splat room's view-dependent colours included, seen from
    a moving camera), and its camera projects like Blender's. The room comes from the add-on's
    importer, or from Blender's own File > Import > .ply (5.3+: a native splat cloud)."""
    import bpy

    from dreamwaltz_blender import compat

    if room_importer == "blender" and not compat.HAS_NATIVE_SPLATS:
        pytest.skip("Blender before 5.3 has no Gaussian splat importer of its own")
    import mathutils
    from bpy_extras.object_utils import world_to_camera_view

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.scene import frame_gaussians, load_assets, load_scene
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api, motion

    scene = bpy.context.scene
    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=300, num_bound=60, seed=8))
    walker = api.import_avatar(str(path))
    motion.apply_motion(walker, str(MOCAP / "makehuman_walk1.bvh"), start_frame=1)
    scene.frame_start, scene.frame_end = 1, 3
    twin = api.duplicate_avatar(walker, offset=(1.2, 0.5, 0.0))
    twin.armature.animation_data_clear()
    twin.armature.rotation_euler.z = math.radians(30)
    api.set_shape(twin, np.full(len(twin.armature["dreamwaltz_betas0"]), 0.8))
    ply = tmp_path / "room.ply"
    write_file("ply", ply, random_splats(n=200, seed=3, degree=3))  # colours that change with the view
    if room_importer == "blender":
        assert bpy.ops.wm.ply_import(filepath=str(ply)) == {"FINISHED"}
        room = bpy.context.selected_objects[0]
        assert room.type == "POINTCLOUD" and room.data.type == "GAUSSIAN_SPLAT"
    else:
        room = api.import_splat_scene(str(ply), up_axis="-Y")
    room.location.x = 0.4
    room.rotation_euler.z = math.radians(25)
    cam = _look(bpy, (0.5, -5.0, 1.4), (0.5, 0.0, 0.9))
    cam.keyframe_insert("location", frame=1)
    cam.location = (3.0, -4.0, 2.0)  # the camera moves: the room's colours change with it
    cam.keyframe_insert("location", frame=3)
    scene.render.resolution_x, scene.render.resolution_y = 64, 48

    assert bpy.ops.export_scene.dreamwaltz_scene(filepath=str(tmp_path / "shot.json")) == {"FINISHED"}
    loaded = load_scene(tmp_path / "shot.json")
    assets = load_assets(loaded)
    by_name = {a.armature.name: a for a in (walker, twin)}
    C = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # SMPL-X -> Blender
    for frame in (1, 3):
        scene.frame_set(frame)
        bpy.context.view_layer.update()
        parts = [api.evaluated_splats(by_name[item.name]) for item in loaded.avatars] + [
            api.evaluated_scene_splats(room)
        ]
        blender_means = np.concatenate([p[0] for p in parts]) @ C  # Blender world -> SMPL-X world
        blender_cov = np.einsum("ji,njk,kl->nil", C, np.concatenate([p[1] for p in parts]), C)
        backend = frame_gaussians(loaded, assets, frame)
        assert np.abs(backend.means - blender_means).max() < 2e-4, f"frame {frame}"
        rel = np.linalg.norm(backend.covariances - blender_cov, axis=(1, 2)) / np.linalg.norm(blender_cov, axis=(1, 2))
        assert rel.max() < 0.01
        # the room's spherical harmonics seen from this frame's camera, as Blender colours them (4.2
        # cannot read the nodes' colours back: there the API evaluates the same SH in the object's frame)
        room_colors = parts[-1][2]
        assert np.abs(backend.colors[-len(room_colors) :] - room_colors).max() < 2e-3, f"frame {frame}"
        camera = loaded.camera.at(frame, loaded)
        points = blender_means[::50]
        uv, _ = camera.project(points)
        ndc = np.array([world_to_camera_view(scene, cam, mathutils.Vector(C @ p))[:2] for p in points])
        expected = np.stack([ndc[:, 0] * 64, (1 - ndc[:, 1]) * 48], 1)
        assert np.abs(uv - expected).max() < 0.5, "the exported camera projects like Blender's"


def test_avatars_share_the_node_trees_beside_an_older_add_ons_trees(addon, tmp_path):
    """A .blend from an older add-on keeps its trees under the plain names; new avatars still share
    one set of trees (named "<name>.001") instead of each making its own."""
    import bpy

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api

    bpy.data.node_groups.new("DreamWaltz Splats", "GeometryNodeTree").use_fake_user = True  # the older tree
    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=50, num_bound=10, seed=1))
    first, second = api.import_avatar(str(path)), api.import_avatar(str(path))
    trees = {a.splats.modifiers["DreamWaltz Splats"].node_group for a in (first, second)}
    assert len(trees) == 1 and next(iter(trees)).name != "DreamWaltz Splats"
    assert len([t for t in bpy.data.node_groups if t.name.startswith("DreamWaltz Splats")]) == 2


def test_a_new_import_does_not_share_an_older_add_ons_splat_mesh(addon, tmp_path):
    """The splat mesh's point layout belongs to the drawing version that made it: an avatar of the
    same file already in a .blend from an older add-on keeps its own, and the new import draws
    exactly like a first import."""

    from dreamwaltz.core.h3ga import write_h3ga
    from dreamwaltz.core.testing import make_test_avatar
    from dreamwaltz_blender import api

    path = write_h3ga(tmp_path / "a.h3ga", make_test_avatar(num_free=50, num_bound=10, seed=1))
    fresh = api.evaluated_splats(api.import_avatar(str(path)))
    older = api.import_avatar(str(path))
    older.splats.data["dreamwaltz_draw_version"] = -1  # as an older add-on's mesh
    newer = api.import_avatar(str(path))
    assert newer.splats.data != older.splats.data
    for a, b in zip(fresh, api.evaluated_splats(newer)):
        np.testing.assert_allclose(a, b, atol=1e-6)
