"""``dreamwaltz reenact``: a person in a video replaced by an avatar (docs/REENACT.md)."""

import sys
from pathlib import Path

NAME = "reenact"
HELP = "Replace tracked people in a video by avatars (clean plate, posed avatar, contact shadow)"


def add_arguments(p):
    p.add_argument("video", type=Path, help="the video (.mp4, .mov, ...)")
    p.add_argument(
        "--track",
        type=Path,
        required=True,
        help="the people's motion: .track.npz, GVHMR .pt, SMPLer-X folder, .smpl, AMASS .npz, or an opt-in pickle",
    )
    p.add_argument(
        "--avatar", type=Path, action="append", required=True, help="a .h3ga avatar (repeat for several people)"
    )
    p.add_argument(
        "--person",
        type=int,
        action="append",
        default=None,
        help="the tracked person each --avatar replaces, in order (default 0, 1, ...)",
    )
    p.add_argument("--out", type=Path, default=None, help="the composited video (default VIDEO_reenact.mp4)")
    p.add_argument(
        "--plate-out", type=Path, default=None, help="also write the clean plate (the video without the people)"
    )
    p.add_argument("--matte-out", type=Path, default=None, help="also write the avatars' coverage as a grey video")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read TRAM/WHAM/4D-Humans pickles (restricted: arrays and plain containers only)",
    )
    p.add_argument(
        "--track-kind",
        choices=["tram", "wham", "phalp", "prompthmr"],
        default=None,
        help="the tool that wrote a pickle",
    )
    p.add_argument(
        "--frame",
        choices=["camera", "world"],
        default=None,
        help="which of a tool's bodies to use (default: the camera-frame one, which matches the video)",
    )
    p.add_argument(
        "--body", default="open", help="body model posed for the person's mask: 'open' or your SMPLX_NEUTRAL.npz"
    )
    p.add_argument(
        "--dilate", type=int, default=None, help="pixels added around the tracked body (default 1%% of the diagonal)"
    )
    p.add_argument("--supersample", type=int, default=None, help="avatar render factor (default: automatic)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def require_video_libraries() -> None:
    from ..core.errors import DreamWaltzError

    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ImportError as err:
        raise DreamWaltzError(
            f"Video work needs PyAV and OpenCV ({err.name} is missing).",
            "pip install 'dreamwaltz[video]' (or: pip install av opencv-python-headless).",
        ) from None


def run(args) -> int:
    require_video_libraries()
    import numpy as np
    import torch

    from ..body import BodyModel
    from ..core.errors import TrackError
    from ..core.h3ga import read_h3ga
    from ..pipeline import pick_device
    from ..progress import ProgressReporter, terminal_sink
    from ..reenact import reenact
    from ..tracks_io import load_any_track
    from ..video_io import video_info, write_video

    people = args.person if args.person else list(range(len(args.avatar)))
    if len(people) != len(args.avatar):
        raise TrackError(f"{len(args.avatar)} --avatar but {len(people)} --person.", "Give one --person per --avatar.")
    info = video_info(args.video)
    track = load_any_track(
        args.track,
        allow_pickle=args.allow_pickle,
        kind=args.track_kind,
        width=info.width,
        height=info.height,
        frame=args.frame,
        num_frames=info.num_frames,
    )
    avatars = [read_h3ga(path) for path in args.avatar]
    body = BodyModel.load(args.body, dtype=torch.float64)
    reporter = ProgressReporter([terminal_sink(sys.stderr)])
    out = args.out or args.video.with_name(args.video.stem + "_reenact.mp4")
    result = reenact(
        args.video,
        track,
        list(zip(avatars, people)),
        out,
        args.plate_out,
        body=body,
        device=pick_device(args.device),
        dilation=args.dilate,
        reporter=reporter,
        supersample=args.supersample,
    )
    if args.matte_out is not None:
        matte = np.repeat(result.alphas[..., None], 3, axis=-1)
        write_video(args.matte_out, matte, info.fps, info.width, info.height, crf=0)
    print(
        f"wrote {out} ({info.num_frames} frames, {info.width}x{info.height}, {float(info.fps):g} fps"
        f"{', audio kept' if info.has_audio else ''}; camera {'still' if result.static_camera else 'moving'})"
    )
    return 0
