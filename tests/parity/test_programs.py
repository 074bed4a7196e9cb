"""Typical Equinox programs, run unchanged with `import equinox as eqx` and with
`import ecliptic as eqx`: same results."""

import functools as ft

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import ecliptic


LIBS = pytest.mark.parametrize("eqx", [equinox, ecliptic], ids=["equinox", "ecliptic"])


def _train_mlp(eqx):
    key = jr.PRNGKey(0)
    mkey, dkey = jr.split(key)
    model = eqx.nn.MLP(2, 1, width_size=8, depth=2, key=mkey)
    x = jr.normal(dkey, (32, 2))
    y = jnp.sum(x**2, axis=1, keepdims=True)
    optim = optax.adam(1e-2)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_value_and_grad
    def loss_fn(model, x, y):
        pred = jax.vmap(model)(x)
        return jnp.mean((pred - y) ** 2)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = loss_fn(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, model)
        model = eqx.apply_updates(model, updates)
        return model, opt_state, loss

    losses = []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and ints
        for _ in range(20):
            model, opt_state, loss = step(model, opt_state, x, y)
            losses.append(float(loss))
    return np.array(losses), model


@LIBS
def test_train_mlp_runs_and_decreases(eqx):
    losses, _ = _train_mlp(eqx)
    assert losses[-1] < losses[0]


def test_train_mlp_same_as_equinox():
    eqx_losses, eqx_model = _train_mlp(equinox)
    ecl_losses, ecl_model = _train_mlp(ecliptic)
    np.testing.assert_allclose(ecl_losses, eqx_losses, rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(ecl_model), jax.tree.leaves(eqx_model)):
        if eqx_is_array(b):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def eqx_is_array(x):
    return isinstance(x, jax.Array)


def _ensemble(eqx):
    @eqx.filter_vmap
    def make(key):
        return eqx.nn.Linear(3, 2, key=key)

    models = make(jr.split(jr.PRNGKey(1), 4))

    @eqx.filter_vmap(in_axes=(eqx.if_array(0), None))
    def evaluate(model, x):
        return model(x)

    return evaluate(models, jnp.arange(3.0))


@LIBS
def test_ensemble_shapes(eqx):
    assert _ensemble(eqx).shape == (4, 2)


def test_ensemble_same_as_equinox():
    np.testing.assert_allclose(_ensemble(ecliptic), _ensemble(equinox), rtol=1e-6)


def _tree_surgery(eqx):
    model = eqx.nn.MLP(2, 2, 4, 1, key=jr.PRNGKey(2))
    model = eqx.tree_at(lambda m: m.layers[0].bias, model, jnp.zeros(4))
    model = eqx.tree_at(
        lambda m: m.layers[-1].weight, model, replace_fn=lambda w: 2 * w
    )
    params, static = eqx.partition(model, eqx.is_array)
    model = eqx.combine(params, static)
    return model(jnp.ones(2))


def test_tree_surgery_same_as_equinox():
    np.testing.assert_allclose(
        _tree_surgery(ecliptic), _tree_surgery(equinox), rtol=1e-6
    )


def _custom_vjp(eqx):
    @eqx.filter_custom_vjp
    def clip_grad(x, threshold):
        return x

    @clip_grad.def_fwd
    def fwd(perturbed, x, threshold):
        del perturbed
        return x, None

    @clip_grad.def_bwd
    def bwd(residuals, grad_obj, perturbed, x, threshold):
        del residuals, perturbed, x
        return jnp.clip(grad_obj, -threshold, threshold)

    return jax.grad(lambda x: jnp.sum(10 * clip_grad(x, 1.0)))(jnp.ones(3))


def test_custom_vjp_same_as_equinox():
    np.testing.assert_allclose(_custom_vjp(ecliptic), _custom_vjp(equinox))
    np.testing.assert_allclose(_custom_vjp(ecliptic), jnp.ones(3))


@LIBS
def test_error_if_inside_jit(eqx):
    @eqx.filter_jit
    def f(x):
        return eqx.error_if(x, x < 0, "x must be non-negative")

    assert float(f(jnp.array(1.0))) == 1.0
    with pytest.raises(Exception, match="x must be non-negative"):
        jax.block_until_ready(f(jnp.array(-1.0)))


def _stateful(eqx):
    model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, "batch", mode="batch")
    x = jr.normal(jr.PRNGKey(3), (8, 3))
    out, state = jax.vmap(
        model, axis_name="batch", in_axes=(0, None), out_axes=(0, None)
    )(x, state)
    inf = eqx.nn.inference_mode(model)
    out2, _ = jax.vmap(inf, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(
        x, state
    )
    return out, out2


def test_stateful_same_as_equinox():
    for a, b in zip(_stateful(ecliptic), _stateful(equinox)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _serialise(eqx, tmp_path):
    model = eqx.nn.MLP(2, 2, 4, 1, key=jr.PRNGKey(4))
    path = tmp_path / f"{eqx.__name__}.eqx"
    eqx.tree_serialise_leaves(path, model)
    like = eqx.nn.MLP(2, 2, 4, 1, key=jr.PRNGKey(5))
    loaded = eqx.tree_deserialise_leaves(path, like)
    return path.read_bytes(), loaded(jnp.ones(2))


def test_serialise_round_trip_matches(tmp_path):
    eqx_bytes, eqx_out = _serialise(equinox, tmp_path)
    ecl_bytes, ecl_out = _serialise(ecliptic, tmp_path)
    np.testing.assert_allclose(ecl_out, eqx_out, rtol=1e-6)
    assert ecl_bytes.startswith(eqx_bytes)


def _rnn_scan(eqx):
    cell = eqx.nn.GRUCell(2, 4, key=jr.PRNGKey(6))
    xs = jr.normal(jr.PRNGKey(7), (5, 2))

    def step(h, x):
        h = cell(x, h)
        return h, h

    return jax.lax.scan(step, jnp.zeros(4), xs)[1]


def test_gru_scan_same_as_equinox():
    np.testing.assert_allclose(_rnn_scan(ecliptic), _rnn_scan(equinox), rtol=1e-5)


def _conv(eqx):
    conv = eqx.nn.Conv2d(1, 2, 3, padding="SAME", key=jr.PRNGKey(8))
    pool = eqx.nn.MaxPool2d(2, 2)
    x = jr.normal(jr.PRNGKey(9), (1, 6, 6))
    return pool(conv(x))


def test_conv_pool_same_as_equinox():
    np.testing.assert_allclose(_conv(ecliptic), _conv(equinox), rtol=1e-5, atol=1e-6)


@LIBS
def test_partial_jit_method(eqx):
    class Model(eqx.Module):
        w: jax.Array

        @eqx.filter_jit
        def apply(self, x):
            return self.w * x

    m = Model(jnp.array(2.0))
    assert float(m.apply(jnp.array(3.0))) == 6.0
    f = ft.partial(m.apply)
    assert float(f(jnp.array(1.0))) == 2.0
