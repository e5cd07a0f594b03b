"""The `dreamwaltz` command line as a user runs it (``python -m dreamwaltz``), and the small
avatar file the command-line tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dreamwaltz.core.h3ga import write_h3ga
from dreamwaltz.core.testing import make_test_avatar


def cli(*args, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m dreamwaltz ARGS`` (paths may be Path objects) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "dreamwaltz", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def write_small_avatar(directory: Path):
    """A 400 free + 100 bound Gaussian test avatar and its .h3ga file in ``directory``."""
    avatar = make_test_avatar(num_free=400, num_bound=100, seed=9)
    return avatar, write_h3ga(Path(directory) / "a.h3ga", avatar)
