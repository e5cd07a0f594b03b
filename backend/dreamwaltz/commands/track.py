"""``dreamwaltz track``: read a motion-capture tool's output and write the project's track file."""

from pathlib import Path

NAME = "track"
HELP = "Convert a video motion-capture result (GVHMR, SMPLer-X, .smpl, TRAM/WHAM/4D-Humans) to a .track.npz"


def add_arguments(p):
    p.add_argument("action", choices=["convert", "info"])
    p.add_argument("source", type=Path, help="the tool's output (file or folder)")
    p.add_argument("out", type=Path, nargs="?", default=None, help="the .track.npz to write (convert)")
    p.add_argument(
        "--allow-pickle", action="store_true", help="read TRAM/WHAM/4D-Humans pickles (restricted unpickler)"
    )
    p.add_argument("--track-kind", choices=["tram", "wham", "phalp", "prompthmr"], default=None)
    p.add_argument("--frame", choices=["camera", "world"], default=None)
    p.add_argument(
        "--video", type=Path, default=None, help="the tracked video: image size (and a check of frame count)"
    )


def run(args) -> int:
    from ..core.errors import TrackError
    from ..core.tracks import write_track
    from ..tracks_io import load_any_track

    width = height = 0
    info = None
    if args.video is not None:
        from ..video_io import video_info

        info = video_info(args.video)
        width, height = info.width, info.height
    track = load_any_track(
        args.source,
        allow_pickle=args.allow_pickle,
        kind=args.track_kind,
        width=width,
        height=height,
        frame=args.frame,
        num_frames=info.num_frames if info is not None else 0,
    )
    if info is not None:
        track = track.with_image_size(width, height)
        track.check_video(info.num_frames, width, height)
    cam = track.camera
    print(
        f"{track.source}: {len(track.persons)} people, {track.num_frames} frames, bodies in the {track.frame} frame, "
        f"camera {'none' if cam is None else f'{cam.width}x{cam.height}' if cam.width else 'size unknown'}"
        f"{', with extrinsics' if cam is not None and cam.world_to_camera is not None else ''}"
    )
    for k, person in enumerate(track.persons):
        print(
            f"  person {k}: {person.num_frames} frames ({int(person.frames[0])}..{int(person.frames[-1])}), {person.model}"
        )
    if args.action == "convert":
        if args.out is None:
            raise TrackError("convert needs an output path.", "Add OUT.track.npz after the source.")
        write_track(args.out, track)
        print(f"wrote {args.out}")
    return 0
