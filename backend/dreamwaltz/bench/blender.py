"""Blender: import time, per-frame splat evaluation, a crowd in a splat scene, and renders.

Figures (docs/BENCHMARKS.md, "blender"):

- import and frame time for 10k, 100k and 300k-splat avatars. "Frame" = a new pose, then the
  depsgraph evaluation (armature skinning of the proxies, the bind and splat node trees), without
  reading the splats back; the read-back (`evaluated_splats`, what tests and exports use) is
  reported beside it. A profile: the same frame with the splat tree, then also the armature and
  the bind tree switched off.
- a million-splat scene with SH degree 3: import time and resident memory;
- a scene of 5 avatars x 100k splats (one import, four linked duplicates, each its own pose per
  frame) in a 1M-splat static 3DGS scene: import time of the scene and frames per second.
- renders of the 100k-splat avatar: Cycles 512x512 at 16 samples (denoised, as Blender renders by
  default, and raw) and Eevee (software OpenGL here:
  rendered twice, the first includes shader compilation), with the avatar-region PSNR against
  the backend's render of the same view (``render.rasterize_posed``).

Last line: ``blender=<major.minor> import_s_100k=.. cycles_s_512=.. cycles_psnr=.. eevee_s=.. eevee_psnr=.. frame_ms_100k=.. scene_fps=..``.
"""

import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def _fresh():
    import bpy  # first: importing bpy puts Blender's own modules (addon_utils) on the path

    # isort: split
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("dreamwaltz_blender", default_set=True, handle_error=None)
    from dreamwaltz_blender import api

    return bpy, api


def _frame_ms(bpy, api, avatars, rng, reps=7):
    times = []
    for _ in range(reps):
        for avatar in avatars:
            api.set_pose(avatar, rng.normal(scale=0.3, size=(55, 3)))
        start = time.perf_counter()
        bpy.context.view_layer.update()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def avatar_frames(tmp):
    from ..core.h3ga import write_h3ga
    from ..core.testing import make_test_avatar

    results = {}
    for n in (10_000, 100_000, 300_000):
        bpy, api = _fresh()
        path = write_h3ga(Path(tmp) / f"a{n}.h3ga", make_test_avatar(num_free=n - n // 10, num_bound=n // 10, seed=1))
        start = time.perf_counter()
        avatar = api.import_avatar(str(path))
        bpy.context.view_layer.update()
        import_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        frame_ms = _frame_ms(bpy, api, [avatar], rng)
        start = time.perf_counter()
        api.evaluated_splats(avatar)
        read_ms = 1000 * (time.perf_counter() - start)
        line = f"{n:>7} splats: import {import_s:6.2f} s, frame {frame_ms:6.1f} ms, read-back {read_ms:6.1f} ms"
        if n == 100_000:
            profile = []
            for name in ("DreamWaltz Splats", "Armature", "DreamWaltz Bind"):
                avatar.splats.modifiers[name].show_viewport = False
                profile.append(_frame_ms(bpy, api, [avatar], rng))
            splat_tree, armature, bind = frame_ms - profile[0], profile[0] - profile[1], profile[1] - profile[2]
            line += (
                f" (splat tree {splat_tree:.1f}, armature {armature:.1f}, bind tree {bind:.1f}, rest {profile[2]:.1f})"
            )
        print(line, flush=True)
        results[n] = (import_s, frame_ms)
    return results


def crowd_scene(tmp):
    from ..core.h3ga import write_h3ga
    from ..core.splat_writers import write_gaussian_ply
    from ..core.testing import make_test_avatar

    bpy, api = _fresh()
    rng = np.random.default_rng(2)
    n_scene = 1_000_000
    means = rng.uniform([-8, 0, -8], [8, 4, 8], size=(n_scene, 3))
    scales = np.exp(rng.uniform(np.log(0.01), np.log(0.05), size=(n_scene, 3)))
    q = rng.normal(size=(n_scene, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    from ..core.posing import gaussian_covariances

    ply = write_gaussian_ply(
        Path(tmp) / "scene.ply",
        means,
        gaussian_covariances(np.log(scales), q),
        rng.uniform(0, 1, (n_scene, 3)),
        rng.uniform(0.2, 1, n_scene),
    )
    start = time.perf_counter()
    scene = api.import_splat_scene(str(ply), up_axis="Y")
    bpy.context.view_layer.update()
    scene_import_s = time.perf_counter() - start
    path = write_h3ga(Path(tmp) / "crowd.h3ga", make_test_avatar(num_free=90_000, num_bound=10_000, seed=1))
    first = api.import_avatar(str(path))
    crowd = [first] + [api.duplicate_avatar(first, offset=(0, 0, 0)) for _ in range(4)]
    api.layout_avatars(crowd, spacing=1.5)
    bpy.context.view_layer.update()
    frame_ms = _frame_ms(bpy, api, crowd, rng)
    print(
        f"scene: 5 avatars x 100k splats + {len(scene.data.vertices):,} scene splats: scene import "
        f"{scene_import_s:.1f} s, frame {frame_ms:.0f} ms = {1000 / frame_ms:.1f} fps",
        flush=True,
    )
    return scene_import_s, 1000 / frame_ms


def big_scene_import(tmp, n=1_000_000):
    """A million splats with spherical harmonics of degree 3: import time and resident memory added."""
    import gc

    bpy, api = _fresh()
    rng = np.random.default_rng(3)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    path = _write_sh3_ply(
        Path(tmp) / "sh3.ply",
        rng.normal(size=(n, 3)),
        np.full((n, 3), -4.0),
        q,
        rng.normal(size=(n, 3)),
        rng.normal(scale=0.1, size=(n, 15, 3)),
    )
    del q
    gc.collect()
    resident = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20  # noqa: E731 (Linux)
    before = resident()
    start = time.perf_counter()
    api.import_splat_scene(str(path))
    bpy.context.view_layer.update()
    seconds = time.perf_counter() - start
    gc.collect()
    print(f"{n:,} splats with SH degree 3: import {seconds:.1f} s, +{resident() - before:.0f} MiB resident", flush=True)


def _write_sh3_ply(path, means, log_scales, quats, dc, rest):
    """A standard 3DGS PLY with f_rest_0..44 (channel-major), as the Inria code writes it."""
    n = len(means)
    names = (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(45)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    table = np.zeros((n, len(names)), np.float32)
    table[:, 0:3], table[:, 6:9] = means, dc
    table[:, 9:54] = np.transpose(rest, (0, 2, 1)).reshape(n, 45)
    table[:, 55:58], table[:, 58:62] = log_scales, quats
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n" + "".join(
        f"property float {x}\n" for x in names
    )
    with open(path, "wb") as f:
        f.write((header + "end_header\n").encode())
        f.write(table.tobytes())
    return path


def renders(tmp):
    """Cycles 512x512 at 16 samples and Eevee of the 100k-splat avatar, with PSNR vs the backend."""
    from ..core.color import linear_to_srgb, srgb_to_linear
    from ..core.h3ga import write_h3ga
    from ..core.posing import pose_avatar
    from ..core.testing import make_test_avatar

    bpy, api = _fresh()
    import mathutils

    from dreamwaltz_blender.importer import space

    avatar_file = make_test_avatar(num_free=90_000, num_bound=10_000, seed=1)
    avatar = api.import_avatar(str(write_h3ga(Path(tmp) / "r.h3ga", avatar_file)), set_view_transform=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = (0.0, -3.2, 1.0)
    cam.rotation_euler = (mathutils.Vector((0, 0, 0.9)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 50
    bpy.context.view_layer.update()
    size = 512
    # The backend's view of the same pose (rest) and camera.
    posed = pose_avatar(avatar_file, np.zeros((55, 3)))
    offset = np.array(avatar.armature["dreamwaltz_offset"])
    world = types.SimpleNamespace(
        means=space.points_to_blender(posed.means) + offset,
        covariances=space.matrices_to_blender(posed.covariances),
        colors=posed.colors,
        opacities=posed.opacities,
    )
    sys.path.insert(0, str(ROOT / "tests"))
    from backend_reference import rasterize_posed_arrays  # the backend's render (torch, maybe .venv's)
    from splat_silhouette import blender_camera_intrinsics

    viewmat, focal = blender_camera_intrinsics(cam, size)
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1.0]])
    b_rgb, b_alpha = rasterize_posed_arrays(world, viewmat, K, size, size, (0.5, 0.5, 0.5))

    def psnr(image):
        a = image[..., 3:4]
        rgb = linear_to_srgb(srgb_to_linear(image[..., :3]) * a + srgb_to_linear(0.5) * (1 - a))
        region = (b_alpha > 0.05) | (image[..., 3] > 0.05)
        return 10 * np.log10(1.0 / max(float(np.mean((rgb[region] - b_rgb[region]) ** 2)), 1e-12))

    def render(engine, samples, denoise=False):
        from blender_render import render_to_array

        start = time.perf_counter()
        image = render_to_array(
            bpy, Path(tmp) / f"{engine}.png", size=size, samples=samples, engine=engine, denoise=denoise
        )
        return image, time.perf_counter() - start

    # Cycles as an artist renders (its default denoiser on), and raw: transparency's Russian roulette
    # is the noise left at 16 samples (docs/BENCHMARKS.md).
    image, cycles_s = render("CYCLES", 16, denoise=True)
    cycles_psnr = psnr(image)
    raw, raw_s = render("CYCLES", 16)
    print(
        f"Cycles 512x512, 16 samples, 100k splats: {cycles_s:.1f} s, PSNR {cycles_psnr:.1f} dB vs the backend "
        f"(denoised; raw: {raw_s:.1f} s, {psnr(raw):.1f} dB)",
        flush=True,
    )
    try:
        image, first_s = render("EEVEE", 16)
        _, eevee_s = render("EEVEE", 16)
        eevee_psnr = psnr(image)
        print(
            f"Eevee 512x512, 16 samples: {first_s:.1f} s first (with shader compilation), {eevee_s:.1f} s again; "
            f"PSNR {eevee_psnr:.1f} dB",
            flush=True,
        )
    except RuntimeError as err:
        print(f"Eevee cannot render here: {err}")
        eevee_s = eevee_psnr = float("nan")
    return cycles_s, cycles_psnr, eevee_s, eevee_psnr


def main():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        frames = avatar_frames(tmp)
        cycles_s, cycles_psnr, eevee_s, eevee_psnr = renders(tmp)
        _, fps = crowd_scene(tmp)
        big_scene_import(tmp)
    import bpy

    blender = "{}.{}".format(*bpy.app.version[:2])
    print(
        f"blender={blender} import_s_100k={frames[100_000][0]:.2f} cycles_s_512={cycles_s:.1f} cycles_psnr={cycles_psnr:.1f} "
        f"eevee_s={eevee_s:.1f} eevee_psnr={eevee_psnr:.1f} frame_ms_100k={frames[100_000][1]:.1f} scene_fps={fps:.1f}"
    )
