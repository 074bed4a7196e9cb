import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as nn

from ..helpers import xla_flags


def _run(bn, x, state, **kw):
    return jax.vmap(
        lambda x, s: bn(x, s, **kw),
        axis_name="batch",
        in_axes=(0, None),
        out_axes=(0, None),
    )(x, state)


def _batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return np.asarray(x).mean(axes), np.asarray(x).var(axes)


def test_batch_mode_training_uses_batch_stats(getkey):
    bn, state = nn.make_with_state(nn.BatchNorm)(3, "batch", mode="batch")
    x = jr.normal(getkey(), (8, 3, 5)) * 2 + 1
    out, state = _run(bn, x, state)
    mean, var = _batch_stats(x)
    ref = (np.asarray(x) - mean[:, None]) / np.sqrt(var[:, None] + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    counter = state.get(bn.batch_counter)
    hidden_mean, hidden_var = state.get(bn.batch_state_index)
    assert int(counter) == 1
    np.testing.assert_allclose(hidden_mean, 0.01 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hidden_var, 0.99 + 0.01 * var, rtol=1e-4)


def test_batch_mode_inference_is_debiased(getkey):
    bn, state = nn.make_with_state(nn.BatchNorm)(2, "batch", momentum=0.9, mode="batch")
    x = jr.normal(getkey(), (16, 2)) * 3 + 2
    _, state = _run(bn, x, state)
    clone = jax.tree_util.tree_map(lambda a: a, state)
    out, state2 = _run(nn.inference_mode(bn), x, state)
    # after one step the debiased average is exactly the batch statistics
    mean, var = _batch_stats(x)
    debiased_var = (0.9 * 1.0 + 0.1 * var) / (1 - 0.9)
    ref = (np.asarray(x) - mean) / np.sqrt(debiased_var + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert int(state2.get(bn.batch_counter)) == 1  # unchanged in inference
    out2, _ = _run(bn, x, clone, inference=True)
    np.testing.assert_allclose(out2, out)


def test_ema_mode(getkey):
    with pytest.warns(UserWarning, match="defaults to 'ema'"):
        bn, state = nn.make_with_state(nn.BatchNorm)(3, "batch")
    assert bn.mode == "ema"
    x1 = np.asarray(jr.normal(getkey(), (8, 3)))
    x2 = np.asarray(jr.normal(getkey(), (8, 3))) + 5
    out1, state = _run(bn, x1, state)
    m1, v1 = _batch_stats(x1)
    np.testing.assert_allclose(
        out1, (x1 - m1) / np.sqrt(v1 + 1e-5), rtol=1e-4, atol=1e-4
    )
    out2, state = _run(bn, x2, state)
    m2, v2 = _batch_stats(x2)
    mean, var = 0.01 * m2 + 0.99 * m1, 0.01 * v2 + 0.99 * v1
    np.testing.assert_allclose(
        out2, (x2 - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4
    )
    running = state.get(bn.ema_state_index)
    np.testing.assert_allclose(running[0], mean, rtol=1e-4, atol=1e-5)
    assert not bool(state.get(bn.ema_first_time_index))


def test_unbound_axis_name_is_clear():
    bn, state = nn.make_with_state(nn.BatchNorm)(3, "batch", mode="batch")
    msg = r"expected to run under `jax.vmap\(..., axis_name='batch'\)`"
    with pytest.raises(NameError, match=msg):
        bn(jnp.zeros(3), state)
    with pytest.raises(ValueError, match=msg):
        jax.vmap(bn, axis_name="other", in_axes=(0, None), out_axes=(0, None))(
            jnp.zeros((2, 3)), state
        )


def test_input_shape_error():
    bn, state = nn.make_with_state(nn.BatchNorm)(3, "batch", mode="batch")
    with pytest.raises(
        ValueError,
        match=r"BatchNorm\(input_size=3, axis_name='batch', mode='batch'\) expected "
        r"`x` of shape \(3, \?\), but got shape \(4, 3\). Axis 0 must be "
        r"input_size=3, not 4",
    ):
        _run(bn, jnp.zeros((2, 4, 3)), state)


def test_invalid_mode():
    with pytest.raises(
        ValueError, match=r"expected mode 'batch' or 'ema', but got mode='x'"
    ):
        nn.BatchNorm(3, "batch", mode="x")


def test_no_affine_and_multiple_axes(getkey):
    bn, state = nn.make_with_state(nn.BatchNorm)(
        2, ("a", "b"), channelwise_affine=False, mode="batch"
    )
    assert bn.weight is None
    x = jr.normal(getkey(), (3, 4, 2))
    f = jax.vmap(bn, axis_name="b", in_axes=(0, None), out_axes=(0, None))
    f = jax.vmap(f, axis_name="a", in_axes=(0, None), out_axes=(0, None))
    out, _ = f(x, state)
    flat = np.asarray(x).reshape(-1, 2)
    ref = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    np.testing.assert_allclose(out.reshape(-1, 2), ref, rtol=1e-4, atol=1e-4)


def test_jit_train_steps_and_dtype(getkey):
    bn, state = nn.make_with_state(nn.BatchNorm)(
        3, "batch", mode="batch", dtype=jnp.bfloat16
    )
    step = jax.jit(lambda x, s: _run(bn, x, s))
    x = jr.normal(getkey(), (4, 3, 2)).astype(jnp.bfloat16)
    for _ in range(3):
        out, state = step(x, state)
    assert out.dtype == jnp.bfloat16
    assert int(state.get(bn.batch_counter)) == 3
    assert state.get(bn.batch_state_index)[0].dtype == jnp.bfloat16


def test_stateful_model_trains_with_filtered_transforms(getkey):
    """The Equinox stateful-training pattern: make_with_state, filter_jit,
    filter_value_and_grad(has_aux=True) returning the new state."""
    import ecliptic

    def make(key):
        k1, k2 = jr.split(key)
        return nn.Sequential(
            [
                nn.Linear(2, 8, key=k1),
                nn.BatchNorm(8, "batch", mode="batch"),
                nn.Lambda(jax.nn.tanh),
                nn.Linear(8, 1, key=k2),
            ]
        )

    model, state = nn.make_with_state(make)(getkey())
    x = jr.normal(getkey(), (32, 2))
    y = jnp.sin(x[:, :1]) + x[:, 1:] ** 2

    @ecliptic.filter_value_and_grad(has_aux=True)
    def loss(model, state):
        out, state = jax.vmap(
            model, axis_name="batch", in_axes=(0, None), out_axes=(0, None)
        )(x, state)
        return jnp.mean((out - y) ** 2), state

    @ecliptic.filter_jit
    def step(model, state):
        (value, state), grads = loss(model, state)
        updates = jax.tree_util.tree_map(lambda g: -0.1 * g, grads)
        return ecliptic.apply_updates(model, updates), state, value

    losses = []
    for _ in range(15):
        model, state, value = step(model, state)
        losses.append(float(value))
    assert losses[-1] < 0.7 * losses[0]
    assert int(state.get(model[1].batch_counter)) == 15
    out, _ = jax.vmap(
        nn.inference_mode(model),
        axis_name="batch",
        in_axes=(0, None),
        out_axes=(0, None),
    )(x, state)
    assert out.shape == (32, 1)


@pytest.mark.parametrize("mode", ["batch", "ema"])
def test_inference_needs_no_named_axis(mode, getkey):
    bn, state = nn.make_with_state(nn.BatchNorm)(3, "batch", mode=mode)
    x = jr.normal(getkey(), (4, 3))
    _, state = _run(bn, x, state)
    clone = jax.tree_util.tree_map(lambda a: a, state)
    batched, _ = _run(bn, x, state, inference=True)
    single, _ = nn.inference_mode(bn)(x[1], clone)
    np.testing.assert_allclose(single, batched[1], rtol=1e-6)


_PMAP_SCRIPT = """
import jax, jax.numpy as jnp, jax.random as jr, numpy as np
import ecliptic as eqx

assert len(jax.devices()) == 4, jax.devices()
bn, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, "dev", mode="batch")
x = jr.normal(jr.PRNGKey(0), (4, 3, 5))
clone = jax.tree_util.tree_map(lambda a: a, state)
p_out, p_state = jax.pmap(
    lambda x, s: bn(x, s), axis_name="dev", in_axes=(0, None), out_axes=(0, None)
)(x, state)
v_out, v_state = jax.vmap(bn, axis_name="dev", in_axes=(0, None), out_axes=(0, None))(
    x, clone
)
np.testing.assert_allclose(p_out, v_out, rtol=1e-5, atol=1e-5)
for a, b in zip(jax.tree.leaves(p_state), jax.tree.leaves(v_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
print("ok")
"""


@pytest.mark.multidevice
def test_under_pmap_matches_vmap():
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags(4)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = (
        os.path.join(root, "src") + os.pathsep + env.get("PYTHONPATH", "")
    )
    result = subprocess.run(
        [sys.executable, "-c", _PMAP_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
