"""Mixed precision: `Policy` casts, the `MixedPrecision` wrapper, and the loss scales
with a training step that skips non-finite updates."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import ecliptic as eqx


BF16 = jnp.dtype(jnp.bfloat16)
F16 = jnp.dtype(jnp.float16)
F32 = jnp.dtype(jnp.float32)


def _dtypes(tree):
    return jax.tree.map(lambda x: x.dtype if eqx.is_array(x) else x, tree)


def _mlp(key=0):
    return eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(key))


# Policy


def test_casts_touch_only_float_leaves():
    key = jr.PRNGKey(0)
    typed_key = jr.key(1)
    tree = {
        "f32": jnp.ones(2, F32),
        "f16": jnp.ones(2, F16),
        "np64": np.ones(2, np.float64),
        "int": jnp.arange(2),
        "bool": jnp.array([True]),
        "complex": jnp.ones(2, jnp.complex64),
        "key": key,
        "typed_key": typed_key,
        "python": 1.5,
        "fn": jax.nn.relu,
        "text": "hi",
    }
    policy = eqx.Policy(F32, BF16, F16)
    for cast, dtype in [
        (policy.cast_to_compute, BF16),
        (policy.cast_to_param, F32),
        (policy.cast_to_output, F16),
    ]:
        out = cast(tree)
        assert out["f32"].dtype == out["f16"].dtype == out["np64"].dtype == dtype
        assert out["int"].dtype == tree["int"].dtype
        assert out["bool"].dtype == jnp.bool_
        assert out["complex"].dtype == jnp.complex64
        assert out["key"] is key and out["typed_key"] is typed_key
        assert out["python"] == 1.5 and out["fn"] is jax.nn.relu
        assert out["text"] == "hi"


def test_cast_to_the_same_dtype_is_the_same_array():
    x = jnp.ones(3)
    assert eqx.Policy().cast_to_compute(x) is x


def test_policy_dtypes_from_names_and_strings():
    policy = eqx.Policy(compute_dtype="bf16")
    assert (policy.param_dtype, policy.compute_dtype, policy.output_dtype) == (
        F32,
        BF16,
        F32,
    )
    read = eqx.Policy.from_string("params=float32,compute=bfloat16,output=float32")
    assert read == policy
    assert eqx.Policy.from_string(" p=f32, c=f16 ") == eqx.Policy(F32, F16, F32)
    assert eqx.Policy.from_string("compute=float16").output_dtype == F32
    assert eqx.Policy.from_string("bfloat16") == eqx.Policy(BF16, BF16, BF16)
    assert eqx.Policy.from_string("params=bf16").compute_dtype == BF16
    assert eqx.Policy(F32, BF16) != eqx.Policy(F32, F16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"compute_dtype": jnp.int32}, "`compute_dtype` to be a floating-point dtype"),
        ({"param_dtype": "int8"}, "`param_dtype` .* got dtype int8"),
        ({"output_dtype": "fp42"}, "got 'fp42', which is not a dtype"),
        ({"compute_dtype": jnp.complex64}, "got dtype complex64"),
    ],
)
def test_policy_rejects_non_float_dtypes(kwargs, match):
    with pytest.raises(TypeError, match=match):
        eqx.Policy(**kwargs)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "expected a non-empty string"),
        ("params=float32,kompute=float16", "cannot read 'kompute=float16'"),
        ("compute=", "cannot read 'compute='"),
        ("c=f16,compute=bf16", "'compute' is given twice"),
    ],
)
def test_policy_from_string_errors(text, match):
    with pytest.raises(ValueError, match=match):
        eqx.Policy.from_string(text)
    with pytest.raises(TypeError, match="`compute_dtype` to be a floating-point"):
        eqx.Policy.from_string("compute=int32")


# The wrapper


class Recorder(eqx.Module):
    """Records the dtypes it sees (at trace time) and returns `weight * x`."""

    weight: jax.Array
    seen: list = eqx.field(static=True)

    def __call__(self, x, n, *, key=None, scale=None):
        self.seen.append((self.weight.dtype, x.dtype, n.dtype, key, scale))
        return {"y": self.weight * x, "n": n}


@pytest.mark.parametrize("compute", [BF16, F16])
@pytest.mark.parametrize("output", [F32, BF16])
def test_wrapper_computes_in_the_compute_dtype(compute, output):
    seen = []
    model = eqx.MixedPrecision(
        Recorder(jnp.ones(3, F16), seen), eqx.Policy(F32, compute, output)
    )
    assert model.model.weight.dtype == F32  # master weights, cast once
    key = jr.PRNGKey(0)
    n = jnp.arange(3)
    out = model(jnp.ones(3), n, key=key, scale=2.0)
    assert seen == [(compute, compute, n.dtype, key, 2.0)]
    assert out["y"].dtype == output and out["n"].dtype == n.dtype
    jitted = eqx.filter_jit(jax.vmap(model, in_axes=(0, None)))(jnp.ones((4, 3)), n)
    assert seen[-1][:3] == (compute, compute, n.dtype)
    assert jitted["y"].dtype == output and jitted["y"].shape == (4, 3)


def test_wrapper_computes_in_bfloat16_in_the_jaxpr():
    model = eqx.MixedPrecision(_mlp(), "params=float32,compute=bfloat16,output=float32")
    jaxpr = jax.make_jaxpr(model)(jnp.ones(3))
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 3
    assert all(v.aval.dtype == BF16 for e in dots for v in [*e.invars, *e.outvars])
    assert jaxpr.out_avals[0].dtype == F32


def test_wrapper_matches_the_float32_model_under_vmap_and_jit():
    mlp = _mlp()
    model = eqx.MixedPrecision(mlp, eqx.Policy(compute_dtype=BF16))
    xs = jr.normal(jr.PRNGKey(1), (5, 3))
    expected = jax.vmap(mlp)(xs)
    out = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, xs)
    assert out.dtype == F32
    np.testing.assert_allclose(out, expected, rtol=0.05, atol=0.05)
    assert not np.array_equal(out, expected)  # it really ran in bfloat16


def test_wrapper_rejects_a_bad_policy():
    with pytest.raises(TypeError, match="expected `policy` to be an ecliptic.Policy"):
        eqx.MixedPrecision(_mlp(), jnp.bfloat16)


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@pytest.mark.parametrize("compute, tol", [(BF16, 0.05), (F16, 0.01)])
def test_gradients_are_float32_and_close_to_float32(compute, tol):
    mlp = _mlp()
    model = eqx.MixedPrecision(mlp, eqx.Policy(compute_dtype=compute))
    x = jr.normal(jr.PRNGKey(1), (16, 3))
    y = jr.normal(jr.PRNGKey(2), (16, 2))
    expected = eqx.filter_grad(_loss)(mlp, x, y)
    grads = eqx.filter_grad(_loss)(model, x, y)
    leaves = jax.tree.leaves(grads.model)
    assert len(leaves) == 6 and all(g.dtype == F32 for g in leaves)
    for g, e in zip(leaves, jax.tree.leaves(expected)):
        assert np.linalg.norm(g - e) <= tol * np.linalg.norm(e) + 1e-6


# Loss scales and the training step


def make_step(optim):
    """The recipe of `DynamicLossScale`'s docstring, counting its traces."""
    traces = []

    @eqx.filter_jit
    def step(model, opt_state, loss_scale, x, y):
        traces.append(None)

        def scaled_loss(model, x, y):
            loss = _loss(model, x, y)
            return loss_scale.scale_loss(loss), loss

        grads, loss = eqx.filter_grad(scaled_loss, has_aux=True)(model, x, y)
        grads = loss_scale.unscale(grads)
        finite = eqx.all_finite(grads)
        loss_scale = loss_scale.adjust(finite)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, new_opt_state = optim.update(grads, opt_state, params)
        new_model = eqx.apply_updates(model, updates)

        def keep(new, old):
            return jnp.where(finite, new, old) if eqx.is_array(new) else new

        new = (new_model, new_opt_state)
        model, opt_state = jax.tree.map(keep, new, (model, opt_state))
        return model, opt_state, loss_scale, loss

    return step, traces


def _setup(period=3):
    model = eqx.MixedPrecision(_mlp(), eqx.Policy(compute_dtype=F16))
    optim = optax.adam(1e-2)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int and float counts
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    x = jr.normal(jr.PRNGKey(1), (16, 3))
    y = jr.normal(jr.PRNGKey(2), (16, 2))
    return model, optim, opt_state, eqx.DynamicLossScale(2.0**10, period=period), x, y


def test_an_inf_gradient_halves_the_scale_and_skips_the_step():
    model, optim, opt_state, scale, x, y = _setup()
    step, traces = make_step(optim)
    bad_x = x.at[0, 0].set(jnp.inf)
    with jax.numpy_dtype_promotion("standard"):
        model1, opt_state1, scale1, _ = step(model, opt_state, scale, bad_x, y)
        assert float(scale1.scale) == 2.0**9 and int(scale1.counter) == 0
        assert eqx.tree_equal(model1, model) is True
        assert eqx.tree_equal(opt_state1, opt_state) is True
        # A finite step then trains, in float32 master weights.
        model2, opt_state2, scale2, loss = step(model1, opt_state1, scale1, x, y)
    assert bool(jnp.isfinite(loss)) and loss.dtype == F32
    assert float(scale2.scale) == 2.0**9 and int(scale2.counter) == 1
    assert not np.array_equal(
        model2.model.layers[0].weight, model.model.layers[0].weight
    )
    assert all(
        w.dtype == F32 for w in jax.tree.leaves(eqx.filter(model2, eqx.is_array))
    )
    assert eqx.tree_equal(opt_state2, opt_state) is False
    assert len(traces) == 1


def test_the_step_traces_once_across_scale_changes():
    model, optim, opt_state, scale, x, y = _setup(period=2)
    step, traces = make_step(optim)
    bad_x = x.at[0, 0].set(jnp.nan)
    scales = []
    with jax.numpy_dtype_promotion("standard"):
        for batch in [x, x, bad_x, x, bad_x, bad_x, x]:
            model, opt_state, scale, _ = step(model, opt_state, scale, batch, y)
            scales.append(float(scale.scale))
    assert scales == [2**10, 2**11, 2**10, 2**10, 2**9, 2**8, 2**8]
    assert len(traces) == 1


def test_scale_doubles_after_period_finite_steps():
    scale = eqx.DynamicLossScale(4.0, period=3, factor=2)
    for expected_counter in [1, 2]:
        scale = scale.adjust(True)
        assert float(scale.scale) == 4.0 and int(scale.counter) == expected_counter
    scale = scale.adjust(jnp.array(True))
    assert float(scale.scale) == 8.0 and int(scale.counter) == 0
    assert scale.scale.dtype == F32 and scale.counter.dtype == jnp.int32
    # Growing past float32's range keeps the scale finite.
    big = eqx.DynamicLossScale(3e38, period=1).adjust(True)
    assert float(big.scale) == pytest.approx(3e38)


def test_scale_never_falls_below_min_scale():
    scale = eqx.DynamicLossScale(8.0, counter=5, min_scale=2.0, factor=4)
    scale = scale.adjust(False)
    assert float(scale.scale) == 2.0 and int(scale.counter) == 0
    assert float(scale.adjust(False).scale) == 2.0
    assert float(eqx.DynamicLossScale(1.0).adjust(False).scale) == 1.0


def test_scale_loss_and_unscale():
    scale = eqx.DynamicLossScale(1024.0)
    loss = scale.scale_loss(jnp.array(0.5, F16))
    assert loss.dtype == F16 and float(loss) == 512.0
    grads = {"a": jnp.array([2048.0, 4096.0], F16), "b": None, "n": jnp.arange(2)}
    out = scale.unscale(grads)
    assert out["a"].dtype == F16 and out["a"].tolist() == [2.0, 4.0]
    assert out["b"] is None and out["n"] is grads["n"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"period": 0}, "`period` to be an int of at least 1, but got 0"),
        ({"period": 2.5}, "`period` to be an int"),
        ({"factor": 1}, "`factor` to be a number greater than 1"),
        ({"min_scale": 0.0}, "`min_scale` to be a positive number"),
        ({"min_scale": "1"}, "`min_scale` to be a positive number"),
    ],
)
def test_loss_scale_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        eqx.DynamicLossScale(**kwargs)


def test_no_loss_scale_is_the_identity():
    scale = eqx.NoLossScale()
    loss = jnp.array(3.0)
    grads = {"w": jnp.ones(2)}
    assert scale.scale_loss(loss) is loss and scale.unscale(grads) is grads
    assert scale.adjust(jnp.array(False)) is scale and float(scale.scale) == 1.0


def test_all_finite():
    assert bool(eqx.all_finite({"a": jnp.ones(2), "n": jnp.arange(2), "f": abs}))
    assert bool(eqx.all_finite([]))
    assert not bool(eqx.all_finite([jnp.ones(2), jnp.array([1.0, jnp.inf], F16)]))
    assert not bool(eqx.all_finite((None, jnp.array(jnp.nan))))
    assert eqx.all_finite(jnp.ones(2)).shape == ()


# Checkpoints


def test_serialisation_round_trip(tmp_path):
    policy = eqx.Policy(compute_dtype=BF16)
    model = eqx.MixedPrecision(_mlp(0), policy)
    scale = eqx.DynamicLossScale(512.0, counter=7)
    path = tmp_path / "model.eqx"
    eqx.tree_serialise_leaves(path, (model, scale))
    fresh = (eqx.MixedPrecision(_mlp(1), policy), eqx.DynamicLossScale())
    loaded = eqx.tree_deserialise_leaves(path, fresh)
    assert eqx.tree_equal(loaded, (model, scale)) is True
    assert eqx.tree_equal(fresh[0], model) is False
    assert loaded[0].model.layers[0].weight.dtype == F32
    x = jnp.ones(3)
    assert np.array_equal(loaded[0](x), model(x))
