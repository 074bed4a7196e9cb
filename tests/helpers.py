"""Helpers shared by the tests in `tests/` and its subfolders.

Import them one way: `from .helpers import ...` in `tests/`, `from ..helpers import
...` in a subfolder. Sections:

- small models (`Linear`, `Stack`, `Affine`, `MLP`) and their builders;
- trace counting and tree comparison;
- hypothesis strategies for PyTrees (`pytrees` for the tree tools, `trees` with
  bit-exact leaves for serialisation);
- `xla_flags`, for tests that start a process of their own.
"""

from __future__ import annotations

import functools as ft
import os
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import ml_dtypes
import numpy as np

from ecliptic import field, Module, tree_equal


# ---------------------------------------------------------------------------------
# Small models.
# ---------------------------------------------------------------------------------

# Layers of a "big" `Stack` (two array leaves each). The flatten memo only keeps
# Modules of at least `MEMO_MIN_NODES` PyTree nodes (8 now; smaller ones are cheaper
# to walk), and small memoised ones are also held by an identity cell, so the memo
# tests use stacks this deep (beyond both).
MEMO_DEPTH = 24


class Linear(Module):
    """`weight @ x + bias`: two array leaves, a static name and a static size."""

    weight: jax.Array
    bias: jax.Array
    name: str = field(static=True, default="lin")
    size: int = field(static=True, default=2)

    def __call__(self, x):
        return self.weight @ x + self.bias

    def scaled(self, x, k):
        return k * (self.weight @ x)


def linear(getkey, n: int = 3) -> Linear:
    """A random `Linear(n, n)`."""
    return Linear(
        jax.random.normal(getkey(), (n, n)), jax.random.normal(getkey(), (n,))
    )


class Stack(Module):
    """Layers in a *list* (mutable in place), applied in turn, and anything else in
    `extra`."""

    layers: list
    extra: Any = None

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def stack(getkey, depth: int = MEMO_DEPTH, extra: Any = None) -> Stack:
    """A `Stack` of `depth` random `Linear(3, 3)` layers (scaled down, so that deep
    stacks stay of order one)."""
    layers = [linear(getkey) for _ in range(depth)]
    layers = [Linear(w.weight * 0.3, w.bias) for w in layers]
    return Stack(layers, extra)


class Affine(Module):
    """`y = activation(weight @ x + bias)`: arrays mixed with a function, an int and a
    static flag, like a real layer."""

    weight: jax.Array
    bias: jax.Array
    activation: Callable
    size: int
    use_bias: bool = field(static=True, default=True)

    def __call__(self, x):
        y = self.weight @ x
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)


def make_affine(key, n_in: int = 3, n_out: int = 2) -> Affine:
    """A random `Affine` from `n_in` to `n_out` features, with `tanh`."""
    wkey, bkey = jr.split(key)
    weight = jr.normal(wkey, (n_out, n_in))
    bias = jr.normal(bkey, (n_out,))
    return Affine(weight, bias, jnp.tanh, n_out)


class MLP(Module):
    layers: tuple
    activation: Any = jnp.tanh


def make_mlp(n: int = 3) -> MLP:
    """An `MLP` of `n` constant `Linear(2, 2)` layers (layer `i` filled with `i`)."""
    layers = tuple(
        Linear(jnp.full((2, 2), float(i)), jnp.full((2,), float(i))) for i in range(n)
    )
    return MLP(layers)


# ---------------------------------------------------------------------------------
# Trace counting and tree comparison.
# ---------------------------------------------------------------------------------


def counted(fn):
    """Wraps `fn` so that every trace (every call of the wrapper) appends to
    `wrapper.traces`."""
    traces = []

    @ft.wraps(fn)
    def wrapper(*args, **kwargs):
        traces.append(None)
        return fn(*args, **kwargs)

    wrapper.traces = traces
    return wrapper


def is_array_leaf(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


def array_leaves(tree: Any) -> list:
    """The array leaves of `tree`, in flatten order."""
    return [x for x in jtu.tree_leaves(tree) if is_array_leaf(x)]


def assert_same_tree(got: Any, want: Any, rtol: float = 1e-5) -> None:
    """`got` and `want` have the same treedef (node types, static fields, dict keys),
    the same leaf types, equal non-array leaves and close array leaves."""
    got_leaves, got_def = jtu.tree_flatten(got)
    want_leaves, want_def = jtu.tree_flatten(want)
    assert got_def == want_def, (got_def, want_def)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        if is_array_leaf(w):
            assert is_array_leaf(g), (g, w)
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol)
        else:
            assert type(g) is type(w) and g == w, (g, w)


def _leaf_bytes(x: Any) -> tuple:
    arr = np.asarray(x)
    return (arr.shape, arr.dtype, arr.tobytes())


def assert_trees_identical(a: Any, b: Any) -> None:
    """Same structure, same leaf types, and array leaves equal bit for bit (so NaNs
    and signed zeros count), dtypes and shapes included."""
    leaves_a, def_a = jtu.tree_flatten_with_path(a)
    leaves_b, def_b = jtu.tree_flatten_with_path(b)
    assert def_a == def_b, f"structures differ: {def_a} vs {def_b}"
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        where = jtu.keystr(path)
        assert type(x) is type(y), f"{where}: type {type(x)} vs {type(y)}"
        if isinstance(x, (jax.Array, np.ndarray, np.generic)):
            assert _leaf_bytes(x) == _leaf_bytes(y), f"{where}: {x!r} vs {y!r}"
        elif isinstance(x, (float, complex)):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), where
        else:
            assert x == y, f"{where}: {x!r} vs {y!r}"


def same(a: Any, b: Any) -> bool:
    """Structure, leaf types and values are all equal."""
    return tree_equal(a, b, typematch=True) is True


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


def abstract(tree: Any) -> Any:
    """`tree` with its JAX arrays replaced by `jax.ShapeDtypeStruct`s."""
    return jax.tree.map(
        lambda x: (
            jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x
        ),
        tree,
    )


# ---------------------------------------------------------------------------------
# Hypothesis strategies: `pytrees` for the filter / tree-tool tests.
# ---------------------------------------------------------------------------------


def _small_array(seed: int) -> Any:
    if seed % 3 == 0:
        return jnp.full((2,), float(seed), dtype=jnp.float32)
    if seed % 3 == 1:
        return np.full((1, 2), seed, dtype=np.int32)
    return np.float32(seed)


_tree_leaves = st.one_of(
    st.integers(-5, 5),
    st.floats(-2.0, 2.0, allow_nan=False),
    st.none(),
    st.sampled_from(["a", "b", jnp.tanh, ()]),
    st.integers(0, 8).map(_small_array),
)


class Pair(Module):
    """A Module node for generated trees: two children and a static tag."""

    a: Any
    b: Any
    tag: str = field(static=True, default="p")


def _children(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
        st.builds(Pair, inner, inner, st.sampled_from("pq")),
    )


pytrees = st.recursive(_tree_leaves, _children, max_leaves=10)


# ---------------------------------------------------------------------------------
# Hypothesis strategies: `trees` with bit-exact leaves, for the serialisation tests.
# ---------------------------------------------------------------------------------


class Node(Module):
    """A small Module for generated trees: two children and a static tag."""

    left: Any
    right: Any
    tag: str = field(static=True, default="node")


# Every bit pattern of these is a valid value, so random bytes round trip exactly.
_JAX_DTYPES = [
    jnp.float32,
    jnp.float16,
    jnp.bfloat16,
    jnp.int32,
    jnp.int8,
    jnp.uint8,
    jnp.uint32,
    jnp.complex64,
    jnp.float8_e4m3fn,
    jnp.float8_e5m2,
]
_NUMPY_DTYPES = [
    np.float64,
    np.float32,
    np.int64,
    np.int16,
    np.uint16,
    np.complex128,
    ml_dtypes.bfloat16,
]
_shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


def _raw_array(dtype: Any, shape: tuple, data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).view(dtype).reshape(shape)


@st.composite
def _random_array(draw: Any, dtypes: list) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(_shapes)
    if dtype == np.dtype(bool):
        size = int(np.prod(shape))
        values = draw(st.lists(st.booleans(), min_size=size, max_size=size))
        return np.array(values, dtype=bool).reshape(shape)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return _raw_array(dtype, shape, data)


jax_arrays = _random_array(_JAX_DTYPES + [bool]).map(jnp.asarray)
numpy_arrays = st.one_of(
    _random_array(_NUMPY_DTYPES + [bool]),
    _random_array(_NUMPY_DTYPES).map(np.asfortranarray),
)


@st.composite
def _numpy_scalar(draw: Any) -> np.generic:
    dtypes = [np.float32, np.int16, np.uint8, ml_dtypes.bfloat16, np.complex64]
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    data = draw(st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize))
    return _raw_array(dtype, (), data)[()]


numpy_scalars = st.one_of(_numpy_scalar(), st.booleans().map(np.bool_))
python_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
)
other_leaves = st.one_of(st.text(max_size=5), st.none(), st.just(jnp.tanh))
_serial_leaves = st.one_of(
    jax_arrays, numpy_arrays, numpy_scalars, python_scalars, other_leaves
)


def _node(children: tuple) -> Any:
    return Node(children[0], children[1])


trees = st.recursive(
    _serial_leaves,
    lambda inner: st.one_of(
        st.tuples(inner, inner),
        st.lists(inner, max_size=3),
        st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3),
        st.tuples(inner, inner).map(_node),
    ),
    max_leaves=8,
)


# ---------------------------------------------------------------------------------
# Subprocesses.


def xla_flags(devices: int | None = None) -> str:
    """`XLA_FLAGS` for a subprocess: this process's flags (the suite's fast-compile
    flag, see `conftest.py`) without any device count, plus `devices` simulated CPU
    devices when given."""
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(flags)
