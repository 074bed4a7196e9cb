"""Helpers for the serialisation tests: exact (bitwise) tree comparison."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import ml_dtypes
import numpy as np

from ecliptic import field, Module


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


# -- hypothesis strategies for PyTrees with many kinds of leaves --------------------


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
def _array(draw: Any, dtypes: list) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(_shapes)
    if dtype == np.dtype(bool):
        values = draw(
            st.lists(
                st.booleans(),
                min_size=int(np.prod(shape)),
                max_size=int(np.prod(shape)),
            )
        )
        return np.array(values, dtype=bool).reshape(shape)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return _raw_array(dtype, shape, data)


def _fortran(x: np.ndarray) -> np.ndarray:
    return np.asfortranarray(x)


jax_arrays = _array(_JAX_DTYPES + [bool]).map(jnp.asarray)
numpy_arrays = st.one_of(
    _array(_NUMPY_DTYPES + [bool]), _array(_NUMPY_DTYPES).map(_fortran)
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
leaves = st.one_of(
    jax_arrays, numpy_arrays, numpy_scalars, python_scalars, other_leaves
)


def _node(children: tuple) -> Any:
    return Node(children[0], children[1])


trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(inner, inner),
        st.lists(inner, max_size=3),
        st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3),
        st.tuples(inner, inner).map(_node),
    ),
    max_leaves=8,
)


def abstract(tree: Any) -> Any:
    """`tree` with its JAX arrays replaced by `jax.ShapeDtypeStruct`s."""
    return jax.tree.map(
        lambda x: (
            jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x
        ),
        tree,
    )
