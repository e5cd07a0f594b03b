"""``dreamwaltz render``: frames of an avatar moving to a motion file (or a turntable)."""

from pathlib import Path

from .export import add_max_frames_argument

NAME = "render"
HELP = "Render frames of a .h3ga avatar posed by a motion file, or a turntable"


def add_arguments(p):
    p.add_argument("avatar", type=Path)
    p.add_argument("--motion", type=Path, default=None, help="BVH or SMPL-X motion; none = rest pose")
    p.add_argument("--turntable", type=int, default=0, help="render N views around the avatar instead")
    p.add_argument("--fps", type=float, default=None, help="resample the motion to this frame rate")
    add_max_frames_argument(p)
    p.add_argument("--every", type=int, default=1, help="render every n-th frame")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, required=True, help="folder for the PNG frames")


def run(args) -> int:
    from PIL import Image

    from ..core.h3ga import read_h3ga
    from ..core.motion import TargetSkeleton, load_motion
    from ..core.posing import pose_avatar
    from ..pipeline import pick_device
    from ..render.views import avatar_view

    device = pick_device(args.device)
    avatar = read_h3ga(args.avatar)
    frames = []
    if args.motion:
        seq = load_motion(args.motion, TargetSkeleton.from_avatar(avatar), fps=args.fps, max_frames=args.max_frames)
        for i in range(0, seq.num_frames, args.every):
            frames.append((seq.full_pose[i], seq.transl[i], 0.0))
    else:
        for k in range(max(1, args.turntable)):
            frames.append((None, None, 360.0 * k / max(1, args.turntable)))
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (pose, transl, azimuth) in enumerate(frames):
        image = avatar_view(avatar, pose_avatar(avatar, pose, transl=transl), 30.0 + azimuth, args.size, device)
        Image.fromarray(image).save(args.out / f"frame_{i:04d}.png")
    print(f"wrote {len(frames)} frames to {args.out}")
    return 0
