"""Small Cycles CPU renders for tests (128x128 by default, few samples, no denoiser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def setup_cycles(scene, size: int = 128, samples: int = 16, transparent: bool = True) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = size
    scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = transparent
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"


def eevee_engine(bpy) -> str:
    """Eevee's engine name: BLENDER_EEVEE_NEXT in 4.2-4.5, BLENDER_EEVEE again in 5.0."""
    names = [e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items]
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in names else "BLENDER_EEVEE"


def render_to_array(
    bpy, path: Path, size: int = 128, samples: int = 16, engine: str = "CYCLES", denoise: bool = False
) -> np.ndarray:
    """Render the current scene with Cycles CPU (or ``engine="EEVEE"``: Eevee, software OpenGL here)
    to ``path``; return RGBA float (H, W, 4). ``denoise``: Cycles' default denoiser (OpenImageDenoise)."""
    scene = bpy.context.scene
    setup_cycles(scene, size, samples)
    scene.cycles.use_denoising = denoise
    if engine == "EEVEE":
        scene.render.engine = eevee_engine(bpy)
        scene.eevee.taa_render_samples = samples
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(h, w, 4)[::-1]  # Blender stores rows bottom-up


def shown_splat_count(bpy, obj) -> int:
    """How many splats the viewport shows of a splat object: the points of Blender's own splat
    cloud (5.3+) or the instances the card path makes."""
    from dreamwaltz_blender import compat

    depsgraph = bpy.context.evaluated_depsgraph_get()
    if compat.HAS_NATIVE_SPLATS:
        geometry = obj.evaluated_get(depsgraph).evaluated_geometry()  # alive while its cloud is read
        cloud = geometry.pointcloud
        return 0 if cloud is None else len(cloud.points)
    return sum(
        1
        for inst in depsgraph.object_instances
        if inst.is_instance and inst.parent is not None and inst.parent.original == obj
    )
