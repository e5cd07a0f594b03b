"""``dreamwaltz render-scene``: several avatars with their motions in 3D Gaussian splat scenes,
along a camera path, all Gaussians in one depth-sorted rasterization (docs/SCENES.md)."""

from pathlib import Path

NAME = "render-scene"
HELP = "Render a scene description (avatars, motions, 3DGS scenes, a camera path) to PNG frames and an mp4"


def add_arguments(p):
    p.add_argument("scene", type=Path, help="the scene description (.json, docs/SCENES.md)")
    p.add_argument("--out", type=Path, required=True, help="folder for frame_NNNN.png (NNNN: the scene frame)")
    p.add_argument("--mp4", type=Path, default=None, help="also write the frames as this mp4 (needs PyAV)")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: CUDA when PyTorch sees a GPU (gsplat's kernels when they load)",
    )


def run(args) -> int:
    import time

    from ..core.errors import DreamWaltzError
    from ..core.scene import load_scene
    from ..pipeline import pick_device
    from ..render.scene_render import render_scene

    scene = load_scene(args.scene)  # validate before anything heavy
    if args.out.exists() and not args.out.is_dir():
        raise DreamWaltzError(f"--out '{args.out}' is a file, not a folder.", "Give a folder for the PNG frames.")
    device = pick_device(args.device)
    total = len(scene.frames)
    started = time.perf_counter()

    def report(frame, path):
        done = frame - scene.frame_start + 1
        if done == total or done % 10 == 0:
            print(f"frame {frame} ({done}/{total}) -> {path.name}", flush=True)

    paths = render_scene(scene, args.out, mp4=args.mp4, device=device, on_frame=report)
    seconds = time.perf_counter() - started
    print(
        f"wrote {len(paths)} frames to {args.out}"
        + (f" and {args.mp4}" if args.mp4 else "")
        + f" ({seconds:.1f} s, {len(scene.avatars)} avatars, {len(scene.splats)} splat files, {device})"
    )
    return 0
