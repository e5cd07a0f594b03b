# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the backend runs and which models it uses."""

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

ADDON_ID = __package__


class DreamWaltzPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: EnumProperty(
        name="Backend",
        items=(
            ("LOCAL", "Local", "Start the backend on this computer with the Python environment below"),
            ("REMOTE", "Remote", "Connect to a running 'dreamwaltz serve' by URL and token"),
        ),
        default="LOCAL",
    )
    python_path: StringProperty(
        name="Backend Python",
        description="Python interpreter of the environment where the dreamwaltz backend is installed",
        subtype="FILE_PATH",
    )
    server_url: StringProperty(name="Server URL", default="http://127.0.0.1:8765")
    server_token: StringProperty(name="Token", subtype="PASSWORD")
    local_port: IntProperty(name="Local port", default=8765, min=1024, max=65535)
    sd_model: StringProperty(
        name="Stable Diffusion",
        description="Diffusers model id or local folder (SD 1.x layout)",
        default="stable-diffusion-v1-5/stable-diffusion-v1-5",
    )
    controlnet_model: StringProperty(
        name="ControlNet (openpose)",
        description="Diffusers model id or local folder of an openpose ControlNet",
        default="lllyasviel/control_v11p_sd15_openpose",
    )
    cache_dir: StringProperty(
        name="Cache folder",
        description="Where the backend keeps jobs, tiny models and checkpoints (empty: its default)",
        subtype="DIR_PATH",
    )
    device: EnumProperty(
        name="Device",
        items=(("auto", "Auto", "CUDA when available"), ("cuda", "CUDA", ""), ("cpu", "CPU", "")),
        default="auto",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "LOCAL":
            layout.prop(self, "python_path")
            layout.prop(self, "local_port")
        else:
            layout.prop(self, "server_url")
            layout.prop(self, "server_token")
            if not bpy.app.online_access:
                layout.label(text="Online access is off in Blender's preferences: remote backends "
                             "other than localhost are not contacted.", icon="ERROR")
        col = layout.column(heading="Models")
        col.prop(self, "sd_model")
        col.prop(self, "controlnet_model")
        layout.prop(self, "cache_dir")
        layout.prop(self, "device")


def get(context=None):
    """The preferences, or None when the add-on runs unregistered (scripts, tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def register():
    bpy.utils.register_class(DreamWaltzPreferences)


def unregister():
    bpy.utils.unregister_class(DreamWaltzPreferences)
