"""Checkpoint files, record by record: `.npy` records, the checksum trailer, atomic
saves. (The error class, `CheckpointError`, lives in `_checks.py`.)

A checkpoint is the reference format: the leaves of a PyTree, one raw `.npy` record
each, concatenated with no header, names or tree structure. ecliptic appends one more
`.npy` record, the *trailer*: a `uint8[32]` array holding a magic string, the CRC32 of
every byte written before it, and that byte count. Equinox reads records only while
`like` has leaves left, so it never sees the trailer; ecliptic uses it to detect any
corruption or truncation. Files without a trailer (written by Equinox) still load.

Writing goes through a `RecordWriter` (it hashes every byte) and ends with
`write_trailer`. Reading goes through a `RecordReader`: its `next_record()` returns
the next `Record` (header now, data on `read()`), and `None` where the saved leaves
end, at the end of the file or at the trailer, so callers iterate records without
knowing that a trailer exists. `RecordReader.check_end` then verifies the trailer.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pathlib
import secrets
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np

from .._caches import BoundedCache
from .._messages import (
    checkpoint_fileno_error,
    checksum_mismatch_error,
    header_length_error,
    header_text_error,
    malformed_header_error,
    npy_version_error,
    object_leaf_error,
    pickle_record_error,
    record_dtype_error,
    record_magic_error,
    trailing_data_error,
    truncated_data_error,
    truncated_header_error,
)


_NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER_LEN = 1 << 16
_TRAILER_MAGIC = b"ecliptic-crc32v1"
_TRAILER_LEN = 32
_TRAILER_SHAPE = (np.dtype(np.uint8), (_TRAILER_LEN,), False)  # as a `Header`
_CHUNK = 1 << 24
_ALIGN = 64


# ---------------------------------------------------------------------------------
# Hashing wrappers around the user's file object.
# ---------------------------------------------------------------------------------


def _delegate(raw: Any, name: str) -> Any:
    # No `fileno`: writing or reading through the descriptor would bypass the hash.
    if name == "fileno":
        raise checkpoint_fileno_error()
    return getattr(raw, name)


class RecordWriter:
    """Wraps a binary file: every byte written also updates a CRC32 and a count."""

    def __init__(self, raw: Any):
        self._raw = raw
        self.crc = 0
        self.nbytes = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._raw.write(view)
        self.crc = zlib.crc32(view, self.crc)
        self.nbytes += view.nbytes
        return view.nbytes

    def __getattr__(self, name: str) -> Any:
        return _delegate(self._raw, name)


class RecordReader:
    """Wraps a binary file: reads records, and hashes every byte from the start
    position onwards, once.

    `next_record()` hides the trailer; `check_end(source)` verifies it. Reads may seek
    backwards (as `np.load` does); bytes are hashed only the first time they are
    read. A forward seek past unhashed bytes marks the running hash stale;
    `RecordReader.crc_upto_here` then recomputes it from the file.

    `positioned` says whether positions are offsets in the file (`False` for a stream
    that cannot `tell()`: they count from where reading began); `record_start` is the
    position of the last record that `next_record()` began reading (`-1`: none yet).
    """

    def __init__(self, raw: Any):
        self._raw = raw
        self.positioned = True
        try:
            self._pos = int(raw.tell())
        except (AttributeError, OSError, ValueError):
            self._pos = 0
            self.positioned = False
        self.start = self._pos
        self.record_start = -1
        self._hashed_end = self._pos
        self._crc = 0
        self._stale = False

    def restart(self) -> None:
        """Starts the checksummed region at the current position (what was read
        before, e.g. a JSON header line, is not covered by the trailer)."""
        self.start = self._hashed_end = self._pos
        self._crc = 0
        self._stale = False

    def _account(self, pos: int, data: Any) -> None:
        view = memoryview(data).cast("B")
        end = pos + view.nbytes
        if pos > self._hashed_end:
            self._stale = True
        elif end > self._hashed_end and not self._stale:
            self._crc = zlib.crc32(view[self._hashed_end - pos :], self._crc)
            self._hashed_end = end
        self._pos = end

    def read(self, n: int | None = -1) -> bytes:
        data = self._raw.read(n if n is not None else -1) or b""
        self._account(self._pos, data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self._raw, "readinto"):
            got = self._raw.readinto(view) or 0
        else:
            data = self._raw.read(view.nbytes) or b""
            got = len(data)
            view[:got] = data
        self._account(self._pos, view[:got])
        return got

    def readline(self, limit: int = -1) -> bytes:
        data = self._raw.readline(limit)
        self._account(self._pos, data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self._raw.seek(offset, whence)
        self._pos = int(self._raw.tell())
        return self._pos

    def tell(self) -> int:
        return self._pos

    def crc_upto_here(self) -> int:
        """The CRC32 of the bytes from the start position to the current position."""
        if not self._stale and self._hashed_end == self._pos:
            return self._crc
        here = self._pos
        self._raw.seek(self.start)
        crc, todo = 0, here - self.start
        while todo > 0:
            chunk = self._raw.read(min(todo, _CHUNK))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            todo -= len(chunk)
        self._raw.seek(here)
        return crc

    def next_record(self) -> Record | None:
        """The next record, or `None` where the saved leaves end: at the end of the
        file, or at this file's trailer (consumed, so it is never seen as a leaf)."""
        self.record_start = self._pos
        return _next_record(self, self._pos, self.start)

    def offset(self, pos: int) -> int | None:
        """`pos` as an offset in the file, or `None` if this stream cannot tell."""
        return pos if self.positioned else None

    def check_end(self, source: str) -> None:
        """After the last leaf: accepts the end of the file, or a valid trailer
        followed by the end of the file. Anything else raises `CheckpointError`
        naming `source` (the file, for messages)."""
        pos = self.tell()
        crc = self.crc_upto_here()
        size = len(_TRAILER_HEADER) + _TRAILER_LEN
        rest = _read_exact(self, size + 1)
        if not rest:
            return
        payload = rest[len(_TRAILER_HEADER) : size]
        if (
            len(rest) != size
            or not rest.startswith(_TRAILER_HEADER)
            or payload[:16] != _TRAILER_MAGIC
        ):
            error = trailing_data_error(source, pos)
            error.offset = self.offset(pos)
            raise error
        saved_crc, reserved, saved_nbytes = struct.unpack("<IIQ", payload[16:])
        nbytes = pos - self.start
        if (saved_crc, reserved, saved_nbytes) != (crc, 0, nbytes):
            saved, read = (saved_crc, saved_nbytes), (crc, nbytes)
            raise checksum_mismatch_error(source, saved, read, self.offset(pos))

    def __getattr__(self, name: str) -> Any:
        return _delegate(self._raw, name)


# ---------------------------------------------------------------------------------
# `.npy` records.
# ---------------------------------------------------------------------------------


def write_record(f: Any, arr: np.ndarray) -> None:
    """Writes `arr` as one `.npy` record: the bytes `np.save(f, arr)` writes."""
    if arr.dtype.hasobject:
        raise object_leaf_error(arr)
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    if arr.dtype.names is not None or fortran:
        np.lib.format.write_array(f, arr, allow_pickle=False)
        return
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    header = np.lib.format.header_data_from_array_1_0(arr)
    np.lib.format.write_array_header_1_0(f, header)
    if arr.size > 0 and arr.dtype.itemsize > 0:
        f.write(arr.reshape(-1).view(np.uint8).data)


def _read_exact(f: Any, n: int) -> bytes:
    chunks, todo = [], n
    while todo > 0:
        chunk = f.read(todo)
        if not chunk:
            break
        chunks.append(chunk)
        todo -= len(chunk)
    return b"".join(chunks)


# numpy's stubs reject the plain `str` descrs that it accepts at run time.
_descr_to_dtype: Callable[[Any], np.dtype] = np.lib.format.descr_to_dtype


def _unparseable_ml_dtypes() -> dict[str, np.dtype]:
    """`ml_dtypes` types whose `.npy` descr numpy cannot read back (`float8_e5m2` is
    saved as `'<f1'`), keyed by that descr."""
    import ml_dtypes

    out = {}
    for name in dir(ml_dtypes):
        obj = getattr(ml_dtypes, name)
        if not (isinstance(obj, type) and issubclass(obj, np.generic)):
            continue
        dtype = np.dtype(obj)
        try:
            _descr_to_dtype(dtype.str)
        except (TypeError, ValueError):
            out[dtype.str] = dtype
    return out


_EXTRA_DESCRS = _unparseable_ml_dtypes()


Header = tuple[np.dtype, tuple[int, ...], bool]  # (dtype, shape, fortran_order)

# Headers repeat (same shapes, same dtypes), so parsed headers are kept. A miss costs
# one `ast.literal_eval` of a ~100-character header, a few microseconds.
_HEADER_CACHE_SIZE = 1024
_parsed_headers: BoundedCache = BoundedCache(_HEADER_CACHE_SIZE)


def _parse_header(text: str) -> Header:
    header = _parsed_headers.get(text)
    if header is None:
        header = _parsed_headers[text] = _parse_header_text(text)
    return header


def _parse_header_text(text: str) -> Header:
    try:
        d = ast.literal_eval(text)
    except Exception as e:  # SyntaxError, ValueError, MemoryError, RecursionError...
        raise malformed_header_error(text) from e
    if not isinstance(d, dict) or set(d) != {"descr", "shape", "fortran_order"}:
        raise malformed_header_error(text)
    shape, fortran = d["shape"], d["fortran_order"]
    if (
        not isinstance(shape, tuple)
        or not all(type(s) is int and s >= 0 for s in shape)
        or not isinstance(fortran, bool)
    ):
        raise malformed_header_error(text)
    descr = d["descr"]
    try:
        if isinstance(descr, str) and descr in _EXTRA_DESCRS:
            dtype = _EXTRA_DESCRS[descr]
        else:
            dtype = _descr_to_dtype(descr)
    except Exception as e:
        raise record_dtype_error(descr) from e
    if dtype.hasobject:
        raise pickle_record_error(dtype)
    return dtype, shape, fortran


def read_record_header(f: Any) -> Header | None:
    """Reads one `.npy` record header; returns `(dtype, shape, fortran_order)`, or
    `None` at the end of the file. Raises `CheckpointError` if it is malformed."""
    magic = _read_exact(f, 8)
    if not magic:
        return None
    if len(magic) < 8 or magic[:6] != _NPY_MAGIC:
        raise record_magic_error(_NPY_MAGIC, magic)
    major = magic[6]
    if major not in (1, 2, 3) or magic[7] != 0:
        raise npy_version_error(magic[6], magic[7])
    size_format = "<H" if major == 1 else "<I"
    size_bytes = _read_exact(f, struct.calcsize(size_format))
    if len(size_bytes) < struct.calcsize(size_format):
        raise truncated_header_error()
    (header_len,) = struct.unpack(size_format, size_bytes)
    if header_len > _MAX_HEADER_LEN:
        raise header_length_error(header_len)
    header = _read_exact(f, header_len)
    if len(header) < header_len:
        raise truncated_header_error()
    try:
        text = header.decode("utf8" if major == 3 else "latin1")
    except UnicodeDecodeError as e:
        raise header_text_error() from e
    return _parse_header(text)


def _aligned_empty(count: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-d array whose data is 64-byte aligned, so that JAX can use
    it without another copy."""
    nbytes = count * dtype.itemsize
    if nbytes == 0:
        return np.empty(count, dtype=dtype)
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    offset = -raw.ctypes.data % _ALIGN
    return raw[offset : offset + nbytes].view(dtype)


def read_record_data(
    f: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
) -> np.ndarray:
    """Reads the data of a record whose header has just been read."""
    count = 1
    for s in shape:
        count *= s
    arr = _aligned_empty(count, dtype)
    view = arr.view(np.uint8).data if arr.nbytes > 0 else memoryview(b"")
    got = 0
    while got < view.nbytes:
        if hasattr(f, "readinto"):
            n = f.readinto(view[got:]) or 0
        else:
            data = f.read(view.nbytes - got) or b""
            n = len(data)
            view[got : got + n] = data
        if n == 0:
            raise truncated_data_error(got, view.nbytes, dtype, shape)
        got += n
    if fortran:
        return arr.reshape(shape[::-1]).transpose()
    return arr.reshape(shape)


class Record:
    """One `.npy` record whose header has been read.

    **Attributes:** `dtype`, `shape` and `fortran` (the record's data order).

    Its data is read by `read()`, once, before the next record is asked for.
    """

    __slots__ = ("dtype", "shape", "fortran", "_file", "_data")

    def __init__(self, file: Any, header: Header, data: np.ndarray | None = None):
        self.dtype, self.shape, self.fortran = header
        self._file = file
        self._data = data  # already read (records shaped like the trailer)

    def read(self, dtype: np.dtype | None = None) -> np.ndarray:
        """Reads the data, as `dtype` (of the same item size) if given."""
        if self._data is not None:
            return self._data if dtype is None else self._data.view(dtype)
        dtype = self.dtype if dtype is None else dtype
        return read_record_data(self._file, dtype, self.shape, self.fortran)


def next_record(f: Any) -> Record | None:
    """The next record of `f`, or `None` where the saved leaves end: at the end of the
    file, or at a trailer. A `RecordReader` recognises its trailer by the magic and
    the byte count; any other file by the magic only."""
    if isinstance(f, RecordReader):
        return f.next_record()
    return _next_record(f, None, None)


def _next_record(f: Any, start: int | None, region_start: int | None) -> Record | None:
    """As `next_record`; `start` is the byte where the record begins and
    `region_start` the first byte covered by the trailer (`None`: unknown)."""
    header = read_record_header(f)
    if header is None:
        return None
    if header != _TRAILER_SHAPE:
        return Record(f, header)
    data = read_record_data(f, *header)
    payload = data.tobytes()
    if payload[:16] == _TRAILER_MAGIC:
        if start is None or region_start is None:
            return None
        (nbytes,) = struct.unpack("<Q", payload[24:])
        if nbytes == start - region_start:
            return None
    return Record(f, header, data)


# ---------------------------------------------------------------------------------
# The trailer.
# ---------------------------------------------------------------------------------


def write_trailer(w: RecordWriter) -> None:
    """Appends the trailer record covering every byte written through `w` so far."""
    crc, nbytes = w.crc, w.nbytes
    payload = _TRAILER_MAGIC + struct.pack("<IIQ", crc, 0, nbytes)
    write_record(w, np.frombuffer(payload, dtype=np.uint8))


def _trailer_header() -> bytes:
    f = io.BytesIO()
    write_record(f, np.zeros(_TRAILER_LEN, dtype=np.uint8))
    return f.getvalue()[:-_TRAILER_LEN]


_TRAILER_HEADER = _trailer_header()


# ---------------------------------------------------------------------------------
# Paths and atomic saves.
# ---------------------------------------------------------------------------------


def is_path(path_or_file: Any) -> bool:
    return isinstance(path_or_file, (str, os.PathLike))


def with_suffix(path: str | os.PathLike) -> pathlib.Path:
    """`.eqx` is appended to a path that has no suffix (the reference's rule)."""
    path = pathlib.Path(path)
    return path.with_suffix(".eqx") if path.suffix == "" else path


def _fsync_dir(directory: str) -> None:
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:  # pragma: no cover - Windows
        return
    try:
        fd = os.open(directory, os.O_RDONLY | flags)
    except OSError:  # pragma: no cover - unusual filesystems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _open_temp(target: str) -> tuple[str, BinaryIO]:
    directory, base = os.path.split(target)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, open(tmp, "xb")  # closed by atomic_open
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Opens a temporary file next to `path` for writing; on success it is flushed,
    synced and renamed over `path`. On any failure (`KeyboardInterrupt` included) the
    temporary file is removed and `path` is left as it was."""
    target = os.path.realpath(os.fspath(path))
    tmp, file = _open_temp(target)
    try:
        with file as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(target) or ".")
