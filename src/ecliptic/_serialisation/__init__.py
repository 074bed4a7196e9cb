"""Saving and loading the leaves of a PyTree, in the reference's file format.

The format: one raw `.npy` record per saved leaf, in depth-first key-path order, with
no names or tree structure (the structure comes from `like` at load time). ecliptic
adds one trailing `.npy` record with a checksum (ignored by Equinox), saves
atomically, and validates every record before returning.

This file holds the public functions: the default filter specs, walking a
`filter_spec` and the tree together, and the hyperparameter recipe. The file format
itself, record by record, is in `_records.py`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from .._checks import CheckpointError
from .._eval_shape import filter_eval_shape
from .._filters import is_array, is_array_like
from .._messages import (
    checkpoint_filter_spec_error,
    describe_array,
    describe_python_scalar,
    hyperparameters_line_error,
    hyperparameters_newline_error,
    hyperparameters_not_dict_error,
    hyperparameters_type_error,
    leaf_load_error,
    leaves_ended_error,
    loaded_array_difference,
    loaded_leaf_error,
    loaded_type_difference,
    record_mismatch_error,
    saving_leaf_note,
)
from .._prefix import match_prefix
from ._records import (
    atomic_open,
    is_path,
    next_record,
    Record,
    RecordReader,
    RecordWriter,
    with_suffix,
    write_record,
    write_trailer,
)


__all__ = [
    "CheckpointError",
    "default_deserialise_filter_spec",
    "default_serialise_filter_spec",
    "load_with_hyperparameters",
    "save_with_hyperparameters",
    "tree_deserialise_leaves",
    "tree_serialise_leaves",
]

_PY_SCALARS = (bool, int, float, complex)
# Record dtype kinds accepted for a Python scalar in `like` (checked in this order).
_SCALAR_KINDS = ((bool, "b"), (int, "iu"), (float, "f"), (complex, "c"))


def _fill(error: CheckpointError, **details: Any) -> CheckpointError:
    """Sets those `details` (attributes of `CheckpointError`: shapes as tuples of
    ints, dtypes as `np.dtype`s) that `error` does not hold yet; returns `error`."""
    for name, value in details.items():
        if value is not None and getattr(error, name, None) is None:
            setattr(error, name, value)
    return error


# ---------------------------------------------------------------------------------
# Default filter specs.
# ---------------------------------------------------------------------------------


def default_serialise_filter_spec(f: Any, x: Any) -> None:
    """The default `filter_spec` of [`ecliptic.tree_serialise_leaves`][].

    JAX arrays, NumPy arrays, NumPy scalars and Python `bool`/`int`/`float`/`complex`
    are written as one `.npy` record each (exactly the bytes `np.save` writes;
    `bfloat16` and other `ml_dtypes` types are stored as raw void records). Every
    other leaf (functions, strings, `None`...) is skipped.

    Extend it to customise saving, for example to skip JAX arrays:

    ```python
    def spec(f, x):
        if isinstance(x, jax.Array):
            return None
        return ecliptic.default_serialise_filter_spec(f, x)
    ```

    **Arguments:**

    - `f`: a binary file-like object open for writing.
    - `x`: the leaf to save.

    **Returns:** `None`.
    """
    if isinstance(x, jax.Array):
        arr = np.asarray(x)
    elif isinstance(x, (np.ndarray, np.generic, *_PY_SCALARS)):
        arr = np.asanyarray(x)
    elif is_array_like(x):
        arr = np.asarray(jnp.asarray(x))
    else:
        return None
    write_record(f, arr)
    return None


def _next_record(f: Any, want: Callable[[], str]) -> Record:
    """Reads the next record's header; raises if the saved leaves have run out."""
    record = next_record(f)
    if record is None:
        raise leaves_ended_error(want())
    return record


def _read_array(f: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Reads one record that must hold exactly `shape` and `dtype`; a
    `CheckpointError` says so in its `expected_shape` and `expected_dtype`."""
    expected, shape = np.dtype(dtype), tuple(int(s) for s in shape)
    try:
        return _read_matching(f, shape, expected)
    except CheckpointError as e:
        _fill(e, expected_shape=shape, expected_dtype=expected)
        raise


def _read_matching(f: Any, shape: tuple[int, ...], expected: np.dtype) -> np.ndarray:
    record = _next_record(f, lambda: describe_array(shape, expected))
    found, found_shape = record.dtype, record.shape
    if found != expected and found.kind == "V" and found.names is None:
        # ml_dtypes types (bfloat16, float8...) are saved as raw void records.
        if expected.kind == "V" and expected.itemsize == found.itemsize:
            found = expected
    native = found.newbyteorder("=") if found.byteorder not in "=|" else found
    if native != expected or tuple(found_shape) != tuple(shape):
        error = record_mismatch_error(
            describe_array(shape, expected), found_shape, record.dtype
        )
        raise _fill(error, found_shape=tuple(found_shape), found_dtype=record.dtype)
    arr = record.read(found)
    if arr.dtype != expected:
        arr = arr.astype(expected)
    return arr


def _read_scalar(f: Any, x: bool | int | float | complex) -> Any:
    kinds = next(k for t, k in _SCALAR_KINDS if isinstance(x, t))
    try:
        record = _next_record(f, lambda: describe_python_scalar(x))
        dtype, shape = record.dtype, record.shape
        if shape != () or dtype.kind not in kinds:
            want = describe_python_scalar(x, kinds)
            error = record_mismatch_error(want, shape, dtype)
            raise _fill(error, found_shape=tuple(shape), found_dtype=dtype)
        return type(x)(record.read().item())
    except CheckpointError as e:
        _fill(e, expected_shape=())  # a kind, not a dtype: `expected_dtype` is None
        raise


def _to_jax(arr: np.ndarray, like: Any) -> jax.Array:
    sharding = getattr(like, "sharding", None)
    if isinstance(sharding, jax.sharding.Sharding) and not isinstance(
        sharding, jax.sharding.SingleDeviceSharding
    ):
        return jax.device_put(arr, sharding)
    return jax.device_put(arr)


def default_deserialise_filter_spec(f: Any, x: Any) -> Any:
    """The default `filter_spec` of [`ecliptic.tree_deserialise_leaves`][].

    For each leaf `x` of `like`: a JAX array or `jax.ShapeDtypeStruct` loads a JAX
    array (placed with `x`'s sharding when that spans several devices); a NumPy array
    loads a NumPy array; a NumPy scalar or Python `bool`/`int`/`float`/`complex` loads
    a value of the same type. Any other leaf is returned unchanged and reads nothing.

    The record's header is checked against `x` before its data is read: a different
    shape, dtype or kind raises [`ecliptic.CheckpointError`][].

    **Arguments:**

    - `f`: a binary file-like object open for reading.
    - `x`: the leaf of `like` to load.

    **Returns:** the loaded leaf.
    """
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return _to_jax(_read_array(f, x.shape, x.dtype), x)
    if isinstance(x, np.ndarray):
        return _read_array(f, x.shape, x.dtype)
    if isinstance(x, np.generic):
        return _read_array(f, (), x.dtype)[()]
    if isinstance(x, _PY_SCALARS):
        return _read_scalar(f, x)
    if is_array_like(x):
        y = jnp.asarray(x)
        return _to_jax(_read_array(f, y.shape, y.dtype), y)
    return x


# ---------------------------------------------------------------------------------
# Walking `filter_spec` and the tree together.
# ---------------------------------------------------------------------------------


def _map_with_spec(
    fn: Callable[[Any, tuple, Any], Any],
    filter_spec: Any,
    tree: PyTree,
    is_leaf: Callable[[Any], bool] | None,
) -> PyTree:
    """Calls `fn(spec, path, leaf)` on every leaf, depth-first left-to-right, where
    `spec` is the callable of `filter_spec` (a prefix of `tree`) above that leaf."""
    try:
        match = match_prefix(filter_spec, tree, is_leaf=is_leaf, with_paths=True)
    except (ValueError, TypeError) as e:
        raise checkpoint_filter_spec_error(filter_spec, e) from None
    leaves = [fn(spec, path or (), leaf) for spec, path, leaf in match.items()]
    return match.unflatten(leaves)


def _source(path_or_file: Any) -> str:
    if is_path(path_or_file):
        return f"'{with_suffix(path_or_file)}'"
    name = getattr(path_or_file, "name", None)
    return f"'{name}'" if isinstance(name, str) else f"<{type(path_or_file).__name__}>"


def _remember(offsets: dict, path: tuple, offset: int | None) -> None:
    try:
        offsets[path] = offset
    except TypeError:  # a custom key entry that cannot be hashed
        pass


def _recall(offsets: dict, path: tuple) -> int | None:
    try:
        return offsets.get(path)
    except TypeError:
        return None


def _leaf_error(
    e: Exception, source: str, path: tuple, pos: int, reader: RecordReader
) -> CheckpointError:
    """`e`, raised while loading the leaf at `path` from the record at `pos`, as a
    `CheckpointError` naming them (and keeping `e`'s shapes and dtypes)."""
    offset = reader.offset(pos)
    return leaf_load_error(e, source, path, pos, reader.positioned, offset)


def _load_leaf(
    reader: RecordReader, source: str, offsets: dict
) -> Callable[[Any, tuple, Any], Any]:
    """Loads one leaf; remembers in `offsets` where each leaf's records start."""

    def load(spec: Any, path: tuple, leaf: Any) -> Any:
        start = reader.tell()
        _remember(offsets, path, reader.offset(start))
        try:
            return spec(reader, leaf)
        except Exception as e:
            # The failing record: the last one begun while loading this leaf.
            pos = max(start, reader.record_start)
            raise _leaf_error(e, source, path, pos, reader) from e

    return load


def _array_impl_type() -> type:
    with jax.ensure_compile_time_eval():
        return type(jnp.zeros(()))


def _difference(new: Any, old: Any, expected_type: type) -> str | None:
    if type(new) is not expected_type:
        return loaded_type_difference(expected_type, new)
    if isinstance(new, (np.ndarray, jax.Array)):
        old_shape, old_dtype = getattr(old, "shape", None), getattr(old, "dtype", None)
        if new.shape != old_shape or new.dtype != old_dtype:
            return loaded_array_difference(
                (old_shape, old_dtype), (new.shape, new.dtype)
            )
    return None


def _shapes(old: Any, new: Any) -> dict[str, Any]:
    """The shapes and dtypes of a leaf of `like` and of the leaf loaded for it (for
    `CheckpointError`'s attributes), where they have them."""
    details = {}
    for leaf, which in ((old, "expected"), (new, "found")):
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is not None and dtype is not None:
            details[f"{which}_shape"], details[f"{which}_dtype"] = shape, dtype
    return details


def _check_same(
    out: PyTree, like: PyTree, is_leaf: Any, source: str, offsets: dict
) -> None:
    """What a custom `filter_spec` returned must match `like` in type, shape, dtype.
    `offsets`: where each leaf's records start, by key path."""
    array_impl = None
    like_leaves, treedef = jtu.tree_flatten_with_path(like, is_leaf)
    for (path, old), new in zip(like_leaves, treedef.flatten_up_to(out), strict=True):
        if isinstance(old, jax.ShapeDtypeStruct):
            array_impl = array_impl or _array_impl_type()
            expected_type = array_impl
        elif (
            is_array_like(old)
            and not is_array(old)
            and not isinstance(old, _PY_SCALARS)
        ):
            continue  # objects with __jax_array__ load as JAX arrays
        else:
            expected_type = type(old)
        problem = _difference(new, old, expected_type)
        if problem is not None:
            offset = _recall(offsets, path)
            raise loaded_leaf_error(source, path, problem, offset, _shapes(old, new))


# ---------------------------------------------------------------------------------
# Public entry points.
# ---------------------------------------------------------------------------------


def _save(path_or_file: Any, body: Callable[[RecordWriter], None]) -> None:
    if is_path(path_or_file):
        with atomic_open(with_suffix(path_or_file)) as raw:
            writer = RecordWriter(raw)
            body(writer)
            write_trailer(writer)
    else:
        writer = RecordWriter(path_or_file)
        body(writer)
        write_trailer(writer)


def _load(path_or_file: Any, body: Callable[[RecordReader, str], Any]) -> Any:
    source = _source(path_or_file)
    if is_path(path_or_file):
        with open(with_suffix(path_or_file), "rb") as raw:
            reader = RecordReader(raw)
            out = body(reader, source)
            reader.check_end(source)
    else:
        reader = RecordReader(path_or_file)
        out = body(reader, source)
        reader.check_end(source)
    return out


def _write_tree(
    writer: RecordWriter, pytree: PyTree, filter_spec: Any, is_leaf: Any
) -> None:
    def save(spec: Any, path: tuple, leaf: Any) -> None:
        try:
            spec(writer, leaf)
        except Exception as e:
            if hasattr(e, "add_note"):
                e.add_note(saving_leaf_note(path))
            raise

    _map_with_spec(save, filter_spec, pytree, is_leaf)


def tree_serialise_leaves(
    path_or_file: str | os.PathLike | Any,
    pytree: PyTree,
    filter_spec: Any = default_serialise_filter_spec,
    is_leaf: Callable[[Any], bool] | None = None,
) -> None:
    """Saves the leaves of a PyTree to a file, in Equinox's format.

    Leaves are written in depth-first order as raw `.npy` records (see
    [`ecliptic.default_serialise_filter_spec`][]); the tree structure is not saved,
    so loading needs a `like` tree. A path with no suffix gets `.eqx` appended.

    Saving to a path is atomic: the data goes to a temporary file in the same
    directory, which is synced and renamed over the target. If saving fails or is
    interrupted, the previous file is left intact and the temporary file is removed.
    A trailing checksum record lets [`ecliptic.tree_deserialise_leaves`][] detect
    corruption; Equinox ignores it.

    Sharded arrays (a model placed with [`ecliptic.shard_model`][] or
    [`ecliptic.filter_shard`][]) are gathered to the host first: the file holds each
    whole array, one record per leaf, however it was laid out across devices, so it
    can be loaded on any number of devices. Gathering needs the whole array in host
    memory and every shard addressable from this process; for models too large for
    that, or for several hosts, save with orbax-checkpoint instead. To restore
    sharded, load into a `like` tree and then place it:
    `model = ecliptic.filter_shard(tree_deserialise_leaves(path, like),
    ecliptic.sharding_plan(like, mesh, rules))`.

    **Arguments:**

    - `path_or_file`: a path, or a binary file-like object open for writing.
    - `pytree`: the PyTree whose leaves are saved.
    - `filter_spec`: a callable `(file, leaf) -> None` that saves a leaf (or does
        nothing), or a PyTree prefix of `pytree` holding such callables.
    - `is_leaf`: called on every node of `pytree`; `True` makes it a leaf.

    **Returns:** `None`.
    """
    _save(path_or_file, lambda w: _write_tree(w, pytree, filter_spec, is_leaf))


def _read_tree(
    reader: RecordReader, source: str, like: PyTree, filter_spec: Any, is_leaf: Any
) -> PyTree:
    offsets: dict = {}
    load = _load_leaf(reader, source, offsets)
    out = _map_with_spec(load, filter_spec, like, is_leaf)
    _check_same(out, like, is_leaf, source, offsets)
    return out


def tree_deserialise_leaves(
    path_or_file: str | os.PathLike | Any,
    like: PyTree,
    filter_spec: Any = default_deserialise_filter_spec,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """Loads the leaves of a PyTree from a file written by
    [`ecliptic.tree_serialise_leaves`][] (or by Equinox).

    `like` gives the structure, and the type, shape and dtype of every leaf; it may
    hold `jax.ShapeDtypeStruct`s (from `filter_eval_shape`/`jax.eval_shape`) so that
    no throwaway arrays are allocated. `like` is never modified.

    Everything is read and checked before anything is returned: a truncated or
    corrupt file, a leaf whose shape, dtype or kind differs from `like`, data after
    the last leaf, or a checksum mismatch raises [`ecliptic.CheckpointError`][],
    naming the leaf's key path and the expected versus found shape and dtype.

    **Arguments:**

    - `path_or_file`: a path (`.eqx` is appended if it has no suffix), or a binary
        file-like object open for reading.
    - `like`: a PyTree with the structure and leaf types of the saved tree.
    - `filter_spec`: a callable `(file, leaf) -> new_leaf`, or a PyTree prefix of
        `like` holding such callables.
    - `is_leaf`: called on every node of `like`; `True` makes it a leaf.

    **Returns:** a PyTree like `like`, with the loaded leaves in place.
    """
    return _load(
        path_or_file,
        lambda r, source: _read_tree(r, source, like, filter_spec, is_leaf),
    )


# ---------------------------------------------------------------------------------
# Recipe: hyperparameters (a JSON header line) + weights in one file.
# ---------------------------------------------------------------------------------

_MAX_JSON_LINE = 1 << 24


def save_with_hyperparameters(
    path_or_file: str | os.PathLike | Any,
    hyperparameters: dict[str, Any],
    pytree: PyTree,
    filter_spec: Any = default_serialise_filter_spec,
    is_leaf: Callable[[Any], bool] | None = None,
) -> None:
    """Saves `hyperparameters` as a JSON first line, then the leaves of `pytree`.

    This is exactly the file that Equinox's documented recipe writes (a JSON line,
    then `tree_serialise_leaves(f, pytree)` into the same open file), so files from
    that recipe, written by Equinox or by ecliptic, load with
    [`ecliptic.load_with_hyperparameters`][], and files from this function load with
    the recipe's `readline` + `tree_deserialise_leaves`. Saving to a path is atomic;
    the checksum trailer covers the leaves (the JSON line is checked by parsing it).

    **Arguments:**

    - `path_or_file`: a path (`.eqx` appended if it has no suffix) or a binary file.
    - `hyperparameters`: a JSON-serialisable dict of keyword arguments that rebuild
        the model, for example `{"in_size": 2, "width_size": 8}`.
    - `pytree`: the model (or any PyTree) whose leaves are saved.
    - `filter_spec`, `is_leaf`: as for [`ecliptic.tree_serialise_leaves`][].

    **Returns:** `None`.
    """
    if not isinstance(hyperparameters, dict):
        raise hyperparameters_type_error(hyperparameters)
    line = (json.dumps(hyperparameters) + "\n").encode()

    def body(w: RecordWriter) -> None:
        w.write(line)
        w.crc, w.nbytes = 0, 0  # the trailer covers the leaves, as in the recipe
        _write_tree(w, pytree, filter_spec, is_leaf)

    _save(path_or_file, body)


def _read_hyperparameters(reader: RecordReader, source: str) -> dict[str, Any]:
    offset = reader.offset(reader.tell())
    line = reader.readline(_MAX_JSON_LINE)
    try:
        if not line.endswith(b"\n"):
            raise hyperparameters_newline_error()
        hyperparameters = json.loads(line.decode())
        if not isinstance(hyperparameters, dict):
            raise hyperparameters_not_dict_error(hyperparameters)
    except ValueError as e:  # includes JSON and Unicode decode errors
        raise hyperparameters_line_error(source, e, offset) from e
    return hyperparameters


def load_with_hyperparameters(
    path_or_file: str | os.PathLike | Any,
    make: Callable[..., PyTree],
    filter_spec: Any = default_deserialise_filter_spec,
    is_leaf: Callable[[Any], bool] | None = None,
) -> tuple[PyTree, dict[str, Any]]:
    """Loads a file written by [`ecliptic.save_with_hyperparameters`][]: reads the
    hyperparameters, rebuilds the model with `make(**hyperparameters)` and loads the
    leaves into it.

    `make` runs under [`ecliptic.filter_eval_shape`][], so no throwaway weights are
    allocated; it must not turn arrays into Python values, and NumPy array leaves come
    back as JAX arrays. Errors are raised as for
    [`ecliptic.tree_deserialise_leaves`][].

    **Arguments:**

    - `path_or_file`: a path (`.eqx` appended if it has no suffix) or a binary file.
    - `make`: builds the model from the hyperparameters, e.g.
        `lambda **h: ecliptic.nn.MLP(**h, key=jax.random.key(0))`.
    - `filter_spec`, `is_leaf`: as for [`ecliptic.tree_deserialise_leaves`][].

    **Returns:** `(model, hyperparameters)`.
    """

    def body(reader: RecordReader, source: str) -> tuple[PyTree, dict[str, Any]]:
        hyperparameters = _read_hyperparameters(reader, source)
        reader.restart()  # the trailer covers the leaves only, as in the recipe
        like = filter_eval_shape(make, **hyperparameters)
        return _read_tree(reader, source, like, filter_spec, is_leaf), hyperparameters

    return _load(path_or_file, body)
