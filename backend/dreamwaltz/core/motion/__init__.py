"""Motion files -> SMPL-X pose sequences for an avatar (pure numpy; Blender and backend share it).

    target = TargetSkeleton.from_avatar(avatar)            # or .from_joints(rest_joints)
    seq = load_motion("walk.bvh", target, in_place=False, scale=1.0, mapping=None)
    seq.full_pose (T,55,3), seq.transl (T,3), seq.expression (T,E) or None, seq.fps

BVH clips are retargeted (aliases for CMU/MotionBuilder, DAZ, 3ds Max biped, Mixamo, MakeHuman,
editable mappings); SMPL-family files (.npz/.npy) are applied directly.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MotionError
from .bvh import BVH, SampledClip, read_bvh
from .mapping import auto_mapping, load_mapping, save_mapping
from .retarget import TargetSkeleton, forward_kinematics_batch, resample, retarget_bvh
from .sequence import MotionSequence
from .smpl_files import read_smpl_motion

__all__ = [
    "BVH",
    "MotionSequence",
    "SampledClip",
    "TargetSkeleton",
    "auto_mapping",
    "forward_kinematics_batch",
    "load_mapping",
    "load_motion",
    "read_bvh",
    "resample",
    "retarget_bvh",
    "save_mapping",
]


def load_motion(
    path,
    target: TargetSkeleton,
    fps=None,
    in_place: bool = False,
    scale: float = 1.0,
    mapping=None,
    up_axis: str = "auto",
    keep_on_ground: bool = True,
    max_frames=None,
    frames: slice | None = None,
) -> MotionSequence:
    """Any supported motion file as an SMPL-X sequence for ``target``, resampled to ``fps`` if given.

    ``max_frames`` raises (or lowers) the frame ceiling (``sequence``: 100,000 frames by default, or
    ``DREAMWALTZ_MAX_FRAMES``); a longer file is refused from its header, before it is read.
    ``frames`` (a slice of the file's frames, before resampling): only those are returned; an
    SMPL-family file converts only those (a skeleton clip is retargeted whole: its floor pass
    needs the clip around them).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        seq = retarget_bvh(
            read_bvh(path, max_frames),
            target,
            mapping=mapping,
            in_place=in_place,
            scale=scale,
            keep_on_ground=keep_on_ground,
            source=path.name,
            up_axis=up_axis,
        )
    elif suffix == ".vrma":  # VRM animation: the humanoid bones are named, so no mapping is guessed
        from .vrma import read_vrma

        clip, named = read_vrma(path, max_frames)
        seq = retarget_bvh(
            clip,
            target,
            mapping={**named, **(load_mapping(mapping) if mapping is not None else {})},
            in_place=in_place,
            scale=scale,
            keep_on_ground=keep_on_ground,
            source=path.name,
            up_axis=up_axis,
        )
    elif suffix in (".npz", ".npy"):
        seq = read_smpl_motion(path, target.rest_joints[0], up_axis=up_axis, max_frames=max_frames, frames=frames)
        frames = None  # already cut
        if in_place:
            seq.transl[:, [0, 2]] = seq.transl[:1, [0, 2]]
    elif suffix == ".pkl":
        raise MotionError(
            f"'{path.name}' is a pickle; loading it could run arbitrary code.",
            "Convert it to .npz (np.savez with plain arrays) first.",
        )
    else:
        raise MotionError(
            f"'{path.name}': unsupported motion file type '{suffix}'.", "Use .bvh, .vrma, or SMPL-X/AMASS .npz / .npy."
        )
    if frames is not None:
        keep = range(seq.num_frames)[frames]
        if len(keep) == 0:
            raise MotionError(
                f"'{path.name}': frames {frames.start}..{frames.stop} are outside the clip (0..{seq.num_frames - 1}).",
                "Choose frames within the clip.",
            )
        seq = MotionSequence(
            seq.fps,
            seq.full_pose[frames],
            seq.transl[frames],
            None if seq.expression is None else seq.expression[frames],
            seq.mapping,
            seq.source,
            seq.notes,
            seq.source_basis,
            seq.source_scale,
        )
    return resample(seq, fps, max_frames) if fps is not None else seq  # 0 or NaN is an error, not 'keep the rate'
