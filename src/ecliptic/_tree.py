"""Tree inspection: `tree_equal`, `tree_check`, `tree_flatten_one_level`; and
`tree_at` lives in `_tree_at.py`, whose docstring explains its design."""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike

from ._filters import is_array
from ._tree_at import tree_at as tree_at


PyTree = Any
PyTreeDef = Any


#
# tree_equal
#

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
        raise TypeError(
            "ecliptic.tree_equal expected at least one PyTree, but got none. Fix: "
            "pass the trees to compare, e.g. `ecliptic.tree_equal(tree1, tree2)`."
        )
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
            if typematch and type(a) is not type(b):
                return False
            a_array, b_array = is_array(a), is_array(b)
            if a_array != b_array:
                return False
            if not a_array:
                if a != b:
                    return False
                continue
            if a.shape != b.shape or a.dtype != b.dtype:
                return False
            same = _leaves_equal(a, b, exact, rtol, atol)
            if same is False:
                return False
            if same is not True:
                traced = same if traced is True else traced & same
    return traced


#
# tree_flatten_one_level / tree_check
#


def _self_reference_error(node: Any, where: str, again: str) -> ValueError:
    return ValueError(
        f"ecliptic.tree_check expected a PyTree without cycles, but the node of type "
        f"`{type(node).__name__}` at `{where}` contains itself, at `{again}` (as in "
        "`x = []; x.append(x)`). Fix: store a copy or an index instead of the node "
        "itself."
    )


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
            raise ValueError(
                f"ecliptic.tree_flatten_one_level expected a node that is not its own "
                f"child, but got a node of type `{type(pytree).__name__}` that "
                "contains itself (as in `x = []; x.append(x)`). Fix: store a copy or "
                "an index instead of the node itself."
            )
        root_seen = True
        return False

    return jtu.tree_flatten(pytree, is_leaf=is_child)


def tree_check(pytree: Any) -> None:
    """Checks that `pytree` has no cycles and that no non-leaf node appears twice.

    JAX does not require this, but a node that appears twice becomes two separate
    copies after any flatten/unflatten (every `jax.jit` boundary), which is almost
    always a bug. Repeated leaves, empty containers and `None` are fine.

    ```python
    x = [1]
    ecliptic.tree_check([x, x])  # ValueError: `pytree[1]` is also at `pytree[0]`
    ecliptic.tree_check([[1], [1]])  # fine: two different lists
    ```

    **Arguments:**

    - `pytree`: the PyTree to check.

    **Returns:** `None`.

    **Raises:** `ValueError` naming the path of the offending node.
    """
    # A fast pass without key paths; only if it fails, a second pass with key paths
    # finds the same offending node and names where it is.
    try:
        _check_node(pytree, None, {})
    except _CheckFailed:
        _check_node(pytree, "pytree", {})
        raise AssertionError("unreachable: the second pass raises") from None


class _CheckFailed(Exception):
    pass


def _children(node: Any, with_paths: bool) -> tuple[list, PyTreeDef]:
    root_seen = False

    def is_child(x: Any) -> bool:
        nonlocal root_seen
        if x is not node or root_seen:
            return True  # a child; the node itself again is reported by the caller
        root_seen = True
        return False

    if with_paths:
        return jtu.tree_flatten_with_path(node, is_leaf=is_child)
    children, treedef = jtu.tree_flatten(node, is_leaf=is_child)
    return [((), child) for child in children], treedef


def _check_node(node: Any, path: str | None, seen: dict[int, list]) -> None:
    """`seen`: id -> [path, whether it is an ancestor of `node`, the node]."""
    entries, treedef = _children(node, path is not None)
    if treedef.num_nodes == 1:
        return  # a leaf, or a node without children: repeats are harmless
    entry = seen.get(id(node))
    if entry is not None:
        if path is None:
            raise _CheckFailed
        if entry[1]:
            raise _self_reference_error(node, entry[0], path)
        raise ValueError(
            f"ecliptic.tree_check expected each non-leaf node to appear once, but the "
            f"node of type `{type(node).__name__}` at `{path}` also appears at "
            f"`{entry[0]}`. After flattening (e.g. crossing a `jax.jit` boundary) "
            "these become two separate copies. Fix: use two distinct objects (e.g. "
            "`copy.copy(node)` or build it twice), or share the weights explicitly "
            "with `ecliptic.nn.Shared`."
        )
    seen[id(node)] = [path, True, node]
    for key_path, child in entries:
        if is_array(child):
            continue  # arrays are leaves
        if path is None:
            if child is node:
                raise _CheckFailed
            _check_node(child, None, seen)
            continue
        child_path = path + jtu.keystr(key_path)
        if child is node:
            raise _self_reference_error(node, path, child_path)
        _check_node(child, child_path, seen)
    seen[id(node)][1] = False


def same_shapes(a: Any, b: Any) -> bool:
    """Whether `a` and `b` have the same structure and, leaf by leaf, the same shape
    and dtype (private helper, e.g. for `State.set` and `filter_closure_convert`)."""
    leaves_a, treedef_a = jtu.tree_flatten(a)
    leaves_b, treedef_b = jtu.tree_flatten(b)
    if treedef_a != treedef_b:
        return False
    return all(
        x.shape == y.shape and x.dtype == y.dtype
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )
