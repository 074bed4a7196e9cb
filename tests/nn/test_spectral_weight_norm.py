import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic.nn._misc import with_attr

from .helpers import linear


def test_spectral_norm_normalises(getkey):
    lin = linear(6, 5, key=getkey())
    sn, state = nn.make_with_state(nn.SpectralNorm)(
        lin, "weight", num_power_iterations=3, key=getkey()
    )
    x = jr.normal(getkey(), (6,))
    step = jax.jit(lambda x, s: sn(x, s))
    for _ in range(5):
        out, state = step(x, state)
    u, v = state.get(sn.uv_index)
    sigma = float(u @ lin.weight @ v)
    np.testing.assert_allclose(sigma, np.linalg.svd(lin.weight)[1][0], rtol=1e-4)
    expected = (lin.weight / sigma) @ x + lin.bias
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_spectral_norm_inference_keeps_state(getkey):
    lin = linear(4, 3, key=getkey())
    sn, state = nn.make_with_state(nn.SpectralNorm)(lin, "weight", key=getkey())
    before = jtu.tree_leaves(jtu.tree_map(lambda a: a, state))
    _, state2 = nn.inference_mode(sn)(jnp.ones(4), state)
    for a, b in zip(before, jtu.tree_leaves(state2), strict=True):
        np.testing.assert_array_equal(a, b)
    _, state3 = sn(jnp.ones(4), state2, inference=True)
    assert len(jtu.tree_leaves(state3)) == 2


def test_spectral_norm_gradient_stops_through_power_iteration(getkey):
    lin = linear(3, 3, key=getkey())
    sn, state = nn.make_with_state(nn.SpectralNorm)(lin, "weight", key=getkey())
    x = jr.normal(getkey(), (3,))
    _, new_state = sn(x, jtu.tree_map(lambda a: a, state))
    u, v = new_state.get(sn.uv_index)

    def loss(w):
        layer = with_attr(sn, "layer", with_attr(sn.layer, "weight", w))
        out, _ = layer(x, jtu.tree_map(lambda a: a, state))
        return jnp.sum(out)

    def manual(w):  # u, v treated as constants
        return jnp.sum((w / (u @ w @ v)) @ x + lin.bias)

    np.testing.assert_allclose(
        jax.grad(loss)(lin.weight), jax.grad(manual)(lin.weight), rtol=1e-4, atol=1e-6
    )


def test_spectral_norm_errors(getkey):
    lin = linear(3, 2, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"expected `layer.bias` to be an array with at least 2 axes, but got "
        r"shape \(2,\)",
    ):
        nn.SpectralNorm(lin, "bias", key=getkey())
    with pytest.raises(ValueError, match=r"but got an object of type NoneType"):
        nn.SpectralNorm(lin, "nope", key=getkey())


def test_weight_norm(getkey):
    lin = linear(4, 3, key=getkey())
    wn = nn.WeightNorm(lin)
    assert wn.g.shape == (3, 1)
    np.testing.assert_allclose(
        wn.g[:, 0], np.linalg.norm(lin.weight, axis=1), rtol=1e-6
    )
    x = jr.normal(getkey(), (4,))
    np.testing.assert_allclose(wn(x), lin(x), rtol=1e-5, atol=1e-6)
    doubled = jtu.tree_unflatten(
        jtu.tree_structure(wn), [lin.weight, lin.bias, 2 * wn.g]
    )
    np.testing.assert_allclose(
        doubled(x) - lin.bias, 2 * (lin(x) - lin.bias), rtol=1e-5, atol=1e-6
    )


def test_weight_norm_axes(getkey):
    lin = linear(4, 3, key=getkey())
    full = nn.WeightNorm(lin, axis=None)
    assert full.g.shape == (1, 1)
    np.testing.assert_allclose(full.g[0, 0], np.linalg.norm(lin.weight), rtol=1e-6)
    cols = nn.WeightNorm(lin, axis=-1)
    assert cols.g.shape == (1, 4)
    with pytest.raises(ValueError, match=r"expected `axis` in \[-2, 2\) .* got axis=2"):
        nn.WeightNorm(lin, axis=2)
    with pytest.raises(ValueError, match=r"expected `layer.weights` to be an array"):
        nn.WeightNorm(lin, "weights")


def test_weight_norm_equal_instances_compare_equal(getkey):
    lin = linear(4, 3, key=getkey())
    a, b = nn.WeightNorm(lin), nn.WeightNorm(lin)
    assert jtu.tree_structure(a) == jtu.tree_structure(b)
    assert hash(jtu.tree_structure(a)) == hash(jtu.tree_structure(b))
    assert bool(a == b)
    traces = []

    @jax.jit
    def f(model_leaves):
        traces.append(1)
        return sum(jnp.sum(x) for x in model_leaves)

    f(jtu.tree_leaves(a))
    f(jtu.tree_leaves(b))
    assert len(traces) == 1
