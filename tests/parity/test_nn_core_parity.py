"""Parity with Equinox 0.13.8 for the core layers.

For each case: the same key gives identical parameters (same fields, same leaf order,
bit-identical arrays), a checkpoint written from one loads into the other, and the
same parameters give the same outputs.
"""

import dataclasses
import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic.nn as enn


def _x(*shape):
    return lambda: jr.normal(jr.PRNGKey(42), shape)


def _idx(i):
    return lambda: jnp.array(i)


# (id, make(nn, key), make_input or None)
CASES = [
    ("Linear", lambda nn, k: nn.Linear(4, 3, key=k), _x(4)),
    ("Linear-nobias", lambda nn, k: nn.Linear(4, 3, use_bias=False, key=k), _x(4)),
    ("Linear-scalar-in", lambda nn, k: nn.Linear("scalar", 3, key=k), _x()),
    ("Linear-scalar-out", lambda nn, k: nn.Linear(3, "scalar", key=k), _x(3)),
    ("Linear-zero-in", lambda nn, k: nn.Linear(0, 2, key=k), _x(0)),
    ("Linear-f16", lambda nn, k: nn.Linear(3, 2, dtype=jnp.float16, key=k), None),
    ("Identity", lambda nn, k: nn.Identity(1, a=2), _x(3)),
    ("MLP", lambda nn, k: nn.MLP(3, 2, 4, 2, key=k), _x(3)),
    (
        "MLP-depth0",
        lambda nn, k: nn.MLP(3, 2, 4, 0, use_final_bias=False, key=k),
        _x(3),
    ),
    ("MLP-scan", lambda nn, k: nn.MLP(3, 2, 4, 3, scan=True, key=k), _x(3)),
    ("MLP-scan-depth1", lambda nn, k: nn.MLP(3, 2, 4, 1, scan=True, key=k), _x(3)),
    (
        "MLP-prelu-scalar",
        lambda nn, k: nn.MLP(
            "scalar", "scalar", 4, 2, nn.PReLU(0.1), jax.nn.tanh, use_bias=False, key=k
        ),
        _x(),
    ),
    (
        "MLP-prelu-final",
        lambda nn, k: nn.MLP(2, 3, 4, 2, final_activation=nn.PReLU(), key=k),
        _x(2),
    ),  # noqa: E501
    ("Conv1d", lambda nn, k: nn.Conv1d(2, 3, 3, key=k), _x(2, 8)),
    ("Conv1d-stride-pad", lambda nn, k: nn.Conv1d(2, 3, 3, 2, 1, key=k), _x(2, 8)),
    (
        "Conv1d-dil-groups",
        lambda nn, k: nn.Conv1d(4, 2, 3, 1, 2, 2, 2, key=k),
        _x(4, 9),
    ),
    (
        "Conv2d-SAME",
        lambda nn, k: nn.Conv2d(2, 3, (3, 2), 2, "SAME", key=k),
        _x(2, 7, 6),
    ),
    (
        "Conv2d-same_lower",
        lambda nn, k: nn.Conv2d(2, 3, 2, 1, "same_lower", key=k),
        _x(2, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-VALID",
        lambda nn, k: nn.Conv2d(2, 3, 3, padding="VALID", key=k),
        _x(2, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-pairs",
        lambda nn, k: nn.Conv2d(1, 2, 3, padding=((1, 2), (0, 1)), key=k),
        _x(1, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-perdim",
        lambda nn, k: nn.Conv2d(1, 2, 3, padding=(1, 2), key=k),
        _x(1, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-reflect",
        lambda nn, k: nn.Conv2d(1, 2, 3, padding=1, padding_mode="REFLECT", key=k),
        _x(1, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-replicate-same",
        lambda nn, k: nn.Conv2d(
            1, 2, 4, padding="SAME", padding_mode="replicate", key=k
        ),
        _x(1, 5, 4),
    ),  # noqa: E501
    (
        "Conv2d-circular",
        lambda nn, k: nn.Conv2d(1, 2, 3, 2, 2, padding_mode="CIRCULAR", key=k),
        _x(1, 5, 4),
    ),  # noqa: E501
    ("Conv3d", lambda nn, k: nn.Conv3d(1, 2, 2, use_bias=False, key=k), _x(1, 3, 3, 3)),
    ("Conv-general", lambda nn, k: nn.Conv(2, 2, 2, 1, key=k), _x(2, 3, 3)),
    ("ConvT1d", lambda nn, k: nn.ConvTranspose1d(2, 3, 3, key=k), _x(2, 5)),
    (
        "ConvT1d-stride-op-pad",
        lambda nn, k: nn.ConvTranspose1d(2, 3, 3, 2, 1, 1, key=k),
        _x(2, 5),
    ),  # noqa: E501
    (
        "ConvT2d-SAME",
        lambda nn, k: nn.ConvTranspose2d(2, 3, 3, 2, 1, "SAME", key=k),
        _x(2, 4, 3),
    ),  # noqa: E501
    (
        "ConvT2d-SAME_LOWER",
        lambda nn, k: nn.ConvTranspose2d(2, 3, 4, 2, 0, "SAME_LOWER", key=k),
        _x(2, 4, 3),
    ),  # noqa: E501
    (
        "ConvT2d-VALID-dil",
        lambda nn, k: nn.ConvTranspose2d(2, 2, 3, 1, 0, "VALID", 2, key=k),
        _x(2, 4, 3),
    ),  # noqa: E501
    (
        "ConvT2d-groups",
        lambda nn, k: nn.ConvTranspose2d(4, 2, 3, groups=2, key=k),
        _x(4, 3, 3),
    ),  # noqa: E501
    (
        "ConvT1d-circular",
        lambda nn, k: nn.ConvTranspose1d(
            2, 2, 4, 2, 0, "SAME", padding_mode="circular", key=k
        ),
        _x(2, 5),
    ),  # noqa: E501
    ("ConvT3d", lambda nn, k: nn.ConvTranspose3d(1, 2, 2, 2, 1, key=k), _x(1, 2, 3, 2)),
    (
        "ConvT-general",
        lambda nn, k: nn.ConvTranspose(1, 2, 2, 3, 2, 1, 1, key=k),
        _x(2, 5),
    ),  # noqa: E501
    ("AvgPool1d", lambda nn, k: nn.AvgPool1d(2, 2), _x(2, 7)),
    ("MaxPool1d-pad", lambda nn, k: nn.MaxPool1d(3, 2, 1), _x(2, 7)),
    ("AvgPool2d-ceil", lambda nn, k: nn.AvgPool2d(2, 2, use_ceil=True), _x(2, 5, 4)),
    (
        "MaxPool2d-ceil",
        lambda nn, k: nn.MaxPool2d((3, 2), (2, 1), ((1, 0), (0, 1)), True),
        _x(2, 6, 4),
    ),  # noqa: E501
    ("AvgPool3d", lambda nn, k: nn.AvgPool3d(2), _x(1, 3, 3, 3)),
    ("MaxPool3d", lambda nn, k: nn.MaxPool3d((1, 2, 2), 1, 1), _x(1, 3, 3, 3)),
    ("AdaptiveAvgPool1d", lambda nn, k: nn.AdaptiveAvgPool1d(3), _x(2, 8)),
    ("AdaptiveMaxPool1d-exact", lambda nn, k: nn.AdaptiveMaxPool1d(4), _x(2, 8)),
    ("AdaptiveAvgPool2d", lambda nn, k: nn.AdaptiveAvgPool2d((2, 3)), _x(2, 7, 5)),
    ("AdaptiveMaxPool2d", lambda nn, k: nn.AdaptiveMaxPool2d(3), _x(2, 7, 5)),
    (
        "AdaptiveAvgPool3d",
        lambda nn, k: nn.AdaptiveAvgPool3d((1, 2, 2)),
        _x(1, 3, 5, 4),
    ),  # noqa: E501
    ("AdaptiveMaxPool3d", lambda nn, k: nn.AdaptiveMaxPool3d(2), _x(1, 3, 5, 4)),
    ("Embedding", lambda nn, k: nn.Embedding(6, 3, key=k), _idx(4)),
    (
        "Embedding-weight",
        lambda nn, k: nn.Embedding(weight=jnp.arange(6.0).reshape(3, 2)),
        _idx(1),
    ),  # noqa: E501
    ("RoPE", lambda nn, k: nn.RotaryPositionalEmbedding(8), _x(5, 8)),
    ("RoPE-theta", lambda nn, k: nn.RotaryPositionalEmbedding(4, theta=50.0), _x(6, 4)),
    ("PReLU", lambda nn, k: nn.PReLU(), _x(3, 4)),
    ("PReLU-array", lambda nn, k: nn.PReLU(jnp.array([[0.1], [0.2], [0.3]])), _x(3, 4)),
    ("Dropout", lambda nn, k: nn.Dropout(0.3), _x(20)),
    ("Dropout-inference", lambda nn, k: nn.Dropout(0.3, inference=True), _x(4)),
]
STOCHASTIC = {"Dropout"}


def _arrays(tree):
    return [x for x in jax.tree.leaves(tree) if eqx.is_array(x)]


def _fields(module):
    return [
        (f.name, f.metadata.get("static", False)) for f in dataclasses.fields(module)
    ]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request):
    return request.param


def _pair(case, seed=0):
    name, make, _ = case
    key = jr.PRNGKey(seed)
    return make(eqx.nn, key), make(enn, key)


def test_same_key_gives_identical_parameters(case):
    theirs, ours = _pair(case)
    assert type(ours).__name__ == type(theirs).__name__
    assert _fields(ours) == _fields(theirs)
    for name, static in _fields(ours):
        if static:
            assert getattr(ours, name) == getattr(theirs, name), name
    a, b = _arrays(theirs), _arrays(ours)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert len(jax.tree.leaves(theirs)) == len(jax.tree.leaves(ours))


def test_checkpoints_are_interchangeable(case):
    theirs, ours = _pair(case)
    other_theirs, other_ours = _pair(case, seed=1)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, ours)
    buffer.seek(0)
    loaded = eqx.tree_deserialise_leaves(buffer, other_theirs)
    for x, y in zip(_arrays(loaded), _arrays(theirs), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, theirs)
    buffer.seek(0)
    loaded = eqx.tree_deserialise_leaves(buffer, other_ours)
    for x, y in zip(_arrays(loaded), _arrays(ours), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_same_parameters_give_the_same_outputs(case):
    name, _, make_input = case
    if make_input is None:
        pytest.skip("construction-only case")
    theirs, ours = _pair(case)
    # Use Equinox's parameters in ours too, so only the computation is compared.
    ours = jax.tree.unflatten(jax.tree.structure(ours), jax.tree.leaves(theirs))
    x = make_input()
    kwargs = {"key": jr.PRNGKey(5)} if name in STOCHASTIC else {}
    eqx.clear_caches()  # Equinox's RoPE cache ignores theta.
    want = theirs(x, **kwargs)
    got = ours(x, **kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_jitted_outputs_match(case):
    name, _, make_input = case
    if make_input is None:
        pytest.skip("construction-only case")
    theirs, ours = _pair(case)
    x = make_input()
    kwargs = {"key": jr.PRNGKey(5)} if name in STOCHASTIC else {}
    eqx.clear_caches()
    want = eqx.filter_jit(lambda m, x: m(x, **kwargs))(theirs, x)
    got = eqx.filter_jit(lambda m, x: m(x, **kwargs))(ours, x)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def _same_output(make, x, seed):
    key = jr.PRNGKey(seed)
    try:
        theirs = make(eqx.nn, key)
        want = theirs(x)
    except Exception:
        # A configuration (or input) that Equinox rejects: ecliptic rejects it too.
        with pytest.raises((ValueError, TypeError)):
            make(enn, key)(x)
        return
    ours = make(enn, key)
    if want.size == 0:
        # Deliberate difference: an input smaller than the (dilated) kernel gives
        # Equinox an empty output, and ecliptic a ValueError saying so.
        with pytest.raises(ValueError, match="smaller than the|would have output size"):
            ours(x)
        return
    for a, b in zip(_arrays(theirs), _arrays(ours), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    got = ours(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


_pads = st.one_of(
    st.integers(0, 2),
    st.sampled_from(["SAME", "SAME_LOWER", "VALID"]),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2))),
)


@settings(max_examples=10, deadline=None)
@given(
    size=st.integers(3, 9),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=_pads,
    mode=st.sampled_from(["ZEROS", "REFLECT", "REPLICATE", "CIRCULAR"]),
    seed=st.integers(0, 100),
)
def test_conv1d_property(size, kernel, stride, dilation, padding, mode, seed):
    x = jr.normal(jr.PRNGKey(seed), (2, size))
    make = lambda nn, k: nn.Conv1d(
        2, 3, kernel, stride, padding, dilation, padding_mode=mode, key=k
    )
    _same_output(make, x, seed)


@settings(max_examples=10, deadline=None)
@given(
    size=st.integers(2, 6),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    extra=st.integers(0, 2),
    dilation=st.integers(1, 2),
    padding=_pads,
    circular=st.booleans(),
    seed=st.integers(0, 100),
)
def test_conv_transpose1d_property(
    size, kernel, stride, extra, dilation, padding, circular, seed
):
    x = jr.normal(jr.PRNGKey(seed), (2, size))
    output_padding = min(extra, stride - 1)
    mode = "CIRCULAR" if circular else "ZEROS"
    make = lambda nn, k: nn.ConvTranspose1d(
        2,
        3,
        kernel,
        stride,
        output_padding,
        padding,
        dilation,
        padding_mode=mode,
        key=k,
    )
    _same_output(make, x, seed)


@settings(max_examples=10, deadline=None)
@given(
    size=st.integers(2, 9),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    ceil=st.booleans(),
    avg=st.booleans(),
    seed=st.integers(0, 100),
)
def test_pool1d_property(size, kernel, stride, padding, ceil, avg, seed):
    x = jr.normal(jr.PRNGKey(seed), (2, size))
    cls = "AvgPool1d" if avg else "MaxPool1d"
    make = lambda nn, k: getattr(nn, cls)(kernel, stride, padding, ceil)
    _same_output(make, x, seed)


@settings(max_examples=10, deadline=None)
@given(size=st.integers(1, 12), target=st.integers(1, 12), seed=st.integers(0, 100))
def test_adaptive_pool1d_property(size, target, seed):
    x = jr.normal(jr.PRNGKey(seed), (2, size))
    for cls in ("AdaptiveAvgPool1d", "AdaptiveMaxPool1d"):
        _same_output(lambda nn, k, cls=cls: getattr(nn, cls)(target), x, seed)


def _train_cnn(lib):
    """A small CNN trained for a few steps, written once for either library."""
    import optax

    k1, k2, k3, k4 = jr.split(jr.PRNGKey(0), 4)

    class CNN(lib.Module):
        conv: lib.nn.Conv2d
        pool: lib.nn.MaxPool2d
        mlp: lib.nn.MLP
        drop: lib.nn.Dropout

        def __init__(self, key):
            ka, kb = jr.split(key)
            self.conv = lib.nn.Conv2d(1, 4, 3, padding="SAME", key=ka)
            self.pool = lib.nn.MaxPool2d(2, 2)
            self.mlp = lib.nn.MLP(4 * 3 * 3, 3, 8, 1, key=kb)
            self.drop = lib.nn.Dropout(0.1)

        def __call__(self, x, key):
            x = jax.nn.relu(self.conv(x))
            x = self.pool(x).reshape(-1)
            return self.mlp(self.drop(x, key=key))

    model = CNN(k1)
    x = jr.normal(k2, (8, 1, 6, 6))
    y = jr.randint(k3, (8,), 0, 3)
    optim = optax.sgd(0.1)
    opt_state = optim.init(lib.filter(model, lib.is_inexact_array))

    @lib.filter_value_and_grad
    def loss_fn(model, x, y, keys):
        logits = jax.vmap(model)(x, keys)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @lib.filter_jit
    def step(model, opt_state, x, y, keys):
        loss, grads = loss_fn(model, x, y, keys)
        updates, opt_state = optim.update(grads, opt_state)
        return lib.apply_updates(model, updates), opt_state, loss

    losses = []
    for i in range(3):
        keys = jr.split(jr.fold_in(k4, i), 8)
        model, opt_state, loss = step(model, opt_state, x, y, keys)
        losses.append(float(loss))
    return losses, _arrays(model)


def test_cnn_training_program_matches_equinox():
    import ecliptic

    want_losses, want_params = _train_cnn(eqx)
    got_losses, got_params = _train_cnn(ecliptic)
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5)
    assert want_losses[-1] < want_losses[0]
    for a, b in zip(want_params, got_params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
