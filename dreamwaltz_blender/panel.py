# SPDX-License-Identifier: GPL-3.0-or-later
"""The "DreamWaltz" tab in the 3D viewport's sidebar: prompt -> avatar, and the job's progress."""

import bpy

from .properties import PRESET_ESTIMATES


def _format_eta(seconds: float) -> str:
    if seconds < 0:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def job_bar_text(settings) -> str:
    """The progress bar's words: the stage and step, or a queued job's place in the queue."""
    if settings.job_status == "queued" and settings.job_queue_position:
        return f"queued, position {settings.job_queue_position}"
    return f"{settings.job_stage or settings.job_status} {settings.job_step}/{settings.job_total}"


class DREAMWALTZ_PT_main(bpy.types.Panel):
    bl_label = "DreamWaltz"
    bl_idname = "DREAMWALTZ_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DreamWaltz"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.dreamwaltz
        busy = settings.job_status in ("queued", "running")

        col = layout.column()
        col.enabled = not busy
        col.prop(settings, "prompt", text="")
        col.prop(settings, "negative_prompt")

        box = col.box()
        box.label(text="Body", icon="ARMATURE_DATA")
        box.prop(settings, "body", expand=True)
        if settings.body == "SMPLX":
            box.prop(settings, "smplx_path", text="")
            box.prop(settings, "gender")
        sub = box.column(align=True)
        sub.prop(settings, "betas", text="")
        box.operator("dreamwaltz.use_selected_smplx", icon="EYEDROPPER")

        col.prop(settings, "preset")
        col.label(text=PRESET_ESTIMATES[settings.preset], icon="TIME")
        col.prop(settings, "seed")
        col.prop(settings, "densify")
        col.prop(settings, "import_result")

        row = layout.row(align=True)
        row.scale_y = 1.4
        if busy:
            row.operator("dreamwaltz.cancel", icon="CANCEL")
        else:
            row.operator("dreamwaltz.generate", icon="PLAY")
        self.draw_job(layout, settings)

        row = layout.row(align=True)
        row.operator("dreamwaltz.apply_motion", text="Apply Motion…", icon="ARMATURE_DATA").from_armature = False
        row.operator(
            "dreamwaltz.apply_motion", text="From Selected Armature", icon="OUTLINER_OB_ARMATURE"
        ).from_armature = True
        layout.operator("dreamwaltz.bake_mesh", text="Bake Textured Mesh", icon="TEXTURE")
        row = layout.row(align=True)
        row.operator("dreamwaltz.check_backend", icon="NETWORK_DRIVE")
        row.operator("import_scene.dreamwaltz_h3ga", text="Import…", icon="IMPORT")
        self.draw_color_warning(layout, context.scene)
        if settings.backend_status:
            layout.label(text=settings.backend_status)

    @staticmethod
    def draw_color_warning(layout, scene):
        """A line when avatars are in the scene and its view transform does not show them as trained."""
        if not any(obj.get("dreamwaltz_role") == "armature" for obj in scene.objects):
            return
        view = scene.view_settings
        if view.view_transform == "Standard" and view.look in ("None", ""):
            return
        box = layout.box()
        box.label(text=f"'{view.view_transform}' view changes avatar colours", icon="ERROR")
        box.prop(view, "view_transform", text="Use Standard")

    @staticmethod
    def draw_job(layout, settings):
        if not settings.job_status:
            return
        box = layout.box()
        if settings.job_status in ("queued", "running"):
            text = job_bar_text(settings)
            eta = _format_eta(settings.job_eta_s)
            box.progress(factor=settings.job_progress, type="BAR", text=f"{text}  ETA {eta}" if eta else text)
        elif settings.job_status == "done":
            box.label(text="Done", icon="CHECKMARK")
        elif settings.job_status == "cancelled":
            box.label(text="Cancelled", icon="CANCEL")
        if settings.job_message:
            box.label(text=settings.job_message)
        if settings.job_error:
            for line in _wrap(settings.job_error, 48):
                box.label(text=line, icon="ERROR")
        image = bpy.data.images.get("DreamWaltz Preview")
        if image is not None and settings.job_status in ("running", "done"):
            image.preview_ensure()
            box.template_icon(icon_value=image.preview.icon_id, scale=8.0)


class DREAMWALTZ_PT_avatar(bpy.types.Panel):
    """The selected avatar: shape sliders (body, splats and bones together) and display."""

    bl_label = "Avatar"
    bl_idname = "DREAMWALTZ_PT_avatar"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DreamWaltz"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and (
            obj.get("dreamwaltz_role") == "armature"
            or (obj.parent is not None and obj.parent.get("dreamwaltz_role") == "armature")
        )

    def draw(self, context):
        obj = context.active_object
        rig = obj if obj.get("dreamwaltz_role") == "armature" else obj.parent
        body = next((c for c in rig.children if c.get("dreamwaltz_role") == "body"), None)
        names = (
            [k.name.split(":", 1)[1] for k in body.data.shape_keys.key_blocks if k.name.startswith("shape:")]
            if body
            else []
        )
        col = self.layout.column(align=True)
        for i, name in enumerate(names[: len(rig.dreamwaltz_avatar.betas)]):
            col.prop(rig.dreamwaltz_avatar, "betas", index=i, text=name.replace("_", " ").title())
        self.layout.label(text="Expressions: the body's 'expression:' shape keys", icon="SHAPEKEY_DATA")
        self.layout.operator("dreamwaltz.reenact_video", text="Reenact Video…", icon="FILE_MOVIE")


def _wrap(text: str, width: int) -> list:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def register():
    bpy.utils.register_class(DREAMWALTZ_PT_main)
    bpy.utils.register_class(DREAMWALTZ_PT_avatar)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_PT_avatar)
    bpy.utils.unregister_class(DREAMWALTZ_PT_main)
