"""Damaged copies of valid splat files: the readers' contract on hostile input (issue 16)."""

import numpy as np

from dreamwaltz.core import splat_files
from dreamwaltz.core.errors import InvalidFileError


def damaged_copies_fail_cleanly(raw: bytes, damaged, rng, trials: int, flips: int) -> None:
    """Truncated copies (odd trials) and copies with ``flips`` random bytes (even ones) of a valid
    splat file: each reads to a finite cloud or is refused in one line naming the file."""
    for trial in range(trials):
        data = bytearray(raw)
        if trial % 2:
            data = data[: int(rng.integers(0, len(raw) - 1))]
        else:
            for i in rng.integers(0, len(raw), size=flips):
                data[i] = int(rng.integers(0, 256))
        damaged.write_bytes(bytes(data))
        try:
            cloud = splat_files.read_splats(damaged)
        except InvalidFileError as err:
            assert damaged.name in str(err) and "\n" not in str(err)
        else:  # flipped bytes inside the values: still a well-formed cloud
            assert np.isfinite(cloud.means).all() and np.isfinite(cloud.quats).all()
