import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic.nn as nn


def _ref_layer_norm(x, eps):
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / np.sqrt(x.var() + eps)


@settings(max_examples=10, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_layer_norm_matches_formula(shape, seed):
    x = jr.normal(jr.PRNGKey(seed), tuple(shape)) * 3 + 1
    ln = nn.LayerNorm(shape)
    np.testing.assert_allclose(ln(x), _ref_layer_norm(x, 1e-5), rtol=1e-4, atol=1e-4)


def test_layer_norm_affine(getkey):
    ln = nn.LayerNorm(4, use_weight=True, use_bias=True)
    assert ln.weight.shape == (4,) and ln.bias.shape == (4,)
    x = jr.normal(getkey(), (4,))
    w, b = jnp.arange(4.0), jnp.ones(4)
    params = jax.tree_util.tree_leaves(ln)
    assert len(params) == 2
    ln2 = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(ln), [w, b])
    np.testing.assert_allclose(ln2(x), _ref_layer_norm(x, 1e-5) * w + b, rtol=1e-5)
    bare = nn.LayerNorm(4, use_weight=False, use_bias=False)
    assert bare.weight is None and bare.bias is None
    assert jax.tree_util.tree_leaves(bare) == []


def test_layer_norm_elementwise_affine_deprecated():
    with pytest.warns(UserWarning, match="elementwise_affine"):
        ln = nn.LayerNorm(3, elementwise_affine=False)
    assert ln.weight is None and ln.bias is None


@pytest.mark.parametrize("cls", [nn.LayerNorm, nn.RMSNorm])
def test_shape_errors(cls):
    layer = cls((8,))
    name = cls.__name__
    with pytest.raises(
        ValueError,
        match=rf"ecliptic.nn.{name}\(shape=\(8,\)\) expected `x` of shape \(8,\), but "
        r"got shape \(4, 8\). .*`jax.vmap\(layer\)\(x\)`",
    ):
        layer(jnp.zeros((4, 8)))
    with pytest.raises(ValueError, match=r"The only axis must be 8, not 7"):
        layer(jnp.zeros(7))


@pytest.mark.parametrize("cls", [nn.LayerNorm, nn.RMSNorm])
def test_state_passthrough(cls):
    layer = cls(3)
    state = nn.State(layer)
    out, state2 = layer(jnp.arange(3.0), state)
    assert state2 is state
    np.testing.assert_allclose(out, layer(jnp.arange(3.0)))


@pytest.mark.parametrize("cls", [nn.LayerNorm, nn.RMSNorm])
def test_low_precision_input(cls):
    layer = cls(16)
    x = jr.normal(jr.PRNGKey(0), (16,)) * 100
    out = layer(x.astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), layer(x), atol=5e-2)


def test_rms_norm_formula(getkey):
    x = jr.normal(getkey(), (3, 5))
    rms = nn.RMSNorm((3, 5), use_bias=False)
    expected = x / jnp.sqrt(jnp.mean(x**2) + 1e-5)
    np.testing.assert_allclose(rms(x), expected, rtol=1e-5)
    assert nn.RMSNorm(5).bias is not None  # bias on by default, as in Equinox
    assert nn.RMSNorm(5).weight.dtype == jnp.float32


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_norm_formula(groups, getkey):
    x = jr.normal(getkey(), (4, 3, 2))
    gn = nn.GroupNorm(groups, 4)
    y = np.asarray(x).reshape(groups, -1)
    ref = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(gn(x), ref.reshape(4, 3, 2), rtol=1e-4, atol=1e-5)
    assert gn.weight.shape == (4,)


def test_group_norm_channelwise_affine(getkey):
    x = jr.normal(getkey(), (2, 3))
    gn = nn.GroupNorm(1, 2)
    gn = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(gn), [jnp.array([1.0, 2.0]), jnp.array([0.0, 5.0])]
    )
    base = nn.GroupNorm(1, channelwise_affine=False)(x)
    np.testing.assert_allclose(gn(x)[1], base[1] * 2 + 5, rtol=1e-5)


def test_group_norm_init_errors():
    with pytest.raises(
        ValueError, match=r"expected `groups` to divide `channels`, but 6 % 4 = 2"
    ):
        nn.GroupNorm(4, 6)
    with pytest.raises(
        ValueError, match=r"expected `channels` when `channelwise_affine"
    ):
        nn.GroupNorm(2)


def test_group_norm_call_errors():
    gn = nn.GroupNorm(2, 4)
    with pytest.raises(ValueError, match=r"Axis 0 must be channels=4, not 8"):
        gn(jnp.zeros((8, 4, 3)))
    with pytest.raises(
        ValueError, match=r"expected `x` of shape \(4,\), but got shape \(\)"
    ):
        gn(jnp.zeros(()))
    free = nn.GroupNorm(2, channelwise_affine=False)
    with pytest.raises(
        ValueError, match=r"divisible by groups=2, but got shape \(3, 5\)"
    ):
        free(jnp.zeros((3, 5)))


def test_under_vmap_and_jit(getkey):
    ln = nn.LayerNorm(6)
    x = jr.normal(getkey(), (4, 6))
    out = jax.jit(jax.vmap(ln))(x)
    np.testing.assert_allclose(out.mean(axis=1), jnp.zeros(4), atol=1e-5)
