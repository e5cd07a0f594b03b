"""FBX through Blender's own importer and exporter: FBX is a closed format with no maintained
Python writer, and Blender's exporter is what artists already trust for Unity and Unreal.

``glb_to_fbx`` reads the mesh .glb this package writes with Blender's glTF importer and writes FBX
with the settings docs/EXPORT.md gives (metres as FBX's centimetres with the scale applied to the
data, +Y up, -Z forward, no leaf bones, the texture embedded). Blender runs in a child process:
the ``bpy`` module when this Python has it (``pip install bpy``), else the ``blender`` executable
named by DREAMWALTZ_BLENDER or found on PATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .core.errors import DreamWaltzError

BLENDER_ENV = "DREAMWALTZ_BLENDER"

SCRIPT = r"""
import sys
import bpy

glb, out, fps = sys.argv[-3], sys.argv[-2], float(sys.argv[-1])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = max(1, round(fps)), max(1, round(fps)) / fps  # keys on the clip's frames
bpy.ops.import_scene.gltf(filepath=glb, bone_heuristic="TEMPERANCE")
import os
for i, image in enumerate(bpy.data.images):  # the FBX exporter embeds images from their files only
    if image.size[0] == 0:
        continue
    image.filepath_raw = os.path.join(os.path.dirname(glb), f"texture_{i}.png")  # beside the temporary .glb
    image.file_format = "PNG"
    image.save()
if bpy.data.actions:  # bake exactly the clip's frames (the glTF importer keys them from frame 0)
    first, last = bpy.data.actions[0].frame_range
    scene.frame_start, scene.frame_end = int(round(first)), int(round(last))
bpy.ops.export_scene.fbx(
    filepath=out,
    use_selection=False,
    object_types={"ARMATURE", "MESH"},
    apply_scale_options="FBX_SCALE_ALL",
    axis_forward="-Z",
    axis_up="Y",
    add_leaf_bones=False,
    primary_bone_axis="Y",
    secondary_bone_axis="X",
    use_armature_deform_only=False,
    bake_anim=bool(bpy.data.actions),
    bake_anim_use_all_actions=False,
    bake_anim_use_nla_strips=False,
    bake_anim_simplify_factor=0.0,
    path_mode="COPY",
    embed_textures=True,
    mesh_smooth_type="FACE",
)
print("fbx written", out)
"""


def blender_command() -> list[str]:
    if importlib.util.find_spec("bpy") is not None:
        return [sys.executable, "-c", SCRIPT]
    exe = os.environ.get(BLENDER_ENV) or shutil.which("blender")
    if exe:
        return [exe, "--background", "--factory-startup", "--python-expr", SCRIPT, "--"]
    raise DreamWaltzError(
        "--format fbx needs Blender (its FBX exporter), which was not found.",
        f"pip install bpy (the Blender version your Python supports), set {BLENDER_ENV} to a blender "
        "executable, or export --format mesh-glb and import it into Blender.",
    )


def glb_to_fbx(glb: Path, out: Path, fps: float = 30.0, timeout: float = 900) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.fbx")  # all-or-nothing: the file appears only when complete
    proc = subprocess.run(
        [*blender_command(), str(glb), str(tmp), f"{fps:g}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DreamWaltzError(f"Blender's FBX export failed: {last[0][:200]}", "Try --format mesh-glb instead.")
    tmp.replace(out)
    return out
