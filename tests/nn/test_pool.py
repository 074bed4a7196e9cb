"""Pooling: `Pool`, `AvgPool*d`, `MaxPool*d`, `AdaptivePool`, `Adaptive*Pool*d`."""

import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax import lax

import ecliptic.nn as enn


def _np_pool1d(x, k, s, reduce):
    n = (x.shape[1] - k) // s + 1
    return np.stack([reduce(x[:, i * s : i * s + k], axis=1) for i in range(n)], 1)


@pytest.mark.parametrize("k,s", [(2, 1), (3, 2), (2, 2)])
def test_max_and_avg_1d_match_direct_computation(getkey, k, s):
    x = np.asarray(jr.normal(getkey(), (2, 9)))
    np.testing.assert_allclose(
        enn.MaxPool1d(k, s)(x), _np_pool1d(x, k, s, np.max), rtol=1e-6
    )
    np.testing.assert_allclose(
        enn.AvgPool1d(k, s)(x), _np_pool1d(x, k, s, np.mean), rtol=1e-5
    )


def test_stride_defaults_to_one():
    assert enn.MaxPool2d(2).stride == (1, 1)
    assert enn.AvgPool3d(2)(jnp.ones((1, 4, 4, 4))).shape == (1, 3, 3, 3)


def test_avg_counts_padding_as_zeros():
    y = enn.AvgPool1d(2, 2, padding=1)(jnp.ones((1, 4)))
    np.testing.assert_allclose(y, [[0.5, 1.0, 0.5]])


def test_max_pads_with_minus_infinity():
    y = enn.MaxPool1d(2, 2, padding=1)(-jnp.ones((1, 4)))
    np.testing.assert_allclose(y, [[-1.0, -1.0, -1.0]])


def test_use_ceil_adds_a_window():
    x = jnp.arange(5.0)[None]
    assert enn.MaxPool1d(2, 2)(x).shape == (1, 2)
    np.testing.assert_allclose(enn.MaxPool1d(2, 2, use_ceil=True)(x), [[1, 3, 4]])
    assert enn.MaxPool1d(2, 2, use_ceil=True)(jnp.ones((1, 4))).shape == (1, 2)


def test_generic_pool_with_custom_operation():
    pool = enn.Pool(1.0, lax.mul, 1, 2, stride=2)
    np.testing.assert_allclose(pool(jnp.array([[1.0, 2.0, 3.0, 4.0]])), [[2, 12]])


def test_padding_forms():
    assert enn.MaxPool2d(2, padding=(1, 0)).padding == ((1, 1), (0, 0))
    assert enn.MaxPool2d(2, padding=((0, 1), (1, 0))).padding == ((0, 1), (1, 0))


@pytest.mark.parametrize("padding", [(1, 2, 3), "SAME", [(1, 2), 1]])
def test_bad_padding(padding):
    with pytest.raises(
        ValueError, match="`padding` must be an int, or a sequence of 2"
    ):
        enn.MaxPool2d(2, padding=padding)


def test_padding_larger_than_kernel():
    with pytest.raises(
        ValueError, match=r"`padding` \(3, 3\) is larger than the kernel"
    ):
        enn.AvgPool1d(2, padding=3)
    pool = enn.MaxPool1d(1, 3, use_ceil=True)
    with pytest.raises(ValueError, match="with use_ceil=True, the padding"):
        pool(jnp.ones((1, 5)))


def test_bad_kernel_length():
    with pytest.raises(ValueError, match="`kernel_size` must be an int or a sequence"):
        enn.MaxPool2d((2, 2, 2))


def test_shape_errors():
    pool = enn.MaxPool2d(2)
    with pytest.raises(ValueError, match=re.escape("jax.vmap(layer)(x)")):
        pool(jnp.ones((5, 3, 8, 8)))
    with pytest.raises(ValueError, match="must have 3 axes, not 2"):
        pool(jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="spatial axis 2 has size 1.*kernel size 2"):
        pool(jnp.ones((1, 4, 1)))


def test_pools_have_the_equinox_leaves():
    assert jax.tree.leaves(enn.AvgPool1d(2)) == [0, lax.add]
    assert jax.tree.leaves(enn.MaxPool1d(2))[1] is lax.max


def test_adaptive_pool_shapes_and_values():
    x = jnp.arange(10.0).reshape(1, 10)
    # 10 into 3: windows of 4, 3, 3 entries.
    np.testing.assert_allclose(enn.AdaptiveMaxPool1d(3)(x), [[3, 6, 9]])
    np.testing.assert_allclose(enn.AdaptiveAvgPool1d(3)(x), [[1.5, 5, 8]])
    np.testing.assert_allclose(enn.AdaptiveAvgPool1d(5)(x), [[0.5, 2.5, 4.5, 6.5, 8.5]])
    x2 = jr.normal(jr.PRNGKey(0), (2, 7, 6))
    y = enn.AdaptiveAvgPool2d((1, 1))(x2)
    np.testing.assert_allclose(y[:, 0, 0], jnp.mean(x2, axis=(1, 2)), rtol=1e-5)
    assert enn.AdaptiveMaxPool3d(2)(jnp.ones((1, 3, 4, 5))).shape == (1, 2, 2, 2)
    assert enn.AdaptiveMaxPool2d(4)(x2).shape == (2, 4, 4)


def test_adaptive_pool_generic():
    pool = enn.AdaptivePool((2,), 1, jnp.sum)
    np.testing.assert_allclose(pool(jnp.ones((1, 5))), [[3.0, 2.0]])


def test_adaptive_pool_errors():
    with pytest.raises(ValueError, match="`target_shape` must be an int or a sequence"):
        enn.AdaptiveAvgPool2d((2, 2, 2))
    with pytest.raises(ValueError, match="must be at least 1"):
        enn.AdaptiveAvgPool1d(0)
    pool = enn.AdaptiveAvgPool2d(4)
    with pytest.raises(ValueError, match=r"at least the target size \(4, 4\)"):
        pool(jnp.ones((1, 3, 8)))
    with pytest.raises(ValueError, match=re.escape("jax.vmap(layer)(x)")):
        pool(jnp.ones((2, 1, 8, 8)))


def test_use_ceil_padding_counts_towards_the_kernel():
    # Without ceil the 2 entries cannot hold a window of 3; ceil pads to 4.
    pool = enn.MaxPool1d(3, 2, use_ceil=True)
    np.testing.assert_allclose(pool(jnp.array([[1.0, 2.0]])), [[2.0]])
    with pytest.raises(
        ValueError, match="padded to 2, which is smaller than the kernel"
    ):
        enn.MaxPool1d(3, 2)(jnp.ones((1, 2)))
