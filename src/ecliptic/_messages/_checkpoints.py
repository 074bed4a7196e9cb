"""Messages of checkpoints: describing values, and the records of a file."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._checks import CheckpointError


# ---------------------------------------------------------------------------------
# Describing values.
# ---------------------------------------------------------------------------------


def describe_array(shape: Any, dtype: Any) -> str:
    """`"shape (2, 3) and dtype float32"`: an array's shape and dtype, in words.

    **Arguments:**

    - `shape`: a shape (any sequence of ints).
    - `dtype`: anything `np.dtype` accepts.

    **Returns:** a string.
    """
    return f"shape {tuple(shape)} and dtype {np.dtype(dtype)}"


def describe_tree(tree: Any) -> str:
    """`"<treedef> with leaves [float32[3, 4], ...]"`: the structure of `tree`, each
    array leaf as its dtype and shape, any other leaf by its `repr`.

    **Arguments:**

    - `tree`: any PyTree.

    **Returns:** a string.
    """
    leaves, treedef = jtu.tree_flatten(tree)
    shown = [
        f"{jnp.dtype(x.dtype).name}{list(x.shape)}"
        if hasattr(x, "shape") and hasattr(x, "dtype")
        else repr(x)
        for x in leaves
    ]
    return f"{treedef} with leaves [{', '.join(shown)}]"


def describe_node(node: Any) -> str:
    """`` "a node of type `Linear`" `` (or `` "`None`" ``): a PyTree node, in words.

    **Arguments:**

    - `node`: any object.

    **Returns:** a string.
    """
    if node is None:
        return "`None`"
    return f"a node of type `{type(node).__name__}`"


# ---------------------------------------------------------------------------------
# Checkpoints.
# ---------------------------------------------------------------------------------


def record_mismatch_error(expected: str, shape: Any, dtype: Any) -> CheckpointError:
    """The error for a saved record that does not match the leaf of `like`.

    **Arguments:**

    - `expected`: what `like` asks for, e.g. `describe_array((2,), "float32")`.
    - `shape`, `dtype`: what the file holds.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        f"expected {expected}, but the file holds {describe_array(shape, dtype)}. "
        "Build `like` with the same hyperparameters and dtypes as the saved model"
    )


def malformed_header_error(text: str) -> CheckpointError:
    """The error for a `.npy` record header that does not parse (a detail that the
    loader prefixes with the checkpoint and the leaf).

    **Arguments:**

    - `text`: the header's text (its first 80 characters are shown).

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        f"the record header {text[:80]!r} is malformed: expected a dict with keys "
        "'descr', 'shape' and 'fortran_order'; the file is corrupt"
    )


def truncated_header_error() -> CheckpointError:
    """The error for a file that ends inside a `.npy` record header.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        "the file ends inside a record header (truncated): expected a complete "
        "header; save the checkpoint again"
    )


def trailing_data_error(source: str, pos: int) -> CheckpointError:
    """The error for bytes after the last leaf of `like` (that are not the trailer).

    **Arguments:**

    - `source`: the file, as shown to the user (e.g. `"'model.eqx'"`).
    - `pos`: the byte offset of the unexpected data.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        f"Checkpoint {source} has unexpected data at byte {pos}, after the last leaf "
        "of `like`; expected the end of the file. Either the file is corrupt, or "
        "`like` has fewer leaves than the saved tree: build `like` with the same "
        "structure and hyperparameters, and pass the same `filter_spec` as when saving."
    )


def leaves_ended_error(want: str) -> CheckpointError:
    """The error for a file whose saved leaves end before those of `like`.

    **Arguments:**

    - `want`: what the leaf of `like` asks for, e.g. `describe_array((2,), "float32")`.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        f"expected a record for {want}, but the saved leaves ended: `like` has "
        "more leaves than the saved tree, or the file is truncated"
    )


def record_dtype_error(descr: Any) -> CheckpointError:
    """The error for a record header whose dtype `descr` numpy cannot read."""
    return CheckpointError(f"the record dtype {descr!r} is not valid")


def pickle_record_error(dtype: Any) -> CheckpointError:
    """The error for a record of an object dtype (which would need pickle)."""
    return CheckpointError(
        f"the record has dtype {dtype}, which needs pickle; refusing to load it"
    )


def record_magic_error(expected: bytes, found: bytes) -> CheckpointError:
    """The error for a record that does not start with the `.npy` magic string."""
    return CheckpointError(
        f"expected a `.npy` record starting with {expected!r}, but found "
        f"{found!r}: the file is corrupt or truncated"
    )


def npy_version_error(major: int, minor: int) -> CheckpointError:
    """The error for a record of an unknown `.npy` format version."""
    return CheckpointError(f"unknown `.npy` format version {major}.{minor}")


def header_length_error(header_len: int) -> CheckpointError:
    """The error for a record header that claims more bytes than any header has."""
    return CheckpointError(f"a record header claims {header_len} bytes (corrupt)")


def header_text_error() -> CheckpointError:
    """The error for a record header that does not decode as text."""
    return CheckpointError("a record header is not valid text (corrupt)")


def truncated_data_error(
    got: int, nbytes: int, dtype: Any, shape: Any
) -> CheckpointError:
    """The error for a file that ends inside the data of a record (`got` of its
    `nbytes` data bytes read); `found_shape` and `found_dtype` are set."""
    return CheckpointError(
        f"the file ends after {got} of the {nbytes} data bytes of a "
        f"{dtype}{list(shape)} record (truncated)",
        found_shape=shape,
        found_dtype=dtype,
    )


def checksum_mismatch_error(
    source: str, saved: tuple[int, int], read: tuple[int, int], offset: int | None
) -> CheckpointError:
    """The error for a trailer whose checksum does not match the bytes read.

    **Arguments:**

    - `source`: the file, as shown to the user (e.g. `"'model.eqx'"`).
    - `saved`, `read`: `(crc32, byte count)` recorded by the trailer, and of the bytes
        read.
    - `offset`: where the trailer starts, if known.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    (saved_crc, saved_nbytes), (crc, nbytes) = saved, read
    return CheckpointError(
        f"Checkpoint {source} is corrupt: its trailer records CRC32 "
        f"{saved_crc:#010x} over {saved_nbytes} bytes, but the bytes read have "
        f"CRC32 {crc:#010x} over {nbytes} bytes. Restore the file from a "
        "backup or save it again.",
        offset=offset,
    )


def checkpoint_fileno_error() -> AttributeError:
    """The error for `fileno` asked of a checkpoint file wrapper (which hashes every
    byte, so the descriptor must not be used)."""
    return AttributeError(
        "checkpoint files are hashed as they are written and read, so they "
        "expose no `fileno`; use `write`/`read` (as `np.save`/`np.load` do)"
    )


def object_leaf_error(arr: np.ndarray) -> TypeError:
    """The error for saving a leaf of an object dtype."""
    return TypeError(
        f"Cannot save a leaf of dtype {arr.dtype} (value {arr!r}): checkpoints "
        "hold numeric arrays only, and object arrays would need pickle. Convert "
        "it to a numeric array, or skip it with a `filter_spec` that ignores it."
    )


# ---------------------------------------------------------------------------------
# Loading and saving trees.
# ---------------------------------------------------------------------------------


def describe_key_path(path: tuple) -> str:
    """A leaf's key path as shown in messages (`"(the root)"` for `()`)."""
    return jtu.keystr(path) if path else "(the root)"


def describe_python_scalar(x: Any, kinds: str | None = None) -> str:
    """`"a Python int"`: what a Python scalar leaf of `like` asks for, with the record
    dtype kinds it accepts (e.g. `"iu"`) if given."""
    if kinds is None:
        return f"a Python {type(x).__name__}"
    return f"a Python {type(x).__name__} (a 0-d record of kind {kinds!r})"


# The `CheckpointError` attributes that a leaf's error keeps from its cause.
_DETAILS = ("expected_shape", "found_shape", "expected_dtype", "found_dtype")


def leaf_load_error(
    cause: Exception,
    source: str,
    path: tuple,
    pos: int,
    positioned: bool,
    offset: int | None,
) -> CheckpointError:
    """The error for `cause`, raised while loading the leaf at `path` from the record
    at `pos`: a `CheckpointError` naming them (and keeping `cause`'s shapes and
    dtypes).

    **Arguments:**

    - `cause`: the exception raised.
    - `source`: the file, as shown to the user (e.g. `"'model.eqx'"`).
    - `path`: the leaf's key path.
    - `pos`: where the record starts: a byte offset in the file if `positioned`,
        else the bytes from where reading began.
    - `offset`: `pos` as an offset in the file, if known.

    **Returns:** the `CheckpointError` (the caller raises it `from cause`).
    """
    inner = cause if isinstance(cause, CheckpointError) else None
    detail = str(cause) if inner is not None else repr(cause)
    where = (
        f"record at byte {pos}"
        if positioned
        else f"record {pos} bytes after where reading began"
    )
    details = {name: getattr(inner, name) for name in _DETAILS} if inner else {}
    return CheckpointError(
        f"Checkpoint {source}: could not load leaf `{describe_key_path(path)}` of "
        f"`like` ({where}): {detail}.",
        path=path,
        offset=offset,
        **details,
    )


def loaded_type_difference(expected_type: type, new: Any) -> str:
    """How a loaded leaf differs from `like`'s: its type (`expected_type` wanted)."""
    return f"type {expected_type.__name__}, but got {type(new).__name__}"


def loaded_array_difference(old: tuple, new: tuple) -> str:
    """How a loaded array differs from `like`'s: `old` and `new` are
    `(shape, dtype)`."""
    return f"{describe_array(*old)}, but got {describe_array(*new)}"


def loaded_leaf_error(
    source: str, path: tuple, problem: str, offset: int | None, details: dict
) -> CheckpointError:
    """The error for a leaf returned by a custom `filter_spec` that does not match
    `like`'s.

    **Arguments:**

    - `source`: the file, as shown to the user.
    - `path`: the leaf's key path.
    - `problem`: how it differs (`loaded_type_difference` or
        `loaded_array_difference`).
    - `offset`: where the leaf's records start, if known.
    - `details`: the `CheckpointError` shape and dtype attributes to set.

    **Returns:** the `CheckpointError` (the caller raises it).
    """
    return CheckpointError(
        f"Checkpoint {source}: the loaded leaf `{describe_key_path(path)}` should "
        f"have {problem}. Make the `filter_spec` return leaves like `like`'s.",
        path=path,
        offset=offset,
        **details,
    )


def saving_leaf_note(path: tuple) -> str:
    """The note added to an error raised while saving the leaf at `path`."""
    return f"(while saving the leaf at `{describe_key_path(path)}`)"


def checkpoint_filter_spec_error(filter_spec: Any, cause: Exception) -> ValueError:
    """The error for a `filter_spec` that is not a PyTree prefix of the tree (`cause`:
    why matching failed)."""
    return ValueError(
        f"`filter_spec` must be a callable or a PyTree prefix of the tree, with "
        f"structure {jtu.tree_structure(filter_spec)}; it does not match the tree "
        f"({cause}). Pass one callable, or a tree of callables shaped like the tree's "
        "top levels."
    )


# ---------------------------------------------------------------------------------
# Hyperparameters (a JSON first line).
# ---------------------------------------------------------------------------------


def hyperparameters_type_error(hyperparameters: Any) -> TypeError:
    """The error for `save_with_hyperparameters` given hyperparameters that are not a
    dict."""
    return TypeError(
        "`hyperparameters` must be a dict of keyword arguments, but got "
        f"{type(hyperparameters).__name__}. Pass e.g. {{'width_size': 8}}."
    )


def hyperparameters_newline_error() -> ValueError:
    """The first line read has no newline (a detail of
    `hyperparameters_line_error`)."""
    return ValueError("the first line does not end with a newline")


def hyperparameters_not_dict_error(value: Any) -> ValueError:
    """The JSON first line holds something other than a dict (a detail of
    `hyperparameters_line_error`)."""
    return ValueError(f"it holds a {type(value).__name__}")


def hyperparameters_line_error(
    source: str, cause: Exception, offset: int | None
) -> CheckpointError:
    """The error for a file whose first line is not a JSON dict of hyperparameters
    (`cause`: why; `offset`: where the line starts, if known)."""
    return CheckpointError(
        f"Checkpoint {source}: expected a first line holding a JSON dict of "
        f"hyperparameters, but could not read one ({cause}). Was the file written "
        "by `tree_serialise_leaves` instead of `save_with_hyperparameters`?",
        offset=offset,
    )
