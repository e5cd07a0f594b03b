"""The ``dreamwaltz`` console script: discovers subcommands in ``dreamwaltz.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .core.errors import DreamWaltzError
from .core.version import __version__


def command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamwaltz",
        description="Generate expressive, animatable 3D avatars from text (DreamWaltz-G) "
        "and work with .h3ga avatar files.",
    )
    parser.add_argument("--version", action="version", version=f"dreamwaltz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except DreamWaltzError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
