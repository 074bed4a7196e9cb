"""Parity with Equinox for the stateful / normalisation / attention / rnn layers:
same key -> identical parameters (and identical leaves, in checkpoint order); same
parameters and inputs -> same outputs and states."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic.nn as nn


def assert_same_leaves(ours, theirs, exact=True):
    """Same number, order, types, shapes, dtypes and values of leaves."""
    a, b = jtu.tree_leaves(ours), jtu.tree_leaves(theirs)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(y, jax.Array):
            assert isinstance(x, jax.Array)
            assert x.shape == y.shape and x.dtype == y.dtype
            if exact:
                np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
        else:
            assert type(x) is type(y) and x == y


def assert_close(ours, theirs):
    assert_same_leaves(ours, theirs, exact=False)


def _state_keys(state):
    return list(jtu.tree_flatten(state)[1].node_data()[1])


@settings(max_examples=3, deadline=None)
@given(
    heads=st.integers(1, 3),
    head_size=st.integers(1, 3),
    biases=st.tuples(*[st.booleans()] * 4),
    seed=st.integers(0, 2**16),
)
def test_multihead_attention(heads, head_size, biases, seed):
    key = jr.PRNGKey(seed)
    size = heads * head_size
    kw = dict(
        zip(
            ["use_query_bias", "use_key_bias", "use_value_bias", "use_output_bias"],
            biases,
            strict=True,
        )
    )
    ours = nn.MultiheadAttention(heads, size, key_size=2, output_size=3, key=key, **kw)
    theirs = eqx.nn.MultiheadAttention(
        heads, size, key_size=2, output_size=3, key=key, **kw
    )
    assert_same_leaves(ours, theirs)
    q = jr.normal(jr.PRNGKey(seed + 1), (4, size))
    k = jr.normal(jr.PRNGKey(seed + 2), (5, 2))
    v = jr.normal(jr.PRNGKey(seed + 3), (5, size))
    mask = jr.bernoulli(jr.PRNGKey(seed + 4), 0.7, (heads, 4, 5))
    assert_close(ours(q, k, v), theirs(q, k, v))
    assert_close(ours(q, k, v, mask), theirs(q, k, v, mask))
    assert_close(ours(q, k, v, mask[0]), theirs(q, k, v, mask[0]))


def test_multihead_attention_dropout_draws():
    key = jr.PRNGKey(0)
    ours = nn.MultiheadAttention(2, 4, dropout_p=0.4, key=key)
    theirs = eqx.nn.MultiheadAttention(2, 4, dropout_p=0.4, key=key)
    assert_same_leaves(ours, theirs)
    x = jr.normal(jr.PRNGKey(1), (5, 4))
    dkey = jr.PRNGKey(2)
    assert_close(ours(x, x, x, key=dkey), theirs(x, x, x, key=dkey))


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
def test_rnn_cells(use_bias, dtype):
    key = jr.PRNGKey(3)
    for ours_cls, theirs_cls in [
        (nn.GRUCell, eqx.nn.GRUCell),
        (nn.LSTMCell, eqx.nn.LSTMCell),
    ]:
        ours = ours_cls(3, 5, use_bias=use_bias, dtype=dtype, key=key)
        theirs = theirs_cls(3, 5, use_bias=use_bias, dtype=dtype, key=key)
        assert_same_leaves(ours, theirs)
    x = jr.normal(jr.PRNGKey(4), (3,))
    h = jr.normal(jr.PRNGKey(5), (5,))
    gru = nn.GRUCell(3, 5, use_bias=use_bias, key=key)
    assert_close(gru(x, h), eqx.nn.GRUCell(3, 5, use_bias=use_bias, key=key)(x, h))
    lstm = nn.LSTMCell(3, 5, use_bias=use_bias, key=key)
    theirs = eqx.nn.LSTMCell(3, 5, use_bias=use_bias, key=key)
    assert_close(lstm(x, (h, -h)), theirs(x, (h, -h)))


@pytest.mark.parametrize(
    "ours, theirs, shape",
    [
        (nn.LayerNorm((3, 4)), eqx.nn.LayerNorm((3, 4)), (3, 4)),
        (nn.LayerNorm(4, use_bias=False), eqx.nn.LayerNorm(4, use_bias=False), (4,)),
        (nn.RMSNorm(6), eqx.nn.RMSNorm(6), (6,)),
        (nn.RMSNorm(6, use_weight=False), eqx.nn.RMSNorm(6, use_weight=False), (6,)),
        (nn.GroupNorm(2, 4), eqx.nn.GroupNorm(2, 4), (4, 3, 2)),
        (
            nn.GroupNorm(3, channelwise_affine=False),
            eqx.nn.GroupNorm(3, channelwise_affine=False),
            (6, 5),
        ),
    ],
)
def test_normalisation(ours, theirs, shape):
    assert_same_leaves(ours, theirs)
    # perturb the parameters identically, so the affine part is exercised
    leaves = [x + 0.5 for x in jtu.tree_leaves(theirs)]
    ours = jtu.tree_unflatten(jtu.tree_structure(ours), leaves)
    theirs = jtu.tree_unflatten(jtu.tree_structure(theirs), leaves)
    x = jr.normal(jr.PRNGKey(0), shape) * 2 + 1
    assert_close(ours(x), theirs(x))
    assert_close(ours(x.astype(jnp.bfloat16)), theirs(x.astype(jnp.bfloat16)))


@pytest.mark.parametrize("mode", ["batch", "ema"])
def test_batch_norm(mode):
    ours, s1 = nn.make_with_state(nn.BatchNorm)(3, "b", momentum=0.9, mode=mode)
    theirs, s2 = eqx.nn.make_with_state(eqx.nn.BatchNorm)(
        3, "b", momentum=0.9, mode=mode
    )
    assert_same_leaves(ours, theirs)
    assert_same_leaves(s1, s2)
    assert _state_keys(s1) == _state_keys(s2)

    def run(model, x, state, inference=None):
        f = jax.vmap(
            lambda x, s: model(x, s, inference=inference),
            axis_name="b",
            in_axes=(0, None),
            out_axes=(0, None),
        )
        return f(x, state)

    for i in range(3):
        x = jr.normal(jr.PRNGKey(i), (6, 3, 2)) * (i + 1) + i
        o1, s1 = run(ours, x, s1)
        o2, s2 = run(theirs, x, s2)
        assert_close(o1, o2)
        assert_close(s1, s2)
    o1, _ = run(ours, x, s1, inference=True)
    o2, _ = run(theirs, x, s2, inference=True)
    assert_close(o1, o2)


def test_spectral_norm():
    key = jr.PRNGKey(7)
    lin = eqx.nn.Linear(5, 4, key=jr.PRNGKey(8))
    ours, s1 = nn.make_with_state(nn.SpectralNorm)(lin, "weight", key=key)
    theirs, s2 = eqx.nn.make_with_state(eqx.nn.SpectralNorm)(lin, "weight", key=key)
    assert_same_leaves(ours, theirs)
    assert_close(s1, s2)
    assert _state_keys(s1) == _state_keys(s2)
    x = jr.normal(jr.PRNGKey(9), (5,))
    for _ in range(2):
        o1, s1 = ours(x, s1)
        o2, s2 = theirs(x, s2)
        assert_close(o1, o2)
        assert_close(s1, s2)


@pytest.mark.parametrize("axis", [0, 1, None])
def test_weight_norm(axis):
    lin = eqx.nn.Linear(5, 4, key=jr.PRNGKey(8))
    ours, theirs = nn.WeightNorm(lin, axis=axis), eqx.nn.WeightNorm(lin, axis=axis)
    # Equinox also stores a `functools.partial` leaf (the cause of its
    # instance-inequality); the array leaves, i.e. the checkpoint, are the same.
    arrays = [x for x in jtu.tree_leaves(theirs) if isinstance(x, jax.Array)]
    assert_close(ours, arrays)
    x = jr.normal(jr.PRNGKey(9), (5,))
    assert_close(ours(x), theirs(x))


def test_sequential_and_state_markers():
    key = jr.PRNGKey(0)

    def make(lib):
        return lib.nn.Sequential(
            [
                eqx.nn.Linear(3, 3, key=key),
                lib.nn.BatchNorm(3, "b", mode="batch"),
                lib.nn.Lambda(jax.nn.relu),
            ]
        )

    import ecliptic

    ours, s1 = nn.make_with_state(make)(ecliptic)
    theirs, s2 = eqx.nn.make_with_state(make)(eqx)
    assert _state_keys(s1) == _state_keys(s2)
    x = jr.normal(jr.PRNGKey(1), (4, 3))
    f = lambda m, s: jax.vmap(  # noqa: E731
        m, axis_name="b", in_axes=(0, None), out_axes=(0, None)
    )(x, s)
    o1, s1 = f(ours, s1)
    o2, s2 = f(theirs, s2)
    assert_close(o1, o2)
    assert_close(s1, s2)
    k = jr.PRNGKey(5)
    assert_close(ours[0:1](x[0], key=k), theirs[0:1](x[0], key=k))


def test_multihead_attention_with_rotary_process_heads():
    key = jr.PRNGKey(11)
    ours = nn.MultiheadAttention(2, 8, key=key)
    theirs = eqx.nn.MultiheadAttention(2, 8, key=key)

    def heads_fn(rope):
        def process(q, k, v):
            per_head = jax.vmap(rope, in_axes=1, out_axes=1)
            return per_head(q), per_head(k), v

        return process

    x = jr.normal(jr.PRNGKey(12), (6, 8))
    out = ours(x, x, x, process_heads=heads_fn(nn.RotaryPositionalEmbedding(4)))
    ref = theirs(x, x, x, process_heads=heads_fn(eqx.nn.RotaryPositionalEmbedding(4)))
    assert_close(out, ref)
    assert not np.allclose(out, ours(x, x, x))


def test_checkpoint_of_model_and_state_loads_in_equinox(tmp_path):
    import ecliptic

    ours, s1 = nn.make_with_state(nn.BatchNorm)(3, "b", mode="batch")
    x = jr.normal(jr.PRNGKey(0), (4, 3))
    _, s1 = jax.vmap(ours, axis_name="b", in_axes=(0, None), out_axes=(0, None))(x, s1)
    path = tmp_path / "bn.eqx"
    ecliptic.tree_serialise_leaves(path, (ours, s1))
    like = eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, "b", mode="batch")
    theirs, s2 = eqx.tree_deserialise_leaves(path, like)
    assert_same_leaves((theirs, s2), (ours, s1))
    # and back
    eqx.tree_serialise_leaves(path, (theirs, s2))
    fresh = nn.make_with_state(nn.BatchNorm)(3, "b", mode="batch")
    loaded = ecliptic.tree_deserialise_leaves(path, fresh)
    assert_same_leaves(loaded, (ours, s1))
