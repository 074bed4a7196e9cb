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
