"""``dreamwaltz export``: an avatar in a pose as a standard 3D Gaussian splatting .ply."""

from pathlib import Path

NAME = "export"
HELP = "Export a .h3ga avatar (optionally posed by a motion file) as a 3D Gaussian splatting .ply"


def add_arguments(p):
    p.add_argument("avatar", type=Path)
    p.add_argument("--format", default="ply", choices=["ply"])
    p.add_argument("--pose", type=Path, default=None, help="a motion file (BVH, SMPL-X .npz/.npy) to pose it with")
    p.add_argument("--frame", type=int, default=0, help="which frame of --pose")
    p.add_argument("--betas", type=float, nargs="*", default=None, help="shape edit")
    p.add_argument("--out", type=Path, required=True)


def load_pose(avatar, path: Path, frame: int):
    """(full_pose, transl, expression) of one frame of any motion file the motion readers accept."""
    from ..core.errors import MotionError
    from ..core.motion import TargetSkeleton, load_motion

    seq = load_motion(path, TargetSkeleton.from_avatar(avatar))
    if not 0 <= frame < seq.num_frames:
        raise MotionError(f"frame {frame} is outside the clip (0..{seq.num_frames - 1}).", "Choose another --frame.")
    expression = None
    if seq.expression is not None and avatar.manifest["body"].get("kind") == "smplx":
        expression = seq.expression[frame, : avatar.num_expressions]
    return seq.full_pose[frame], seq.transl[frame], expression


def run(args) -> int:
    from ..core.h3ga import read_h3ga
    from ..core.ply import write_gaussian_ply
    from ..core.posing import pose_avatar

    avatar = read_h3ga(args.avatar)
    pose = transl = expression = None
    if args.pose:
        pose, transl, expression = load_pose(avatar, args.pose, args.frame)
    posed = pose_avatar(avatar, pose, betas=args.betas, expression=expression, transl=transl)
    write_gaussian_ply(args.out, posed.means, posed.covariances, posed.colors, posed.opacities)
    print(f"wrote {len(posed.means)} splats to {args.out} (SMPL-X space: metres, +Y up)")
    return 0
