# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate / Cancel / Check Backend: a job on the backend, polled by a timer so Blender never freezes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

from . import preferences, shared
from .backend import local
from .backend.client import BackendClient, BackendError

POLL_INTERVAL_S = 0.5
PREVIEW_IMAGE = "DreamWaltz Preview"


def connect(context) -> BackendClient:
    """A client for the configured backend; starts the local backend when that is the mode."""
    prefs = preferences.get(context)
    if prefs is None:
        raise BackendError("The DreamWaltz add-on is not enabled.", "Enable it in Preferences > Add-ons.")
    if prefs.backend_mode == "REMOTE":
        return BackendClient(prefs.server_url, prefs.server_token, online_access=bpy.app.online_access)
    jobs_dir = bpy.path.abspath(prefs.cache_dir) if prefs.cache_dir else None
    backend = local.get(bpy.path.abspath(prefs.python_path), prefs.local_port, jobs_dir)
    backend.start()
    return backend.client()


def job_spec(context) -> dict:
    settings = context.scene.dreamwaltz
    prefs = preferences.get(context)
    if not settings.prompt.strip():
        raise BackendError("The prompt is empty.", "Describe the avatar, e.g. 'a knight in armor'.", "invalid_request")
    body = "open"
    if settings.body == "SMPLX":
        path = bpy.path.abspath(settings.smplx_path)
        if not settings.smplx_path or not Path(path).is_file():
            raise BackendError(
                "No SMPL-X file chosen, or it does not exist.",
                "Register at smpl-x.is.tue.mpg.de, download SMPLX_NEUTRAL.npz and choose it, or use the open body.",
                "body_model",
            )
        body = path
    spec = {
        "prompt": settings.prompt,
        "negative_prompt": settings.negative_prompt,
        "preset": settings.preset,
        "body": body,
        "gender": settings.gender,
        "betas": [float(b) for b in settings.betas],
        "seed": settings.seed,
        "densify": bool(settings.densify),
    }
    if prefs is not None:
        spec.update(
            device=prefs.device,
            sd_model=prefs.sd_model or None,
            controlnet_model=prefs.controlnet_model or None,
            cpu_offload=bool(prefs.cpu_offload),
            vae_slicing=bool(prefs.vae_slicing),
            precision=prefs.precision,
            sds_weighting=prefs.sds_weighting,
        )
    # The one job schema (core/job.py) fills what the panel does not set and checks the rest.
    job = shared.module("job")
    try:
        return job.GenerateSpec.from_dict(spec).to_dict()
    except job.JobSpecError as err:
        raise BackendError(err.message, err.hint, "invalid_request") from None


def _result_folder() -> Path:
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//")) / "dreamwaltz_avatars"
    return Path(tempfile.gettempdir()) / "dreamwaltz_avatars"


def _apply_event(settings, event: dict) -> None:
    settings.job_stage = event.get("stage") or settings.job_stage
    if event.get("total"):
        settings.job_step, settings.job_total = int(event["step"]), int(event["total"])
        settings.job_progress = min(1.0, event["step"] / event["total"])
    settings.job_eta_s = float(event["eta_s"]) if event.get("eta_s") is not None else -1.0
    if event.get("message"):
        settings.job_message = event["message"]
    if event.get("preview"):
        settings.job_preview = event["preview"]


def _show_preview(client: BackendClient, settings) -> None:
    try:
        png = client.preview(settings.job_id)
    except BackendError:
        return
    path = Path(tempfile.gettempdir()) / f"dreamwaltz_preview_{settings.job_id}.png"
    path.write_bytes(png)
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.load(str(path))
        image.name = PREVIEW_IMAGE
    else:
        image.filepath = str(path)
        image.reload()


def poll_job(context, client: BackendClient) -> bool:
    """Fetch new events; import the result when done. Returns True while the job is active."""
    settings = context.scene.dreamwaltz
    events = client.events(settings.job_id, settings.job_event_index)
    had_preview = settings.job_preview
    for event in events:
        _apply_event(settings, event)
    settings.job_event_index += len(events)
    if settings.job_preview != had_preview:
        _show_preview(client, settings)
    status = client.status(settings.job_id)
    settings.job_status = status["status"]
    settings.job_queue_position = status.get("queue_position") or 0  # servers before issue 22 do not send it
    if status["status"] in ("queued", "running"):
        return True
    if status["status"] == "done":
        path = client.download_result(settings.job_id, _result_folder() / f"{settings.job_id}.h3ga")
        if settings.import_result:
            from . import api

            api.import_avatar(str(path))
        settings.job_message = f"Avatar saved to {path}"
    else:
        error = status.get("error") or {}
        settings.job_error = f"{error.get('message', status['status'])} {error.get('hint', '')}".strip()
    return False


def _timer_poll():
    context = bpy.context
    settings = context.scene.dreamwaltz
    if not settings.job_id or settings.job_status not in ("queued", "running"):
        return None
    try:
        active = poll_job(context, connect(context))
    except BackendError as err:
        settings.job_status, settings.job_error = "failed", str(err)
        active = False
    except Exception as err:  # noqa: BLE001 - never let a timer crash silently into Blender's console
        settings.job_status, settings.job_error = "failed", f"Importing the avatar failed: {err}"
        active = False
    for area in getattr(context.screen, "areas", []) or []:
        area.tag_redraw()
    return POLL_INTERVAL_S if active else None


class DREAMWALTZ_OT_generate(bpy.types.Operator):
    """Generate an avatar from the prompt on the backend; it is imported at the 3D cursor when done"""

    bl_idname = "dreamwaltz.generate"
    bl_label = "Generate Avatar"

    def execute(self, context):
        settings = context.scene.dreamwaltz
        if settings.job_status in ("queued", "running"):
            self.report({"WARNING"}, "A job is already running: cancel it first.")
            return {"CANCELLED"}
        try:
            spec = job_spec(context)
            client = connect(context)
            state = client.submit(spec)
        except BackendError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        settings.job_id, settings.job_status = state["id"], state["status"]
        settings.job_error = settings.job_message = settings.job_stage = settings.job_preview = ""
        settings.job_progress, settings.job_event_index, settings.job_step, settings.job_total = 0.0, 0, 0, 0
        if not bpy.app.timers.is_registered(_timer_poll):
            bpy.app.timers.register(_timer_poll, first_interval=POLL_INTERVAL_S)
        return {"FINISHED"}


class DREAMWALTZ_OT_cancel(bpy.types.Operator):
    """Cancel the running generation job (nothing is imported)"""

    bl_idname = "dreamwaltz.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        settings = context.scene.dreamwaltz
        if not settings.job_id:
            return {"CANCELLED"}
        try:
            state = connect(context).cancel(settings.job_id)
        except BackendError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        settings.job_status = state["status"]
        settings.job_message = "Cancelling…" if state["status"] == "running" else "Cancelled."
        return {"FINISHED"}


class DREAMWALTZ_OT_check_backend(bpy.types.Operator):
    """Contact the backend and report its version and GPU"""

    bl_idname = "dreamwaltz.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        settings = context.scene.dreamwaltz
        try:
            info = connect(context).health()
        except BackendError as err:
            settings.backend_status = str(err)
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        gpu = info.get("device_name", "?") + (f" ({info['gpu_memory_gib']} GiB)" if info.get("gpu_memory_gib") else "")
        settings.backend_status = f"Backend {info.get('version')} ready on {gpu}" + (
            "" if info.get("cuda") else " (CPU only: use the Tiny preset)"
        )
        if info.get("cuda") and info.get("rasterizer"):  # older backends do not report it
            settings.backend_status += f"; rasterizer: {info['rasterizer']}"
            if (info.get("gsplat") or {}).get("usable") is False:
                settings.backend_status += f" (gsplat: {info['gsplat'].get('reason')})"
        self.report({"INFO"}, settings.backend_status)
        return {"FINISHED"}


class DREAMWALTZ_OT_use_selected_smplx(bpy.types.Operator):
    """Copy the body shape (Shape000…Shape009 keys) of the selected SMPL-X add-on mesh into the shape sliders"""

    bl_idname = "dreamwaltz.use_selected_smplx"
    bl_label = "Use Selected SMPL-X Shape"

    def execute(self, context):
        obj = context.active_object
        if obj and obj.type == "ARMATURE":
            obj = next((c for c in obj.children if c.type == "MESH"), None)
        keys = obj.data.shape_keys.key_blocks if obj and obj.type == "MESH" and obj.data.shape_keys else None
        if not keys:
            self.report(
                {"ERROR"}, "Select a body made by the SMPL-X Blender add-on (a mesh with Shape000… shape keys)."
            )
            return {"CANCELLED"}
        settings = context.scene.dreamwaltz
        found = 0
        for i in range(len(settings.betas)):
            key = keys.get(f"Shape{i:03d}")
            if key is not None:
                settings.betas[i] = key.value
                found += 1
        if not found:
            self.report({"ERROR"}, f"'{obj.name}' has no Shape000… keys: it was not made by the SMPL-X add-on.")
            return {"CANCELLED"}
        gender = obj.get("SMPLX_gender") or (
            "female" if "female" in obj.name.lower() else "male" if "male" in obj.name.lower() else None
        )
        if gender in ("neutral", "male", "female"):
            settings.gender = gender
        self.report({"INFO"}, f"Copied {found} shape values from '{obj.name}'.")
        return {"FINISHED"}


CLASSES = (DREAMWALTZ_OT_generate, DREAMWALTZ_OT_cancel, DREAMWALTZ_OT_check_backend, DREAMWALTZ_OT_use_selected_smplx)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    if bpy.app.timers.is_registered(_timer_poll):
        bpy.app.timers.unregister(_timer_poll)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    local.shutdown()
