"""CLI subcommands, one module each.

A module here defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. ``dreamwaltz.cli`` discovers them, so adding a command is adding a file.
Import heavy dependencies (torch, diffusers) inside ``run`` so ``dreamwaltz --help`` stays fast.
"""
