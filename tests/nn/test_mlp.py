"""`ecliptic.nn.MLP`, with and without `scan=True`."""

import re

import jax
import jax.nn as jnn
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as enn

from .helpers import grad_inexact


def _reference(mlp, x):
    """The MLP written out by hand, from its Linear layers."""
    layers = list(mlp.layers)
    if mlp.scan and mlp.depth > 0:
        first, hidden, last = layers
        layers = [first]
        for i in range(mlp.depth - 1):
            layers.append(jax.tree.map(lambda a, i=i: a[i], hidden))
        layers.append(last)
    for layer in layers[:-1]:
        x = jnn.relu(layer.weight @ x + layer.bias)
    return layers[-1].weight @ x + layers[-1].bias


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("scan", [False, True])
def test_layers_and_output(getkey, depth, scan):
    mlp = enn.MLP(3, 2, 5, depth, scan=scan, key=getkey())
    x = jr.normal(getkey(), (3,))
    if depth == 0:
        assert len(mlp.layers) == 1 and mlp.layers[0].weight.shape == (2, 3)
    elif scan:
        assert [lay.weight.shape for lay in mlp.layers] == [
            (5, 3),
            (depth - 1, 5, 5),
            (2, 5),
        ]
    else:
        shapes = [(5, 3)] + [(5, 5)] * (depth - 1) + [(2, 5)]
        assert [lay.weight.shape for lay in mlp.layers] == shapes
    np.testing.assert_allclose(mlp(x), _reference(mlp, x), rtol=1e-5, atol=1e-6)


def test_scan_and_unrolled_agree_for_the_same_key(getkey):
    key = getkey()
    plain = enn.MLP(3, 2, 4, 4, key=key)
    scanned = enn.MLP(3, 2, 4, 4, scan=True, key=key)
    hidden = scanned.layers[1]
    for i, layer in enumerate(plain.layers[1:-1]):
        assert np.array_equal(layer.weight, hidden.weight[i])
    x = jr.normal(getkey(), (3,))
    np.testing.assert_allclose(plain(x), scanned(x), rtol=1e-5, atol=1e-6)


def test_biases_flags(getkey):
    mlp = enn.MLP(2, 2, 3, 2, use_bias=False, use_final_bias=True, key=getkey())
    assert [lay.bias is None for lay in mlp.layers] == [True, True, False]


def test_scalar_in_and_out(getkey):
    mlp = enn.MLP("scalar", "scalar", 4, 2, final_activation=jnn.tanh, key=getkey())
    y = mlp(jnp.array(0.5))
    assert y.shape == () and -1 <= float(y) <= 1


def test_final_activation_is_applied_per_neuron(getkey):
    normalise = lambda x: x / jnp.sum(x)
    mlp = enn.MLP(2, 3, 4, 1, final_activation=normalise, key=getkey())
    # Applied to each neuron's scalar on its own, so the result is 1 (as in Equinox).
    np.testing.assert_allclose(mlp(jnp.ones(2)), jnp.ones(3), rtol=1e-6)


def test_learnt_activation_gets_one_copy_per_neuron(getkey):
    prelu = enn.PReLU(0.1)
    mlp = enn.MLP(2, 3, 4, 2, prelu, final_activation=prelu, key=getkey())
    assert mlp.activation.negative_slope.shape == (2, 4)
    assert mlp.final_activation.negative_slope.shape == (3,)
    s = enn.MLP(2, "scalar", 4, 2, final_activation=prelu, key=getkey())
    assert s.final_activation.negative_slope.shape == ()
    scanned = enn.MLP(2, 3, 4, 3, activation=enn.PReLU(), scan=True, key=getkey())
    assert scanned.activation.negative_slope.shape == (3, 4)
    grads = grad_inexact(lambda m: jnp.sum(m(-jnp.ones(2)) ** 2), scanned)
    assert (3, 4) in [g.shape for g in grads]


def test_default_activation_is_relu(getkey):
    mlp = enn.MLP(2, 2, 3, 1, key=getkey())
    assert mlp.activation is jnn.relu


def test_shape_error_names_the_mlp(getkey):
    mlp = enn.MLP(4, 2, 8, 2, key=getkey())
    subject = "ecliptic.nn.MLP(in_size=4, out_size=2, width_size=8, depth=2)"
    with pytest.raises(ValueError, match=re.escape(subject)):
        mlp(jnp.ones((10, 4)))
    with pytest.raises(ValueError, match="The only axis must be in_size=4, not 3"):
        mlp(jnp.ones(3))
    s = enn.MLP("scalar", 2, 8, 1, key=getkey())
    with pytest.raises(ValueError, match=re.escape("jax.vmap(layer)(x)")):
        s(jnp.ones(3))
    assert jax.vmap(mlp)(jnp.ones((10, 4))).shape == (10, 2)


@pytest.mark.parametrize(
    "name,kwargs", [("width_size", {"width_size": -1}), ("depth", {"depth": 1.5})]
)
def test_bad_sizes(getkey, name, kwargs):
    args = {"in_size": 2, "out_size": 2, "width_size": 3, "depth": 1} | kwargs
    with pytest.raises(ValueError, match=f"`{name}` must be a non-negative int"):
        enn.MLP(**args, key=getkey())
    with pytest.raises(TypeError, match="`in_size` must be a non-negative int"):
        enn.MLP("x", 2, 3, 1, key=getkey())
