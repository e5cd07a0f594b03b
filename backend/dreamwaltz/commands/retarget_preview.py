"""``dreamwaltz retarget-preview``: a contact sheet of a motion clip retargeted onto an avatar (the
source skeleton beside the posed body at a few frames, the floor, per-frame figures, the bone
mapping), to see at once whether a retarget worked. docs/MOTION.md."""

from pathlib import Path

NAME = "retarget-preview"
HELP = "Draw a contact sheet of a motion clip (BVH, SMPL-X .npz) retargeted onto a .h3ga avatar"


def add_arguments(p):
    p.add_argument("clip", type=Path, help="the motion file (.bvh, .npz, .npy)")
    p.add_argument("--avatar", type=Path, required=True, help="the .h3ga avatar to retarget it onto")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--frames", type=int, default=8, help="how many frames, evenly spread over the clip (default 8)")
    p.add_argument("--mapping", type=Path, default=None, help="a bone mapping JSON laid over the automatic one")


def run(args) -> int:
    from ..core.errors import DreamWaltzError
    from ..render.retarget_sheet import retarget_preview

    if not 1 <= args.frames <= 64:
        raise DreamWaltzError(f"--frames {args.frames} is not between 1 and 64.", "Give e.g. --frames 8.")
    out, figures = retarget_preview(args.clip, args.avatar, args.out, args.frames, args.mapping)
    for fig in figures:
        print(
            f"frame {fig.frame}: lowest mesh point {100 * fig.lowest_m:+.1f} cm, foot slide "
            f"{100 * fig.slide_m_s:.0f} cm/s, head above pelvis {100 * fig.head_above_pelvis_m:.0f} cm"
        )
    print(f"wrote {out}")
    return 0
