"""Message builders for user-facing errors other than shapes and dtypes, written once.

On the floor just above `_checks.py`: it imports only the standard library, JAX,
NumPy and `_checks` (for the exception classes), so every floor above can use it
(the Module system, `tree_at` and the transformations' kit included). Each builder
composes a message that reads *subject -> expected -> got -> fix* and either returns
the text or the exception for the caller to raise (so tracebacks point at the
caller).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checks import CheckpointError


__all__ = [
    "abstract_message",
    "describe_array",
    "describe_node",
    "describe_tree",
    "failed_check_message",
    "filter_spec_error",
    "frozen_error",
    "malformed_header_error",
    "method_in_init_error",
    "missing_state_index_message",
    "nested_selection_error",
    "record_mismatch_error",
    "self_reference_error",
    "static_array_message",
    "trailing_data_error",
    "truncated_header_error",
    "unhashable_static_error",
]

# What `unhashable_static_error` skips: array leaves are traced, never hashed (the
# types of `ecliptic.is_array`, which lives on a floor above this one).
_ARRAY_TYPES: tuple[type, ...] = (jax.Array, np.ndarray, np.generic)


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


def nested_selection_error(k: int, node: Any, call: str) -> ValueError:
    """The `tree_at` error for a selected node that lies inside another one.

    **Arguments:**

    - `k`: the node's position among the nodes that `where` selected.
    - `node`: the node.
    - `call`: the `tree_at` call as the message shows it (with `where`'s source).

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"ecliptic.tree_at expected the nodes that `where` selects to be disjoint, "
        f"but node {k} ({describe_node(node)}) lies inside another selected node: "
        f"{call}. Fix: select only the outer node, and build its "
        "replacement with the inner change already made."
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


# ---------------------------------------------------------------------------------
# Modules.
# ---------------------------------------------------------------------------------


def abstract_message(cls: Any) -> str:
    """Why the abstract Module class `cls` cannot be instantiated, and what to do.

    **Arguments:**

    - `cls`: the class (with `__abstractmethods__`, `__abstractclassvars__` and
        `__abstractvars__`).

    **Returns:** the message of the `TypeError`.
    """
    if cls.__abstractmethods__:
        names = sorted(cls.__abstractmethods__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract methods "
            f"{names}: implement them in a subclass and instantiate that."
        )
    if cls.__abstractclassvars__:
        names = sorted(cls.__abstractclassvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract class "
            f"attributes {names}: declare them on a subclass as "
            f"`{names[0]}: ClassVar[...] = ...`."
        )
    if cls.__abstractvars__:
        names = sorted(cls.__abstractvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract "
            f"attributes {names}: declare them on a subclass as a field, a class "
            "attribute or a property."
        )
    return (
        f"Can't instantiate abstract class {cls.__name__}: it was declared abstract "
        "(`strict=StrictConfig(force_abstact=True)` or `is_abstract=True`); "
        "instantiate a concrete subclass."
    )


def method_in_init_error(obj: Any, name: str, method_name: str) -> ValueError:
    """The error for `self.{name} = self.{method_name}` in a Module's `__init__`,
    which would store the Module inside itself.

    **Arguments:**

    - `obj`: the Module being built.
    - `name`: the field assigned.
    - `method_name`: the method assigned to it.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"Cannot assign methods in __init__: `self.{name} = self.{method_name}` would "
        f"store {type(obj).__name__} inside itself, which is not a tree. Use a "
        "property instead:\n"
        "    @property\n"
        f"    def {name}(self):\n"
        f"        return self.{method_name}"
    )


def frozen_error(obj: Any, name: str) -> dataclasses.FrozenInstanceError:
    """The error for assigning to a field of a Module after its `__init__`.

    **Arguments:**

    - `obj`: the Module.
    - `name`: the attribute assigned.

    **Returns:** the `FrozenInstanceError` (the caller raises it).
    """
    return dataclasses.FrozenInstanceError(
        f"cannot assign to field {name!r}: {type(obj).__qualname__} is immutable once "
        f"created. Make a modified copy instead: `ecliptic.tree_at(lambda m: "
        f"m.{name}, model, new_value)`."
    )


def static_array_message(qualname: str, name: str) -> str:
    """The warning for an array given to a static field.

    **Arguments:**

    - `qualname`: the Module class's `__qualname__`.
    - `name`: the static field.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"{qualname}.{name} is a static field but was given a JAX or "
        "NumPy array. Static values are part of the PyTree structure: they "
        "are never traced or differentiated, and a new value recompiles. "
        f"Declare `{name}` without `static=True` if it holds parameters."
    )


# ---------------------------------------------------------------------------------
# Transformations.
# ---------------------------------------------------------------------------------


def unhashable_static_error(
    where: str, trees: Mapping[str, Any], what: str = "arguments"
) -> ValueError:
    """The error for a static (non-array) leaf that cannot be hashed.

    **Arguments:**

    - `where`: the transformation's name as the message shows it.
    - `trees`: the trees whose non-array leaves are static, by the name the message
        gives them: `{"args": args, "kwargs": kwargs}` names a leaf `args[1]['foo']`.
    - `what`: what the trees are, for the message used when no single leaf fails
        to hash (a `__hash__` that fails only sometimes).

    **Returns:** the `ValueError` (to be raised by the caller, `from None`).
    """
    for root, tree in trees.items():
        for path, leaf in jtu.tree_flatten_with_path(tree)[0]:
            if isinstance(leaf, _ARRAY_TYPES):
                continue
            try:
                hash(leaf)
            except TypeError:
                return ValueError(
                    "Non-hashable static arguments are not supported. "
                    f"{where} treats every non-array leaf as static, so it must be "
                    f"hashable, but `{root}{jtu.keystr(path)}` is an unhashable "
                    f"{type(leaf).__name__}: {leaf!r}. Fix: turn it into an array "
                    "(jnp.asarray), make it hashable (e.g. a tuple instead of a list "
                    "inside a custom object), or close over it."
                )
    return ValueError(
        "Non-hashable static arguments are not supported: hashing the static leaves "
        f"of the {what} raised TypeError. Fix: make every non-array leaf hashable."
    )
