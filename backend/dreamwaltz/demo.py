"""``python build.py demo``: the main job on the embedded defaults, from nothing.

1. generate a tiny-preset avatar for one of the example prompts (open body, tiny local models);
2. import it into Blender (headless) with the add-on;
3. retarget the bundled CMU walk onto it;
4. render a few Cycles frames to out/demo/*.png and save out/demo/demo.blend.

With ``--full`` it goes on to the applications, still on the CPU in a few minutes:

5. the animated avatar as glTF with Gaussian splats (``dreamwaltz export --format glb --motion``),
   and baked into a textured, rigged mesh with Mixamo bone names and the walk, as FBX for game
   engines (``dreamwaltz export --format fbx --bone-names mixamo --motion``: out/demo/avatar.fbx);
6. a composed scene rendered by the backend: three copies of the avatar with different motions on
   a 3DGS stage (a procedural splat floor and backdrop), one depth-sorted rasterization per frame
   (``dreamwaltz render-scene``: out/demo/scene/frame_*.png and scene.mp4);
7. the same in Blender: the stage imported with File > Import > 3D Gaussian Splats, the avatar
   duplicated (one copy of its splat data) and laid out, each copy with its own motion, one
   Cycles frame (out/demo/crowd.png).

With real weights and a GPU: ``python build.py demo --preset preview --device cuda``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .core.job import PRESET_NAMES

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
WALK_CLIP = DATA / "mocap" / "cmu_02_02_walk_daz.bvh"
PROMPTS = DATA / "prompts" / "humangaussian_gallery.txt"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def example_prompt(index: int = 2) -> str:
    lines = [l.strip() for l in PROMPTS.read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines[index % len(lines)]


def dreamwaltz(*args) -> None:
    """Run ``dreamwaltz ARGS`` as a user would (this Python's backend); stop the demo if it fails."""
    subprocess.run([sys.executable, "-m", "dreamwaltz", *map(str, args)], check=True)


def generate(prompt: str, preset: str, device: str, seed: int, out: Path) -> Path:
    args = ["generate", prompt, "--preset", preset, "--seed", seed, "--out", out]
    if device != "auto":
        args += ["--device", device]
    say("$ dreamwaltz " + " ".join(map(str, args)))
    dreamwaltz(*args)
    return out


def stage_scene(bpy, avatar, frames: int) -> None:
    """Camera, light and a ground plane framing the walking avatar."""
    import mathutils

    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=12.0, location=(0, 0, 0))
    ground = bpy.context.active_object
    ground.name = "Ground"
    mat = bpy.data.materials.new("Ground")
    mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.35, 0.35, 0.38, 1.0)
    ground.data.materials.append(mat)

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.8, 0.2, 0.6)
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("World") if scene.world is None else scene.world
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.lens = 40
    # Follow the walk: aim at the mid-point of the clip's root path, from the front-left.
    root = avatar.armature.pose.bones["pelvis"]
    positions = []
    for frame in (scene.frame_start, (scene.frame_start + scene.frame_end) // 2, scene.frame_end):
        scene.frame_set(frame)
        positions.append(avatar.armature.matrix_world @ root.head)
    centre = sum(positions, mathutils.Vector()) / len(positions)
    centre.z = 0.9
    cam.location = centre + mathutils.Vector((1.9, -3.6, 0.5))
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()


def follow(avatar, camera) -> None:
    """Keep the walking avatar framed: the camera travels with the pelvis, front-left of it."""
    import mathutils

    pelvis = avatar.armature.matrix_world @ avatar.armature.pose.bones["pelvis"].head
    target = mathutils.Vector((pelvis.x, pelvis.y, 0.9))
    camera.location = target + mathutils.Vector((1.9, -3.6, 0.5))
    camera.rotation_euler = (target - camera.location).to_track_quat("-Z", "Y").to_euler()


def render_frames(bpy, avatar, out_dir: Path, count: int, size: int, samples: int) -> list[Path]:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.image_settings.file_format = "PNG"
    # Mocap clips often open with a calibration T-pose: start a little into the clip.
    first = scene.frame_start + (scene.frame_end - scene.frame_start) // 8
    span = scene.frame_end - first
    written = []
    for i in range(count):
        frame = first + round(span * i / max(1, count - 1))
        scene.frame_set(frame)
        follow(avatar, scene.camera)
        scene.render.filepath = str(out_dir / f"frame_{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        written.append(Path(scene.render.filepath))
        say(f"rendered {scene.render.filepath}")
    return written


def blender_part(avatar_path: Path, out_dir: Path, frames: int, size: int, samples: int, stage=None) -> None:
    import bpy  # first: importing bpy puts Blender's own modules (addon_utils) on the path

    # isort: split
    import addon_utils

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("dreamwaltz_blender", default_set=True, handle_error=None)
    from dreamwaltz_blender import api, motion

    say(f"importing {avatar_path.name} into Blender")
    avatar = api.import_avatar(str(avatar_path))
    say(f"retargeting {WALK_CLIP.name} (CMU) onto the avatar")
    action = motion.apply_motion(avatar, str(WALK_CLIP))
    scene = bpy.context.scene
    start, end = action.frame_range
    scene.frame_start, scene.frame_end = int(start), int(end)
    stage_scene(bpy, avatar, frames)
    render_frames(bpy, avatar, out_dir, frames, size, samples)
    if stage is not None:
        crowd_in_blender(bpy, api, motion, avatar, stage, out_dir, size, samples)
    blend = out_dir / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    say(f"saved {blend}")


OTHER_CLIPS = [DATA / "mocap" / "cmu_12_03_walk_cgspeed.bvh", DATA / "mocap" / "makehuman_walk1.bvh"]


def write_stage(path: Path, floor_y: float, seed: int = 0) -> Path:
    """A small procedural 3DGS stage (SMPL-X space, +Y up): a checkered splat floor at height
    ``floor_y`` and a backdrop."""
    import numpy as np

    from .core.posing import gaussian_covariances
    from .core.splat_writers import write_gaussian_ply

    rng = np.random.default_rng(seed)
    gx, gz = np.meshgrid(np.linspace(-3, 3, 120), np.linspace(-3, 1.5, 90))
    floor = np.stack([gx.ravel(), np.full(gx.size, floor_y), gz.ravel()], 1)
    check = ((np.floor(gx.ravel() * 2) + np.floor(gz.ravel() * 2)) % 2)[:, None]
    floor_colors = 0.25 + 0.35 * check * np.array([[1.0, 0.9, 0.7]])
    bx, by = np.meshgrid(np.linspace(-3, 3, 120), np.linspace(0, 2.4, 48))
    backdrop = np.stack([bx.ravel(), by.ravel() + floor_y, np.full(bx.size, -3.0)], 1)
    backdrop_colors = np.stack(
        [0.2 + 0.3 * by.ravel() / 2.4, 0.35 + 0.1 * np.sin(bx.ravel() * 2), np.full(bx.size, 0.6)], 1
    )
    means = np.concatenate([floor, backdrop]) + rng.normal(scale=0.004, size=(len(floor) + len(backdrop), 3))
    n = len(means)
    flat = np.where(np.arange(n)[:, None] < len(floor), [0.03, 0.004, 0.03], [0.03, 0.03, 0.004])
    covariances = gaussian_covariances(np.log(flat), np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)))
    return write_gaussian_ply(
        path, means, covariances, np.concatenate([floor_colors, backdrop_colors]), np.full(n, 0.95)
    )


def soles(avatar_path: Path) -> float:
    """The height of the avatar's soles in its own (SMPL-X) space: where the stage's floor goes."""
    from .core.h3ga import read_h3ga

    a = read_h3ga(avatar_path).arrays
    return float((a["body/template_vertices"] + a["body/shape_dirs"] @ a["rig/betas"])[:, 1].min())


def full_backend(avatar_path: Path, out_dir: Path) -> Path:
    """The glb export and the backend's composed scene; returns the stage .ply for Blender."""
    import json

    glb = out_dir / "avatar.glb"
    say("$ dreamwaltz export avatar.h3ga --format glb --motion (the CMU walk)")
    dreamwaltz("export", avatar_path, "--format", "glb", "--motion", WALK_CLIP, "--out", glb)
    say("$ dreamwaltz export avatar.h3ga --format fbx --bone-names mixamo --motion (a mesh for game engines)")
    mesh_args = ["--format", "fbx", "--bone-names", "mixamo", "--texture", 1024, "--motion", WALK_CLIP]
    dreamwaltz("export", avatar_path, *mesh_args, "--out", out_dir / "avatar.fbx")
    stage = write_stage(out_dir / "stage.ply", soles(avatar_path))
    clips = [WALK_CLIP] + OTHER_CLIPS
    scene = {
        "version": 1,
        "frames": [1, 12],
        "fps": 24,
        "width": 320,
        "height": 200,
        "background": [0.05, 0.05, 0.08],
        "camera": {
            "keyframes": [
                {"frame": 1, "position": [0.4, 0.5, 5.0], "target": [0.0, -0.1, -0.5], "fov_deg": 45},
                {"frame": 12, "position": [-0.8, 0.4, 4.7], "target": [0.0, -0.1, -0.5], "fov_deg": 45},
            ]
        },
        "avatars": [
            {
                "name": f"copy {i + 1}",
                "file": str(avatar_path),
                "location": [x, 0.0, z],
                "rotation": yaw,
                "motion": str(clip),
                "start_frame": 1 + 5 * i,
            }
            for i, ((x, z, yaw), clip) in enumerate(zip([(-1.1, -0.8, 15), (0.0, 0.0, 0), (1.1, -1.2, -20)], clips))
        ],
        "splats": [{"name": "stage", "file": str(stage)}],
    }
    scene_path = out_dir / "scene.json"
    scene_path.write_text(json.dumps(scene, indent=1))
    say("$ dreamwaltz render-scene scene.json --out scene/ --mp4 scene.mp4 (three avatars on a splat stage)")
    dreamwaltz("render-scene", scene_path, "--out", out_dir / "scene", "--mp4", out_dir / "scene.mp4")
    return stage


def crowd_in_blender(bpy, api, motion, avatar, stage: Path, out_dir: Path, size: int, samples: int) -> None:
    """Blender: the stage as a splat scene, two linked duplicates with their own motions, one frame."""
    say("Blender: importing the splat stage, duplicating the avatar (shared splat data), laying them out")
    floor = api.import_splat_scene(str(stage), up_axis="Y")
    floor.location.z = -soles(Path(avatar.armature["dreamwaltz_file"]))  # the importer stands avatars on z = 0
    ground = bpy.data.objects.get("Ground")
    if ground is not None:
        ground.hide_render = True  # the splat floor takes its place
    crowd = [avatar] + [api.duplicate_avatar(avatar, offset=(0, 0, 0)) for _ in range(2)]
    for copy, clip in zip(crowd, [WALK_CLIP] + OTHER_CLIPS):  # each its own walk, on the spot
        copy.armature.animation_data_clear()
        motion.apply_motion(copy, str(clip), start_frame=bpy.context.scene.frame_start, in_place=True)
    api.layout_avatars(crowd, columns=3, spacing=1.1, origin=(-1.1, 0.3, 0.0))
    scene = bpy.context.scene
    scene.frame_set(scene.frame_start + (scene.frame_end - scene.frame_start) // 2)
    cam = scene.camera
    import mathutils

    cam.location = (0.8, -5.5, 1.6)
    cam.rotation_euler = (mathutils.Vector((0.0, 0.5, 0.8)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.render.resolution_x, scene.render.resolution_y = size, int(size * 0.625)
    scene.cycles.samples = samples
    scene.render.filepath = str(out_dir / "crowd.png")
    bpy.ops.render.render(write_still=True)
    say(f"rendered {scene.render.filepath}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=PRESET_NAMES)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--prompt", default=None, help="default: an example prompt from the bundled gallery")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=4, help="frames to render")
    parser.add_argument("--size", type=int, default=320, help="render size in pixels")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also export a glb, render a composed scene in the backend and a crowd in Blender",
    )
    args = parser.parse_args(argv)

    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    prompt = args.prompt or example_prompt()
    say(f"prompt: {prompt!r}, preset {args.preset}, open body")
    if args.preset == "tiny":
        say(
            "the tiny preset uses random tiny diffusion models: it checks the whole machinery on a CPU, "
            "the avatar will look like the body with noise-coloured clothes, not like the prompt"
        )
    avatar = generate(prompt, args.preset, args.device, args.seed, args.out / "avatar.h3ga")
    stage = full_backend(avatar, args.out) if args.full else None
    blender_part(avatar, args.out, args.frames, args.size, args.samples, stage)
    say(f"done in {time.time() - started:.0f} s. Everything is in {args.out}:")
    for path in sorted(args.out.iterdir()):
        say(f"  {path}")
    say("open demo.blend in Blender 4.2+ with the DreamWaltz extension installed to play the walk.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
