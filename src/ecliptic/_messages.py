"""Message builders for user-facing errors other than shapes and dtypes, written once.

A sibling of `_checks.py` on the ground floor: it imports only the standard library,
JAX, NumPy and `_checks` (for the exception classes). Each builder composes a message
that reads *subject -> expected -> got -> fix* and either returns the text or the
exception for the caller to raise (so tracebacks point at the caller).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checks import CheckpointError


__all__ = [
    "describe_array",
    "describe_tree",
    "failed_check_message",
    "filter_spec_error",
    "missing_state_index_message",
    "malformed_header_error",
    "record_mismatch_error",
    "self_reference_error",
    "trailing_data_error",
    "truncated_header_error",
]


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


# ---------------------------------------------------------------------------------
# Filters, trees and state.
# ---------------------------------------------------------------------------------


def filter_spec_error(name: str, filter_spec: Any, index: int, bad: Any) -> ValueError:
    """The error for a `filter_spec` leaf that is neither a Python bool nor a callable.

    **Arguments:**

    - `name`: the public function, e.g. `"partition"`.
    - `filter_spec`: the whole spec (to name where the bad leaf is).
    - `index`: the bad leaf's position among the spec's leaves.
    - `bad`: the bad leaf.

    **Returns:** the `ValueError` (the caller raises it).
    """
    paths = [jtu.keystr(p) for p, _ in jtu.tree_flatten_with_path(filter_spec)[0]]
    where = f"filter_spec{paths[index]}" if index < len(paths) else "filter_spec"
    if isinstance(bad, jax.core.Tracer):
        got = f"a traced array (shape {bad.shape}, dtype {bad.dtype})"
        fix = (
            "A filter decides which leaves are kept, which must be known before "
            "tracing. Fix: build the spec from Python bools outside the "
            "transformation, or keep every leaf and use `jnp.where` on the arrays."
        )
    else:
        got = f"{type(bad).__name__} {bad!r}"
        fix = (
            "Fix: use a Python bool, e.g. `bool(x)`, or a callable such as "
            f"`ecliptic.is_array`: `ecliptic.{name}(pytree, ecliptic.is_array)`."
        )
    return ValueError(
        f"ecliptic.{name} expected each leaf of `filter_spec` to be a Python bool or "
        f"a callable `leaf -> bool`, but got {got} at `{where}`. {fix}"
    )


def self_reference_error(node: Any, where: str, again: str) -> ValueError:
    """The `tree_check` error for a node that contains itself.

    **Arguments:**

    - `node`: the node.
    - `where`, `again`: its key path and the key path where it appears inside itself.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"ecliptic.tree_check expected a PyTree without cycles, but the node of type "
        f"`{type(node).__name__}` at `{where}` contains itself, at `{again}` (as in "
        "`x = []; x.append(x)`). Fix: store a copy or an index instead of the node "
        "itself."
    )


def missing_state_index_message(marker: Any, num_keys: int) -> str:
    """The message for a `StateIndex` that an `ecliptic.nn.State` does not hold.

    **Arguments:**

    - `marker`: the index's marker.
    - `num_keys`: how many indices the State holds.

    **Returns:** the message.
    """
    return (
        f"ecliptic.nn.State expected one of its {num_keys} StateIndex keys, but got "
        f"a StateIndex with marker {marker!r} that it does not hold. The State "
        "must come from the same model instance: build both with "
        "`model, state = ecliptic.nn.make_with_state(Model)(...)`."
    )


# ---------------------------------------------------------------------------------
# Runtime errors.
# ---------------------------------------------------------------------------------


def failed_check_message(msg: str, where: str) -> str:
    """The text of the clean `EquinoxRuntimeError` for a failed `error_if` check.

    **Arguments:**

    - `msg`: the user's message.
    - `where`: the `error_if` call site, or `"location unknown"`.

    **Returns:** the message, with where the check was made and how to debug it.
    """
    return (
        f"{msg}\n\n-------------------\n"
        f"An `error_if` check failed while the JAX program ran ({where}).\n"
        "To debug: set ECLIPTIC_ON_ERROR=breakpoint (or EQX_ON_ERROR=breakpoint) to "
        "open a\ndebugger at the failure, or JAX_DISABLE_JIT=1 to run the program "
        "eagerly."
    )
