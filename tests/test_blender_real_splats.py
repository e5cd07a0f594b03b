"""Real splat captures from other tools (tests/data/real_splats, licences beside them) through the
add-on's importer: each imports with finite values, drawn by this Blender's path, or is refused in
one line with the scene unchanged (issue 29)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).resolve().parent / "data" / "real_splats"
READ = ["antimatter15_luma-seal.splat", "playcanvas_biker.spz", "playcanvas_guitar.compressed.ply"]
REFUSED = ["playcanvas_playbot_sog_lod4/meta.json", "playcanvas_playbot_sog_lod4"]


@pytest.mark.parametrize("name", READ)
def test_a_real_capture_imports_with_finite_values(addon, name):
    import bpy

    from dreamwaltz.core import splat_files
    from dreamwaltz_blender import api

    truth = splat_files.read_splats(REAL / name)
    obj = api.import_splat_scene(str(REAL / name), up_axis="-Y")
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    cam.location = (0.0, -6.0, 1.0)
    bpy.context.view_layer.update()
    means, covariances, colors, opacities = api.evaluated_scene_splats(obj)
    assert len(means) == len(truth) > 50_000
    for values in (means, covariances, colors, opacities):
        assert np.isfinite(values).all()
    assert np.abs(opacities - truth.opacities).max() < 1e-3
    assert (colors >= 0).all() and np.median(np.linalg.eigvalsh(covariances)[:, -1]) < 0.05**2
    # where the file puts them: -Y up turned to Blender's +Z up
    expected = truth.means @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
    assert np.abs(means - expected).max() < 1e-4


@pytest.mark.parametrize("name", REFUSED)
def test_a_web_format_the_add_on_cannot_read_is_refused_in_one_line(addon, name):
    import bpy

    from dreamwaltz.core.errors import DreamWaltzError
    from dreamwaltz_blender import api

    before = (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.node_groups))
    with pytest.raises(DreamWaltzError) as refusal:
        api.import_splat_scene(str(REAL / name))
    message = str(refusal.value)
    assert "\n" not in message and "SOG" in message and "splat-transform" in message
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.node_groups)) == before
