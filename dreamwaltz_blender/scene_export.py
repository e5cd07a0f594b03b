# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender scene as the backend's scene description (docs/SCENES.md): `dreamwaltz render-scene`
renders what the artist laid out: every avatar (its file, placement, shape and motion over the
frame range), every imported splat scene (its file and placement), the scene camera per frame,
frame range, frame rate and resolution. Ordinary meshes and lights are not part of the format.

Blender space (+Z up) to the backend's SMPL-X space (+Y up) is the inverse of the import's axis
change, C^T. An avatar's SMPL-X point p is drawn by Blender at M_rig (C p + offset); in SMPL-X
world space that is (C^T R C) p + C^T (R offset + t), which is the scene file's rotation and
location (scale when the armature is scaled uniformly).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy
import numpy as np

from .avatar import ROLE, Avatar
from .importer import scene_splats, space
from .shared import module

C = space.TO_BLENDER


def _rotation_scale(M3):
    """A uniform scale and a unit quaternion (w, x, y, z) of a similarity's 3x3 part, in SMPL-X axes."""
    rotations = module("rotations")
    scale = float(np.cbrt(np.linalg.det(M3)))
    if not scale > 0 or not np.allclose(M3.T @ M3, scale * scale * np.eye(3), atol=1e-4 * scale * scale):
        raise module("errors").DreamWaltzError(
            "An avatar or splat scene is scaled unevenly or mirrored.",
            "Apply its scale (uniform scales export; uneven ones cannot).",
        )
    return scale, rotations.matrix_to_quaternion(C.T @ (M3 / scale) @ C)


def _avatar_item(avatar, scene, motions_dir: Path, index: int) -> dict:

    rig = avatar.armature
    M = np.array(rig.matrix_world, dtype=np.float64)
    scale, quat = _rotation_scale(M[:3, :3])
    offset = np.array(rig["dreamwaltz_offset"], dtype=np.float64)
    item = {
        "name": rig.name,
        "file": str(Path(rig["dreamwaltz_file"]).resolve()),
        "location": (C.T @ (M[:3, :3] @ offset + M[:3, 3])).tolist(),
        "rotation": quat.tolist(),
        "scale": scale,
    }
    keys = avatar.body.data.shape_keys
    betas = [kb.value for kb in keys.key_blocks if kb.name.startswith("shape:")] if keys else []
    if betas:
        item["betas"] = betas
    # The action over the frame range, or the current pose held (a one-frame motion).
    animated = rig.animation_data is not None and rig.animation_data.action is not None
    full_pose, transl, frames = avatar.sampled_motion(scene, None if animated else [scene.frame_current])
    path = motions_dir / f"avatar_{index:02d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=full_pose, trans=transl, mocap_framerate=np.array(scene.render.fps / scene.render.fps_base))
    item.update(motion=str(path.resolve()), start_frame=int(frames[0]))
    return item


def _splat_item(obj, splats_dir: Path) -> dict:
    """A splat file's points are taken as SMPL-X coordinates by the backend; Blender draws them at
    M p, so the backend's transform is C^T M (its rotation: C^T R = C^T (R C^T) C). A splat cloud
    Blender's own importer made (5.3+) has no file of the add-on's: its points, as Blender holds
    them, are written to ``splats_dir`` as a standard 3DGS PLY (with their SH)."""
    M = np.array(obj.matrix_world, dtype=np.float64)
    scale, quat = _rotation_scale(M[:3, :3] @ C.T)
    if scene_splats.is_native_cloud(obj):
        cloud = scene_splats.native_cloud_arrays(obj.data)
        axes = cloud["axes"]
        file = module("splat_writers").write_gaussian_ply(
            splats_dir / f"{bpy.path.clean_name(obj.name)}.ply",
            cloud["means"],
            axes @ np.transpose(axes, (0, 2, 1)),
            cloud["colors"],
            cloud["opacities"],
            cloud["sh_rest"],
        )
    else:
        file = Path(obj["dreamwaltz_file"])
    return {
        "name": obj.name,
        "file": str(file.resolve()),
        "location": (C.T @ M[:3, 3]).tolist(),
        "rotation": quat.tolist(),
        "scale": scale,
    }


def _camera_keys(scene, width, height) -> list:
    cam = scene.camera
    if cam is None:
        raise module("errors").DreamWaltzError("The scene has no camera.", "Add a camera and make it the scene camera.")
    keys = []
    current = scene.frame_current
    try:
        for frame in range(scene.frame_start, scene.frame_end + 1):
            scene.frame_set(frame)
            M = np.array(cam.matrix_world, dtype=np.float64)
            data = cam.data
            # The pixel focal length: Blender's sensor spans the larger dimension (sensor fit Auto).
            fit_width = data.sensor_fit == "HORIZONTAL" or (data.sensor_fit == "AUTO" and width >= height)
            sensor = data.sensor_width if data.sensor_fit != "VERTICAL" else data.sensor_height
            focal_px = data.lens / sensor * (width if fit_width else height)
            forward = -M[:3, 2] / np.linalg.norm(M[:3, 2])
            keys.append(
                {
                    "frame": frame,
                    "position": (C.T @ M[:3, 3]).tolist(),
                    "target": (C.T @ (M[:3, 3] + forward)).tolist(),
                    "fov_deg": math.degrees(2 * math.atan(0.5 * height / focal_px)),
                }
            )
    finally:
        scene.frame_set(current)
    return keys


def export_scene(path, scene=None) -> Path:
    """Write ``scene`` (default: the current one) as a scene description; motions go to
    ``<name>_motions/`` beside it. Checked by the backend's own parser before it is written."""

    scene = scene or bpy.context.scene
    path = Path(path)
    width = int(scene.render.resolution_x * scene.render.resolution_percentage / 100)
    height = int(scene.render.resolution_y * scene.render.resolution_percentage / 100)
    avatars = [Avatar.from_object(obj) for obj in scene.objects if obj.get(ROLE) == "armature"]
    data = {
        "version": 1,
        "frames": [scene.frame_start, scene.frame_end],
        "fps": scene.render.fps / scene.render.fps_base,
        "width": width,
        "height": height,
        "background": _background(scene),
        "camera": {"keyframes": _camera_keys(scene, width, height)},
        "avatars": [_avatar_item(a, scene, path.parent / f"{path.stem}_motions", i) for i, a in enumerate(avatars)],
        "splats": [
            _splat_item(obj, path.parent / f"{path.stem}_splats")
            for obj in scene.objects
            if (obj.get(ROLE) == "scene_splats" or scene_splats.is_native_cloud(obj)) and not obj.hide_render
        ],
    }
    module("scene").parse_scene(data, path.parent, f"'{path.name}'")  # the contract, checked before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def _background(scene) -> list:
    """The world colour as a display value (what the backend's renders are in)."""
    world = scene.world
    node = world.node_tree.nodes.get("Background") if world is not None and world.use_nodes else None
    linear = np.array(node.inputs["Color"].default_value[:3]) if node is not None else np.zeros(3)
    return module("color").linear_to_srgb(np.clip(linear, 0.0, 1.0)).tolist()
