"""Shared fixtures: headless Blender with isolated user resources, CUDA detection, paths.

Blender tests use the ``blender`` fixture: a fresh factory-settings scene for each test, with
``BLENDER_USER_RESOURCES`` in a temporary folder so nothing touches the developer's own Blender.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the add-on package is imported from the checkout
    sys.path.insert(0, str(ROOT))

# Before bpy is imported anywhere: Blender reads this once, at start-up.
_USER_RESOURCES = tempfile.mkdtemp(prefix="dreamwaltz-blender-user-")
os.environ.setdefault("BLENDER_USER_RESOURCES", _USER_RESOURCES)

REPO_ROOT = ROOT
DATA_DIR = ROOT / "tests" / "data"
# The Python whose environment has the backend (torch): this one, or .venv's where the Blender
# tests run in Blender's own Python 3.13 (5.1+; build.py sets DREAMWALTZ_BACKEND_PYTHON).
BACKEND_PYTHON = os.environ.get("DREAMWALTZ_BACKEND_PYTHON") or sys.executable


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Tests that drive Blender without the `blender`/`addon` fixtures (a Blender in a subprocess).
BLENDER_IN_SUBPROCESS = {
    "test_foundation.py::test_extension_installs_enables_and_unregisters_without_backend_packages",
}


def pytest_collection_modifyitems(config, items):
    # `-m blender` (python build.py test --blender X) is every test that runs Blender code: the
    # marked ones, those using the blender/addon fixtures and the subprocess ones above. Tests that
    # also install the backend into a new environment reuse .venv's packages and stay on .venv.
    for item in items:
        uses_blender = {"blender", "addon"} & set(getattr(item, "fixturenames", ()))
        if "installed_backend" in getattr(item, "fixturenames", ()):
            continue
        if uses_blender or item.nodeid.split("/")[-1] in BLENDER_IN_SUBPROCESS:
            item.add_marker(pytest.mark.blender)
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def blender():
    """bpy with a fresh factory-settings scene (empty, no add-ons of the user)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def addon(blender):
    """The DreamWaltz add-on enabled from the checkout (with its preferences), disabled afterwards."""
    import addon_utils

    module = addon_utils.enable("dreamwaltz_blender", default_set=True, handle_error=None)
    assert module is not None, "the add-on failed to enable"
    yield module
    addon_utils.disable("dreamwaltz_blender", default_set=True)


# bpy before 5.0, as a Python module (not Blender itself), does not exit cleanly: 4.2 segfaults at
# interpreter exit once any class with a property `update=` callback has been registered, even
# after it is unregistered (reproduced with a one-property PropertyGroup); 4.5 hangs at exit once
# Blender's glTF add-on has run (test_blender_motion_source). The tests have finished by then:
# end the process with their real exit status, skipping bpy's teardown.
_EXIT_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    bpy = sys.modules.get("bpy")
    app = getattr(bpy, "app", None)
    if app is not None and tuple(app.version) < (5, 0) and "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
