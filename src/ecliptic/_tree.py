"""Tree inspection: `tree_check` and `same_shapes`.

`tree_equal` and `tree_flatten_one_level` live on the ground floor (`_pytree.py`:
`Module.__eq__` and `tree_at` need them) and `tree_at` in `_tree_at.py` (whose
docstring explains its design); all three are re-exported here."""

from __future__ import annotations

from typing import Any

import jax.tree_util as jtu

from ._filters import is_array
from ._messages import (
    self_reference_error,
    shared_node_error,
    tree_check_unreachable_error,
)
from ._pytree import (
    flatten_one_level,
    tree_equal as tree_equal,
    tree_flatten_one_level as tree_flatten_one_level,
)
from ._tree_at import tree_at as tree_at


PyTree = Any
PyTreeDef = Any


#
# tree_check
#


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
        raise tree_check_unreachable_error() from None


class _CheckFailed(Exception):
    pass


def _children(node: Any, with_paths: bool) -> list | None:
    """`(key_path, child)` for each child of `node` (empty key paths unless
    `with_paths`), or `None` if `node` is a leaf or has no children."""
    if not with_paths:
        one = flatten_one_level(node)
        if one is None or not one[0]:
            return None
        return [((), child) for child in one[0]]
    root_seen = False

    def is_child(x: Any) -> bool:
        nonlocal root_seen
        if x is not node or root_seen:
            return True  # a child; the node itself again is reported by the caller
        root_seen = True
        return False

    entries, treedef = jtu.tree_flatten_with_path(node, is_leaf=is_child)
    return None if treedef.num_nodes == 1 else entries


def _check_node(node: Any, path: str | None, seen: dict[int, list]) -> None:
    """`seen`: id -> [path, whether it is an ancestor of `node`, the node]."""
    entries = _children(node, path is not None)
    if entries is None:
        return  # a leaf, or a node without children: repeats are harmless
    entry = seen.get(id(node))
    if entry is not None:
        if path is None:
            raise _CheckFailed
        if entry[1]:
            raise self_reference_error(node, entry[0], path)
        raise shared_node_error(node, path, entry[0])
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
            raise self_reference_error(node, path, child_path)
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
