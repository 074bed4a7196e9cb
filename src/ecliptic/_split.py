"""Private helpers shared by the filtered transformations.

A filtered transformation splits the leaves of its inputs into a *dynamic* part (the
arrays that JAX traces) and a *static* part (everything else), runs a JAX
transformation on the dynamic part only, and glues the two back together. The helpers
here do that splitting with one flatten per tree; `partition` and `combine` are the
public ones from `_filters.py`, re-exported for the transformations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.tree_util as jtu
import numpy as np

from ._filters import combine as combine, is_array, partition as partition


PyTree = Any


def is_none(x: Any) -> bool:
    return x is None


def is_struct(x: Any) -> bool:
    """An array, or a `jax.ShapeDtypeStruct` standing in for one."""
    return is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def partition_by_mask(
    tree: PyTree, mask: PyTree[bool], is_leaf: Callable | None = None
) -> tuple[PyTree, PyTree]:
    """As `partition`, but with a tree of bools (one per leaf of `tree`, `None`
    subtrees allowed) in place of a predicate."""
    leaves, treedef = jtu.tree_flatten(tree, is_leaf=is_leaf)
    flags = treedef.flatten_up_to(mask)
    yes = [x if f else None for x, f in zip(leaves, flags, strict=True)]
    no = [None if f else x for x, f in zip(leaves, flags, strict=True)]
    return jtu.tree_unflatten(treedef, yes), jtu.tree_unflatten(treedef, no)


class Aux:
    """A PyTree with no leaves that carries `value` in its structure.

    Lets a function traced by JAX return arbitrary Python objects: they travel in the
    output's tree structure, so they survive JAX's tracing caches.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: Any) -> bool:
        return type(other) is Aux and static_equal(self.value, other.value)

    def __hash__(self) -> int:
        return hash(_hash_key(self.value))


# The Aux itself is the node's metadata, so tree structures compare with `Aux.__eq__`.
jtu.register_pytree_node(Aux, lambda a: ((), a), lambda a, _: a)


def _hash_key(value: Any) -> Any:
    leaves, treedef = jtu.tree_flatten(value)
    out = []
    for leaf in leaves:
        try:
            out.append(hash(leaf))
        except TypeError:
            out.append(id(leaf))
    return treedef, tuple(out)


def _leaf_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray | np.generic):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.all(a == b))
    if isinstance(a, jax.Array):
        return False  # never compare traced or device values by content here
    try:
        return bool(a == b)
    except Exception:
        return False


def static_equal(a: PyTree, b: PyTree) -> bool:
    """Whether two trees of static (non-traced) objects are equal: same structure and
    equal leaves. Never returns a traced value."""
    leaves_a, treedef_a = jtu.tree_flatten(a)
    leaves_b, treedef_b = jtu.tree_flatten(b)
    if treedef_a != treedef_b:
        return False
    return all(_leaf_equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True))


def struct_of(x: Any) -> Any:
    """`jax.ShapeDtypeStruct` for an array leaf; any other leaf unchanged."""
    if is_array(x):
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype)
    return x


def names_of(fun: Any) -> str:
    """How to show the user's callable in messages: its `__qualname__` or type."""
    name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None)
    if name is None:
        name = type(fun).__qualname__ + " instance"
    return f"`{name}`"


def check_no_kwargs(names: Sequence[str], kwargs: dict[str, Any], where: str) -> None:
    """Raises for keyword arguments removed in Equinox 0.10 (`names`)."""
    for name in names:
        if name in kwargs:
            raise ValueError(
                f"ecliptic.{where} got the keyword argument `{name}=`, which was "
                "removed in Equinox 0.10. Pass the function as the first argument "
                f"and use the filtered transformation's own options instead of "
                f"`{name}=`."
            )
