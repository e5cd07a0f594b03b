"""One body-model API over the open body and a user's SMPL-X file, built on smplx's LBS functions.

No pose correctives: the avatar model is LBS with shape and expression blendshapes only, which
Blender's armature reproduces exactly (docs/BODY.md). smplx's own ``SMPLX`` class is not used
because it hard-codes extra-joint vertex ids of the 10,475-vertex SMPL-X mesh; landmarks here are
triangle + barycentric points read from the model file, so any topology works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import batch_rodrigues, blend_shapes, vertices2joints

from ..core.arrays import read_npz
from ..core.errors import BodyModelError
from ..core.joints import PARENTS
from .landmarks import LANDMARK_NAMES, smplx_landmarks

OPEN_BODY_PATH = Path(__file__).with_name("data") / "open_body.npz"
REQUIRED_KEYS = ("v_template", "f", "J_regressor", "kintree_table", "weights", "shapedirs")


@dataclass
class BodyOutput:
    vertices: torch.Tensor  # (B,V,3) posed
    joints: torch.Tensor  # (B,55,3) posed
    rest_vertices: torch.Tensor  # (B,V,3) zero pose with shape and expression
    rest_joints: torch.Tensor  # (B,55,3)
    skinning_transforms: torch.Tensor  # (B,55,4,4) rest -> posed
    joint_transforms: torch.Tensor  # (B,55,4,4) world frame of each joint
    landmarks: torch.Tensor  # (B,89,3) in LANDMARK_NAMES order


def _read_npz(path: Path) -> dict:
    if not path.is_file():
        raise BodyModelError(
            f"The body model file '{path}' does not exist.",
            "Use the open body, or download SMPLX_NEUTRAL.npz from smpl-x.is.tue.mpg.de and give its path.",
        )
    if path.suffix.lower() == ".pkl":
        raise BodyModelError(
            f"'{path.name}' is a pickle file, which DreamWaltz never loads (it can run code).",
            "Use the .npz version of the SMPL-X model from smpl-x.is.tue.mpg.de.",
        )
    if path.stat().st_size == 0:
        raise BodyModelError(f"'{path.name}' is empty.", "Download the SMPL-X model again (the .npz version).")
    # SMPL-X .npz files store a few dict entries (joint2num, part2num) as objects: those are skipped,
    # never unpickled. Every other array is read with its allocation bounded by its header.
    return read_npz(
        path,
        f"'{path.name}'",
        error=BodyModelError,
        skip_objects=True,
        kinds="fiubUS",
        fix="Download the SMPL-X model again (the .npz version from smpl-x.is.tue.mpg.de).",
    )


# name -> (number of dimensions, dtype kinds); sizes are checked against each other in BodyModel.
ARRAY_RANKS = {
    "v_template": (2, "fiu"),
    "f": (2, "iu"),
    "J_regressor": (2, "fiu"),
    "kintree_table": (2, "iu"),
    "weights": (2, "fiu"),
    "shapedirs": (3, "fiu"),
    "lmk_faces_idx": (1, "iu"),
    "lmk_bary_coords": (2, "fiu"),
    "vertex_colors": (2, "fiu"),
    "num_betas": (0, "iu"),
}


def _check_arrays(data: dict, name: str) -> None:
    """Ranks, kinds, sizes and values of a body file's arrays, before any of them is used."""

    def bad(message: str) -> BodyModelError:
        return BodyModelError(
            f"'{name}': {message}",
            "The file is damaged or not an SMPL-X model; "
            "download SMPLX_NEUTRAL.npz (npz version) from smpl-x.is.tue.mpg.de again.",
        )

    for key, (ndim, kinds) in ARRAY_RANKS.items():
        if key not in data:
            continue
        value = data[key]
        if value.dtype.kind not in kinds:
            raise bad(f"array '{key}' is {value.dtype}, not numbers of the right kind.")
        if value.ndim != ndim and not (key == "num_betas" and value.size == 1):
            raise bad(f"array '{key}' has shape {value.shape}; it must have {ndim} dimensions.")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise bad(f"array '{key}' contains NaN or infinite values.")
    V = data["v_template"].shape[0]
    if data["v_template"].shape[1] != 3 or V < 3:
        raise bad(f"array 'v_template' has shape {data['v_template'].shape}, not (V, 3).")
    faces = data["f"]
    if faces.shape[1] != 3 or len(faces) == 0 or faces.min() < 0 or faces.max() >= V:
        raise bad(f"array 'f' must be (F, 3) triangles with vertex indices in 0..{V - 1}.")
    if data["kintree_table"].shape != (2, 55):
        raise bad(f"array 'kintree_table' has shape {data['kintree_table'].shape}; SMPL-X's is (2, 55).")
    if data["shapedirs"].shape[:2] != (V, 3):
        raise bad(f"array 'shapedirs' has shape {data['shapedirs'].shape}, not ({V}, 3, K).")
    if "num_betas" in data and not 0 <= int(data["num_betas"].reshape(-1)[0]) <= data["shapedirs"].shape[2]:
        raise bad(
            f"'num_betas' is {int(data['num_betas'].reshape(-1)[0])} for {data['shapedirs'].shape[2]} shape directions."
        )
    if "vertex_colors" in data and data["vertex_colors"].shape != (V, 3):
        raise bad(f"array 'vertex_colors' has shape {data['vertex_colors'].shape}, not ({V}, 3).")
    F = len(faces)
    if (
        "lmk_faces_idx" in data
        and len(data["lmk_faces_idx"])
        and (data["lmk_faces_idx"].min() < 0 or data["lmk_faces_idx"].max() >= F)
    ):
        raise bad(f"array 'lmk_faces_idx' has triangle indices outside 0..{F - 1}.")


def rigid_transforms(rot, rest_joints, parents: tuple, parent_index: torch.Tensor):
    """The kinematic chain: (posed joints (B,J,3), skinning transforms (B,J,4,4)) of rotations
    ``rot`` (B,J,3,3) about the rest joints (B,J,3). Each joint's local transform rotates about
    its rest offset from its parent; world transforms are composed root first; the skinning
    transform of a joint maps a rest-pose point to its posed place (world transform after moving
    the joint's rest position to the origin). ``parents`` drives the Python loop (a tuple: no
    device reads); ``parent_index`` (the same on the joints' device) gathers parents' joints."""
    offsets = torch.cat([rest_joints[:, :1], rest_joints[:, 1:] - rest_joints[:, parent_index[1:]]], 1)
    local = torch.cat([rot, offsets[..., None]], -1)  # (B,J,3,4)
    bottom = local.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(*local.shape[:2], 1, 4)
    local = torch.cat([local, bottom], -2)
    world = [local[:, 0]]
    for j in range(1, len(parents)):
        world.append(world[parents[j]] @ local[:, j])
    world = torch.stack(world, 1)
    posed = world[..., :3, 3]
    skinning = torch.cat(
        [world[..., :3, :3], (posed - (world[..., :3, :3] @ rest_joints[..., None])[..., 0])[..., None]], -1
    )
    return posed, torch.cat([skinning, world[..., 3:, :]], -2)


class BodyModel(torch.nn.Module):
    def __init__(self, data: dict, kind: str, num_betas: int, num_expressions: int | None, name: str):
        super().__init__()
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise BodyModelError(
                f"'{name}' does not look like an SMPL-X model file: it lacks {', '.join(missing)}.",
                "Download SMPLX_NEUTRAL.npz (npz version) from smpl-x.is.tue.mpg.de and point to it.",
            )
        _check_arrays(data, name)
        v_template = np.asarray(data["v_template"], dtype=np.float64)
        V = v_template.shape[0]
        J_regressor = np.asarray(data["J_regressor"], dtype=np.float64)
        weights = np.asarray(data["weights"], dtype=np.float64)
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)  # exact partition of unity
        if J_regressor.shape != (55, V) or weights.shape != (V, 55):
            raise BodyModelError(
                f"'{name}' is not an SMPL-X model: it has {J_regressor.shape[0]} joints, SMPL-X has 55.",
                "SMPL, SMPL+H and FLAME files are not supported; use SMPLX_NEUTRAL.npz.",
            )
        parents = np.asarray(data["kintree_table"])[0].astype(np.int64)
        parents[0] = -1
        if list(parents) != list(PARENTS):
            raise BodyModelError(f"'{name}' has a skeleton that is not SMPL-X's.", "")
        shapedirs = np.asarray(data["shapedirs"], dtype=np.float64)
        total = shapedirs.shape[2]
        file_betas = int(np.asarray(data.get("num_betas", 300 if total >= 400 else 10)))
        file_expr = total - file_betas
        num_betas = min(num_betas, file_betas)
        num_expressions = file_expr if num_expressions is None else min(num_expressions, file_expr)
        self.kind, self.name = kind, name
        self.licensed = kind == "smplx"
        self.num_vertices, self.num_betas, self.num_expressions = V, num_betas, num_expressions
        self.parents = list(PARENTS)
        self.shape_names = [str(s) for s in data.get("shape_names", [f"beta_{i:02d}" for i in range(file_betas)])][
            :num_betas
        ]
        self.expression_names = [
            str(s) for s in data.get("expression_names", [f"expression_{i:03d}" for i in range(file_expr)])
        ][:num_expressions]
        if kind == "smplx":
            lmk_faces, lmk_bary = smplx_landmarks(data, np.asarray(data["f"]))
        else:
            lmk_faces, lmk_bary = np.asarray(data["lmk_faces_idx"]), np.asarray(data["lmk_bary_coords"])
        if len(lmk_faces) != len(LANDMARK_NAMES):
            raise BodyModelError(f"'{name}' has {len(lmk_faces)} landmarks; {len(LANDMARK_NAMES)} are needed.", "")
        f32 = torch.float32
        self.register_buffer("faces", torch.as_tensor(np.asarray(data["f"], dtype=np.int64)))
        self.register_buffer("template_vertices", torch.as_tensor(v_template, dtype=f32))
        self.register_buffer("shape_dirs", torch.as_tensor(shapedirs[:, :, :num_betas], dtype=f32))
        self.register_buffer(
            "expression_dirs", torch.as_tensor(shapedirs[:, :, file_betas : file_betas + num_expressions], dtype=f32)
        )
        self.register_buffer("joint_regressor", torch.as_tensor(J_regressor, dtype=f32))
        self.register_buffer("skin_weights", torch.as_tensor(weights, dtype=f32))
        self.register_buffer("landmark_faces", torch.as_tensor(np.asarray(lmk_faces, dtype=np.int64)))
        self.register_buffer("landmark_bary", torch.as_tensor(np.asarray(lmk_bary, dtype=np.float64), dtype=f32))
        # The chain's parents twice: a plain tuple for the Python loop over joints (smplx's
        # batch_rigid_transform indexes a list with the tensor's items: one host sync per joint
        # on a GPU) and a device tensor for gathering the parents' joints.
        self.parents_tuple = tuple(int(p) for p in PARENTS)
        self.register_buffer("_parents", torch.as_tensor(np.asarray(PARENTS, dtype=np.int64)))
        self.vertex_colors = np.asarray(data["vertex_colors"], dtype=np.float32) if "vertex_colors" in data else None

    @classmethod
    def load(
        cls,
        source="open",
        gender: str = "neutral",
        num_betas: int = 10,
        num_expressions: int | None = None,
        device="cpu",
        dtype=torch.float32,
    ) -> BodyModel:
        """The open body (``"open"``, the default) or a user's SMPL-X ``.npz``."""
        if str(source) == "open":
            model = cls(_read_npz(OPEN_BODY_PATH), "open", num_betas, num_expressions, "the open body")
        else:
            path = Path(source).expanduser()
            if path.is_dir():  # a folder of SMPL-X files: pick by gender, as smplx does
                path = path / f"SMPLX_{gender.upper()}.npz"
            model = cls(_read_npz(path), "smplx", num_betas, num_expressions, path.name)
        return model.to(device=device, dtype=dtype)

    def to(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        moved = super().to(*args, **{k: v for k, v in kwargs.items() if k != "dtype"})
        if dtype is not None:
            for name, buf in list(moved.named_buffers()):
                if buf.is_floating_point():
                    setattr(moved, name, buf.to(dtype))
        return moved

    def _batch(self, value, batch: int, shape: tuple) -> torch.Tensor:
        like = self.template_vertices
        if value is None:
            return torch.zeros((batch,) + shape, dtype=like.dtype, device=like.device)
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape((-1,) + shape)
        return value.expand((batch,) + shape) if value.shape[0] == 1 and batch > 1 else value

    def forward(self, betas=None, expression=None, full_pose=None, transl=None) -> BodyOutput:
        shapes = {
            "betas": (self.num_betas,),
            "expression": (self.num_expressions,),
            "full_pose": (55, 3),
            "transl": (3,),
        }
        given = {"betas": betas, "expression": expression, "full_pose": full_pose, "transl": transl}
        batch = max(
            [torch.as_tensor(v).reshape((-1,) + shapes[k]).shape[0] for k, v in given.items() if v is not None] or [1]
        )
        betas = self._batch(betas, batch, shapes["betas"])
        expression = self._batch(expression, batch, shapes["expression"])
        pose = self._batch(full_pose, batch, shapes["full_pose"])
        transl = self._batch(transl, batch, shapes["transl"])

        rest = self.template_vertices[None] + blend_shapes(betas, self.shape_dirs)
        rest_joints = vertices2joints(self.joint_regressor, rest)  # joints follow shape, not expression
        if self.num_expressions:
            rest = rest + blend_shapes(expression, self.expression_dirs)
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, 55, 3, 3)
        posed_joints, A = rigid_transforms(rot, rest_joints, self.parents_tuple, self._parents)
        T = torch.einsum("vk,bkij->bvij", self.skin_weights, A)
        homo = torch.cat([rest, torch.ones_like(rest[..., :1])], dim=-1)
        vertices = torch.einsum("bvij,bvj->bvi", T, homo)[..., :3] + transl[:, None]
        A = A.clone()
        A[:, :, :3, 3] += transl[:, None]
        G = A.clone()
        G[:, :, :3, 3] = posed_joints + transl[:, None]
        corners = vertices[:, self.faces[self.landmark_faces]]  # (B,L,3,3)
        landmarks = torch.einsum("lc,blci->bli", self.landmark_bary, corners)
        return BodyOutput(vertices, posed_joints + transl[:, None], rest, rest_joints, A, G, landmarks)

    def triangle_count(self) -> int:
        return int(self.faces.shape[0])
