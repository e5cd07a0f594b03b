"""The pure-numpy core (.h3ga format, skinning, motion) shared with the backend.

It has one definition, ``backend/dreamwaltz/core``. The built extension carries a copy as
``dreamwaltz_blender/core`` (``build.py addon``); a development checkout uses the backend's own
package, which imports without torch.
"""

import importlib

try:
    from . import core as _package
except ImportError:  # development checkout: no bundled copy
    import dreamwaltz.core as _package


def module(name: str):
    """``module("h3ga")`` -> the core's ``h3ga`` module, wherever the core lives."""
    return importlib.import_module(f"{_package.__name__}.{name}")
