"""`tree_at`: replace nodes of a PyTree, selected by a `where` function.

How the selected nodes are found, with no Python work per node of the tree:

1. Flatten `pytree` once (C++), with the user's `is_leaf`.
2. Look up the *skeleton* of that treedef: the same tree with every leaf replaced by a
   distinct `_LeafWrapper(index)`. It depends only on the treedef, so it is built once
   (one C++ unflatten) and kept in a `BoundedCache` (emptied by `clear_caches`).
3. Call `where` on the skeleton. A selected leaf comes back as a wrapper naming its
   index in the flat list. A selected subtree is found by identity in the skeleton,
   whose composite nodes are all distinct objects (its node table is built lazily,
   once per treedef).
4. Call `where` on `pytree` too and check that both calls selected the same places
   (so `where` used the structure only, not the leaves' types or values).
5. Edit. A tree made only of immutable nodes (tuples, Modules) is edited by rebuilding
   the nodes on the path from the root to each selected node: two C++ calls per
   level, with the rest of the tree shared. Other trees (lists and dicts can be
   mutated, so nothing may be shared) are unflattened whole from the edited leaves.

Empty tuples are the one node CPython shares (`() is ()`), so a tree holding them is
flattened with empty tuples as leaves, which makes each one addressable. `None` is
shared too: selecting it works when it occurs once, and otherwise needs
`is_leaf=lambda x: x is None`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.tree_util as jtu

from ._caches import BoundedCache
from ._messages import (
    nested_selection_error,
    tree_at_ambiguous_node_error,
    tree_at_call,
    tree_at_foreign_value_error,
    tree_at_replace_args_error,
    tree_at_replace_length_error,
    tree_at_replace_type_error,
    tree_at_selection_type_error,
    tree_at_structure_only_error,
    tree_at_unknown_node_error,
)
from ._module import MISSING, Module
from ._pytree import tree_flatten_one_level


PyTree = Any
PyTreeDef = Any
Path = list  # of (one-level treedef, child position), from the root down


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

    __slots__ = ("wrapped", "has_empty_tuple", "immutable", "_nodes", "_leaf_paths")

    def __init__(self, treedef: PyTreeDef):
        self.wrapped = treedef.unflatten(
            [_LeafWrapper(i) for i in range(treedef.num_leaves)]
        )
        self.has_empty_tuple, self.immutable = _scan_treedef(treedef)
        self._nodes: dict[int, list] | None = None
        self._leaf_paths: dict[int, Path] = {}

    def _node_entry(self, node: Any) -> list | None:
        if self._nodes is None:
            self._nodes = _composite_nodes(self.wrapped)
        entry = self._nodes.get(id(node))
        return None if entry is None or entry[0] is not node else entry

    def node_count(self, node: Any) -> int:
        """How many times the composite node `node` occurs in the skeleton."""
        entry = self._node_entry(node)
        return 0 if entry is None else entry[1]

    def path_of(self, node: Any) -> Path:
        """The path from the root to `node` (a wrapper, or a composite node)."""
        if not isinstance(node, _LeafWrapper):
            entry = self._node_entry(node)
            if entry is None:  # unreachable: callers check `node_count` first
                raise AssertionError(node)
            return entry[2]
        index = node.index
        path = self._leaf_paths.get(index)
        if path is None:
            path = []
            here = self.wrapped
            while not isinstance(here, _LeafWrapper):
                children, one_level = tree_flatten_one_level(here)
                pos = _child_holding(children, index)
                path.append((one_level, pos))
                here = children[pos]
            self._leaf_paths[index] = path
        return path


def _child_holding(children: list[Any], index: int) -> int:
    for pos, child in enumerate(children):
        wrappers = jtu.tree_leaves(child)
        if wrappers and wrappers[0].index <= index <= wrappers[-1].index:
            return pos
    raise AssertionError(index)  # unreachable: every leaf index is in some child


def _scan_treedef(treedef: PyTreeDef) -> tuple[bool, bool]:
    """Whether the treedef holds an empty tuple, and whether all its nodes are
    immutable (tuples, namedtuples, `None`, Modules)."""
    has_empty_tuple, immutable = False, True
    stack = [treedef]
    while stack:
        node = stack.pop()
        data = node.node_data()
        if data is None:
            continue  # a leaf
        kind = data[0]
        if kind is tuple and node.num_nodes == 1:
            has_empty_tuple = True
        if not (issubclass(kind, (tuple, Module)) or kind is type(None)):
            immutable = False
        stack.extend(node.children())
    return has_empty_tuple, immutable


def _composite_nodes(tree: Any) -> dict[int, list]:
    """id -> [node, occurrences, path] for every non-leaf node of the skeleton."""
    nodes: dict[int, list] = {}
    stack: list[tuple[Any, Path]] = [(tree, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _LeafWrapper):
            continue
        entry = nodes.get(id(node))
        if entry is not None:
            entry[1] += 1  # only shared singletons (`None`) get here
            continue
        nodes[id(node)] = [node, 1, path]
        children, one_level = tree_flatten_one_level(node)
        for pos, child in enumerate(children):
            stack.append((child, [*path, (one_level, pos)]))
    return nodes


# Skeletons by treedef. A miss when the bound is hit costs one C++ unflatten of the
# treedef (plus, lazily, its node table): about what flattening the tree costs.
_MAX_SKELETONS = 256
_SKELETONS: BoundedCache = BoundedCache(_MAX_SKELETONS)


def _skeleton(treedef: PyTreeDef) -> _Skeleton:
    try:
        skeleton = _SKELETONS.get(treedef)
    except TypeError:  # unhashable node data: no caching
        return _Skeleton(treedef)
    if skeleton is None:
        skeleton = _Skeleton(treedef)
        _SKELETONS[treedef] = skeleton
    return skeleton


#
# Checking what `where` returned
#


def _replace_args(replace: Any, replace_fn: Any) -> bool:
    """Checks that exactly one of `replace`/`replace_fn` is given; returns `use_fn`."""
    if (replace is MISSING) == (replace_fn is MISSING):
        raise tree_at_replace_args_error(replace is not MISSING)
    return replace is MISSING


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
            raise tree_at_foreign_value_error(x, where, use_fn)
    orig, orig_def = jtu.tree_flatten(from_pytree, is_leaf=leaf_test)
    if (
        sel_def != orig_def
        or len(orig) != len(unwrapped)
        or any(a is not b for a, b in zip(orig, unwrapped, strict=True))
    ):
        raise tree_at_structure_only_error(where, use_fn)


def _selected_nodes(where: Any, selected: Any, skeleton: _Skeleton, use_fn: bool):
    """Normalises what `where` returned: (list of nodes, whether it was one node)."""
    if isinstance(selected, _LeafWrapper) or skeleton.node_count(selected) > 0:
        return [selected], True
    if isinstance(selected, (list, tuple)):
        return list(selected), False
    raise tree_at_selection_type_error(selected, where, use_fn)


def _replacements(
    where: Any, nodes: list, single: bool, replace: Any, use_fn: bool
) -> list[Any] | None:
    if use_fn:
        return None
    if single:
        return [replace]
    if not isinstance(replace, Sequence) and not hasattr(replace, "__len__"):
        raise tree_at_replace_type_error(len(nodes), replace, where, use_fn)
    if len(replace) != len(nodes):
        raise tree_at_replace_length_error(len(nodes), len(replace), where, use_fn)
    return list(replace)


def _check_unique(where, nodes, skeleton, use_fn) -> None:
    for k, node in enumerate(nodes):
        if isinstance(node, _LeafWrapper):
            continue
        count = skeleton.node_count(node)
        if count == 0:
            raise tree_at_unknown_node_error(k, node, where, use_fn)
        if count > 1:
            raise tree_at_ambiguous_node_error(node, count, where, use_fn)


#
# Editing
#

# Up to this many selected nodes, an immutable tree is edited along paths.
_PATH_EDIT_MAX = 8


def _path_replace(pytree: Any, path: Path, new: Any) -> Any:
    """Rebuilds the nodes from the root to `path`; `new(old)` gives the new node."""
    levels = []
    node = pytree
    for one_level, pos in path:
        children = one_level.flatten_up_to(node)
        levels.append((one_level, children, pos))
        node = children[pos]
    value = new(node)
    for one_level, children, pos in reversed(levels):
        children[pos] = value
        value = one_level.unflatten(children)
    return value


def _edit_paths(where, pytree, skeleton, nodes, values, replace_fn, use_fn):
    """Edits an immutable tree along the path to each selected node, in tree order."""
    keys = [tuple(pos for _, pos in skeleton.path_of(n)) for n in nodes]
    last = {key: k for k, key in enumerate(keys)}  # a repeated node: last value wins
    order = sorted(last, key=lambda key: key)
    for outer, inner in zip(order, order[1:]):
        if inner[: len(outer)] == outer:
            k = last[inner]
            raise nested_selection_error(k, nodes[k], tree_at_call(where, use_fn))
    out = pytree
    for key in order:
        k = last[key]
        new = replace_fn if values is None else (lambda _, v=values[k]: v)
        out = _path_replace(out, skeleton.path_of(nodes[k]), new)
    return out


def _edit_leaves(leaves, treedef, nodes, values, replace_fn):
    out = list(leaves)
    if values is None:
        for i in sorted({n.index for n in nodes}):
            out[i] = replace_fn(leaves[i])
    else:
        for n, v in zip(nodes, values, strict=True):
            out[n.index] = v
    return treedef.unflatten(out)


def _edit_subtrees(where, skeleton, leaves, nodes, values, replace_fn, use_fn):
    targets = {id(node): k for k, node in enumerate(nodes)}  # last value wins
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
            original = jtu.tree_map(lambda w: leaves[w.index], x)
            out.append(replace_fn(original))
        else:
            out.append(values[k])
    for k, node in enumerate(nodes):
        if seen[targets[id(node)]] == 0:
            raise nested_selection_error(k, node, tree_at_call(where, use_fn))
    return treedef.unflatten(out)


def tree_at(
    where: Callable[[PyTree], Any],
    pytree: PyTree,
    replace: Any = MISSING,
    replace_fn: Callable[[Any], Any] = MISSING,
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

    **Returns:** the modified PyTree. Arrays are not copied; when the tree is made of
    immutable nodes only (tuples, Modules), nodes off the path to a replaced node are
    shared with the input, as `dataclasses.replace` would.
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
    only_leaves = all(isinstance(n, _LeafWrapper) for n in nodes)
    if not only_leaves:
        _check_unique(where, nodes, skeleton, use_fn)
    if skeleton.immutable and 0 < len(nodes) <= _PATH_EDIT_MAX:
        return _edit_paths(where, pytree, skeleton, nodes, values, replace_fn, use_fn)
    if only_leaves:
        return _edit_leaves(leaves, treedef, nodes, values, replace_fn)
    return _edit_subtrees(where, skeleton, leaves, nodes, values, replace_fn, use_fn)
