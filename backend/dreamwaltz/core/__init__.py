"""Pure-numpy code shared by the backend and the Blender add-on.

Everything under ``dreamwaltz.core`` depends on the standard library and numpy only: the
Blender add-on bundles this package (``build.py addon`` copies it into the extension) so the
``.h3ga`` format, the skinning maths and the motion readers have exactly one definition.
Use relative imports inside this package; it is imported both as ``dreamwaltz.core`` and as
``dreamwaltz_blender.core``.
"""
