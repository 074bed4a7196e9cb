"""`Shared`: tie nodes of a pytree together (e.g. an embedding and an output layer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.tree_util as jtu

from .._messages import shared_structure_error
from .._module import Module
from .._tree import tree_at


PyTree = Any


class SharedNode:
    """Placeholder left where `Shared` removed a tied node."""

    def __repr__(self) -> str:
        return "SharedNode"


def _struct(x: PyTree) -> tuple[Any, list[Any]]:
    leaves, treedef = jtu.tree_flatten(x)
    return treedef, [
        (tuple(leaf.shape), leaf.dtype)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
        else leaf
        for leaf in leaves
    ]


def _struct_equal(a: PyTree, b: PyTree) -> bool:
    (adef, aleaves), (bdef, bleaves) = _struct(a), _struct(b)
    if adef != bdef or len(aleaves) != len(bleaves):
        return False
    for x, y in zip(aleaves, bleaves, strict=True):
        try:
            same = bool(x == y)
        except Exception:
            same = x is y
        if not same:
            return False
    return True


class Shared(Module):
    """Ties nodes across a pytree: the nodes at `where(pytree)` are removed at
    construction and replaced by `get(pytree)` each time the `Shared` is called, so
    one set of parameters is trained for both.

    ```python
    shared = ecliptic.nn.Shared(
        (embedding, linear), where=lambda p: p[1].weight, get=lambda p: p[0].weight
    )
    embedding, linear = shared()  # linear.weight is embedding.weight
    ```
    """

    pytree: PyTree
    where: Callable
    get: Callable

    def __init__(self, pytree: PyTree, where: Callable, get: Callable):
        """**Arguments:**

        - `pytree`: the pytree holding the nodes to tie.
        - `where`: selects the node (or a sequence of nodes) to replace, as in
            `ecliptic.tree_at(where, pytree, ...)`.
        - `get`: returns the value(s) to put there, with the same structure, shapes
            and dtypes as `where(pytree)`.
        """
        # `where` only selects nodes and `get` usually selects (or transposes) one, so
        # both are cheap to evaluate directly.
        source = get(pytree)
        dest = where(pytree)
        if not _struct_equal(source, dest):
            raise shared_structure_error(source, dest)
        self.pytree = tree_at(where, pytree, replace_fn=lambda _: SharedNode())
        self.where = where
        self.get = get

    def __call__(self) -> PyTree:
        """**Returns:** the original pytree, with `get(pytree)` at `where`."""
        return tree_at(self.where, self.pytree, self.get(self.pytree))
