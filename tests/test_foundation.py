"""Issue 2: set-up, console script, extension build/validation/installation, add-on isolation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
BACKEND_ONLY = ("torch", "diffusers", "transformers", "smplx", "gsplat", "accelerate", "dreamwaltz")


def load_build_module():
    spec = importlib.util.spec_from_file_location("dreamwaltz_build", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extension_zip() -> Path:
    subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "addon"], check=True, cwd=ROOT, capture_output=True, text=True
    )
    from dreamwaltz import __version__

    path = ROOT / "dist" / f"dreamwaltz_blender-{__version__}.zip"
    assert path.exists()
    return path


def test_console_script_help():
    script = Path(sys.executable).with_name("dreamwaltz")
    out = subprocess.run([str(script), "--help"], check=True, capture_output=True, text=True).stdout
    assert "usage: dreamwaltz" in out
    version = subprocess.run([str(script), "--version"], check=True, capture_output=True, text=True).stdout
    from dreamwaltz import __version__

    assert __version__ in version


def setup_calls(build, monkeypatch, tmp_path) -> list[str]:
    """build.py with a .venv under tmp_path and every command it would run recorded, not run."""
    calls: list[str] = []
    monkeypatch.setattr(build, "VENV", tmp_path / "venv")
    monkeypatch.setattr(build, "STAMP", tmp_path / "venv" / ".dreamwaltz-setup")
    build.venv_python().parent.mkdir(parents=True)
    build.venv_python().write_text("")
    monkeypatch.setattr(build, "run", lambda cmd, **kw: calls.append(" ".join(str(c) for c in cmd)))
    monkeypatch.setattr(build.subprocess, "call", lambda cmd, **kw: calls.append(" ".join(str(c) for c in cmd)) or 0)
    monkeypatch.setattr(build, "setup_web", lambda: None)
    return calls


def test_setup_is_a_quick_no_op_when_nothing_changed(monkeypatch, tmp_path):
    build = load_build_module()
    calls = setup_calls(build, monkeypatch, tmp_path)
    build.STAMP.write_text(build.setup_fingerprint(False))
    assert build.cmd_setup() == build.venv_python()
    assert calls == [], f"setup re-ran commands although nothing changed: {calls}"


def test_setup_reinstalls_when_requirements_change(monkeypatch, tmp_path):
    build = load_build_module()
    calls = setup_calls(build, monkeypatch, tmp_path)
    build.STAMP.write_text("fingerprint of older requirements")
    build.cmd_setup()
    assert any("torch==2.13.0+cpu" in c for c in calls), calls
    assert any("-r" in c and "requirements.txt" in c for c in calls), calls
    assert any("-e" in c for c in calls), calls
    assert build.STAMP.read_text() == build.setup_fingerprint(False)


@pytest.mark.parametrize("command", [["test", "-x"], ["bench", "stage_speed"], ["demo", "--device", "cuda"]])
def test_commands_after_a_cuda_setup_keep_the_cuda_pytorch(monkeypatch, tmp_path, command):
    build = load_build_module()
    calls = setup_calls(build, monkeypatch, tmp_path)
    build.STAMP.write_text(build.setup_fingerprint(True))  # as `setup --cuda` leaves it
    assert build.main(command) == 0
    assert not any("torch==" in c for c in calls), f"`build.py {command[0]}` reinstalled PyTorch: {calls}"
    assert any("dreamwaltz." in c or "pytest" in c for c in calls), calls
    assert build.STAMP.read_text() == build.setup_fingerprint(True)


def test_a_changed_requirement_reinstalls_the_flavour_the_venv_has_and_only_a_flag_switches_it(monkeypatch, tmp_path):
    build = load_build_module()
    calls = setup_calls(build, monkeypatch, tmp_path)
    build.STAMP.write_text("cuda digest-of-older-requirements")
    build.main(["setup"])
    assert [c for c in calls if "torch==" in c] and all("torch==2.13.0+cpu" not in c for c in calls), calls
    assert calls[-1].endswith("-m dreamwaltz doctor"), "a CUDA set-up builds gsplat's kernels (doctor's check)"
    calls.clear()
    build.main(["setup", "--cpu"])
    assert any("torch==2.13.0+cpu" in c for c in calls), calls
    assert build.STAMP.read_text() == build.setup_fingerprint(False)
    calls.clear()
    build.main(["test"])
    assert not any("torch==" in c for c in calls), calls


def test_a_stamp_from_before_the_flavour_was_recorded_keeps_the_installed_cuda_pytorch(monkeypatch, tmp_path):
    build = load_build_module()
    calls = setup_calls(build, monkeypatch, tmp_path)
    build.STAMP.write_text("0" * 64)  # an older build.py's stamp: a bare digest
    (build.VENV / "lib/python3.11/site-packages/torch-2.13.0.dist-info").mkdir(parents=True)
    build.main(["bench"])
    assert any("torch==2.13.0" in c for c in calls) and not any("+cpu" in c for c in calls), calls


def test_manifest_fields(extension_zip):
    with zipfile.ZipFile(extension_zip) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        names = zf.namelist()
    from dreamwaltz import __version__

    assert manifest["schema_version"] == "1.0.0"
    assert manifest["version"] == __version__, "the zip must carry the project's single version"
    assert len(manifest["tagline"]) <= 64 and not manifest["tagline"].endswith(".")
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"files", "network"}
    assert "wheels" not in manifest, "the backend wheel must not be loaded into Blender's Python"
    assert any(n.startswith("backend_wheel/dreamwaltz-") and n.endswith(".whl") for n in names)
    assert "core/h3ga.py" in names or "core/joints.py" in names, "the shared core must be bundled"


def test_extension_installs_enables_and_unregisters_without_backend_packages(extension_zip, tmp_path):
    """Install the built zip the way Blender does, with every backend dependency unimportable."""
    script = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {BACKEND_ONLY!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked for the test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import bpy
        bpy.ops.wm.read_factory_settings(use_empty=True)
        result = bpy.ops.extensions.package_install_files(
            filepath={str(extension_zip)!r}, repo="user_default", enable_on_install=True)
        assert result == {{"FINISHED"}}, result
        mod = "bl_ext.user_default.dreamwaltz_blender"
        assert mod in bpy.context.preferences.addons, "not enabled"
        assert hasattr(bpy.types, "DREAMWALTZ_PT_main"), "sidebar panel not registered"
        assert bpy.types.DREAMWALTZ_PT_main.bl_category == "DreamWaltz"
        assert hasattr(bpy.ops.import_scene, "dreamwaltz_h3ga"), "importer not registered"
        prefs = bpy.context.preferences.addons[mod].preferences
        assert prefs.backend_mode in ("LOCAL", "REMOTE")
        menu = bpy.types.TOPBAR_MT_file_import
        assert any("dreamwaltz" in getattr(f, "__module__", "") for f in menu._dyn_ui_initialize()), "no File > Import entry"
        leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not leaked, leaked
        bpy.ops.preferences.addon_disable(module=mod)
        assert not hasattr(bpy.types, "DREAMWALTZ_PT_main"), "panel left registered"
        assert not hasattr(bpy.types.Scene, "dreamwaltz"), "scene settings left registered"
        print("EXTENSION-OK")
        """
    )
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert "EXTENSION-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
