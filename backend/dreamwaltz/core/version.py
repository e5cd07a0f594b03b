"""The project's version: the one source of truth (pyproject, add-on manifest and files read it)."""

__version__ = "0.1.0"
