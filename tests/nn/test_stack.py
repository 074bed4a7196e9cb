"""`Stacked`: `n` identical layers as one stacked Module, applied with `lax.scan`."""

import re

import jax
import jax.extend
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx
import ecliptic.nn as nn
from ecliptic._module import Module
from ecliptic.nn import Stacked


WIDTH = 8


class Block(Module):
    """A residual MLP block: `x + w2 @ tanh(w1 @ x + b1) + b2`."""

    lin1: nn.Linear
    lin2: nn.Linear

    def __init__(self, key, width=WIDTH):
        k1, k2 = jr.split(key)
        self.lin1 = nn.Linear(width, width, key=k1)
        self.lin2 = nn.Linear(width, width, key=k2)

    def __call__(self, x, *, key=None):
        return x + self.lin2(jnp.tanh(self.lin1(x)))


def by_hand(stacked, x):
    """The stack applied with jnp, layer by layer, from its stacked arrays."""
    a, b = stacked.layers.lin1, stacked.layers.lin2
    for i in range(stacked.n):
        x = x + b.weight[i] @ jnp.tanh(a.weight[i] @ x + a.bias[i]) + b.bias[i]
    return x


def count_eqns(jaxpr):
    """Equations of a jaxpr, counting those of its sub-jaxprs (scan bodies...)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += count_eqns(sub)
    return total


# -- construction ------------------------------------------------------------------


def test_same_weights_as_filter_vmap_by_hand(getkey):
    key = getkey()
    stacked = Stacked(Block, 4, key=key)
    assert eqx.tree_equal(stacked.layers, eqx.filter_vmap(Block)(jr.split(key, 4)))
    assert stacked.layers.lin1.weight.shape == (4, WIDTH, WIDTH)
    for i, k in enumerate(jr.split(key, 4)):  # each layer is Block(k_i), unbatched
        assert eqx.tree_equal(stacked[i], Block(k), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", [0, -2, 2.0, True, "3"])
def test_bad_size_refused(n, getkey):
    with pytest.raises(ValueError, match=r"expected `n`.*positive int.*`n=12`"):
        Stacked(Block, n, key=getkey())


@pytest.mark.parametrize("unroll", [0, -1, 1.5])
def test_bad_unroll_refused(unroll, getkey):
    with pytest.raises(ValueError, match=r"`unroll` to be a positive int or a bool"):
        Stacked(Block, 2, key=getkey(), unroll=unroll)


class Counter(Module):
    index: nn.StateIndex

    def __init__(self, key):
        self.index = nn.StateIndex(jnp.zeros(()))

    def __call__(self, x, *, key=None):
        return x


def test_stateful_layer_refused(getkey):
    match = r"cannot stack Counter: it holds an `ecliptic.nn.StateIndex`.*Sequential"
    with pytest.raises(ValueError, match=match):
        Stacked(Counter, 3, key=getkey())
    with pytest.raises(ValueError, match=match):
        Stacked.from_layers([Counter(None), Counter(None)])


# -- calling -----------------------------------------------------------------------


def test_equals_unrolled_sequential(getkey):
    stacked = Stacked(Block, 4, key=getkey())
    x = jr.normal(getkey(), (WIDTH,))
    unrolled = nn.Sequential([stacked[i] for i in range(4)])
    out = stacked(x)
    np.testing.assert_allclose(out, unrolled(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, by_hand(stacked, x), rtol=1e-5, atol=1e-6)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_grad_equals_unrolled_sequential(getkey):
    stacked = Stacked(Block, 4, key=getkey())
    x = jr.normal(getkey(), (WIDTH,))
    unrolled = nn.Sequential(list(stacked))

    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(stacked)
    seq_grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(unrolled)
    expected = jax.tree.map(lambda *g: jnp.stack(g), *seq_grads.layers)
    assert isinstance(grads, Stacked)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and against JAX's own grad of the jnp reference
    hand = jax.grad(lambda m: jnp.sum(by_hand(m, x) ** 2))(stacked)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(hand)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [2, True])
def test_unroll_gives_the_same_result(unroll, getkey):
    key, x = getkey(), jr.normal(getkey(), (WIDTH,))
    stacked = Stacked(Block, 4, key=key, unroll=unroll)
    assert stacked.unroll is unroll or stacked.unroll == unroll
    np.testing.assert_allclose(
        stacked(x), Stacked(Block, 4, key=key)(x), rtol=1e-5, atol=1e-6
    )


def test_vmap_over_a_batch(getkey):
    stacked = Stacked(Block, 4, key=getkey())
    xs = jr.normal(getkey(), (7, WIDTH))
    out = jax.vmap(stacked)(xs)
    assert out.shape == (7, WIDTH)
    for x, y in zip(xs, out):
        np.testing.assert_allclose(y, by_hand(stacked, x), rtol=1e-5, atol=1e-6)


def test_batched_input_raises_the_layers_shape_error(getkey):
    stacked = Stacked(Block, 4, key=getkey())
    with pytest.raises(eqx.ShapeError) as info:
        stacked(jnp.ones((4, WIDTH)))
    message = str(info.value)
    assert "ecliptic.nn.Linear(in_features=8, out_features=8)" in message
    assert f"but got shape (4, {WIDTH})" in message
    assert "jax.vmap(layer)(x)" in message


def test_shape_changing_layer_refused(getkey):
    stacked = Stacked(lambda k: nn.Linear(4, 3, key=k), 2, key=getkey())
    match = (
        re.escape("ecliptic.nn.Stacked(n=2) of Linear expected each layer to return")
        + ".*"
        + re.escape("given `x` of shape (4,) and dtype float32 returned shape (3,)")
        + ".*Sequential"
    )
    with pytest.raises(ValueError, match=match):
        stacked(jnp.ones(4))


class ToFloat32(Module):
    def __call__(self, x, *, key=None):
        return x.astype(jnp.float32)


def test_dtype_changing_layer_refused(getkey):
    stacked = Stacked(lambda k: ToFloat32(), 2, key=getkey())
    match = re.escape(
        "given `x` of shape (3,) and dtype float16 returned shape (3,) and dtype "
        "float32. The layers compute in float32: cast the input with "
        "`x.astype(jnp.float32)`, or build the layers with `dtype=jnp.float16`."
    )
    with pytest.raises(ValueError, match=match):
        stacked(jnp.ones(3, jnp.float16))


class Swap(Module):
    """Maps a pytree `(a, b)` to `(b + w, a)`, or drops a leaf if `bad`."""

    w: jax.Array
    bad: bool = eqx.field(static=True, default=False)

    def __call__(self, x, *, key=None):
        a, b = x
        return (b + self.w, a) if not self.bad else (b + self.w,)


def test_pytree_input(getkey):
    stacked = Stacked(lambda k: Swap(jr.normal(k, (3,))), 3, key=getkey())
    a, b = jnp.zeros(3), jnp.ones(3)
    w = stacked.layers.w
    got = stacked((a, b))
    # (a, b) -> (b + w0, a) -> (a + w1, b + w0) -> (b + w0 + w2, a + w1)
    want = (b + w[0] + w[2], a + w[1])
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    bad = Stacked(lambda k: Swap(jr.normal(k, (3,)), bad=True), 2, key=getkey())
    with pytest.raises(ValueError, match=r"given `x` of a pytree \(`\[0\]`"):
        bad((a, b))


class DropBlock(Module):
    """`2 * x + dropout(ones)`: with `x = 0` the output holds every layer's mask."""

    dropout: nn.Dropout

    def __init__(self, key):
        self.dropout = nn.Dropout(0.5)

    def __call__(self, x, *, key=None):
        return 2 * x + self.dropout(jnp.ones_like(x), key=key)


def test_per_layer_keys_with_dropout(getkey):
    n, key = 3, getkey()
    stacked = Stacked(DropBlock, n, key=key)
    x = jnp.zeros(64)
    out = stacked(x, key=key)
    # reference: each layer's Dropout called directly with `jr.split(key, n)[i]`
    masks = [nn.Dropout(0.5)(jnp.ones(64), key=k) for k in jr.split(key, n)]
    expected = sum(2 ** (n - 1 - i) * m for i, m in enumerate(masks))
    np.testing.assert_allclose(out, expected)
    assert not all(bool(jnp.all(m == masks[0])) for m in masks[1:])  # masks differ
    np.testing.assert_array_equal(stacked(x, key=key), out)  # deterministic
    assert not bool(jnp.all(stacked(x, key=getkey()) == out))  # another key differs
    np.testing.assert_array_equal(nn.Sequential(list(stacked))(x, key=key), out)
    inference = nn.inference_mode(stacked)
    np.testing.assert_array_equal(inference(x), jnp.full(64, 2.0**n - 1))


# -- indexing ----------------------------------------------------------------------


def test_indexing(getkey):
    key = getkey()
    stacked = Stacked(Block, 4, key=key)
    keys = jr.split(key, 4)
    assert len(stacked) == 4
    assert isinstance(stacked[0], Block)
    assert stacked[0].lin1.weight.shape == (WIDTH, WIDTH)
    np.testing.assert_array_equal(stacked[2].lin1.weight, stacked.layers.lin1.weight[2])
    assert eqx.tree_equal(stacked[-1], stacked[3])
    assert eqx.tree_equal(stacked[-1], Block(keys[3]), rtol=1e-6, atol=1e-6)
    assert eqx.tree_equal(list(stacked), [stacked[i] for i in range(4)])
    part = stacked[1:3]
    assert isinstance(part, Stacked) and len(part) == 2
    assert eqx.tree_equal(part[0], stacked[1])


@pytest.mark.parametrize("index", [4, -5, 100])
def test_index_out_of_range(index, getkey):
    stacked = Stacked(Block, 4, key=getkey())
    match = f"n=4 layers has no layer {index}: valid indices are -4 to 3"
    with pytest.raises(IndexError, match=match):
        stacked[index]


def test_bad_index_refused(getkey):
    stacked = Stacked(Block, 4, key=getkey())
    with pytest.raises(TypeError, match=r"indices must be Python ints or slices"):
        stacked[1.0]
    with pytest.raises(IndexError, match=r"the slice .* selects no layer"):
        stacked[3:1]


# -- from_layers -------------------------------------------------------------------


def test_from_layers_round_trip(getkey):
    layers = [Block(getkey()) for _ in range(3)]
    stacked = Stacked.from_layers(layers)
    assert len(stacked) == 3
    for i, layer in enumerate(layers):
        assert eqx.tree_equal(stacked[i], layer)
    x = jr.normal(getkey(), (WIDTH,))
    np.testing.assert_allclose(
        stacked(x), nn.Sequential(layers)(x), rtol=1e-5, atol=1e-6
    )
    again = Stacked.from_layers(list(stacked))
    assert eqx.tree_equal(again, stacked)


def test_from_layers_refuses_different_static_parts(getkey):
    k = getkey()
    with pytest.raises(ValueError, match=r"expected at least one layer"):
        Stacked.from_layers([])
    with pytest.raises(ValueError, match=r"layer 0 is a Linear, layer 1 a Block"):
        Stacked.from_layers([nn.Linear(WIDTH, WIDTH, key=k), Block(k)])
    with pytest.raises(ValueError, match=r"tree structures \(static fields included\)"):
        Stacked.from_layers(
            [nn.Linear(4, 4, key=k), nn.Linear(4, 4, use_bias=False, key=k)]
        )
    with pytest.raises(
        ValueError, match=r"`layer.fn` is .* in layer 0 but .*tanh.* in layer 1"
    ):
        Stacked.from_layers([nn.Lambda(jax.nn.relu), nn.Lambda(jnp.tanh)])
    with pytest.raises(ValueError, match=r"`layer.p` is 0.5 in layer 0 but 0.1"):
        Stacked.from_layers([nn.Dropout(0.5), nn.Dropout(0.5), nn.Dropout(0.1)])
    match = re.escape(
        "the array `layer.w` of layer 1 to have shape (3,) and dtype float32, as "
        "in layer 0, but got shape (4,) and dtype float32"
    )
    with pytest.raises(ValueError, match=match):
        Stacked.from_layers([Swap(jnp.zeros(3)), Swap(jnp.zeros(4))])


# -- transformations, serialisation, compile cost ----------------------------------


class CountedBlock(Block):
    """A `Block` that counts how often its `__call__` is traced."""

    def __call__(self, x, *, key=None):
        CALLS.append(None)
        return super().__call__(x, key=key)


CALLS: list = []


def test_filter_jit_traces_the_layer_once(getkey):
    CALLS.clear()
    n = 8

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def loss(model, x):
        return jnp.sum(model(x) ** 2)

    stacked = Stacked(CountedBlock, n, key=getkey())
    x = jr.normal(getkey(), (WIDTH,))
    loss(stacked, x)
    assert len(CALLS) == 1  # one trace of the body, not n
    loss(Stacked(CountedBlock, n, key=getkey()), 2 * x)  # new weights: no retrace
    assert len(CALLS) == 1
    assert eqx.debug.get_num_traces(loss) == 1
    CALLS.clear()
    nn.Sequential(list(stacked))(x)  # the unrolled stack runs each layer
    assert len(CALLS) == n


def test_serialisation_round_trip(getkey, tmp_path):
    stacked = Stacked(Block, 4, key=getkey())
    path = tmp_path / "stack.eqx"
    eqx.tree_serialise_leaves(path, stacked)
    like = Stacked(Block, 4, key=getkey())
    assert not eqx.tree_equal(like, stacked)
    loaded = eqx.tree_deserialise_leaves(path, like)
    assert eqx.tree_equal(loaded, stacked)
    x = jr.normal(getkey(), (WIDTH,))
    np.testing.assert_array_equal(loaded(x), stacked(x))
    np.testing.assert_array_equal(loaded[2].lin2.weight, stacked[2].lin2.weight)


def test_compile_cost_is_flat_in_depth(getkey):
    """The traced program of a depth-64 stack is as long as a depth-4 one (forward
    and gradient), while the unrolled `Sequential` grows with depth."""
    x = jr.normal(getkey(), (WIDTH,))
    key = getkey()

    def eqns(model):
        fwd = count_eqns(jax.make_jaxpr(model)(x).jaxpr)
        grad_fn = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))
        grad = count_eqns(eqx.filter_make_jaxpr(grad_fn)(model)[0].jaxpr)
        return fwd, grad

    shallow, deep = Stacked(Block, 4, key=key), Stacked(Block, 64, key=key)
    assert eqns(shallow) == eqns(deep)
    seq_shallow, seq_deep = (
        eqns(nn.Sequential(list(shallow))),
        eqns(nn.Sequential(list(deep))),
    )
    assert seq_deep[0] > 8 * seq_shallow[0] and seq_deep[1] > 8 * seq_shallow[1]
