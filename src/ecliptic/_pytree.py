"""Ground-floor PyTree primitives that know nothing of Modules: the one-level
flattens every floor shares, and `tree_equal` (which `Module.__eq__` needs, so it
cannot live in `_tree.py` above `_module/`).

- `flatten_one_level(node)`: JAX's C++ one-level flatten, `(children, aux)` or `None`;
  for hot paths that need no treedef (`_dispatch`'s guards, `tree_check`).
- `tree_flatten_one_level(node)` (public): `(children, treedef)`, for code that
  rebuilds the node from its children (`tree_at`).
- `dotted_path(keypath)`: a key path as the dotted name PyTorch state dicts and the
  sharding rules use (`layers[0].weight` -> `"layers.0.weight"`).

The public names are re-exported from `_tree.py` (and from there by `ecliptic`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike

from ._filters import is_array
from ._messages import own_child_error, tree_equal_no_trees_error


PyTree = Any
PyTreeDef = Any

# `flatten_one_level(node)` -> `(children, aux_data)` for a registered node (a tuple,
# list, dict, `None`, a Module, ...), or `None` for a leaf. It is JAX's own C++
# one-level flatten bound to the default registry, so a call is one C call. Every
# one-level flatten that needs no treedef uses it.
flatten_one_level = jtu.default_registry.flatten_one_level


def dotted_path(keypath: tuple[Any, ...]) -> str:
    """The dotted name of a key path, as PyTorch's state dicts spell parameter names:
    attributes by name, sequence items by index, dictionary entries by key
    (`.layers[0].weight` -> `"layers.0.weight"`, `["a"].b` -> `"a.b"`).

    **Arguments:**

    - `keypath`: a key path, as `jax.tree_util.tree_flatten_with_path` gives it.

    **Returns:** the dotted name; `""` for the root.
    """
    parts = []
    for key in keypath:
        if isinstance(key, jtu.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jtu.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jtu.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jtu.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key).strip(".[]'\""))
    return ".".join(parts)


def tree_flatten_one_level(pytree: PyTree) -> tuple[list[PyTree], PyTreeDef]:
    """Returns the immediate children of a PyTree node, and the treedef that puts them
    back together. A leaf gives itself.

    ```python
    ecliptic.tree_flatten_one_level({"a": 3, "b": (1, 2)})
    # ([3, (1, 2)], PyTreeDef({'a': *, 'b': *}))
    ecliptic.tree_flatten_one_level(4)  # ([4], PyTreeDef(*))
    ```

    **Arguments:**

    - `pytree`: any PyTree.

    **Returns:** `(children, treedef)`, as `jax.tree.flatten`.

    **Raises:** `ValueError` if `pytree` is one of its own children.
    """
    root_seen = False

    def is_child(node: Any) -> bool:
        nonlocal root_seen
        if node is not pytree:
            return True
        if root_seen:
            raise own_child_error(pytree)
        root_seen = True
        return False

    return jtu.tree_flatten(pytree, is_leaf=is_child)


_NUMPY_TYPES = (np.ndarray, np.generic)


def _leaves_equal(a: Any, b: Any, exact: bool, rtol: Any, atol: Any) -> Any:
    """`False`, `True`, or a traced bool, for two arrays of equal shape and dtype."""
    if isinstance(a, _NUMPY_TYPES) and isinstance(b, _NUMPY_TYPES):
        if exact or not np.issubdtype(a.dtype, np.inexact):
            return bool(np.all(a == b))
        return bool(np.allclose(a, b, rtol=rtol, atol=atol))
    if exact or not jnp.issubdtype(a.dtype, jnp.inexact):
        out = jnp.all(a == b)
    else:
        out = jnp.allclose(a, b, rtol=rtol, atol=atol)  # pyright: ignore
    if isinstance(out, jax.core.Tracer):
        return out
    return bool(out)


def _pair_equal(a: Any, b: Any, typematch: bool, exact: bool, rtol, atol) -> Any:
    """`False`, `True`, or a traced bool, for two corresponding leaves."""
    if typematch and type(a) is not type(b):
        return False
    a_array, b_array = is_array(a), is_array(b)
    if a_array != b_array:
        return False
    if not a_array:
        return False if a != b else True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return _leaves_equal(a, b, exact, rtol, atol)


def tree_equal(
    *pytrees: PyTree,
    typematch: bool = False,
    rtol: ArrayLike = 0.0,
    atol: ArrayLike = 0.0,
) -> bool | Array:
    """Returns whether all the PyTrees are equal: same structure, and equal leaves.

    - Arrays (JAX or NumPy) must have the same shape and dtype, and equal values
        (or `allclose` values for inexact dtypes when `rtol` or `atol` is nonzero).
        A JAX array and a NumPy array can be equal unless `typematch=True`.
    - Other leaves are compared with `==` (and by type too if `typematch=True`).

    Outside tracing the result is a Python `bool`. Under `jax.jit`, comparing traced
    arrays gives a traced bool array; use `tree_equal(...) is True` to ask whether
    the trees are equal without looking at traced values.

    **Arguments:**

    - `*pytrees`: one or more PyTrees.
    - `typematch`: if `True`, corresponding leaves must also have the same type.
    - `rtol`: relative tolerance for inexact arrays (as `jnp.allclose`); default 0.
    - `atol`: absolute tolerance for inexact arrays; default 0.

    **Returns:** a Python `bool`, or a traced bool array of shape `()`.
    """
    if not pytrees:
        raise tree_equal_no_trees_error()
    exact = (
        isinstance(rtol, (int, float))
        and isinstance(atol, (int, float))
        and rtol == 0
        and atol == 0
    )
    flat, treedef = jtu.tree_flatten(pytrees[0])
    traced: Any = True
    for other in pytrees[1:]:
        flat_other, treedef_other = jtu.tree_flatten(other)
        if treedef_other != treedef:
            return False
        for a, b in zip(flat, flat_other, strict=True):
            same = _pair_equal(a, b, typematch, exact, rtol, atol)
            if same is False:
                return False
            if same is not True:
                traced = same if traced is True else traced & same
    return traced
