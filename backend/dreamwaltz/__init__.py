"""DreamWaltz-G backend: text -> expressive, animatable 3D Gaussian avatar (.h3ga).

Keep this module light: it must import without torch so that ``dreamwaltz.core`` (pure numpy)
can be used by the Blender add-on in a development checkout.
"""

from .core.version import __version__

__all__ = ["__version__"]
