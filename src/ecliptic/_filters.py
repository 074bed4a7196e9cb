"""Leaf predicates and the filter / partition / combine trio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


PyTree = Any

_ARRAY_TYPES: tuple[type, ...] = (jax.Array, np.ndarray, np.generic)
_NUMPY_TYPES: tuple[type, ...] = (np.ndarray, np.generic)
_ARRAY_LIKE_TYPES: tuple[type, ...] = (
    jax.Array,
    np.ndarray,
    np.generic,
    bool,
    int,
    float,
    complex,
)
_PY_INEXACT_TYPES: tuple[type, ...] = (float, complex)


# Outside tracing, `is_array` depends only on the type of its argument, so its answer
# is memoised per type: `isinstance` against `jax.Array` costs ~0.1 us, a dict lookup
# ~20 ns, and filtering a model calls it once per leaf. Tracers are never memoised:
# whether a tracer counts as a `jax.Array` depends on its abstract value.
_IS_ARRAY_BY_TYPE: dict[type, bool] = {}


def _is_array_slow(element: Any) -> bool:
    out = isinstance(element, _ARRAY_TYPES)
    tp = type(element)
    if not issubclass(tp, jax.core.Tracer) and len(_IS_ARRAY_BY_TYPE) < 4096:
        _IS_ARRAY_BY_TYPE[tp] = out
    return out


def is_array(element: Any) -> bool:
    """Returns `True` if `element` is a JAX array (tracers included), a NumPy array or
    a NumPy scalar; `False` otherwise (Python scalars included).

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    out = _IS_ARRAY_BY_TYPE.get(type(element))
    if out is None:
        return _is_array_slow(element)
    return out


def is_array_like(element: Any) -> bool:
    """Returns `True` if `element` can be turned into a JAX array: anything for which
    [`ecliptic.is_array`][] is `True`, a Python `bool`/`int`/`float`/`complex`, or an
    object with a `__jax_array__` method.

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    return isinstance(element, _ARRAY_LIKE_TYPES) or hasattr(element, "__jax_array__")


_INEXACT_BY_DTYPE: dict[Any, bool] = {}


def _is_inexact_dtype(dtype: Any) -> bool:
    out = _INEXACT_BY_DTYPE.get(dtype)
    if out is None:
        out = bool(np.issubdtype(dtype, np.inexact)) or jnp.issubdtype(
            dtype, jnp.inexact
        )
        if len(_INEXACT_BY_DTYPE) < 1024:
            _INEXACT_BY_DTYPE[dtype] = out
    return out


def is_inexact_array(element: Any) -> bool:
    """Returns `True` if `element` is a floating-point or complex array (JAX or NumPy).

    Python floats are *not* inexact arrays: use [`ecliptic.is_inexact_array_like`][].

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    if is_array(element):
        return _is_inexact_dtype(element.dtype)
    return False


def is_inexact_array_like(element: Any) -> bool:
    """Returns `True` if `element` is a floating-point or complex array, a Python
    `float`/`complex`, or an object whose `__jax_array__()` is inexact.

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    if hasattr(element, "__jax_array__"):
        element = element.__jax_array__()
    if isinstance(element, _ARRAY_TYPES):
        return _is_inexact_dtype(element.dtype)
    return isinstance(element, _PY_INEXACT_TYPES)


#
# filter / partition / combine
#
# Design: one C++ flatten of `pytree` (with `is_leaf`), one pass over the flat leaves
# to compute the mask, and one C++ unflatten per output tree. A `filter_spec` that is
# a prefix tree is matched with `treedef.flatten_up_to` (C++), and the list of
# matching subtrees is flattened at once. No per-node Python work beyond `is_leaf`.

AxisSpec = bool | Callable[[Any], bool]

try:  # JAX's registry in which `None` is a leaf: flattening needs no Python callback.
    from jax._src.tree_util import none_leaf_registry as _NONE_LEAF_REGISTRY
except ImportError:  # pragma: no cover - depends on the JAX version
    _NONE_LEAF_REGISTRY = None


def _is_none(x: Any) -> bool:
    return x is None


def flatten_none_as_leaf(
    pytree: PyTree, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[Any], Any]:
    """`jax.tree.flatten` with `None` as a leaf (`is_leaf=lambda x: x is None`)."""
    if is_leaf is None:
        if _NONE_LEAF_REGISTRY is not None:
            return _NONE_LEAF_REGISTRY.flatten(pytree)
        return jtu.tree_flatten(pytree, is_leaf=_is_none)
    return jtu.tree_flatten(pytree, is_leaf=lambda x: x is None or is_leaf(x))


def _leaf_masks(leaves: list[Any], spec: Callable[[Any], Any]) -> list[Any]:
    if spec is is_array:  # the common case: memoised by type, no call per leaf
        out = list(map(_IS_ARRAY_BY_TYPE.get, map(type, leaves)))
        if None in out:
            out = [is_array(x) for x in leaves]
        return out
    return [spec(x) for x in leaves]


def _spec_error(name: str, filter_spec: Any, index: int, bad: Any) -> ValueError:
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


def _flat_masks(
    name: str, pytree: PyTree, filter_spec: Any, is_leaf: Callable[[Any], bool] | None
) -> tuple[list[Any], list[Any] | bool, Callable[[list[Any]], PyTree]]:
    """Flattens `pytree` once and evaluates the spec on its leaves.

    Returns the leaves, their masks (one bool for all of them when the spec is a
    single bool), and the function that rebuilds a tree from new leaves.
    """
    spec_leaves, spec_def = jtu.tree_flatten(filter_spec)
    for i, s in enumerate(spec_leaves):
        if isinstance(s, jax.core.Tracer) or not (isinstance(s, bool) or callable(s)):
            raise _spec_error(name, filter_spec, i, s)
    if spec_def.num_nodes == 1 and spec_def.num_leaves == 1:
        (spec,) = spec_leaves
        leaves, treedef = jtu.tree_flatten(pytree, is_leaf=is_leaf)
        masks = spec if isinstance(spec, bool) else _leaf_masks(leaves, spec)
        return leaves, masks, treedef.unflatten
    # A prefix spec: flatten the list of matching subtrees in one go (C++), then
    # apply each spec leaf to its run of leaves.
    subtrees = spec_def.flatten_up_to(pytree)
    if is_leaf is None:
        leaves, treedef = jtu.tree_flatten(subtrees)
    else:
        leaves, treedef = jtu.tree_flatten(
            subtrees, is_leaf=lambda x: x is not subtrees and is_leaf(x)
        )
    masks: list[Any] = []
    start = 0
    for spec, child in zip(spec_leaves, treedef.children(), strict=True):
        stop = start + child.num_leaves
        if isinstance(spec, bool):
            masks.extend([spec] * (stop - start))
        else:
            masks.extend(_leaf_masks(leaves[start:stop], spec))
        start = stop
    return leaves, masks, lambda new: spec_def.unflatten(treedef.unflatten(new))


def filter(
    pytree: PyTree,
    filter_spec: PyTree[AxisSpec],
    inverse: bool = False,
    replace: Any = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """Keeps the leaves of `pytree` that satisfy `filter_spec` and replaces the others
    with `replace`.

    ```python
    ecliptic.filter([(jnp.array(0), 1), object()], ecliptic.is_array)
    # [(Array(0), None), None]
    ecliptic.filter([(jnp.array(0), 1), object()], [False, True])
    # [(None, None), <object>]
    ```

    **Arguments:**

    - `pytree`: any PyTree.
    - `filter_spec`: a PyTree whose structure is a prefix of `pytree`'s. Each of its
        leaves is `True` (keep that subtree), `False` (replace every leaf of that
        subtree) or a callable `leaf -> bool` applied to every leaf of that subtree.
    - `inverse`: if `True`, keep the leaves that do *not* satisfy the spec.
    - `replace`: the value put in place of every removed leaf. Defaults to `None`.
    - `is_leaf`: optional `node -> bool`; nodes for which it is `True` are treated
        as leaves (passed whole to the spec's callables).

    **Returns:** a PyTree with the structure of `pytree`.
    """
    inverse = bool(inverse)
    leaves, masks, rebuild = _flat_masks("filter", pytree, filter_spec, is_leaf)
    if masks is True or masks is False:
        return rebuild(leaves if masks != inverse else [replace] * len(leaves))
    return rebuild(
        [
            x if bool(m) != inverse else replace
            for x, m in zip(leaves, masks, strict=True)
        ]
    )


def partition(
    pytree: PyTree,
    filter_spec: PyTree[AxisSpec],
    replace: Any = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> tuple[PyTree, PyTree]:
    """Splits `pytree` in two: the leaves that satisfy `filter_spec`, and the rest.

    The same as `(filter(pytree, spec), filter(pytree, spec, inverse=True))`, in one
    pass. [`ecliptic.combine`][] puts the two halves back together.

    **Arguments:**

    - `pytree`: any PyTree.
    - `filter_spec`: as for [`ecliptic.filter`][].
    - `replace`: the value put in the holes of each half. Defaults to `None`.
    - `is_leaf`: as for [`ecliptic.filter`][].

    **Returns:** a pair of PyTrees, each with the structure of `pytree`.
    """
    leaves, masks, rebuild = _flat_masks("partition", pytree, filter_spec, is_leaf)
    if masks is True or masks is False:
        holes = [replace] * len(leaves)
        left, right = (leaves, holes) if masks else (holes, leaves)
    else:
        left, right = [], []
        for x, m in zip(leaves, masks, strict=True):
            if m:
                left.append(x)
                right.append(replace)
            else:
                left.append(replace)
                right.append(x)
    return rebuild(left), rebuild(right)


def combine(*pytrees: PyTree, is_leaf: Callable[[Any], bool] | None = None) -> PyTree:
    """Merges PyTrees by taking, at each leaf, the first value that is not `None`.

    Undoes [`ecliptic.partition`][] / [`ecliptic.filter`][]:

    ```python
    ecliptic.combine([None, 1, 2], [0, None, None])  # [0, 1, 2]
    ```

    **Arguments:**

    - `*pytrees`: one or more PyTrees. `None` counts as a leaf; the other trees must
        have the first tree's structure below its non-`None` leaves.
    - `is_leaf`: optional `node -> bool`, as for [`ecliptic.filter`][].

    **Returns:** a PyTree with the structure of the first tree.
    """
    if not pytrees:
        raise TypeError(
            "ecliptic.combine expected at least one PyTree, but got none. Fix: pass "
            "the pieces to merge, e.g. `ecliptic.combine(params, static)`."
        )
    first, treedef = flatten_none_as_leaf(pytrees[0], is_leaf)
    if len(pytrees) == 1:
        return treedef.unflatten(first)
    rest = [treedef.flatten_up_to(t) for t in pytrees[1:]]
    if len(rest) == 1:
        (second,) = rest
        out = [a if a is not None else b for a, b in zip(first, second, strict=True)]
    else:
        out = []
        for column in zip(first, *rest, strict=True):
            value = None
            for value in column:
                if value is not None:
                    break
            out.append(value)
    return treedef.unflatten(out)
