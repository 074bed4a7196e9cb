"""`RNN` and `Bidirectional` (`ecliptic/nn/_recurrent.py`), checked against Python
loops over the cells."""

import pathlib
import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic
import ecliptic.nn as nn
from ecliptic._module import Module
from ecliptic.nn import Bidirectional, RNN


ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = dict(rtol=1e-5, atol=1e-6)


def hand_loop(cell, xs, state, *, reverse=False, keys=None):
    """The reference: a Python loop calling the cell once per step."""
    outputs = [None] * len(xs)
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    for t in order:
        if keys is None:
            state = cell(xs[t], state)
        else:
            state = cell(xs[t], state, key=keys[t])
        outputs[t] = state[0] if isinstance(state, tuple) else state
    return jnp.stack(outputs), state


def zeros_state(cell):
    h = jnp.zeros(cell.hidden_size)
    return (h, h) if isinstance(cell, nn.LSTMCell) else h


def make_cell(kind, key, input_size=3, hidden_size=4):
    cls = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[kind]
    return cls(input_size, hidden_size, key=key)


def assert_trees_close(a, b, **tol):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(x, y, **(tol or TOL))


CELLS = ["gru", "lstm"]


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_a_hand_loop(kind, reverse, getkey):
    cell = make_cell(kind, getkey())
    xs = jr.normal(getkey(), (6, 3))
    outputs, final = RNN(cell, reverse=reverse)(xs)
    want_outputs, want_final = hand_loop(cell, xs, zeros_state(cell), reverse=reverse)
    assert outputs.shape == (6, 4)
    assert_trees_close(outputs, want_outputs)
    assert_trees_close(final, want_final)


def test_reverse_differs_from_forward(getkey):
    """The two directions are not the same computation (so the tests above can
    tell them apart)."""
    cell = make_cell("gru", getkey())
    xs = jr.normal(getkey(), (5, 3))
    assert not np.allclose(RNN(cell)(xs)[1], RNN(cell, reverse=True)(xs)[1])


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_initial_state_is_used(kind, reverse, getkey):
    cell = make_cell(kind, getkey())
    xs = jr.normal(getkey(), (4, 3))
    h0 = jr.normal(getkey(), (4,))
    state = (h0, jr.normal(getkey(), (4,))) if kind == "lstm" else h0
    got = RNN(cell, reverse=reverse)(xs, state)
    want = hand_loop(cell, xs, state, reverse=reverse)
    assert_trees_close(got, want)
    from_zeros = RNN(cell, reverse=reverse)(xs)
    assert not np.allclose(got[0], from_zeros[0])


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("as_array", [False, True])
def test_length_ignores_the_padding_exactly(kind, reverse, as_array, getkey):
    cell = make_cell(kind, getkey())
    n, steps = 3, 7
    real = jr.normal(getkey(), (n, 3))
    # NaN padding: any leak of the padding into the result would show.
    xs = jnp.concatenate([real, jnp.full((steps - n, 3), jnp.nan)])
    length = jnp.asarray(n) if as_array else n
    outputs, final = RNN(cell, reverse=reverse)(xs, length=length)
    want_outputs, want_final = hand_loop(cell, real, zeros_state(cell), reverse=reverse)
    assert outputs.shape == (steps, 4)
    np.testing.assert_allclose(outputs[:n], want_outputs, **TOL)
    np.testing.assert_array_equal(outputs[n:], 0.0)
    assert_trees_close(final, want_final)


@pytest.mark.parametrize("reverse", [False, True])
def test_length_zero_and_full(reverse, getkey):
    cell = make_cell("lstm", getkey())
    xs = jr.normal(getkey(), (4, 3))
    state = (jr.normal(getkey(), (4,)), jr.normal(getkey(), (4,)))
    rnn = RNN(cell, reverse=reverse)
    outputs, final = rnn(xs, state, length=0)
    np.testing.assert_array_equal(outputs, 0.0)
    assert_trees_close(final, state, rtol=0, atol=0)
    assert_trees_close(rnn(xs, state, length=4), rnn(xs, state))


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_vmap_with_per_example_lengths(kind, reverse, getkey):
    cell = make_cell(kind, getkey())
    rnn = RNN(cell, reverse=reverse)
    lengths = jnp.array([5, 2, 0, 4])
    xs = jr.normal(getkey(), (4, 5, 3))
    outputs, finals = jax.vmap(rnn)(xs, length=lengths)
    for i, n in enumerate(lengths.tolist()):
        if n == 0:
            want_outputs = jnp.zeros((0, 4))
            want_final = zeros_state(cell)
        else:
            want_outputs, want_final = hand_loop(
                cell, xs[i, :n], zeros_state(cell), reverse=reverse
            )
        np.testing.assert_allclose(outputs[i, :n], want_outputs, **TOL)
        np.testing.assert_array_equal(outputs[i, n:], 0.0)
        assert_trees_close(jax.tree.map(lambda f, i=i: f[i], finals), want_final)


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_match_the_hand_loop(kind, reverse, getkey):
    cell = make_cell(kind, getkey())
    xs = jr.normal(getkey(), (5, 3))
    target = jr.normal(getkey(), (5, 4))

    def loss(cell, xs, run):
        outputs, final = run(cell, xs)
        h = final[0] if isinstance(final, tuple) else final
        return jnp.sum((outputs - target) ** 2) + jnp.sum(h**3)

    def scanned(cell, xs):
        return RNN(cell, reverse=reverse)(xs)

    def looped(cell, xs):
        return hand_loop(cell, xs, zeros_state(cell), reverse=reverse)

    got = ecliptic.filter_grad(lambda p: loss(*p, scanned))((cell, xs))
    want = ecliptic.filter_grad(lambda p: loss(*p, looped))((cell, xs))
    assert_trees_close(got, want, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(got[0].weight_hh).max()) > 0


@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_with_length_match_the_unpadded_run(reverse, getkey):
    cell = make_cell("gru", getkey())
    n = 3
    # NaN padding: the gradient must not touch it either.
    xs = jnp.concatenate([jr.normal(getkey(), (n, 3)), jnp.full((3, 3), jnp.nan)])

    def loss(params, run):
        cell, xs = params
        outputs, final = run(cell, xs)
        return jnp.sum(jnp.sin(outputs)) + jnp.sum(final**2)

    def padded(cell, xs):
        return RNN(cell, reverse=reverse)(xs, length=n)

    def prefix(cell, xs):
        return hand_loop(cell, xs[:n], zeros_state(cell), reverse=reverse)

    got_cell, got_xs = ecliptic.filter_grad(lambda p: loss(p, padded))((cell, xs))
    want_cell, want_xs = ecliptic.filter_grad(lambda p: loss(p, prefix))((cell, xs))
    assert_trees_close(got_cell, want_cell, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_xs, want_xs, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got_xs[n:], 0.0)


def test_filter_jit_matches_eager(getkey):
    cell = make_cell("lstm", getkey())
    rnn = RNN(cell, reverse=True)
    xs = jr.normal(getkey(), (5, 3))
    state = (jr.normal(getkey(), (4,)), jr.normal(getkey(), (4,)))

    @ecliptic.filter_jit
    def run(rnn, xs, state, length):
        return rnn(xs, state, length=length)

    for length in (jnp.asarray(2), jnp.asarray(5)):
        assert_trees_close(run(rnn, xs, state, length), rnn(xs, state, length=length))
    assert_trees_close(ecliptic.filter_jit(rnn)(xs), rnn(xs))


def test_serialise_round_trip(tmp_path, getkey):
    rnn = RNN(make_cell("gru", getkey()))
    other = RNN(make_cell("gru", getkey()))
    xs = jr.normal(getkey(), (4, 3))
    path = tmp_path / "rnn.eqx"
    ecliptic.tree_serialise_leaves(path, rnn)
    loaded = ecliptic.tree_deserialise_leaves(path, other)
    assert not np.allclose(other(xs)[0], rnn(xs)[0])
    assert_trees_close(loaded(xs), rnn(xs), rtol=0, atol=0)

    bi = Bidirectional(RNN(make_cell("lstm", getkey())), RNN(rnn.cell, reverse=True))
    like = Bidirectional(
        RNN(make_cell("lstm", getkey())), RNN(other.cell, reverse=True)
    )
    ecliptic.tree_serialise_leaves(path, bi)
    loaded = ecliptic.tree_deserialise_leaves(path, like)
    assert_trees_close(loaded(xs, length=3), bi(xs, length=3), rtol=0, atol=0)


# -- Bidirectional --


def _bidirectional(getkey, merge=None):
    forward = RNN(make_cell("gru", getkey(), hidden_size=4))
    backward = RNN(make_cell("lstm", getkey(), hidden_size=2), reverse=True)
    return Bidirectional(forward, backward, merge=merge)


@pytest.mark.parametrize("length", [None, 3])
def test_bidirectional_concatenates_two_rnns(length, getkey):
    bi = _bidirectional(getkey)
    xs = jr.normal(getkey(), (5, 3))
    outputs, (ffinal, bfinal) = bi(xs, length=length)
    n = 5 if length is None else length
    fcell, bcell = bi.forward.cell, bi.backward.cell
    fout, fwant = hand_loop(fcell, xs[:n], zeros_state(fcell))
    bout, bwant = hand_loop(bcell, xs[:n], zeros_state(bcell), reverse=True)
    assert outputs.shape == (5, 6)
    np.testing.assert_allclose(outputs[:n], jnp.concatenate([fout, bout], -1), **TOL)
    np.testing.assert_array_equal(outputs[n:], 0.0)
    assert_trees_close(ffinal, fwant)
    assert_trees_close(bfinal, bwant)


def test_bidirectional_custom_merge_and_state(getkey):
    forward = RNN(make_cell("gru", getkey()))
    backward = RNN(make_cell("gru", getkey()), reverse=True)
    seen = []

    def merge(f, b):
        seen.append((f.shape, b.shape))
        return f * b + 1.0

    bi = Bidirectional(forward, backward, merge=merge)
    xs = jr.normal(getkey(), (5, 3))
    h_f, h_b = jr.normal(getkey(), (4,)), jr.normal(getkey(), (4,))
    outputs, (ffinal, bfinal) = bi(xs, (h_f, h_b))
    fout, fwant = hand_loop(forward.cell, xs, h_f)
    bout, bwant = hand_loop(backward.cell, xs, h_b, reverse=True)
    assert seen == [((5, 4), (5, 4))]
    np.testing.assert_allclose(outputs, fout * bout + 1.0, **TOL)
    assert_trees_close((ffinal, bfinal), (fwant, bwant))
    # One direction's state given, the other's defaulting to zeros.
    _, (_, bzero) = bi(xs, (h_f, None))
    assert_trees_close(
        bzero, hand_loop(backward.cell, xs, jnp.zeros(4), reverse=True)[1]
    )


def test_bidirectional_under_vmap_and_jit(getkey):
    bi = _bidirectional(getkey)
    xs = jr.normal(getkey(), (3, 5, 3))
    lengths = jnp.array([5, 1, 3])
    got = ecliptic.filter_jit(jax.vmap(bi))(xs, length=lengths)
    for i, n in enumerate(lengths.tolist()):
        want = bi(xs[i], length=n)
        assert_trees_close(jax.tree.map(lambda a, i=i: a[i], got), want)


# -- user cells, keys, dtypes --


class Accumulate(Module):
    """A user cell: `hidden + weight * input`, with an optional random scale."""

    weight: jax.Array
    hidden_size: int = 2

    def __call__(self, input, hidden, *, key=None):
        step = self.weight * input
        if key is not None:
            step = step * jr.uniform(key, ())
        return hidden + step


def test_a_user_cell_and_per_step_keys(getkey):
    cell = Accumulate(jnp.array([1.0, -2.0]))
    xs = jr.normal(getkey(), (4, 2))
    outputs, final = RNN(cell)(xs)
    np.testing.assert_allclose(
        outputs, jnp.cumsum(xs * cell.weight[None], axis=0), **TOL
    )
    key = getkey()
    got = RNN(cell, reverse=True)(xs, key=key)
    want = hand_loop(cell, xs, jnp.zeros(2), reverse=True, keys=jr.split(key, 4))
    assert_trees_close(got, want)


def test_a_cell_without_hidden_size_needs_a_state(getkey):
    def cell(x, h):
        return {"sum": h["sum"] + x}

    xs = jr.normal(getkey(), (3, 2))
    rnn = RNN(cell)
    outputs, final = rnn(xs, {"sum": jnp.ones(2)})
    np.testing.assert_allclose(final["sum"], 1 + xs.sum(0), **TOL)
    np.testing.assert_allclose(outputs["sum"], 1 + jnp.cumsum(xs, 0), **TOL)
    with pytest.raises(
        ValueError,
        match=r"ecliptic.nn.RNN\(cell, reverse=False\) needs an initial `state`: "
        r"the cell, of type function, has no int attribute `hidden_size`",
    ):
        rnn(xs)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.complex64])
def test_the_default_state_takes_the_cells_dtype(dtype, getkey):
    cell = nn.GRUCell(3, 4, dtype=dtype, key=getkey())
    xs = jr.normal(getkey(), (4, 3)).astype(dtype)
    outputs, final = RNN(cell)(xs, length=2)
    assert outputs.dtype == final.dtype == dtype
    want = hand_loop(cell, xs[:2], jnp.zeros(4, dtype))
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == jnp.bfloat16 else TOL
    np.testing.assert_allclose(
        np.asarray(outputs[:2], np.complex64), np.asarray(want[0], np.complex64), **tol
    )


def test_an_empty_sequence(getkey):
    cell = make_cell("lstm", getkey())
    outputs, final = RNN(cell)(jnp.zeros((0, 3)))
    assert outputs.shape == (0, 4)
    assert_trees_close(final, zeros_state(cell), rtol=0, atol=0)


# -- errors --


def test_a_batch_of_sequences_raises_the_vmap_error(getkey):
    rnn = RNN(make_cell("gru", getkey()))
    with pytest.raises(
        ecliptic.ShapeError,
        match=re.escape(
            "ecliptic.nn.RNN(ecliptic.nn.GRUCell(input_size=3, hidden_size=4), "
            "reverse=False) expected `xs` of shape (length, 3), but got shape "
            "(2, 5, 3). Layers act on a single example: map over the leading axis "
            "with `jax.vmap(rnn)(xs)`"
        )
        + ".*"
        + re.escape("`jax.vmap(rnn)(xs, length=lengths)`"),
    ):
        rnn(jnp.zeros((2, 5, 3)))
    bi = Bidirectional(rnn, RNN(rnn.cell, reverse=True))
    with pytest.raises(
        ecliptic.ShapeError,
        match=r"ecliptic.nn.Bidirectional\(ecliptic.nn.GRUCell\(.*\) expected `xs` "
        r"of shape \(length, 3\), but got shape \(2, 5, 3\)",
    ):
        bi(jnp.zeros((2, 5, 3)))


def test_wrong_input_size_and_rank(getkey):
    rnn = RNN(make_cell("gru", getkey()))
    with pytest.raises(
        ValueError, match=r"shape \(5, 2\). The last axis must be input_size=3, not 2"
    ):
        rnn(jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"`xs` must have 2 axes, not 1"):
        rnn(jnp.zeros(3))
    with pytest.raises(ValueError, match=r"expected `xs` of shape \(length, 3\)"):
        ecliptic.filter_jit(rnn)(jnp.zeros((4, 5, 3)))


def test_length_errors(getkey):
    rnn = RNN(make_cell("gru", getkey()))
    xs = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=r"expected `length` in \[0, 4\].*length=5"):
        rnn(xs, length=5)
    with pytest.raises(ValueError, match=r"length=-1"):
        rnn(xs, length=jnp.asarray(-1))
    for bad, got in [
        (2.0, "2.0 of type float"),
        (True, "True of type bool"),
        (jnp.array([1, 2]), r"an array of shape \(2,\) and dtype int32"),
        (jnp.asarray(1.0), r"an array of shape \(\) and dtype float32"),
    ]:
        with pytest.raises(
            TypeError,
            match=r"expected `length` to be an int or an integer array of shape "
            rf"\(\), but got {got}",
        ):
            rnn(xs, length=bad)


def test_state_errors(getkey):
    cell = make_cell("gru", getkey())
    xs = jnp.zeros((4, 3))
    with (
        jax.numpy_dtype_promotion("standard"),
        pytest.raises(
            TypeError,
            match=r"expected the cell to return a hidden state with the same "
            r"structure, shapes and dtypes .* leaves \[bfloat16\[4\]\] it returned "
            r".* leaves \[float32\[4\]\]",
        ),
    ):
        RNN(cell)(xs, jnp.zeros(4, jnp.bfloat16))

    def pairing(x, h):
        return (h + x, h)

    with pytest.raises(
        TypeError,
        match=r"RNN\(pairing, reverse=False\) expected the cell to return .* from "
        r"the state PyTreeDef\(\*\) .* it returned PyTreeDef\(\(\*, \*\)\)",
    ):
        RNN(pairing)(xs, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"GRUCell.*expected `hidden` of shape \(4,\)"):
        RNN(cell)(xs, jnp.zeros(5))
    lstm = make_cell("lstm", getkey())
    with pytest.raises(TypeError, match=r"expected `hidden` to be a pair `\(h, c\)`"):
        RNN(lstm)(xs, jnp.zeros(4))
    with pytest.raises(TypeError, match=r"expected a cell: a callable .* type int"):
        RNN(3)


def test_bidirectional_errors(getkey):
    cell = make_cell("gru", getkey())
    with pytest.raises(
        ValueError,
        match=re.escape(
            "expected `backward` to be an RNN with reverse=True, but got one with "
            "reverse=False. Pass `RNN(cell, reverse=True)` as `backward`."
        ),
    ):
        Bidirectional(RNN(cell), RNN(cell))
    with pytest.raises(ValueError, match=r"`forward` to be an RNN with reverse=False"):
        Bidirectional(RNN(cell, reverse=True), RNN(cell, reverse=True))
    with pytest.raises(
        TypeError, match=r"expected `forward` to be an ecliptic.nn.RNN, .* GRUCell"
    ):
        Bidirectional(cell, RNN(cell, reverse=True))
    bi = Bidirectional(RNN(cell), RNN(cell, reverse=True))
    with pytest.raises(TypeError, match=r"`state` to be None or a pair"):
        bi(jnp.zeros((4, 3)), jnp.zeros(4))
