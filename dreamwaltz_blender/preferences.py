# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the backend runs and which models it uses."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .backend import installer
from .shared import module

ADDON_ID = __package__
_install = {"status": None}  # the running/finished installation, shown in the preferences


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
        default=module("job").DEFAULT_SD,
    )
    controlnet_model: StringProperty(
        name="ControlNet (openpose)",
        description="Diffusers model id or local folder of an openpose ControlNet",
        default=module("job").DEFAULT_CONTROLNET,
    )
    precision: EnumProperty(
        name="Precision",
        items=(
            ("auto", "Auto", "bf16 on GPUs that have it (RTX 30xx / A100 or newer), else fp32"),
            ("fp16", "fp16", "Half precision: least memory on older cards, but score distillation can overflow it"),
            ("bf16", "bf16", "Brain float: sturdier than fp16 at the paper's guidance scale; RTX 30xx / A100 or newer"),
            ("fp32", "fp32", "Full precision: twice the memory and slower"),
        ),
        default="auto",
    )
    sds_weighting: EnumProperty(
        name="SDS weighting",
        items=(
            ("uniform", "Uniform", "w(t) = 1 at every noise level, as the DreamWaltz-G authors train"),
            ("sds", "DreamFusion", "w(t) = 1 - alpha_bar(t): less weight on fine detail (small t)"),
            ("snr", "SNR", "w(t) = sqrt(alpha_bar (1 - alpha_bar))"),
        ),
        default="uniform",
    )
    cpu_offload: BoolProperty(
        name="Offload to CPU",
        description="For 12-16 GB graphics cards: the diffusion networks that do not fit in the GPU's free "
        "memory wait in system memory and move to the GPU only while they run. Slower, same result",
        default=False,
    )
    vae_slicing: BoolProperty(
        name="VAE slicing",
        description="Encode one render at a time and recompute it for the backward pass: less GPU memory at "
        "batch sizes above 1, a little slower, same result",
        default=False,
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

    install_dir: StringProperty(
        name="Install folder",
        description="Folder for the backend's own Python environment (several GB with CUDA torch)",
        subtype="DIR_PATH",
    )
    install_torch: EnumProperty(
        name="PyTorch",
        items=(
            ("cuda", "CUDA (NVIDIA GPU)", "Real generation needs an NVIDIA GPU"),
            ("cpu", "CPU only", "Only the Tiny preset is practical"),
        ),
        default="cuda",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "LOCAL":
            layout.prop(self, "python_path")
            layout.prop(self, "local_port")
            self.draw_install(layout)
        else:
            layout.prop(self, "server_url")
            layout.prop(self, "server_token")
            if not bpy.app.online_access:
                layout.label(
                    text="Online access is off in Blender's preferences: remote backends "
                    "other than localhost are not contacted.",
                    icon="ERROR",
                )
        col = layout.column(heading="Models")
        col.prop(self, "sd_model")
        col.prop(self, "controlnet_model")
        col.prop(self, "precision")
        col.prop(self, "sds_weighting")
        col = layout.column(heading="GPU memory")
        col.prop(self, "cpu_offload")
        col.prop(self, "vae_slicing")
        layout.prop(self, "cache_dir")
        layout.prop(self, "device")

    def draw_install(self, layout):
        box = layout.box()
        box.label(text="Install Backend", icon="PACKAGE")
        box.prop(self, "install_dir")
        box.prop(self, "install_torch")
        status = _install["status"]
        row = box.row()
        row.enabled = status is None or status.done
        row.operator("dreamwaltz.install_backend", icon="IMPORT")
        if not bpy.app.online_access:
            box.label(text="Needs online access (Preferences > System > Network).", icon="ERROR")
        if status is not None:
            box.label(
                text=f"Step: {status.step}" + (f" - {status.error}" if status.error else ""),
                icon="CHECKMARK" if status.ok else ("ERROR" if status.error else "SORTTIME"),
            )
            col = box.column(align=True)
            for line in status.log[-8:]:
                col.label(text=line[:110])
        layout.operator("dreamwaltz.check_backend", icon="NETWORK_DRIVE")


class DREAMWALTZ_OT_install_backend(bpy.types.Operator):
    """Create a Python environment in the chosen folder and install the bundled backend and PyTorch into it"""

    bl_idname = "dreamwaltz.install_backend"
    bl_label = "Install Backend"

    def execute(self, context):
        prefs = get(context)
        if not bpy.app.online_access:
            self.report(
                {"ERROR"}, "Online access is off: allow it in Preferences > System > Network to download PyTorch."
            )
            return {"CANCELLED"}
        if not prefs.install_dir:
            self.report({"ERROR"}, "Choose an install folder first (it needs several GB).")
            return {"CANCELLED"}
        options = installer.InstallOptions(target=bpy.path.abspath(prefs.install_dir), torch=prefs.install_torch)
        start_install(options)
        return {"FINISHED"}


def start_install(options):
    """Run the installer in a thread; a timer copies the result into the preferences and redraws."""
    status, _thread = installer.install_in_background(options)
    _install["status"] = status

    def watch():
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                area.tag_redraw()
        if not status.done:
            return 0.5
        prefs = get()
        if status.ok and prefs is not None:
            prefs.python_path = status.python
        return None

    bpy.app.timers.register(watch, first_interval=0.5)
    return status


def get(context=None):
    """The preferences, or None when the add-on runs unregistered (scripts, tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def register():
    bpy.utils.register_class(DreamWaltzPreferences)
    bpy.utils.register_class(DREAMWALTZ_OT_install_backend)


def unregister():
    bpy.utils.unregister_class(DREAMWALTZ_OT_install_backend)
    bpy.utils.unregister_class(DreamWaltzPreferences)
