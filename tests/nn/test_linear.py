"""`ecliptic.nn.Linear` and `ecliptic.nn.Identity`."""

import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic.nn as enn


def test_shapes_and_default_dtype(getkey):
    lin = enn.Linear(4, 3, key=getkey())
    assert lin.weight.shape == (3, 4) and lin.bias.shape == (3,)
    assert lin.weight.dtype == jnp.float32 and lin.bias.dtype == jnp.float32
    assert lin(jnp.ones(4)).shape == (3,)


def test_init_is_uniform_within_fan_in_bound(getkey):
    lin = enn.Linear(16, 200, key=getkey())
    bound = 1 / 4
    for p in (lin.weight, lin.bias):
        assert float(jnp.max(jnp.abs(p))) <= bound
        assert float(jnp.max(jnp.abs(p))) > 0.9 * bound  # spread over the interval
    assert not np.allclose(lin.weight[0, :3], lin.bias[:3])  # different keys


def test_same_key_same_weights_different_key_different(getkey):
    key = getkey()
    a, b = enn.Linear(3, 2, key=key), enn.Linear(3, 2, key=key)
    c = enn.Linear(3, 2, key=getkey())
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)


@settings(max_examples=20, deadline=None)
@given(
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 6),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_computes_weight_at_x_plus_bias(n_in, n_out, bias, seed):
    k1, k2 = jr.split(jr.PRNGKey(seed))
    lin = enn.Linear(n_in, n_out, use_bias=bias, key=k1)
    x = jr.normal(k2, (n_in,))
    want = np.asarray(lin.weight) @ np.asarray(x)
    if bias:
        want = want + np.asarray(lin.bias)
    else:
        assert lin.bias is None
    np.testing.assert_allclose(lin(x), want, rtol=1e-5, atol=1e-6)


def test_scalar_in_and_out(getkey):
    lin = enn.Linear("scalar", "scalar", key=getkey())
    assert lin.weight.shape == (1, 1) and lin.bias.shape == (1,)
    y = lin(jnp.array(2.0))
    assert y.shape == ()
    np.testing.assert_allclose(y, lin.weight[0, 0] * 2.0 + lin.bias[0], rtol=1e-6)
    assert enn.Linear("scalar", 3, key=getkey())(jnp.array(1.0)).shape == (3,)
    assert enn.Linear(3, "scalar", key=getkey())(jnp.ones(3)).shape == ()


def test_zero_in_features(getkey):
    lin = enn.Linear(0, 2, key=getkey())
    assert lin(jnp.zeros(0)).shape == (2,)
    assert float(jnp.max(jnp.abs(lin.bias))) <= 1.0


def test_dtype_argument(getkey):
    lin = enn.Linear(2, 2, dtype=jnp.bfloat16, key=getkey())
    assert lin.weight.dtype == jnp.bfloat16
    assert lin(jnp.ones(2, jnp.bfloat16)).dtype == jnp.bfloat16
    c = enn.Linear(2, 2, dtype=jnp.complex64, key=getkey())
    assert c.weight.dtype == jnp.complex64 and float(jnp.abs(c.weight.imag).max()) > 0


@pytest.mark.parametrize("use_bias", [True, False])
def test_matrix_input_raises_instead_of_broadcasting(getkey, use_bias):
    lin = enn.Linear(16, 16, use_bias=use_bias, key=getkey())
    match = (
        re.escape(
            "ecliptic.nn.Linear(in_features=16, out_features=16) expected `x` of "
            "shape (16,), but got shape (16, 64)."
        )
        + ".*in_features=16, not 64.*"
        + re.escape("jax.vmap(layer, in_axes=1)(x)")
    )
    with pytest.raises(ValueError, match=match):
        lin(jnp.ones((16, 64)))
    with pytest.raises(ValueError, match="single example"):
        jax.jit(lambda x: lin(x))(jnp.ones((16, 64)))


def test_batch_axes_need_vmaps(getkey):
    lin = enn.Linear(64, 16, key=getkey())
    x = jnp.ones((3, 16, 64))
    with pytest.raises(ValueError, match=re.escape("jax.vmap(jax.vmap(layer))(x)")):
        lin(x)
    assert jax.vmap(jax.vmap(lin))(x).shape == (3, 16, 16)


def test_wrong_size_and_scalar_errors(getkey):
    lin = enn.Linear(4, 2, key=getkey())
    with pytest.raises(ValueError, match="The only axis must be in_features=4, not 5"):
        lin(jnp.ones(5))
    s = enn.Linear("scalar", 2, key=getkey())
    with pytest.raises(ValueError, match=re.escape("of shape (), but got shape (3,)")):
        s(jnp.ones(3))


@pytest.mark.parametrize("bad", [1.5, "vector", None, True])
def test_bad_feature_type(getkey, bad):
    with pytest.raises(TypeError, match="`in_features` must be a non-negative int"):
        enn.Linear(bad, 2, key=getkey())


def test_negative_features(getkey):
    with pytest.raises(ValueError, match=r"`out_features` must be .* but got -1"):
        enn.Linear(2, -1, key=getkey())


def test_identity():
    ident = enn.Identity(1, 2, foo="bar")
    x = jnp.arange(3)
    assert enn.Identity()(x, key=jr.PRNGKey(0)) is x
    assert ident("anything") == "anything"
    assert jax.tree.leaves(ident) == []


def test_mixed_dtypes_under_strict_promotion(getkey):
    lin = enn.Linear(2, 2, key=getkey())
    with pytest.raises(TypeError, match="has float32 parameters, but got `x` of dtype"):
        lin(jnp.ones(2, jnp.bfloat16))
    # What JAX (and so Equinox) raises here, so code written for it keeps catching it.
    with pytest.raises(jax.dtypes.TypePromotionError):
        lin(jnp.ones(2, jnp.bfloat16))
    with jax.numpy_dtype_promotion("standard"):
        assert lin(jnp.ones(2, jnp.bfloat16)).dtype == jnp.float32


@pytest.mark.parametrize("x", [jnp.ones(3), jnp.ones((4, 2))])
def test_shape_error_is_caught_as_equinox_code_expects(getkey, x):
    # Equinox's Linear fails in `jnp.matmul` with a TypeError; ecliptic's check is
    # a ShapeError, which is both that and a ValueError.
    lin = enn.Linear(2, 2, key=getkey())
    with pytest.raises(TypeError):
        lin(x)
    with pytest.raises(ValueError):
        lin(x)
