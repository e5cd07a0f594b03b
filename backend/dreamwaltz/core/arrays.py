"""Hardened reading of ``.npy`` / ``.npz`` arrays from user files: the one definition, pure numpy.

Every reader here treats its input as hostile: it bounds what a file may unpack to (``read_limit()``,
``DREAMWALTZ_MAX_READ_GB``), never unpickles, parses each ``.npy`` header itself and checks it
before allocating, and reads the data straight into its final buffer. A bad file raises
``InvalidFileError`` (or the caller's error class) with what is wrong and what to do. The ``.h3ga``
reader (``h3ga.py``), the motion and track readers and the body model all read through here.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .errors import InvalidFileError

MAX_TOTAL_BYTES = 4 << 30  # default hard ceiling, uncompressed; a 1M-splat avatar is ~200 MB
READ_LIMIT_ENV = "DREAMWALTZ_MAX_READ_GB"  # raises (or lowers) the ceiling of every reader, in GiB
NPY_MAX_HEADER = 64 << 10  # numpy's own header limit is 10 kB; padding included
_READ_CHUNK = 16 << 20
# What opening a damaged or foreign zip raises (NotImplementedError: a future zip version).
ZIP_OPEN_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError)


def read_limit() -> int:
    """The hard ceiling (bytes) on what one user file may unpack to: 4 GiB, or ``DREAMWALTZ_MAX_READ_GB``."""
    raw = os.environ.get(READ_LIMIT_ENV, "").strip()
    if raw:
        try:
            gib = float(raw)
        except ValueError:
            gib = float("nan")
        if not (0 < gib < 1 << 20):
            raise InvalidFileError(
                f"{READ_LIMIT_ENV}={raw!r} is not a size in GiB.",
                f"Set {READ_LIMIT_ENV} to a number such as 8, or unset it.",
            )
        return int(gib * 2**30)
    return MAX_TOTAL_BYTES


def too_big_hint() -> str:
    return (
        f"The file is damaged or hostile; if it is a genuine, very large file, raise the limit with the "
        f"environment variable {READ_LIMIT_ENV} (GiB, default {MAX_TOTAL_BYTES >> 30})."
    )


def one_line(err, limit: int = 120) -> str:
    """An embedded error text, on one line and short (messages are one line: file, field, fix)."""
    return " ".join(str(err).split())[:limit]


def zlib_error():
    import zlib

    return zlib.error


def read_npy_header(f) -> tuple:
    """(shape, fortran_order, dtype) from the header of a ``.npy`` stream, reading nothing after it
    (numpy's header parser: a literal, never unpickled). Raises what numpy raises on a bad header."""
    major, _minor = np.lib.format.read_magic(f)
    if major == 1:
        return np.lib.format.read_array_header_1_0(f)
    if major == 2:
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"npy format version {major} is not supported")


def read_npy_stream(
    f,
    where: str,
    field: str,
    *,
    limit: int,
    size: int | None = None,
    kinds: str = "fiub",
    dtype=None,
    shape=None,
    fix: str = "The file is damaged; export it again.",
    error=InvalidFileError,
    skip_objects: bool = False,
) -> np.ndarray | None:
    """One ``.npy`` from an open binary stream, without pickle and without extra copies.

    The header is read and checked first (dtype kind, ``dtype``/``shape`` when given, byte count
    against ``limit`` and, when known, the stream's ``size``); only then is the array allocated, and
    the data is read straight into it in bounded chunks. Any problem is an ``error`` (by default
    ``InvalidFileError``) naming ``where`` and ``field``. ``skip_objects``: an array of Python objects
    gives None instead of an error (it is still never unpickled).
    """

    def bad(message: str, hint: str = fix) -> InvalidFileError:
        return error(f"{where}: {field} {message}", hint)

    try:
        start = f.tell() if size is not None else 0
        got_shape, fortran, got_dtype = read_npy_header(f)
        header_len = f.tell() - start if size is not None else 0
    except Exception as err:  # noqa: BLE001 - numpy's header parser raises many kinds (tokenize.TokenError too)
        raise bad(f"is not a valid .npy array ({type(err).__name__}: {one_line(err)}).") from None
    if skip_objects and got_dtype.hasobject:
        return None
    if (
        got_dtype.hasobject
        or got_dtype.kind not in kinds
        or got_dtype.fields is not None
        or got_dtype.subdtype is not None
    ):
        raise bad(
            f"has dtype {got_dtype}, which is not plain numbers (pickled objects are refused, never loaded).",
            "Do not open this file: it may be hostile. Re-save it with plain numpy arrays.",
        )
    if dtype is not None and got_dtype != np.dtype(dtype):
        raise bad(f"is {got_dtype} but must be {np.dtype(dtype)}.")
    if any(n < 0 for n in got_shape):
        raise bad(f"has a negative size in its shape {tuple(got_shape)}.")
    if shape is not None and tuple(got_shape) != tuple(shape):
        raise bad(f"has shape {tuple(got_shape)} but {tuple(shape)} is declared.")
    count = 1
    for n in got_shape:
        count *= int(n)  # Python integers: a shape whose byte count overflows int64 is just big
    nbytes = count * got_dtype.itemsize
    if nbytes > limit:
        raise bad(
            f"declares shape {tuple(got_shape)}: {nbytes / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB limit.",
            too_big_hint(),
        )
    if size is not None and size - header_len != nbytes:  # each member unpacks to its declared array, no more
        raise bad(
            f"unpacks to {size - header_len} bytes of data, but its shape {tuple(got_shape)} needs {nbytes}.",
            "The file is damaged or hostile (zip bomb)." if size > nbytes else "The file is truncated or damaged.",
        )
    flat = np.empty(count, dtype=got_dtype)
    view = memoryview(flat).cast("B") if nbytes else None
    pos = 0
    try:
        while pos < nbytes:
            got = f.readinto(view[pos : pos + _READ_CHUNK])
            if not got:
                raise bad(
                    f"ends after {pos} of {nbytes} bytes of data.",
                    "The file is truncated; export or download it again.",
                )
            pos += got
        if size is not None and f.read(1):
            raise bad("holds more data than its shape needs.", "The file is damaged or hostile.")
    except (OSError, EOFError, zipfile.BadZipFile, zlib_error()) as err:
        raise bad(f"cannot be read ({one_line(err)}).", "The file is truncated or damaged.") from None
    finally:
        if view is not None:
            view.release()
    return flat.reshape(tuple(got_shape), order="F" if fortran else "C")


def read_npy_file(
    path,
    where: str,
    field: str = "the array",
    *,
    limit: int | None = None,
    error=InvalidFileError,
    fix: str = "The file is damaged; export it again.",
    kinds: str = "fiub",
) -> np.ndarray:
    """A ``.npy`` file, read as ``read_npy_stream`` does (never unpickled, allocation bounded)."""
    limit = read_limit() if limit is None else limit
    try:
        with open(path, "rb") as f:
            return read_npy_stream(
                f, where, field, limit=limit, size=os.fstat(f.fileno()).st_size, kinds=kinds, fix=fix, error=error
            )
    except OSError as err:
        raise error(f"{where} cannot be read ({err.strerror or err}).", "Check the path and its permissions.") from None


def read_npz(
    path,
    where: str,
    *,
    limit: int | None = None,
    error=InvalidFileError,
    kinds: str = "fiub",
    skip_objects: bool = False,
    fix: str = "The file is damaged; export or download it again.",
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (name -> array), like ``np.load`` but never unpickling, each array's
    memory bounded by its header, checked against its member's size, under the hard ceiling."""
    limit = read_limit() if limit is None else limit
    try:
        zf = zipfile.ZipFile(path)
    except ZIP_OPEN_ERRORS as err:
        raise error(
            f"{where} is not a readable .npz file: it is not a zip archive ({one_line(err, 80)}).", fix
        ) from None
    out: dict[str, np.ndarray] = {}
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in infos)
        if total > limit:
            raise error(
                f"{where} would unpack to {total / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB limit.",
                too_big_hint(),
            )
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with zf.open(info) as f:
                    array = read_npy_stream(
                        f,
                        where,
                        f"array {key!r}",
                        limit=limit,
                        size=info.file_size,
                        kinds=kinds,
                        fix=fix,
                        error=error,
                        skip_objects=skip_objects,
                    )
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError, zlib_error()) as err:
                raise error(f"{where}: array {key!r} cannot be read ({one_line(err)}).", fix) from None
            if array is not None:
                out[key] = array
    return out
