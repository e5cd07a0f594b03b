"""``dreamwaltz condition``: write the skeleton image the ControlNet sees, and its keypoints."""

import json
from pathlib import Path

NAME = "condition"
HELP = "Write the OpenPose skeleton image (and keypoints JSON) of a body, pose and camera"


def add_arguments(p):
    p.add_argument("--body", default="open", help="'open' or a path to your SMPL-X .npz")
    p.add_argument("--pose", default="apose", choices=["apose", "zero", "random"])
    p.add_argument("--azimuth", type=float, default=0.0, help="degrees; 0 looks at the front")
    p.add_argument("--elevation", type=float, default=90.0, help="polar degrees; 90 is level")
    p.add_argument("--radius", type=float, default=2.6)
    p.add_argument("--fov", type=float, default=50.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="skeleton PNG; the keypoints go next to it as .json")


def run(args) -> int:
    import numpy as np
    from PIL import Image

    from ..body import BodyModel
    from ..body.poses import apose, random_pose
    from ..conditioning import draw_openpose, posed_keypoints, view_prompt
    from ..core.camera import orbit_camera
    from ..core.errors import DreamWaltzError

    body = BodyModel.load(args.body)
    pose = {"apose": apose(), "zero": np.zeros((55, 3))}.get(args.pose)
    if pose is None:
        pose = random_pose(np.random.default_rng(args.seed))
    if args.size < 16 or args.size > 8192:
        raise DreamWaltzError(f"--size {args.size} is out of range.", "Use 16 to 8192 pixels (ControlNet uses 512).")
    out = body(full_pose=pose[None])
    joints = out.joints[0].numpy()
    camera = orbit_camera(
        args.azimuth,
        args.elevation,
        args.radius,
        (0.0, float(joints[:, 1].mean()) - 0.1, 0.0),
        args.fov,
        args.size,
        args.size,
    )
    kp = posed_keypoints(out, camera, body.faces)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_openpose(kp)).save(args.out)
    meta = {
        "azimuth": args.azimuth,
        "elevation": args.elevation,
        "radius": args.radius,
        "fov_y_deg": args.fov,
        "view": view_prompt("", args.azimuth, args.elevation).lstrip(", "),
        "pose": args.pose,
        "body": str(args.body),
        "viewmat": camera.viewmat.round(6).tolist(),
        "K": camera.K.round(6).tolist(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(kp.to_dict() | {"camera": meta}))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0
