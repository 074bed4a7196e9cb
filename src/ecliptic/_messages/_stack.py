"""Messages of `ecliptic.nn.Stacked` (`n` identical layers held as one stacked layer
and applied with `jax.lax.scan`)."""

from __future__ import annotations

from typing import Any

import jax.tree_util as jtu
import numpy as np


_SUBJECT = "ecliptic.nn.Stacked"


def _describe_leaf(shape: tuple[int, ...], dtype: Any) -> str:
    return f"shape {tuple(shape)} and dtype {dtype}"


def stack_size_error(n: Any) -> ValueError:
    """The error for a number of layers `n` that is not a positive int."""
    return ValueError(
        f"{_SUBJECT} expected `n`, the number of layers, to be a positive int, but "
        f"got {n!r} of type {type(n).__name__}. Pass e.g. `n=12`."
    )


def stack_unroll_error(unroll: Any) -> ValueError:
    """The error for an `unroll` that `jax.lax.scan` does not accept."""
    return ValueError(
        f"{_SUBJECT} expected `unroll` to be a positive int or a bool (as for "
        f"`jax.lax.scan`), but got {unroll!r}. Pass `unroll=1` (the default: one "
        "layer per scan step) or `unroll=True` (every layer inlined)."
    )


def stack_empty_error() -> ValueError:
    """The error for `Stacked.from_layers` given no layers."""
    return ValueError(
        f"{_SUBJECT}.from_layers expected at least one layer, but got an empty "
        "sequence. Pass the layers to stack, e.g. `Stacked.from_layers([l0, l1])`."
    )


def _short(obj: Any, limit: int = 160) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _differ(detail: str) -> ValueError:
    return ValueError(
        f"{_SUBJECT}.from_layers expected every layer to differ from layer 0 only "
        f"in the values of its arrays, but {detail}. Stack layers built the same "
        "way (same class, sizes and functions), or use `ecliptic.nn.Sequential` "
        "for layers that differ."
    )


def stack_class_error(i: int, first: type, other: type) -> ValueError:
    """The error for `Stacked.from_layers` given layer `i` of another class than
    layer 0 (`first` and `other` are the two classes)."""
    return _differ(f"layer 0 is a {first.__name__}, layer {i} a {other.__name__}")


def stack_treedef_error(i: int, first: Any, other: Any) -> ValueError:
    """The error for `Stacked.from_layers` given layer `i` whose tree structure
    (static fields included; `first` and `other` are the two treedefs) differs from
    layer 0's."""
    return _differ(
        f"their tree structures (static fields included) differ: layer 0 has "
        f"{_short(first)}, layer {i} has {_short(other)}"
    )


def stack_value_error(i: int, path: str, first: Any, other: Any) -> ValueError:
    """The error for `Stacked.from_layers` given layer `i` whose non-array leaf at
    key path `path` (such as an activation function) is not the same as layer 0's
    (`first`), or is an array where layer 0 has none, or the reverse."""
    return _differ(
        f"`layer{path}` is {_short(first)} in layer 0 but {_short(other)} in layer {i}"
    )


def stack_leaf_error(
    i: int,
    path: str,
    first: tuple[tuple[int, ...], Any],
    other: tuple[tuple[int, ...], Any],
) -> ValueError:
    """The error for `Stacked.from_layers` given layer `i` with an array at `path`
    whose shape or dtype differs from layer 0's.

    **Arguments:**

    - `i`: the index of the layer.
    - `path`: the array's key path in the layer, e.g. `".linear.weight"`.
    - `first`, `other`: `(shape, dtype)` of that array in layer 0 and layer `i`.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"{_SUBJECT}.from_layers expected the array `layer{path}` of layer {i} to "
        f"have {_describe_leaf(*first)}, as in layer 0, but got "
        f"{_describe_leaf(*other)}. Stacked layers must have arrays of the same "
        "shapes and dtypes; use `ecliptic.nn.Sequential` for layers that differ."
    )


def stack_stateful_error(layer_name: str) -> ValueError:
    """The error for stacking a layer that holds a `StateIndex` (e.g. `BatchNorm`),
    whose `State` a `Stacked` does not thread through its scan."""
    return ValueError(
        f"{_SUBJECT} cannot stack {layer_name}: it holds an "
        "`ecliptic.nn.StateIndex` (a stateful layer such as `BatchNorm`), and "
        "Stacked does not thread an `ecliptic.nn.State` through its layers. Use "
        "`ecliptic.nn.Sequential` for stateful layers."
    )


def stack_index_type_error(index: Any) -> TypeError:
    """The error for indexing a `Stacked` with something other than an int or a
    slice (for example a traced array)."""
    return TypeError(
        f"{_SUBJECT} indices must be Python ints or slices, but got {index!r} of "
        f"type {type(index).__name__}. Index with a concrete int, e.g. "
        "`stacked[0]`."
    )


def stack_index_error(index: int, n: int) -> IndexError:
    """The error for a layer index outside `[-n, n)`."""
    return IndexError(
        f"{_SUBJECT} of n={n} layers has no layer {index}: valid indices are "
        f"{-n} to {n - 1}."
    )


def stack_empty_slice_error(index: slice, n: int) -> IndexError:
    """The error for a slice of a `Stacked` that selects no layer."""
    return IndexError(
        f"{_SUBJECT} of n={n} layers: the slice {index} selects no layer, and a "
        "stack holds at least one. Choose a slice that selects at least one layer."
    )


def _one_array(tree: Any) -> bool:
    leaves, treedef = jtu.tree_flatten(tree)
    return treedef.num_nodes == 1 and len(leaves) == 1 and hasattr(leaves[0], "shape")


def _describe_carry(tree: Any) -> str:
    """`shape (64,) and dtype float32` for one array, a list for a pytree."""
    leaves, _ = jtu.tree_flatten_with_path(tree)
    if len(leaves) == 1 and not leaves[0][0]:
        return _describe_leaf(leaves[0][1].shape, leaves[0][1].dtype)
    parts = [
        f"`{jtu.keystr(path)}`: {_describe_leaf(x.shape, x.dtype)}"
        for path, x in leaves
    ]
    return f"a pytree ({'; '.join(parts)})"


def stack_carry_error(layer_name: str, n: int, x: Any, out: Any) -> ValueError:
    """The error for a stacked layer whose output does not have the structure,
    shapes and dtypes of its input (so it cannot feed the next layer).

    **Arguments:**

    - `layer_name`: the class name of the stacked layer.
    - `n`: the number of layers.
    - `x`: the layer's input (arrays or `jax.ShapeDtypeStruct`s).
    - `out`: what it returned.

    **Returns:** the `ValueError` (the caller raises it).
    """
    fix = (
        "Stack layers that map `x` to the same shape and dtype (e.g. residual "
        "blocks), or use `ecliptic.nn.Sequential` for layers that change it."
    )
    if _one_array(x) and _one_array(out) and x.shape == out.shape:
        xd, od = np.dtype(x.dtype).name, np.dtype(out.dtype).name
        fix = (
            f"The layers compute in {od}: cast the input with "
            f"`x.astype(jnp.{od})`, or build the layers with `dtype=jnp.{xd}`."
        )
    return ValueError(
        f"{_SUBJECT}(n={n}) of {layer_name} expected each layer to return an "
        f"output of the same shape and dtype as its input, so that it can feed the "
        f"next layer, but a layer given `x` of {_describe_carry(x)} returned "
        f"{_describe_carry(out)}. {fix}"
    )
