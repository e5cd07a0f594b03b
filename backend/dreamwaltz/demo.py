"""``python build.py demo``: the main job on the embedded defaults, from nothing.

1. generate a tiny-preset avatar for one of the example prompts (open body, tiny local models);
2. import it into Blender (headless) with the add-on;
3. retarget the bundled CMU walk onto it;
4. render a few Cycles frames to out/demo/*.png and save out/demo/demo.blend.

With real weights and a GPU: ``python build.py demo --preset preview --device cuda``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
WALK_CLIP = DATA / "mocap" / "cmu_02_02_walk_daz.bvh"
PROMPTS = DATA / "prompts" / "humangaussian_gallery.txt"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def example_prompt(index: int = 2) -> str:
    lines = [l.strip() for l in PROMPTS.read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines[index % len(lines)]


def generate(prompt: str, preset: str, device: str, seed: int, out: Path) -> Path:
    cmd = [sys.executable, "-m", "dreamwaltz", "generate", prompt, "--preset", preset, "--seed", str(seed),
           "--out", str(out)]
    if device != "auto":
        cmd += ["--device", device]
    say("$ " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True)
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


def blender_part(avatar_path: Path, out_dir: Path, frames: int, size: int, samples: int) -> None:
    import bpy
    import addon_utils  # Blender's own module: importable once bpy is

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
    blend = out_dir / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    say(f"saved {blend}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "preview", "paper"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--prompt", default=None, help="default: an example prompt from the bundled gallery")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=4, help="frames to render")
    parser.add_argument("--size", type=int, default=320, help="render size in pixels")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    args = parser.parse_args(argv)

    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    prompt = args.prompt or example_prompt()
    say(f"prompt: {prompt!r}, preset {args.preset}, open body")
    if args.preset == "tiny":
        say("the tiny preset uses random tiny diffusion models: it checks the whole machinery on a CPU, "
            "the avatar will look like the body with noise-coloured clothes, not like the prompt")
    avatar = generate(prompt, args.preset, args.device, args.seed, args.out / "avatar.h3ga")
    blender_part(avatar, args.out, args.frames, args.size, args.samples)
    say(f"done in {time.time() - started:.0f} s. Everything is in {args.out}:")
    for path in sorted(args.out.iterdir()):
        say(f"  {path}")
    say("open demo.blend in Blender 4.2+ with the DreamWaltz extension installed to play the walk.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
