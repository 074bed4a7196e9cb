import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic._module import Module

from .helpers import sgd_losses


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_gru_formula(getkey):
    cell = nn.GRUCell(3, 4, key=getkey())
    x, h = np.asarray(jr.normal(getkey(), (3,))), np.asarray(jr.normal(getkey(), (4,)))
    wi, wh = np.asarray(cell.weight_ih), np.asarray(cell.weight_hh)
    b, bn = np.asarray(cell.bias), np.asarray(cell.bias_n)
    gi, gh = np.split(wi @ x + b, 3), np.split(wh @ h, 3)
    r = _sigmoid(gi[0] + gh[0])
    z = _sigmoid(gi[1] + gh[1])
    n = np.tanh(gi[2] + r * (gh[2] + bn))
    np.testing.assert_allclose(cell(x, h), (1 - z) * n + z * h, rtol=1e-5, atol=1e-6)


def test_gru_params(getkey):
    cell = nn.GRUCell(3, 4, key=getkey())
    assert cell.weight_ih.shape == (12, 3) and cell.weight_hh.shape == (12, 4)
    assert cell.bias.shape == (12,) and cell.bias_n.shape == (4,)
    lim = 1 / np.sqrt(4)
    assert np.all(np.abs(np.asarray(cell.weight_ih)) <= lim)
    bare = nn.GRUCell(3, 4, use_bias=False, key=getkey())
    assert bare.bias is None and bare.bias_n is None
    assert bare(jnp.ones(3), jnp.zeros(4)).shape == (4,)
    c = nn.GRUCell(2, 2, dtype=jnp.complex64, key=getkey())
    assert c.weight_ih.dtype == jnp.complex64
    assert np.any(np.imag(np.asarray(c.weight_ih)) != 0)


def test_lstm_formula(getkey):
    cell = nn.LSTMCell(3, 2, key=getkey())
    x = np.asarray(jr.normal(getkey(), (3,)))
    h, c = np.asarray(jr.normal(getkey(), (2,))), np.asarray(jr.normal(getkey(), (2,)))
    lin = np.asarray(cell.weight_ih) @ x + np.asarray(cell.weight_hh) @ h
    i, f, g, o = np.split(lin + np.asarray(cell.bias), 4)
    c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h_new = _sigmoid(o) * np.tanh(c_new)
    out_h, out_c = cell(x, (h, c))
    np.testing.assert_allclose(out_h, h_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_c, c_new, rtol=1e-5, atol=1e-6)
    assert cell.weight_ih.shape == (8, 3)
    assert nn.LSTMCell(3, 2, use_bias=False, key=getkey()).bias is None


def test_shape_errors(getkey):
    gru = nn.GRUCell(3, 4, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"GRUCell\(input_size=3, hidden_size=4\) expected `input` of shape "
        r"\(3,\), but got shape \(5, 3\). .*`jax.vmap\(cell\)\(input\)`",
    ):
        gru(jnp.zeros((5, 3)), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"expected `hidden` of shape \(4,\)"):
        gru(jnp.zeros(3), jnp.zeros(3))
    lstm = nn.LSTMCell(3, 4, key=getkey())
    with pytest.raises(ValueError, match=r"expected `c` of shape \(4,\), but got"):
        lstm(jnp.zeros(3), (jnp.zeros(4), jnp.zeros((2, 4))))
    with pytest.raises(TypeError, match=r"expected `hidden` to be a pair `\(h, c\)`"):
        lstm(jnp.zeros(3), jnp.zeros(4))


class GRUModel(Module):
    cell: nn.GRUCell
    readout: jax.Array

    def __call__(self, xs):
        def step(h, x):
            return self.cell(x, h), None

        h, _ = jax.lax.scan(step, jnp.zeros(self.cell.hidden_size), xs)
        return self.readout @ h


def test_gru_scanned_trains(getkey):
    model = GRUModel(nn.GRUCell(2, 8, key=getkey()), jr.normal(getkey(), (8,)) / 3)
    xs = jr.normal(getkey(), (16, 6, 2))
    ys = jnp.sum(xs[:, :, 0], axis=1) / 3

    def loss(model, batch):
        x, y = batch
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    losses = sgd_losses(model, loss, (xs, ys), steps=20, lr=0.1)
    assert losses[-1] < 0.9 * losses[0]
