"""Tree surgery and inspection: `tree_at`, `tree_equal`, `tree_check`,
`tree_flatten_one_level`.

How `tree_at` finds the nodes that `where` selects, without Python work per node:

1. Flatten `pytree` once (C++), with the user's `is_leaf`.
2. Look up the *skeleton* of that treedef: the same tree with every leaf replaced by a
   distinct `_LeafWrapper(index)`. It depends only on the treedef, so it is built once
   (one C++ unflatten) and cached.
3. Call `where` on the skeleton. A selected leaf comes back as a wrapper, which names
   its index in the flat list; replacing it is one C++ unflatten of the edited list,
   whatever the structure of the replacement.
4. Call `where` on `pytree` too and check that both calls selected the same places
   (so `where` used the structure only, not the leaves' types or values).

Selected subtrees (not leaves) are found by identity in the skeleton, whose composite
nodes are all distinct objects; the skeleton's node table is built lazily, once per
treedef. Empty tuples are the one node CPython shares (`() is ()`), so a tree holding
them is flattened with empty tuples as leaves, which makes each one addressable.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike

from ._filters import is_array


PyTree = Any
PyTreeDef = Any


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class _LeafWrapper:
    """Stands in for leaf number `index` of the flattened `pytree`."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __repr__(self) -> str:
        return f"<leaf {self.index}>"


def _is_empty_tuple(x: Any) -> bool:
    return type(x) is tuple and len(x) == 0


class _Skeleton:
    """The tree of a treedef with distinct `_LeafWrapper`s as its leaves."""

    __slots__ = ("wrapped", "has_empty_tuple", "_nodes")

    def __init__(self, treedef: PyTreeDef):
        self.wrapped = treedef.unflatten(
            [_LeafWrapper(i) for i in range(treedef.num_leaves)]
        )
        # Conservative: a false positive only costs a slower (still correct) flatten.
        self.has_empty_tuple = "()" in repr(treedef)
        self._nodes: dict[int, list] | None = None

    def node_count(self, node: Any) -> int:
        """How many times the composite node `node` occurs in the skeleton."""
        if self._nodes is None:
            self._nodes = _composite_nodes(self.wrapped)
        entry = self._nodes.get(id(node))
        return 0 if entry is None or entry[0] is not node else entry[1]


def _composite_nodes(tree: Any) -> dict[int, list]:
    nodes: dict[int, list] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _LeafWrapper):
            continue
        entry = nodes.get(id(node))
        if entry is not None:
            entry[1] += 1  # only shared singletons (`None`) get here
            continue
        nodes[id(node)] = [node, 1]
        stack.extend(jtu.tree_flatten(node, is_leaf=lambda x, n=node: x is not n)[0])
    return nodes


_SKELETONS: dict[Any, _Skeleton] = {}
_MAX_SKELETONS = 256


def _skeleton(treedef: PyTreeDef) -> _Skeleton:
    try:
        skeleton = _SKELETONS.get(treedef)
    except TypeError:  # unhashable node data: no caching
        return _Skeleton(treedef)
    if skeleton is None:
        skeleton = _Skeleton(treedef)
        if len(_SKELETONS) >= _MAX_SKELETONS:
            del _SKELETONS[next(iter(_SKELETONS))]
        _SKELETONS[treedef] = skeleton
    return skeleton


#
# Error messages: they show the failing call and a corrected one.
#


def _source_of(fn: Any) -> str:
    """A one-line lambda as written (`lambda m: m.weight`), else the name."""
    name = getattr(fn, "__name__", None)
    if name != "<lambda>":
        return name if isinstance(name, str) else "where"
    try:
        code = fn.__code__
        spans = [
            (line, col, end_col)
            for line, end_line, col, end_col in code.co_positions()
            if line is not None and line == end_line and col is not None
            if end_col is not None and end_col > col
        ]
        (lineno,) = {line for line, _, _ in spans}
        text = linecache.getline(code.co_filename, lineno)
        body_start = min(col for _, col, _ in spans)
        body_end = max(end_col for _, _, end_col in spans)
        start = text.rfind("lambda", 0, body_start)
    except (AttributeError, ValueError, TypeError):
        return "where"
    if start < 0 or body_end - start > 100:
        return "where"
    return text[start:body_end]


def _call(where: Any, use_fn: bool, is_leaf: str | None = None) -> str:
    arg = "replace_fn=..." if use_fn else "replace=..."
    extra = "" if is_leaf is None else f", is_leaf={is_leaf}"
    return f"`ecliptic.tree_at({_source_of(where)}, pytree, {arg}{extra})`"


def _describe(node: Any) -> str:
    if node is None:
        return "`None`"
    return f"a node of type `{type(node).__name__}`"


#
# tree_at
#


def _replace_args(replace: Any, replace_fn: Any) -> bool:
    """Checks that exactly one of `replace`/`replace_fn` is given; returns `use_fn`."""
    if (replace is _MISSING) == (replace_fn is _MISSING):
        got = "neither" if replace is _MISSING else "both"
        raise ValueError(
            "ecliptic.tree_at expected exactly one of `replace` and `replace_fn`, but "
            f"got {got}. Fix: `ecliptic.tree_at(where, pytree, replace=new_value)` or "
            "`ecliptic.tree_at(where, pytree, replace_fn=lambda old: ...)`."
        )
    return replace is _MISSING


def _check_structure_only(
    where: Any,
    from_skeleton: Any,
    from_pytree: Any,
    leaves: list[Any],
    leaf_test: Callable[[Any], bool] | None,
    empty_tuples_are_leaves: bool,
    use_fn: bool,
) -> None:
    """Raises unless `where` picked the same places in the skeleton and in `pytree`."""
    sel, sel_def = jtu.tree_flatten(
        from_skeleton, is_leaf=_is_empty_tuple if empty_tuples_are_leaves else None
    )
    unwrapped = []
    for x in sel:
        if isinstance(x, _LeafWrapper):
            unwrapped.append(leaves[x.index])
        elif _is_empty_tuple(x):
            unwrapped.append(x)
        else:
            raise TypeError(
                f"ecliptic.tree_at expected `where` to return nodes of `pytree`, but "
                f"it returned {x!r} of type `{type(x).__name__}`, which is not part "
                f"of `pytree`: {_call(where, use_fn)}. Fix: return the node itself, "
                "e.g. `where=lambda m: m.linear.weight`, not a new object."
            )
    orig, orig_def = jtu.tree_flatten(from_pytree, is_leaf=leaf_test)
    if (
        sel_def != orig_def
        or len(orig) != len(unwrapped)
        or any(a is not b for a, b in zip(orig, unwrapped, strict=True))
    ):
        raise ValueError(
            "ecliptic.tree_at expected `where` to select nodes by the structure of "
            "`pytree` only, but it selected different nodes when the leaves were "
            f"replaced by placeholders: {_call(where, use_fn)} depends on the types or "
            "values of the leaves (as in `where=lambda t: [x for x in t if "
            "isinstance(x, int)]`). Fix: look the leaves up in the original tree and "
            "return positions only, e.g. `where=lambda t: [x for x, y in zip(t, "
            "pytree) if isinstance(y, int)]`."
        )


def _selected_nodes(where: Any, selected: Any, skeleton: _Skeleton, use_fn: bool):
    """Normalises what `where` returned: (list of nodes, whether it was one node)."""
    if isinstance(selected, _LeafWrapper) or skeleton.node_count(selected) > 0:
        return [selected], True
    if isinstance(selected, (list, tuple)):
        return list(selected), False
    raise TypeError(
        "ecliptic.tree_at expected `where` to return a node of `pytree` or a "
        f"sequence of nodes, but got {_describe(selected)}, which is neither: "
        f"{_call(where, use_fn)}. Fix: return the node itself, e.g. "
        "`where=lambda m: m.linear.weight`, or a tuple such as "
        "`where=lambda m: (m.linear.weight, m.linear.bias)`."
    )


def _replacements(
    where: Any, nodes: list, single: bool, replace: Any, use_fn: bool
) -> list[Any] | None:
    if use_fn:
        return None
    if single:
        return [replace]
    if not isinstance(replace, Sequence) and not hasattr(replace, "__len__"):
        raise TypeError(
            f"ecliptic.tree_at expected `replace` to be a sequence of {len(nodes)} "
            f"values, one per node that `where` selected, but got `{type(replace)}`: "
            f"{_call(where, use_fn)}. Fix: pass one value per node, e.g. "
            f"`replace=({', '.join(['...'] * len(nodes))})`."
        )
    if len(replace) != len(nodes):
        raise ValueError(
            f"ecliptic.tree_at expected `replace` to hold one value per node that "
            f"`where` selected, but `where` selected {len(nodes)} nodes and `replace` "
            f"has {len(replace)} values: {_call(where, use_fn)}. Fix: make their "
            "lengths match, e.g. `ecliptic.tree_at(lambda m: (m.weight, m.bias), m, "
            "replace=(new_weight, new_bias))`."
        )
    return list(replace)


def _unwrap(node: Any, leaves: list[Any]) -> Any:
    if isinstance(node, _LeafWrapper):
        return leaves[node.index]
    return jtu.tree_map(lambda w: leaves[w.index], node)


def _replace_leaves(leaves, treedef, nodes, values, replace_fn):
    out = list(leaves)
    if values is None:
        for i in sorted({n.index for n in nodes}):
            out[i] = replace_fn(leaves[i])
    else:
        for n, v in zip(nodes, values, strict=True):
            out[n.index] = v
    return treedef.unflatten(out)


def _check_unique(where, nodes, skeleton, use_fn, is_leaf) -> None:
    for k, node in enumerate(nodes):
        if isinstance(node, _LeafWrapper):
            continue
        count = skeleton.node_count(node)
        if count == 0:
            raise ValueError(
                f"ecliptic.tree_at expected `where` to return nodes of `pytree`, but "
                f"selected node {k} ({_describe(node)}) is not part of `pytree`: "
                f"{_call(where, use_fn)}. Fix: return the node itself, e.g. "
                "`where=lambda m: m.linear`, not a new object built from it."
            )
        if count > 1:
            fix_leaf = "lambda x: x is None" if node is None else "..."
            raise ValueError(
                f"ecliptic.tree_at expected `where` to select nodes that occur once in "
                f"`pytree`, but it selected {_describe(node)}, which occurs {count} "
                f"times, so the place to replace is ambiguous: {_call(where, use_fn)}. "
                "`None` is an empty subtree and every `None` is the same object. "
                f"Fix: treat it as a leaf: {_call(where, use_fn, fix_leaf)}."
            )


def _replace_subtrees(where, skeleton, leaves, nodes, values, replace_fn, use_fn):
    targets: dict[int, int] = {}
    for k, node in enumerate(nodes):
        targets[id(node)] = k  # a node selected twice: the last value wins
    seen = [0] * len(nodes)
    flat, treedef = jtu.tree_flatten(
        skeleton.wrapped, is_leaf=lambda x: id(x) in targets
    )
    out = []
    for x in flat:
        k = targets.get(id(x))
        if k is None:
            out.append(leaves[x.index])
            continue
        seen[k] += 1
        if values is None:
            out.append(replace_fn(_unwrap(x, leaves)))
        else:
            out.append(values[k])
    for k, node in enumerate(nodes):
        if seen[targets[id(node)]] == 0:
            raise ValueError(
                f"ecliptic.tree_at expected the nodes that `where` selects to be "
                f"disjoint, but node {k} ({_describe(node)}) lies inside another "
                f"selected node: {_call(where, use_fn)}. Fix: select only the outer "
                "node, and build its replacement with the inner change already made."
            )
    return treedef.unflatten(out)


def tree_at(
    where: Callable[[PyTree], Any],
    pytree: PyTree,
    replace: Any = _MISSING,
    replace_fn: Callable[[Any], Any] = _MISSING,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """Returns a copy of `pytree` with the node(s) selected by `where` replaced (like
    `.at[].set()` on a JAX array). The input is not modified.

    ```python
    tree = [1, [2, {"a": 3, "b": 4}]]
    ecliptic.tree_at(lambda t: t[1][1]["a"], tree, 5)  # [1, [2, {"a": 5, "b": 4}]]
    mlp = ecliptic.tree_at(lambda m: m.layers[-1], mlp, new_linear)  # model surgery
    ```

    The result is built by unflattening, so no `__init__`, `__post_init__` or
    `__check_init__` runs: replacements may be any object (an `in_axes` spec, say).

    **Arguments:**

    - `where`: a callable `pytree -> node` or `pytree -> sequence of nodes`, e.g.
        `lambda m: m.linear.weight` or `lambda m: (m.weight, m.bias)`. It must select
        by structure only, not by the leaves' types or values.
    - `pytree`: the PyTree to modify.
    - `replace`: the new value, or a sequence of new values (one per selected node).
        Exactly one of `replace` and `replace_fn` must be given.
    - `replace_fn`: a callable `old node -> new node`, called on each selected node.
    - `is_leaf`: optional `node -> bool`, as for `jax.tree.flatten`. To replace a
        `None` that is not unique in `pytree`, pass `is_leaf=lambda x: x is None`.

    **Returns:** the modified PyTree. (Arrays are not copied.)
    """
    use_fn = _replace_args(replace, replace_fn)
    leaves, treedef = jtu.tree_flatten(pytree, is_leaf=is_leaf)
    skeleton = _skeleton(treedef)
    leaf_test = is_leaf
    if skeleton.has_empty_tuple:
        if is_leaf is None:
            leaf_test = _is_empty_tuple
        else:
            leaf_test = lambda x: _is_empty_tuple(x) or is_leaf(x)
        leaves, treedef = jtu.tree_flatten(pytree, is_leaf=leaf_test)
        skeleton = _skeleton(treedef)
    from_pytree = where(pytree)
    selected = where(skeleton.wrapped)
    _check_structure_only(
        where,
        selected,
        from_pytree,
        leaves,
        leaf_test,
        leaf_test is not is_leaf,
        use_fn,
    )
    nodes, single = _selected_nodes(where, selected, skeleton, use_fn)
    values = _replacements(where, nodes, single, replace, use_fn)
    if all(isinstance(n, _LeafWrapper) for n in nodes):
        return _replace_leaves(leaves, treedef, nodes, values, replace_fn)
    _check_unique(where, nodes, skeleton, use_fn, is_leaf)
    return _replace_subtrees(where, skeleton, leaves, nodes, values, replace_fn, use_fn)


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
        out = jnp.allclose(a, b, rtol=rtol, atol=atol)
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
    # id -> [path, whether it is an ancestor of the node being visited, the node]
    seen: dict[int, list] = {}
    _check_node(pytree, "pytree", seen)


def _children_with_paths(node: Any) -> tuple[list, PyTreeDef]:
    root_seen = False

    def is_child(x: Any) -> bool:
        nonlocal root_seen
        if x is not node or root_seen:
            return True  # a child; the node itself again is reported by the caller
        root_seen = True
        return False

    return jtu.tree_flatten_with_path(node, is_leaf=is_child)


def _check_node(node: Any, path: str, seen: dict[int, list]) -> None:
    entries, treedef = _children_with_paths(node)
    if treedef.num_nodes == 1:
        return  # a leaf, or a node without children: repeats are harmless
    entry = seen.get(id(node))
    if entry is not None:
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
        child_path = path + jtu.keystr(key_path)
        if child is node:
            raise _self_reference_error(node, path, child_path)
        _check_node(child, child_path, seen)
    seen[id(node)][1] = False
