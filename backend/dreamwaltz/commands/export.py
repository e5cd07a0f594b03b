"""``dreamwaltz export``: an avatar as a 3D Gaussian splatting .ply (one frame, or with ``--motion``
one file per frame), as Niantic's compressed .spz (one frame), or as glTF 2.0 binary (.glb) with
``KHR_gaussian_splatting``: one posed frame, or (``--motion``) the skinned, animated avatar.
docs/EXPORT.md says what each keeps and drops."""

from pathlib import Path

NAME = "export"
HELP = (
    "Export a .h3ga avatar as 3DGS .ply (one frame or a sequence), .spz, glTF .glb (one frame, or animated with "
    "--motion), or a textured, rigged mesh for game engines (mesh-glb, fbx, vrm)"
)
FORMATS = ["ply", "ply-seq", "spz", "glb", "mesh-glb", "fbx", "vrm"]
MESH_FORMATS = ("mesh-glb", "fbx", "vrm")


def add_arguments(p):
    p.add_argument("avatar", type=Path)
    p.add_argument(
        "--format",
        default="ply",
        choices=FORMATS,
        help="ply: a 3DGS .ply (with --motion: a folder of them, one a frame; ply-seq is the same); "
        "spz: Niantic's compressed splats; glb: glTF 2.0 binary with KHR_gaussian_splatting; "
        "mesh-glb / fbx / vrm: the avatar baked into a textured, skinned mesh (docs/EXPORT.md)",
    )
    p.add_argument("--texture", type=int, default=2048, help="mesh formats: the texture's size in pixels")
    p.add_argument(
        "--bone-names",
        default=None,
        choices=["smplx", "mixamo", "unreal", "vrm"],
        help="mesh formats: bone names for Unity/Mixamo (mixamo), Unreal's UE5 mannequin (unreal), VRM, or the "
        "avatar's own (smplx; default, vrm for --format vrm)",
    )
    p.add_argument("--author", default=None, help="vrm: the author named in the VRM meta")
    p.add_argument("--pose", type=Path, default=None, help="a motion file (BVH, SMPL-X .npz/.npy) to pose it with")
    p.add_argument("--frame", type=int, default=0, help="which frame of --pose")
    p.add_argument("--betas", type=float, nargs="*", default=None, help="shape edit (one posed frame only)")
    p.add_argument(
        "--motion",
        type=Path,
        default=None,
        help="glb: the animated avatar (skin, skinned body and splats, animation) with this motion file; "
        "ply: one .ply per frame of it, in the --out folder",
    )
    p.add_argument("--frames", default=None, metavar="A:B", help="with --motion: only frames A..B-1 of the clip")
    p.add_argument("--with-body", action="store_true", help="glb of one frame: add the posed body mesh")
    p.add_argument("--no-body", action="store_true", help="glb with --motion: leave out the skinned body mesh")
    add_max_frames_argument(p)
    p.add_argument("--out", type=Path, required=True, help="the file (a folder for a .ply sequence)")


def add_max_frames_argument(p) -> None:
    """--max-frames, for every command that reads a motion file."""
    p.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="the frame ceiling of motion files (default 100,000, or DREAMWALTZ_MAX_FRAMES): longer files are "
        "refused before they are read; retargeting needs about 30 kB of memory per frame (3 GB for 100,000)",
    )


def load_pose(avatar, path: Path, frame: int, max_frames=None):
    """(full_pose, transl, expression) of one frame of any motion file the motion readers accept."""
    from ..core.errors import MotionError
    from ..core.motion import TargetSkeleton, load_motion

    if frame < 0:
        raise MotionError(f"frame {frame} is outside the clip (frames count from 0).", "Choose another --frame.")
    # Only that frame is materialised (an SMPL-family file converts no other); a frame past the
    # clip's end is refused there, naming the clip's range.
    seq = load_motion(path, TargetSkeleton.from_avatar(avatar), max_frames=max_frames, frames=slice(frame, frame + 1))
    expression = None
    if seq.expression is not None and avatar.manifest["body"].get("kind") == "smplx":
        expression = seq.expression[0, : avatar.num_expressions]
    return seq.full_pose[0], seq.transl[0], expression


def frame_range(spec, num_frames: int) -> range:
    """``A:B`` (either side may be empty) -> the frames of a clip of ``num_frames`` it names."""
    from ..core.errors import MotionError

    if spec is None:
        return range(num_frames)
    try:
        start, stop = (s.strip() for s in spec.split(":"))
        start = int(start) if start else 0
        stop = int(stop) if stop else num_frames
    except ValueError:
        raise MotionError(f"--frames '{spec}' is not A:B.", "Give two frame numbers, e.g. --frames 0:120.") from None
    if not 0 <= start < stop <= num_frames:
        raise MotionError(
            f"--frames {start}:{stop} is outside the clip (0..{num_frames}).", f"Choose A < B within 0..{num_frames}."
        )
    return range(start, stop)


def load_clip(avatar, path: Path, frames=None, max_frames=None):
    """(full_pose (T,J,3), transl (T,3), fps, frame numbers) of a motion file, cut to ``--frames``."""
    from ..core.motion import TargetSkeleton, load_motion

    seq = load_motion(path, TargetSkeleton.from_avatar(avatar), max_frames=max_frames)
    keep = frame_range(frames, seq.num_frames)
    sl = slice(keep.start, keep.stop)
    return seq.full_pose[sl], seq.transl[sl], float(seq.fps), keep


def write_ply_sequence(folder: Path, avatar, full_pose, transl, frames) -> list:
    """One 3DGS .ply per frame, ``frame_000123.ply`` named by the clip's frame number."""
    from ..core.posing import pose_avatar
    from ..core.splat_writers import write_gaussian_ply

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        posed = pose_avatar(avatar, full_pose[i], transl=transl[i])
        paths.append(
            write_gaussian_ply(
                folder / f"frame_{frame:06d}.ply", posed.means, posed.covariances, posed.colors, posed.opacities
            )
        )
    return paths


def run(args) -> int:
    from ..core.errors import DreamWaltzError
    from ..core.h3ga import read_h3ga
    from ..core.posing import pose_avatar

    avatar = read_h3ga(args.avatar)
    if args.format in MESH_FORMATS:
        return export_mesh(args, avatar)
    if args.frames is not None and args.motion is None:
        raise DreamWaltzError(
            "--frames needs --motion.", "Add --motion FILE, or use --pose FILE --frame N for one frame."
        )
    if args.format == "ply-seq" and args.motion is None:
        raise DreamWaltzError(
            "--format ply-seq needs --motion FILE.", "Add --motion, or use --format ply for one frame."
        )
    if args.motion is not None:
        if args.format == "spz":
            raise DreamWaltzError(
                "--motion is not supported with --format spz (one frame only).",
                "Use --format glb for the animated avatar, --format ply for one .ply a frame, "
                "or --pose FILE --frame N for one frame.",
            )
        if args.pose is not None or args.betas is not None:
            raise DreamWaltzError(
                "--motion exports the avatar as it is, with its own shape and no --pose.",
                "Leave out --pose/--betas (a shape edit is not kept in a skinned file).",
            )
        if args.format in ("ply", "ply-seq"):
            full_pose, transl, fps, frames = load_clip(avatar, args.motion, args.frames, args.max_frames)
            paths = write_ply_sequence(args.out, avatar, full_pose, transl, frames)
            print(f"wrote {len(paths)} .ply files ({avatar.num_splats} splats each, {fps:g} fps) to {args.out}")
            return 0
        from ..core.gltf import write_animated_glb

        full_pose, transl, fps, frames = load_clip(avatar, args.motion, args.frames, args.max_frames)
        write_animated_glb(args.out, avatar, full_pose, transl, fps, name=args.motion.stem, with_body=not args.no_body)
        print(
            f"wrote the skinned avatar ({avatar.num_splats} splats) with {len(frames)} frames at {fps:g} fps "
            f"to {args.out} (glTF: metres, +Y up)"
        )
        return 0
    pose = transl = expression = None
    if args.pose:
        pose, transl, expression = load_pose(avatar, args.pose, args.frame, args.max_frames)
    posed = pose_avatar(avatar, pose, betas=args.betas, expression=expression, transl=transl)
    if args.format == "spz":
        from ..core.splat_writers import write_spz

        write_spz(args.out, posed)
        print(f"wrote {len(posed.means)} splats to {args.out} (SPZ v3: metres, +Y up)")
        return 0
    if args.format == "glb":
        from ..core.gltf import write_posed_glb

        write_posed_glb(args.out, posed, avatar, with_body=args.with_body)
        print(f"wrote {len(posed.means)} splats to {args.out} (glTF KHR_gaussian_splatting: metres, +Y up)")
        return 0
    from ..core.splat_writers import write_gaussian_ply

    write_gaussian_ply(args.out, posed.means, posed.covariances, posed.colors, posed.opacities)
    print(f"wrote {len(posed.means)} splats to {args.out} (SMPL-X space: metres, +Y up)")
    return 0


def export_mesh(args, avatar) -> int:
    """mesh-glb / vrm (glTF written here) and fbx (the same mesh through Blender's FBX exporter)."""
    import time

    from ..core.errors import DreamWaltzError
    from ..core.gltf import write_mesh_glb

    if args.pose is not None or args.betas is not None:
        raise DreamWaltzError(
            f"--format {args.format} exports the rigged avatar in its rest pose; --pose/--betas do not apply.",
            "Leave them out; add --motion FILE to carry an animation.",
        )
    if not 16 <= args.texture <= 8192:
        raise DreamWaltzError(f"--texture {args.texture} is outside 16..8192.", "Use e.g. --texture 2048.")
    convention = args.bone_names or ("vrm" if args.format == "vrm" else "smplx")
    if args.format == "vrm" and convention != "vrm":
        raise DreamWaltzError("--format vrm names its bones by VRM's humanoid.", "Leave out --bone-names.")
    motion = None
    if args.motion is not None:
        full_pose, transl, fps, _frames = load_clip(avatar, args.motion, args.frames, args.max_frames)
        motion = (full_pose, transl, fps, args.motion.stem)
    from ..meshbake import bake_mesh

    start = time.perf_counter()
    mesh = bake_mesh(avatar, texture_size=args.texture)
    name = str(avatar.manifest.get("prompt") or args.avatar.stem)[:64] or "avatar"
    vrm_meta = None
    if args.format == "vrm":
        # meta.version is the model's version (a string, optional): the manifest's "version" is the
        # .h3ga format's number, so it is not written.
        vrm_meta = {"name": name, "authors": [args.author or "unknown"]}
    if args.format == "fbx":
        import tempfile

        from ..fbx import glb_to_fbx

        with tempfile.TemporaryDirectory() as tmp:
            glb = write_mesh_glb(Path(tmp) / "mesh.glb", mesh, avatar, convention, motion, name=name)
            glb_to_fbx(glb, args.out, fps=motion[2] if motion else 30.0)
    else:
        write_mesh_glb(args.out, mesh, avatar, convention, motion, vrm_meta, name=name)
    print(
        f"wrote a textured, skinned mesh ({len(mesh.faces):,} triangles, {args.texture}px texture, "
        f"{convention} bone names{', animated' if motion else ''}) to {args.out} in {time.perf_counter() - start:.0f} s"
    )
    return 0
