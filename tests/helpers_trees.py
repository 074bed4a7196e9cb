"""Hypothesis strategies and small models for the filter / tree-tool tests."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from hypothesis import strategies as st

import ecliptic as ec


def _array(seed: int) -> Any:
    if seed % 3 == 0:
        return jnp.full((2,), float(seed), dtype=jnp.float32)
    if seed % 3 == 1:
        return np.full((1, 2), seed, dtype=np.int32)
    return np.float32(seed)


leaves = st.one_of(
    st.integers(-5, 5),
    st.floats(-2.0, 2.0, allow_nan=False),
    st.none(),
    st.sampled_from(["a", "b", jnp.tanh, ()]),
    st.integers(0, 8).map(_array),
)


class Pair(ec.Module):
    """A Module node for generated trees: two children and a static tag."""

    a: Any
    b: Any
    tag: str = ec.field(static=True, default="p")


def _children(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
        st.builds(Pair, inner, inner, st.sampled_from("pq")),
    )


pytrees = st.recursive(leaves, _children, max_leaves=10)


class Linear(ec.Module):
    """A Linear-like Module: two array leaves and a static size."""

    weight: Any
    bias: Any
    size: int = ec.field(static=True, default=2)


class MLP(ec.Module):
    layers: tuple
    activation: Any = jnp.tanh


def make_mlp(n: int = 3) -> MLP:
    layers = tuple(
        Linear(jnp.full((2, 2), float(i)), jnp.full((2,), float(i))) for i in range(n)
    )
    return MLP(layers)


def getter(path: tuple) -> Any:
    """A `where` function that follows a JAX key path."""

    def where(tree: Any) -> Any:
        for key in path:
            if isinstance(key, jtu.SequenceKey):
                tree = tree[key.idx]
            elif isinstance(key, jtu.DictKey):
                tree = tree[key.key]
            elif isinstance(key, jtu.GetAttrKey):
                tree = getattr(tree, key.name)
            else:
                raise NotImplementedError(key)
        return tree

    return where


def same(a: Any, b: Any) -> bool:
    """Structure, leaf types and values are all equal."""
    return ec.tree_equal(a, b, typematch=True) is True
