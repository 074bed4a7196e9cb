"""Leaf predicates and the filter / partition / combine trio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._caches import BoundedCache
from ._messages import combine_no_trees_error, filter_spec_error
from ._prefix import PrefixSpec


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
# whether a tracer counts as a `jax.Array` depends on its abstract value. A miss
# (more than this many leaf types in use) costs one `isinstance` check.
_IS_ARRAY_TYPES_MAX = 4096
_IS_ARRAY_BY_TYPE: BoundedCache = BoundedCache(_IS_ARRAY_TYPES_MAX)


def _is_array_slow(element: Any) -> bool:
    out = isinstance(element, _ARRAY_TYPES)
    tp = type(element)
    if not issubclass(tp, jax.core.Tracer):
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


# Whether a dtype is inexact, by dtype. A miss (more than this many dtypes in use)
# costs two `issubdtype` checks (~2 us).
_INEXACT_DTYPES_MAX = 1024
_INEXACT_BY_DTYPE: BoundedCache = BoundedCache(_INEXACT_DTYPES_MAX)


def _is_inexact_dtype(dtype: Any) -> bool:
    out = _INEXACT_BY_DTYPE.get(dtype)
    if out is None:
        # `jnp.issubdtype` knows NumPy's dtypes, JAX's extra floats (bfloat16, ...)
        # and extended dtypes such as PRNG keys (never inexact).
        out = bool(jnp.issubdtype(dtype, jnp.inexact))
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
# a prefix tree is matched by `_prefix.PrefixSpec` (C++ `flatten_up_to`, then the list
# of matching subtrees flattened at once). No per-node Python work beyond `is_leaf`.

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


def _flat_masks(
    name: str, pytree: PyTree, filter_spec: Any, is_leaf: Callable[[Any], bool] | None
) -> tuple[list[Any], list[Any] | bool, Callable[[list[Any]], PyTree]]:
    """Flattens `pytree` once and evaluates the spec on its leaves.

    Returns the leaves, their masks (one bool for all of them when the spec is a
    single bool), and the function that rebuilds a tree from new leaves.
    """
    prefix = PrefixSpec(filter_spec)
    for i, s in enumerate(prefix.leaves):
        if isinstance(s, jax.core.Tracer) or not (isinstance(s, bool) or callable(s)):
            raise filter_spec_error(name, filter_spec, i, s)
    match = prefix.match(pytree, is_leaf)
    leaves = match.leaves
    if prefix.is_single:
        (spec,) = prefix.leaves
        masks = spec if isinstance(spec, bool) else _leaf_masks(leaves, spec)
        return leaves, masks, match.unflatten
    masks = []
    for spec, start, stop in match.runs():
        if isinstance(spec, bool):
            masks.extend([spec] * (stop - start))
        else:
            masks.extend(_leaf_masks(leaves[start:stop], spec))
    return leaves, masks, match.unflatten


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
        raise combine_no_trees_error()
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
