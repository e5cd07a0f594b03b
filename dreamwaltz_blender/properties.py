# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene settings the DreamWaltz panel edits, and the state of the running job (saved with the .blend)."""

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import shared

# Honest, rough wall-clock estimates; see docs/BENCHMARKS.md for measured figures.
PRESET_ESTIMATES = {
    "tiny": "a few minutes on a CPU; random tiny models, checks the set-up only",
    "preview": "about 30-60 min on a 24 GB NVIDIA GPU",
    "paper": "several hours on a 40-80 GB NVIDIA GPU (the paper's schedule)",
}

# How the panel names each preset: (label, what it is).
PRESET_LABELS = {
    "tiny": ("Tiny (test)", "Tiny random models on the CPU"),
    "preview": ("Preview", "A short real run"),
    "paper": ("Paper", "The paper's full schedule"),
}


class DreamWaltzSceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="Describe the avatar, e.g. 'a knight in armor'")
    negative_prompt: StringProperty(name="Negative", description="What the avatar should not look like")
    preset: EnumProperty(
        name="Quality",
        items=tuple(
            (name, PRESET_LABELS[name][0], f"{PRESET_LABELS[name][1]}: {PRESET_ESTIMATES[name]}")
            for name in shared.module("job").PRESET_NAMES  # the backend's presets: one list, in the core
        ),
        default=shared.module("job").DEFAULT_PRESET,
    )
    seed: IntProperty(name="Seed", default=0, min=0)
    densify: BoolProperty(
        name="Densify",
        default=False,
        description="Grow Gaussians where detail is missing and prune transparent ones: more "
        "detail, up to twice the memory",
    )
    body: EnumProperty(
        name="Body",
        items=(
            ("OPEN", "Open body", "The project's own CC0 body, no registration needed"),
            ("SMPLX", "SMPL-X file", "Your own SMPL-X model file (.npz) from smpl-x.is.tue.mpg.de"),
        ),
        default="OPEN",
    )
    smplx_path: StringProperty(
        name="SMPL-X file", subtype="FILE_PATH", description="SMPLX_NEUTRAL.npz (or MALE/FEMALE) that you downloaded"
    )
    gender: EnumProperty(
        name="Gender", items=(("neutral", "Neutral", ""), ("male", "Male", ""), ("female", "Female", ""))
    )
    betas: FloatVectorProperty(
        name="Shape", size=10, soft_min=-3.0, soft_max=3.0, description="Body shape coefficients (betas)"
    )

    # State of the current job (written by the poller, read by the panel).
    job_id: StringProperty(options={"SKIP_SAVE"})
    job_status: StringProperty(options={"SKIP_SAVE"})
    job_queue_position: IntProperty(options={"SKIP_SAVE"})  # 1 = next to start; 0 = not queued
    job_stage: StringProperty(options={"SKIP_SAVE"})
    job_message: StringProperty(options={"SKIP_SAVE"})
    job_error: StringProperty(options={"SKIP_SAVE"})
    job_progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    job_step: IntProperty(options={"SKIP_SAVE"})
    job_total: IntProperty(options={"SKIP_SAVE"})
    job_eta_s: FloatProperty(options={"SKIP_SAVE"})
    job_event_index: IntProperty(options={"SKIP_SAVE"})
    job_preview: StringProperty(options={"SKIP_SAVE"})
    backend_status: StringProperty(options={"SKIP_SAVE"})
    import_result: BoolProperty(default=True, name="Import when done")


MAX_SHAPE_SLIDERS = 32  # Blender's limit for a vector property; avatars keep 10-16 betas


def _shape_changed(self, context):
    if self.get("_syncing"):
        return
    from . import api

    avatar = api.Avatar.from_object(self.id_data)
    count = len(avatar.armature["dreamwaltz_betas0"])
    api.set_shape(avatar, list(self.betas)[:count])


class DreamWaltzAvatarSettings(bpy.types.PropertyGroup):
    """Per-avatar sliders on its armature: moving one reshapes the body, the splats and the bones."""

    betas: FloatVectorProperty(name="Shape", size=MAX_SHAPE_SLIDERS, soft_min=-3.0, soft_max=3.0, update=_shape_changed)


def register():
    bpy.utils.register_class(DreamWaltzSceneSettings)
    bpy.utils.register_class(DreamWaltzAvatarSettings)
    bpy.types.Scene.dreamwaltz = PointerProperty(type=DreamWaltzSceneSettings)
    bpy.types.Object.dreamwaltz_avatar = PointerProperty(type=DreamWaltzAvatarSettings)


def unregister():
    del bpy.types.Object.dreamwaltz_avatar
    del bpy.types.Scene.dreamwaltz
    bpy.utils.unregister_class(DreamWaltzAvatarSettings)
    bpy.utils.unregister_class(DreamWaltzSceneSettings)
