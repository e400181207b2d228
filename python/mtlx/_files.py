"""Files written whole or not at all, and ``.npy`` data read without trusting what a file says.

Writing
-------
:func:`write_atomically` writes a temporary file beside the target, named
``.NAME.PID@HOST.tmp``, flushes it to disk, renames it over the target and syncs the folder:
a reader (another rank, a resumed run, ``mtlx predict``) never sees a half-written model,
dataset or checkpoint, even if the writer is killed mid-way.

A writer killed by SIGKILL (or a power cut) cannot remove its temporary file, so the next
write to the same target does: it removes every temporary of that target whose writer is no
longer running, i.e. whose pid is not alive on this host. Temporaries of another host (a
shared file system) are left alone, since this host cannot tell whether their writer lives.
Temporaries named ``.NAME.PID.tmp`` (by mtlx versions before the host was part of the name)
are treated as this host's.

Reading
-------
:func:`read_npy_header`, :func:`map_npy` and :func:`read_npz_member` parse the ``.npy``
format themselves rather than calling ``np.load`` on an archive: the size a header promises
is checked against the bytes that are there before any array is allocated or any byte of
array data is decompressed, and arrays of Python objects (pickles) are refused.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["fsync_folder", "map_npy", "open_npz", "read_npy_header", "read_npz_member", "remove_stale_temporaries",
           "write_atomically", "write_error"]

#: This host in temporary names: what a later writer compares to know the pid is one of its own.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "localhost"
_NPY_MAGIC = b"\x93NUMPY"


def write_atomically(path, arrays: dict, single: bool = False) -> None:
    """Write ``arrays`` to ``path`` atomically: ``np.savez`` of all, or ``np.save`` of the one array.

    Parameters
    ----------
    path : str or os.PathLike
        The final name (used exactly as given: no suffix is appended).
    arrays : dict of name -> array
        Numbers, booleans or strings; arrays of Python objects are refused (they would need pickle).
    single : bool
        Write the only array of ``arrays`` as a ``.npy`` file instead of an ``.npz`` archive.

    Raises
    ------
    ValueError
        An array holds Python objects.
    OSError
        The file cannot be written; the message names ``path`` (never the temporary file).
    """
    path = Path(path)
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects (dtype object), which cannot be stored without "
                             f"pickle; store numbers or strings (writing {str(path)!r})")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}@{_HOST}.tmp")
    try:
        with open(tmp, "wb") as f:
            if single:
                (array,) = arrays.values()
                np.save(f, array, allow_pickle=False)
            else:
                np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    fsync_folder(path.parent)


def remove_stale_temporaries(path) -> None:
    """Remove the temporary files of writes to ``path`` whose writer died (its pid no longer runs here)."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)(?:@([A-Za-z0-9.-]+))?\.tmp")
    with contextlib.suppress(FileNotFoundError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and match.group(2) in (None, _HOST) and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except (OverflowError, ValueError):  # not a pid at all
        return False
    return True


def fsync_folder(folder) -> None:
    """Flush ``folder``'s entries (a rename within it) to disk, so the rename survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- reading
def read_npy_header(f) -> tuple:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the position of ``f``.

    Raises ValueError with the reason when ``f`` does not hold an ``.npy`` header or holds
    Python objects.
    """
    try:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran, dtype = readers[version](f)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"it holds Python objects ({dtype}), which only pickle could read (mtlx never unpickles)")
    return tuple(shape), bool(fortran), dtype


def map_npy(f) -> np.ndarray:
    """The array of the ``.npy`` file open as ``f``, memory-mapped read-only (in memory when empty).

    Mapping through the open file (not its name) keeps the array valid after the file is
    renamed or deleted. Raises ValueError when the header is not readable or does not match
    the file's size.
    """
    f.seek(0)
    shape, fortran, dtype = read_npy_header(f)
    offset = f.tell()
    _check_size(shape, dtype, os.fstat(f.fileno()).st_size - offset)
    order = "F" if fortran else "C"
    if math.prod(shape) == 0:  # mmap cannot map zero bytes
        return np.empty(shape, dtype=dtype, order=order)
    return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def _check_size(shape: tuple, dtype: np.dtype, data_bytes: int) -> int:
    expected = math.prod(shape) * dtype.itemsize
    if expected != data_bytes:
        raise ValueError(f"its header describes a {dtype} array of shape {shape} ({expected} bytes) but "
                         f"{data_bytes} bytes of data follow it (a truncated or altered file)")
    return expected


def open_npz(path, compressed: bool) -> tuple:
    """Open the ``.npz`` archive at ``path`` and check its directory, decompressing nothing.

    Parameters
    ----------
    path : path
    compressed : bool
        Accept compressed members (``np.savez_compressed``); False accepts stored ones only,
        so that reading a member never yields more bytes than the file holds.

    Returns
    -------
    (zipfile.ZipFile, dict of array name -> zipfile.ZipInfo)

    Raises
    ------
    ValueError
        With the reason: not a zip archive, a member that is not an ``.npy`` array, a name
        given twice, an encrypted member or an unexpected compression.
    """
    with open(path, "rb") as f:
        start = f.read(len(_NPY_MAGIC))
    if start == _NPY_MAGIC:
        raise ValueError("a single .npy array, not an .npz archive")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise ValueError("not a zip file, so not an .npz archive") from None
    try:
        members = {}
        methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) if compressed else (zipfile.ZIP_STORED,)
        for info in archive.infolist():
            if not info.filename.endswith(".npy") or "/" in info.filename:
                raise ValueError(f"member {info.filename!r} is not an .npy array")
            name = info.filename[: -len(".npy")]
            if name in members:
                raise ValueError(f"member {info.filename!r} appears twice")
            if info.flag_bits & 0x1:
                raise ValueError(f"member {info.filename!r} is encrypted")
            if info.compress_type not in methods:
                raise ValueError(f"member {info.filename!r} is compressed (zip method {info.compress_type}); expected "
                                 f"{'stored or deflated' if compressed else 'uncompressed (np.savez)'} members")
            members[name] = info
    except BaseException:
        archive.close()
        raise
    return archive, members


def read_npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int | None = None) -> np.ndarray:
    """The array in member ``info`` of ``archive``, read only after its sizes are checked.

    The size the zip directory declares is checked against ``max_bytes`` before anything is
    read, then the ``.npy`` header's shape against that size before the data is allocated.

    Raises
    ------
    ValueError
        With the reason (too large, header and size disagree, corrupt data, Python objects).
    """
    if max_bytes is not None and info.file_size > max_bytes:
        raise ValueError(f"it takes {info.file_size} bytes, more than the {max_bytes} its kind can take")
    try:
        with archive.open(info) as f:
            shape, fortran, dtype = read_npy_header(f)
            nbytes = _check_size(shape, dtype, info.file_size - f.tell())
            data = bytearray(nbytes)
            if f.readinto(data) != nbytes:
                raise ValueError("its data ends early (a corrupt archive)")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise ValueError(f"it cannot be read ({exc})") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def write_error(target, exc: OSError) -> OSError:
    """``exc`` worded for ``target``, the file the user named, as the same OSError subclass and errno.

    The OS names the file it failed on, which may be a temporary name (an internal detail).
    """
    error_class = type(OSError(exc.errno, "")) if exc.errno else OSError  # the subclass its errno maps to
    error = error_class(f"cannot write {str(target)!r}: {exc.strerror or 'the operating system refused'}")
    error.errno = exc.errno
    return error
