# SPDX-License-Identifier: GPL-3.0-or-later
"""Scripting API of the DreamWaltz add-on (documented in docs/BLENDER.md).

avatar = import_avatar("/path/knight.h3ga")          # armature + body mesh + splats
set_shape(avatar, betas); set_expression(avatar, values)
means, covariances, colours, opacities = evaluated_splats(avatar, depsgraph)
action = apply_motion(avatar, "walk.bvh", start_frame=1)   # or an animated armature object
twin = duplicate_avatar(avatar, (1, 0, 0)); layout_avatars([avatar, twin], spacing=1.5)
scene = import_splat_scene("/path/garden.ply", up_axis="-Y")
camera = reenact(avatar, "walk.track.npz", plate_path="walk_plate.mp4", person=0)
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import compat
from .avatar import ROLE, STANDARD_VIEW, Avatar  # noqa: F401  (part of the scripting API)
from .importer import armature as armature_builder
from .importer import body as body_builder
from .importer import nodes, space
from .importer import splats as splat_builder
from .shared import module

errors = module("errors")
h3ga = module("h3ga")
color = module("color")
rotations = module("rotations")
JOINT_NAMES = module("joints").JOINT_NAMES

DISPLAY_MODES = ("SPLATS", "MESH", "BOTH")


def import_avatar(path, collection=None, set_view_transform: bool = False) -> Avatar:
    """Import a .h3ga avatar at the 3D cursor, standing on the ground. A bad file changes nothing.

    Colours are converted from the file's colour space to scene-linear; they show as trained under
    the Standard view transform. ``set_view_transform`` sets the scene's view to Standard (look
    None); otherwise the scene is left as it is (see ``view_transform_warning``).
    """
    avatar = h3ga.read_h3ga(path)  # validates everything before the scene is touched
    scene = bpy.context.scene
    parent_collection = collection or scene.collection
    label = _label(avatar, path)
    created = {"collection": None}
    try:
        coll = bpy.data.collections.new(label)
        created["collection"] = coll
        parent_collection.children.link(coll)
        result = _build(avatar, label, coll, Path(path), scene)
    except Exception as err:
        _remove_collection(created["collection"])
        if isinstance(err, errors.DreamWaltzError):
            raise
        raise errors.DreamWaltzError(
            f"Importing '{Path(path).name}' failed: {err}", "Please report this with the file."
        ) from err
    if set_view_transform:
        set_standard_view(scene)
    return result


def view_transform_warning(scene=None) -> str | None:
    """A one-line warning when ``scene``'s colour management does not show avatars as trained, else None.

    Avatar colours are display values emitted as scene-linear light: only the Standard view
    transform with no look, exposure 0 and gamma 1 turns them back into the trained pixels (AgX
    and Filmic desaturate and brighten them).
    """
    view = (scene or bpy.context.scene).view_settings
    changed = []
    if view.view_transform != STANDARD_VIEW:
        changed.append(f"view transform '{view.view_transform}'")
    if view.look not in ("None", ""):
        changed.append(f"look '{view.look}'")
    if abs(view.exposure) > 1e-6 or abs(view.gamma - 1.0) > 1e-6:
        changed.append("exposure/gamma")
    if not changed:
        return None
    return (
        f"The scene's {' and '.join(changed)} changes avatar colours from what was trained; "
        f"use the Standard view transform (Render Properties > Color Management) to see them as trained."
    )


def set_standard_view(scene=None) -> None:
    """Colour management that shows avatar colours as trained: Standard, no look, exposure 0, gamma 1."""
    view = (scene or bpy.context.scene).view_settings
    view.view_transform = STANDARD_VIEW
    view.look = "None"
    view.exposure = 0.0
    view.gamma = 1.0


def scene_has_avatar(scene=None) -> bool:
    return any(obj.get(ROLE) == "armature" for obj in (scene or bpy.context.scene).objects)


def _label(avatar, path) -> str:
    prompt = (avatar.manifest.get("prompt") or Path(path).stem).strip()
    return ("DW " + prompt)[:48]


def _build(avatar, label, coll, path, scene) -> Avatar:
    a = avatar.arrays
    cursor = np.array(scene.cursor.location)
    rest_body = space.points_to_blender(
        a["body/template_vertices"] + a["body/shape_dirs"] @ a["rig/betas"].astype(np.float64)
    )
    offset = np.array([cursor[0], cursor[1], cursor[2] - rest_body[:, 2].min()])
    joints = space.points_to_blender(a["rig/rest_joints"]) + offset

    rig = armature_builder.create_armature(f"{label} Rig", avatar.joint_names, avatar.parents, joints, coll)
    rig[ROLE] = "armature"
    rig["dreamwaltz_file"] = str(path)
    rig["dreamwaltz_offset"] = offset.tolist()
    rig["dreamwaltz_betas0"] = a["rig/betas"].astype(np.float64).tolist()
    rig["dreamwaltz_rest_joints"] = a["rig/rest_joints"].astype(np.float64).ravel().tolist()
    # Joint motion per unit beta (regressor . shape dirs): lets shape edits rebuild the rest pose.
    joint_dirs = np.einsum(
        "jv,vcb->jcb", a["rig/joint_regressor"].astype(np.float64), a["body/shape_dirs"].astype(np.float64)
    )
    rig["dreamwaltz_joint_shape_dirs"] = joint_dirs.ravel().tolist()
    rig["dreamwaltz_prompt"] = avatar.manifest.get("prompt", "")
    rig["dreamwaltz_color_space"] = color.color_space(avatar.manifest)  # the file's; Blender holds scene-linear

    body = body_builder.create_body(f"{label} Body", avatar, offset, rig, coll, space)
    body[ROLE] = "body"
    rest_mod = body.modifiers.new("DreamWaltz Rest Shape", "NODES")
    rest_mod.node_group = nodes.rest_shape_tree()
    skin = body.modifiers.new("Armature", "ARMATURE")
    skin.object = rig
    skin.use_deform_preserve_volume = False
    body.data.materials.append(_body_material())

    source = _source_key(path)
    shared = next(
        (
            m
            for m in bpy.data.meshes
            if m.get("dreamwaltz_source") == source
            and m.get("dreamwaltz_draw_version") == nodes.DRAW_VERSION  # a proxy the new trees can read
            and m.users > 0
        ),
        None,
    )
    splat_obj = splat_builder.create_splats(
        f"{label} Splats", avatar, offset, rig, body, coll, space, rotations, mesh=shared
    )
    splat_obj.data["dreamwaltz_source"] = source
    splat_obj[ROLE] = "splats"

    # Many overlapping translucent splats: Cycles must not stop after a few transparent hits.
    if hasattr(scene, "cycles"):
        scene.cycles.transparent_max_bounces = max(scene.cycles.transparent_max_bounces, 256)
    result = Avatar(rig, body, splat_obj)
    _sync_sliders(rig, a["rig/betas"])
    set_display(result, "SPLATS")
    for obj in (rig, body, splat_obj):
        obj.select_set(False)
    rig.select_set(True)
    bpy.context.view_layer.objects.active = rig
    return result


def _source_key(path) -> str:
    """Which file (and which version of it) an avatar's splat data came from: a second import of the
    same file shares the first one's splat mesh (docs/BLENDER.md, "Crowds")."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _body_material():
    mat = bpy.data.materials.new("DreamWaltz Body")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    attr = mat.node_tree.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = "dw_color"
    mat.node_tree.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _remove_collection(coll) -> None:
    if coll is None:
        return
    for obj in list(coll.all_objects):
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if data is not None and data.users == 0:
            getattr(
                bpy.data, {"ARMATURE": "armatures", "MESH": "meshes"}.get(type(data).__name__.upper(), "meshes")
            ).remove(data)
    bpy.data.collections.remove(coll)
    for tree in [t for t in bpy.data.node_groups if t.name.startswith("DreamWaltz") and t.users == 0]:
        bpy.data.node_groups.remove(tree)
    for mat in [m for m in bpy.data.materials if m.name.startswith("DreamWaltz") and m.users == 0]:
        bpy.data.materials.remove(mat)


# --------------------------------------------------------------------------- editing


def set_display(avatar: Avatar, mode: str) -> None:
    """'SPLATS', 'MESH' or 'BOTH', in the viewport and in renders."""
    if mode not in DISPLAY_MODES:
        raise ValueError(f"display mode must be one of {DISPLAY_MODES}")
    show_mesh, show_splats = mode in ("MESH", "BOTH"), mode in ("SPLATS", "BOTH")
    # Shadows come from the body mesh, shown or not: the splats' camera-facing cards would cast
    # shadows shaped by the camera's view, not the light's. A hidden body is seen by shadow rays only.
    avatar.body.hide_render = not (show_mesh or show_splats)
    for ray in (
        "visible_camera",
        "visible_diffuse",
        "visible_glossy",
        "visible_transmission",
        "visible_volume_scatter",
    ):
        setattr(avatar.body, ray, show_mesh)
    avatar.body.visible_shadow = True
    avatar.splats.visible_shadow = False
    avatar.body.display_type = "TEXTURED" if show_mesh else "WIRE"
    avatar.body.hide_set(not show_mesh)
    avatar.splats.hide_render = not show_splats
    avatar.splats.modifiers["DreamWaltz Splats"].show_viewport = show_splats
    avatar.armature["dreamwaltz_display"] = mode


def _density_key(mod) -> str:
    return nodes.input_identifier(mod, "Viewport Density")


def set_viewport_density(target, fraction: float) -> None:
    """Show this fraction of an avatar's (or a splat scene object's) splats in the viewport; renders use all."""
    obj = target.splats if isinstance(target, Avatar) else target
    mod = obj.modifiers["DreamWaltz Splats"]
    compat.set_modifier_input(mod, _density_key(mod), float(min(1.0, max(0.0, fraction))))
    obj.update_tag()


def _checked_keys(obj, kind: str, values):
    """The '<kind>:…' shape keys and ``values`` for them, refused before anything is written when
    they do not fit (wrong count, not numbers, not finite)."""
    keys = [k for k in obj.data.shape_keys.key_blocks if k.name.startswith(kind + ":")]
    try:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise errors.DreamWaltzError(f"The {kind} values are not numbers.", f"Give {len(keys)} numbers.") from None
    if len(values) != len(keys):
        raise errors.DreamWaltzError(
            f"This avatar has {len(keys)} {kind} coefficients, got {len(values)}.", f"Give {len(keys)} numbers."
        )
    if not np.isfinite(values).all():
        raise errors.DreamWaltzError(
            f"The {kind} values must be finite numbers (got NaN or infinity).",
            "Give ordinary numbers, e.g. between -3 and 3.",
        )
    return keys, values


def _set_keys(obj, kind: str, values) -> np.ndarray:
    """Write ``values`` into the '<kind>:…' shape keys, in order (all or nothing)."""
    keys, values = _checked_keys(obj, kind, values)
    before = [key.value for key in keys]
    try:
        for key, value in zip(keys, values):
            key.value = float(value)
    except Exception:
        for key, value in zip(keys, before):
            key.value = value
        raise
    return values


def _sync_sliders(rig, betas) -> None:
    """Show ``betas`` on the avatar's shape sliders without triggering their update."""
    settings = getattr(rig, "dreamwaltz_avatar", None)
    if settings is None:  # the add-on's properties are not registered (a bare script)
        return
    settings["_syncing"] = True
    try:
        values = list(settings.betas)
        values[: len(betas)] = [float(b) for b in betas][: len(values)]
        settings.betas = values
    finally:
        del settings["_syncing"]


def set_shape(avatar: Avatar, betas) -> None:
    """Shape editing: body, splats and bones follow the new betas together. Bad values change
    nothing: everything is checked and the new joints computed before anything is written."""
    rig = avatar.armature
    _, betas = _checked_keys(avatar.body, "shape", betas)
    betas0 = np.array(rig["dreamwaltz_betas0"])
    joint_dirs = np.array(rig["dreamwaltz_joint_shape_dirs"]).reshape(55, 3, len(betas0))
    joints = np.array(rig["dreamwaltz_rest_joints"]).reshape(55, 3) + joint_dirs @ (betas - betas0)
    heads = space.points_to_blender(joints) + np.array(rig["dreamwaltz_offset"])
    _set_keys(avatar.body, "shape", betas)
    _sync_sliders(rig, betas)
    armature_builder.set_rest_joints(rig, JOINT_NAMES, None, heads)


def set_expression(avatar: Avatar, values) -> None:
    _set_keys(avatar.body, "expression", values)


def set_pose(avatar: Avatar, full_pose, transl=None) -> None:
    """An SMPL-X full pose (55,3 axis-angle) written straight into the pose bones."""
    quats = rotations.axis_angle_to_quaternion(np.asarray(full_pose, dtype=np.float64).reshape(-1, 3))
    bones = avatar.armature.pose.bones
    for name, q in zip(JOINT_NAMES, quats):
        bone = bones[name]
        bone.rotation_mode = "QUATERNION"
        bone.rotation_quaternion = tuple(q)
    if transl is not None:
        # Pose location is in the bone's rest frame, which is the SMPL-X frame.
        bones[JOINT_NAMES[0]].location = tuple(np.asarray(transl, dtype=np.float64))


# --------------------------------------------------------------------------- evaluation


def evaluated_splats(avatar: Avatar, depsgraph=None):
    """World-space (Blender) means (N,3), covariances (N,3,3), colours (N,3), opacities (N,).

    Colours are display (sRGB) values, as ``core/posing.py`` returns them and .ply files hold.
    """
    mesh = avatar.splats.data
    kinds = np.empty(len(mesh.vertices), dtype=np.int32)
    mesh.attributes["dw_kind"].data.foreach_get("value", kinds)
    # Every point except the free splats' axis points (kind 1) is a splat (see importer/nodes.py).
    return _evaluated_splat_instances(avatar.splats, np.flatnonzero(kinds != 1), depsgraph)


def _evaluated_splat_instances(obj, rows, depsgraph=None):
    """The splats an object's drawing path makes, read from its viewport instances (ellipsoids)."""
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    mod = obj.modifiers["DreamWaltz Splats"]
    if compat.modifier_input(mod, _density_key(mod), 1.0) < 1.0 or not mod.show_viewport:
        raise errors.DreamWaltzError(
            "Some splats are hidden in the viewport (density below 1 or splats not shown).",
            "Set the viewport density to 1 and show the splats before exporting.",
        )
    evaluated = obj.evaluated_get(depsgraph)
    attributes = {"dw_color": ("vector", 3), "dw_opacity": ("value", 1)}
    if compat.HAS_NATIVE_SPLATS:
        from .importer import scene_splats

        geometry = evaluated.evaluated_geometry()  # keep it alive while its point cloud is read
        axis_names = [f"dw_axis{j}" for j in (1, 2, 3)]
        values = scene_splats.cloud_points(
            geometry.pointcloud, {**attributes, **dict.fromkeys(axis_names, ("vector", 3))}
        )
        world = np.array(evaluated.matrix_world, dtype=np.float64)
        centres = values["means"] @ world[:3, :3].T + world[:3, 3]
        # The exact deformed axes the draw tree drew from (its rotation and scale approximate them
        # where bones blend: importer/nodes.py _native_draw): exports carry the avatar, not the fit.
        axes = world[:3, :3] @ np.stack([values[name] for name in axis_names], axis=2)
    else:
        M, values = compat.evaluated_instances(evaluated, depsgraph, attributes, rows=rows)
        centres, axes = M[:, :3, 3], M[:, :3, :3] / nodes.EXTENT_SIGMA
    # dw_color is scene-linear (what the material emits); callers get display (sRGB) values, like
    # core/posing.py and 3DGS .ply files.
    colors, opacity = color.linear_to_srgb(values["dw_color"]), values["dw_opacity"]
    return centres, axes @ np.transpose(axes, (0, 2, 1)), colors, opacity


# --------------------------------------------------------------------------- crowds


def duplicate_avatar(avatar: Avatar, offset=(1.0, 0.0, 0.0), collection=None) -> Avatar:
    """A linked duplicate: its own armature, motion, shape and expressions, the same splat data
    (a crowd costs one avatar's splat memory). Importing the same file again shares it too."""
    from . import crowd

    return crowd.duplicate_avatar(avatar, offset, collection)


def layout_avatars(avatars, columns=None, spacing: float = 1.0, origin=(0.0, 0.0, 0.0), path=None) -> None:
    """Place avatars on a grid (``columns``, ``spacing`` metres, from ``origin``) or evenly along a
    curve object ``path``, facing along it."""
    from . import crowd

    crowd.layout_avatars(avatars, columns, spacing, origin, path)


def export_scene(path, scene=None):
    """The scene as a `dreamwaltz render-scene` description (docs/SCENES.md): avatars with their
    files, placements, shapes and motions, splat scenes, the camera per frame, range, rate, size."""
    from . import scene_export

    return scene_export.export_scene(path, scene)


# --------------------------------------------------------------------------- 3DGS scenes

SPLAT_UP_AXES = ("Y", "-Y", "Z")


def import_splat_scene(path, up_axis: str = "Y", scale: float = 1.0, collection=None, name=None):
    """Import a 3D Gaussian splatting scene (.ply, compressed .ply, .spz, .splat) as a static splat object.

    ``up_axis``: the file's up direction: "Y" (+Y up: glTF, SPZ, ``dreamwaltz export``), "-Y"
    (COLMAP/OpenCV captures, most 3DGS training output) or "Z". Drawn by the same path as avatar
    splats, so avatars, scenes and meshes hide each other in renders; colours follow the
    file's spherical harmonics toward the scene camera. A bad file changes nothing.
    """
    from .importer import scene_splats

    if up_axis not in SPLAT_UP_AXES:
        raise errors.DreamWaltzError(f"up_axis must be one of {', '.join(SPLAT_UP_AXES)}, not {up_axis!r}.", "")
    if not (np.isfinite(scale) and scale > 0):
        raise errors.DreamWaltzError(f"scale must be a positive number, not {scale!r}.", "")
    cloud = module("splat_files").read_splats(path)  # all checks before the scene is touched
    target = collection or bpy.context.scene.collection
    obj = None
    try:
        obj = scene_splats.create_scene_splats(name or Path(path).stem, cloud, target, up_axis, scale)
        obj["dreamwaltz_file"] = str(Path(path).resolve())  # for the scene description (export_scene)
    except Exception as err:
        if obj is not None:
            mesh = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            bpy.data.meshes.remove(mesh)
        raise errors.DreamWaltzError(
            f"Importing '{Path(path).name}' failed: {err}", "Please report this with the file."
        ) from err
    return obj


def evaluated_scene_splats(obj, depsgraph=None):
    """World-space means, covariances, display colours (toward the scene camera) and opacities of a
    splat scene object, as Blender draws them."""
    from .importer import scene_splats

    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    if scene_splats.is_native_cloud(obj):  # Blender's own import (5.3+): its points, drawn by Blender
        evaluated = obj.evaluated_get(depsgraph)
        cloud = scene_splats.native_cloud_arrays(evaluated.data)
        world = np.array(evaluated.matrix_world, dtype=np.float64)
        axes = world[:3, :3] @ cloud["axes"]
        colors = module("splat_files").sh_view_colors(
            cloud["means"], cloud["colors"], cloud["sh_rest"], _camera_in(obj, depsgraph)
        )
        means = cloud["means"] @ world[:3, :3].T + world[:3, 3]
        return means, axes @ np.transpose(axes, (0, 2, 1)), colors, cloud["opacities"]
    means, covariances, colors, opacities = _evaluated_splat_instances(
        obj, np.arange(len(obj.data.vertices)), depsgraph
    )
    if (not compat.HAS_GEOMETRY_SET or compat.HAS_NATIVE_SPLATS) and "dw_sh1" in obj.data.attributes:
        # 4.2 reads instance attributes from the original mesh, which holds the SH coefficients, not
        # the colour the nodes evaluate toward the camera; Blender's own splats (5.3) evaluate the
        # SH while rendering: evaluate the same SH here, in the object's frame.
        colors = _scene_view_colors(obj, depsgraph)
    return means, covariances, colors, opacities


def _scene_view_colors(obj, depsgraph):
    """Display colours of a splat scene's points toward the scene camera, from the dw_sh attributes
    the importer stored (dw_sh0: the DC display colour), in the object's frame as the nodes do."""
    mesh = obj.data
    n = len(mesh.vertices)

    def read(name):
        data = np.empty(n * 3, dtype=np.float32)
        mesh.attributes[name].data.foreach_get("vector", data)
        return data.reshape(n, 3)

    sh_rest = []
    while f"dw_sh{len(sh_rest) + 1}" in mesh.attributes:
        sh_rest.append(read(f"dw_sh{len(sh_rest) + 1}"))
    return module("splat_files").sh_view_colors(
        read("position"), read("dw_sh0"), np.stack(sh_rest, axis=1), _camera_in(obj, depsgraph)
    )


def _camera_in(obj, depsgraph):
    """The scene camera's position in ``obj``'s frame (where its splats' SH are defined)."""
    camera = bpy.context.scene.camera
    eye = np.zeros(4) if camera is None else np.append(camera.evaluated_get(depsgraph).matrix_world.translation, 1.0)
    return (np.linalg.inv(np.array(obj.evaluated_get(depsgraph).matrix_world, dtype=np.float64)) @ eye)[:3]


def retarget_preview(avatar: Avatar, clip, out, frames: int = 8, python=None) -> Path:
    """A contact sheet of ``clip`` retargeted onto ``avatar`` (``dreamwaltz retarget-preview``: the
    source skeleton beside the posed body at ``frames`` frames, the floor, per-frame figures, the
    bone mapping), drawn by the local backend (the preferences' Backend Python, or ``python``).
    Returns the PNG's path; the scene is not touched."""
    from .backend import local

    return local.run_for_file(
        ["retarget-preview", clip, "--avatar", avatar.armature["dreamwaltz_file"], "--out", out, "--frames", frames],
        out,
        "draw the contact sheet",
        python,
        "Install Backend in the DreamWaltz preferences, or run `dreamwaltz retarget-preview CLIP --avatar A.h3ga "
        "--out sheet.png` where the backend is.",
    )


def bake_mesh(avatar: Avatar, texture_size: int = 2048, python=None):
    """``avatar`` as a textured mesh object on its armature (Armature modifier, vertex groups,
    expression shape keys, texture packed), baked by the local backend (the preferences' Backend
    Python, or ``python``): what Blender's FBX and glTF exporters then write for game engines.
    All or nothing. docs/EXPORT.md, "Textured meshes"."""
    from . import mesh_bake  # mesh_bake imports this package's avatar module

    return mesh_bake.bake_mesh(avatar, texture_size, python)


def apply_motion(
    avatar: Avatar,
    source,
    start_frame=None,
    in_place: bool = False,
    scale: float = 1.0,
    mapping=None,
    fps=None,
    name=None,
    max_frames=None,
    up_axis: str = "auto",
):
    """Retarget ``source`` onto ``avatar`` as one Action on its armature (returned).

    ``source``: a motion file (.bvh, SMPL-X/AMASS .npz/.npy) or an animated armature object in the
    scene (from Blender's BVH, FBX or glTF importers, or a hand-made rig), sampled at every frame
    of its action. ``start_frame`` (default: the current frame), ``in_place`` (no root travel),
    ``scale`` (root travel), ``mapping`` (JSON path or dict, SMPL-X joint -> source bone), ``fps``
    (default: the scene's), ``max_frames`` (the frame ceiling, default 100,000 or
    ``DREAMWALTZ_MAX_FRAMES``: a longer file is refused before it is read; about 30 kB of memory a
    frame), ``up_axis`` ("auto", "y", "z", ...: overrides the file's detected up axis). All or
    nothing: on any error the scene is left as it was.
    """
    from . import motion  # motion imports this module

    return motion.apply_motion(
        avatar,
        source,
        start_frame=start_frame,
        in_place=in_place,
        scale=scale,
        mapping=mapping,
        fps=fps,
        name=name,
        max_frames=max_frames,
        up_axis=up_axis,
    )


def reenact(
    avatar: Avatar,
    track_path,
    video_path=None,
    plate_path=None,
    person: int = 0,
    allow_pickle: bool = False,
    make_plate: bool = False,
):
    """Build a reenactment shot (docs/REENACT.md): a camera matching the track (returned), the
    avatar moved by tracked ``person``, the plate (``plate_path``, else ``video_path``) behind it in
    the camera and the compositor, a shadow catcher under its feet, and the scene's frame range,
    rate, resolution and video output from the video. ``make_plate``: the local backend makes the
    clean plate from ``video_path`` first (``make_clean_plate``). Numpy track files only
    (``dreamwaltz track convert`` turns GVHMR .pt and pickles into one). A bad track or video
    changes nothing."""
    from . import reenact as _reenact

    if make_plate and plate_path is None:
        if video_path is None:
            raise errors.TrackError("Making a clean plate needs the original video.", "Pass video_path.")
        _reenact.read_track(track_path, allow_pickle).person(person)  # a bad track fails before the backend runs
        plate_path = _reenact.make_clean_plate(avatar, track_path, video_path, person, allow_pickle=allow_pickle)
    return _reenact.reenact(avatar, track_path, video_path, plate_path, person, allow_pickle)
