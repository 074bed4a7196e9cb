"""One prefix-spec matcher, shared by every API that takes a *prefix spec*.

A prefix spec is a PyTree whose structure is a prefix of a data tree's: each leaf of
the spec stands for the whole subtree of the data at the same place. Filter specs
(`ecliptic.filter`, `partition`), axis specs (`filter_vmap`'s `in_axes`/`out_axes`)
and serialisation specs (`tree_serialise_leaves`' `filter_spec`) are all of this
kind; they differ only in what a spec leaf is (a bool, an axis, a callable) and in
what is done with it, which stays with the caller.

Matching costs one C++ flatten of the spec, one `flatten_up_to` of the data, and one
C++ flatten of the list of matched subtrees (so the leaves of all subtrees come out
in a single call); a spec that is a single leaf skips the middle step. The result
knows, for each spec leaf, the run of data leaves below it, and rebuilds the data
tree from new leaves with C++ unflattens.

```python
prefix = PrefixSpec(spec)               # flatten the spec once
match = prefix.match(tree)              # raises if `spec` is not a prefix of `tree`
for spec_leaf, start, stop in match.runs():
    ...                                 # match.leaves[start:stop] lie below spec_leaf
new_tree = match.unflatten(new_leaves)
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax.tree_util as jtu


PyTree = Any
IsLeaf = Callable[[Any], bool] | None


class _Nested(NamedTuple):
    """The structure of a tree cut at the leaves of a prefix spec: the spec's treedef
    and the treedef of the list of matched subtrees. Hashable and comparable (it
    holds treedefs only), so it may travel as static data through JAX."""

    spec_def: Any
    subtrees_def: Any

    def unflatten(self, leaves: Any) -> PyTree:
        return self.spec_def.unflatten(self.subtrees_def.unflatten(leaves))


class PrefixMatch:
    """A data tree flattened below the leaves of a prefix spec.

    **Attributes:**

    - `specs`: the leaves of the spec, in flatten order.
    - `sizes`: for each spec leaf, how many data leaves lie below it.
    - `leaves`: the leaves of the data tree, in flatten order.
    - `paths`: for each data leaf, its full key path (a tuple of JAX keys), or `None`
        unless the match was made with `with_paths=True`.
    - `structure`: a hashable object whose `.unflatten(leaves)` rebuilds the data
        tree; it holds no leaves, so it can be kept after the leaves are gone.
    """

    __slots__ = ("specs", "sizes", "leaves", "paths", "structure")

    def __init__(
        self,
        specs: list[Any],
        sizes: list[int],
        leaves: list[Any],
        paths: list[tuple] | None,
        structure: Any,
    ):
        self.specs = specs
        self.sizes = sizes
        self.leaves = leaves
        self.paths = paths
        self.structure = structure

    def runs(self) -> Iterator[tuple[Any, int, int]]:
        """Yields `(spec_leaf, start, stop)`: `leaves[start:stop]` lie below
        `spec_leaf`."""
        start = 0
        for spec, size in zip(self.specs, self.sizes, strict=True):
            stop = start + size
            yield spec, start, stop
            start = stop

    def leaf_specs(self) -> list[Any]:
        """The spec leaf above each data leaf: a list as long as `leaves`."""
        out: list[Any] = []
        for spec, size in zip(self.specs, self.sizes, strict=True):
            out.extend([spec] * size)
        return out

    def items(self) -> Iterator[tuple[Any, tuple | None, Any]]:
        """Yields `(spec_leaf, path, leaf)` for every data leaf, in flatten order
        (`path` is `None` unless matched `with_paths=True`)."""
        paths = self.paths
        i = 0
        for spec, size in zip(self.specs, self.sizes, strict=True):
            for j in range(i, i + size):
                yield spec, (None if paths is None else paths[j]), self.leaves[j]
            i += size

    def unflatten(self, leaves: list[Any]) -> PyTree:
        """The data tree with `leaves` (one per data leaf) in place of its own."""
        return self.structure.unflatten(leaves)


class PrefixSpec:
    """A prefix spec, flattened once.

    **Arguments:**

    - `spec`: the spec PyTree.
    - `is_leaf`: optional `node -> bool` for flattening the spec (e.g. `x is None`
        when `None` is a meaningful spec leaf, as for axis specs). By default `None`
        is an empty node of the spec, which matches only `None` in the data.

    **Attributes:** `leaves` (the spec's leaves) and `treedef` (its structure).
    """

    __slots__ = ("spec", "leaves", "treedef", "_is_leaf")

    def __init__(self, spec: PyTree, is_leaf: IsLeaf = None):
        self.spec = spec
        self._is_leaf = is_leaf
        self.leaves, self.treedef = jtu.tree_flatten(spec, is_leaf=is_leaf)

    @property
    def is_single(self) -> bool:
        """Whether the spec is one leaf, applying to the whole data tree."""
        return self.treedef.num_nodes == 1 and self.treedef.num_leaves == 1

    def match(
        self, tree: PyTree, is_leaf: IsLeaf = None, with_paths: bool = False
    ) -> PrefixMatch:
        """Matches the spec against `tree`.

        **Arguments:**

        - `tree`: the data tree.
        - `is_leaf`: optional `node -> bool` for flattening the data below the spec.
        - `with_paths`: also compute each data leaf's full key path.

        **Returns:** a [`PrefixMatch`][].

        **Raises:** the `ValueError` / `TypeError` of JAX's `flatten_up_to` when the
        spec is not a prefix of `tree`; callers word their own message from it.
        """
        if self.is_single:
            if with_paths:
                pairs, treedef = jtu.tree_flatten_with_path(tree, is_leaf=is_leaf)
                paths: list[tuple] | None = [p for p, _ in pairs]
                leaves = [x for _, x in pairs]
            else:
                leaves, treedef = jtu.tree_flatten(tree, is_leaf=is_leaf)
                paths = None
            return PrefixMatch(self.leaves, [len(leaves)], leaves, paths, treedef)
        subtrees = self.treedef.flatten_up_to(tree)
        sub_is_leaf: IsLeaf = None
        if is_leaf is not None:

            def _below_list(x: Any) -> bool:
                return x is not subtrees and is_leaf(x)

            sub_is_leaf = _below_list

        if with_paths:
            pairs, subtrees_def = jtu.tree_flatten_with_path(
                subtrees, is_leaf=sub_is_leaf
            )
            leaves = [x for _, x in pairs]
            paths = self._full_paths([p for p, _ in pairs])
        else:
            leaves, subtrees_def = jtu.tree_flatten(subtrees, is_leaf=sub_is_leaf)
            paths = None
        sizes = [child.num_leaves for child in subtrees_def.children()]
        structure = _Nested(self.treedef, subtrees_def)
        return PrefixMatch(self.leaves, sizes, leaves, paths, structure)

    def _full_paths(self, sub_paths: list[tuple]) -> list[tuple]:
        """Paths within the list of subtrees -> paths within the data tree."""
        spec_paths = [
            p for p, _ in jtu.tree_flatten_with_path(self.spec, self._is_leaf)[0]
        ]
        return [spec_paths[p[0].idx] + tuple(p[1:]) for p in sub_paths]


def match_prefix(
    spec: PyTree,
    tree: PyTree,
    *,
    spec_is_leaf: IsLeaf = None,
    is_leaf: IsLeaf = None,
    with_paths: bool = False,
) -> PrefixMatch:
    """`PrefixSpec(spec, spec_is_leaf).match(tree, is_leaf, with_paths)`.

    **Arguments:**

    - `spec`: the prefix spec.
    - `tree`: the data tree.
    - `spec_is_leaf`: as `PrefixSpec`'s `is_leaf`.
    - `is_leaf`, `with_paths`: as for `PrefixSpec.match`.

    **Returns:** a [`PrefixMatch`][].
    """
    return PrefixSpec(spec, spec_is_leaf).match(tree, is_leaf, with_paths)
