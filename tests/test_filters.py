import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic as ec

from .helpers import Linear, make_mlp, pytrees, same


PREDICATES = [ec.is_array, ec.is_inexact_array, ec.is_array_like, lambda x: x is None]


def test_is_array_memo_does_not_leak_into_tracers():
    assert ec.is_array(jnp.ones(1)) and ec.is_array(np.ones(1))
    assert ec.is_array(np.float32(1)) and not ec.is_array(1.0)
    assert not ec.is_array(jnp.tanh) and not ec.is_array("a")
    seen = []
    jax.jit(lambda x: seen.append(ec.is_array(x)) or x)(1.0)
    jax.grad(lambda x: seen.append(ec.is_array(x)) or x)(1.0)
    assert seen == [True, True]


def test_filter_callable_and_bool_spec():
    obj = object()
    tree = [(jnp.array(0), 1), obj]
    out = ec.filter(tree, ec.is_array)
    assert out[0][1] is None and out[1] is None and out[0][0] is tree[0][0]
    out = ec.filter(tree, [False, True])
    assert out == [(None, None), obj]
    assert ec.filter(tree, [False, True], inverse=True)[0][1] == 1
    assert ec.filter(tree, True, replace=0) == tree
    assert ec.filter(tree, False, replace=0) == [(0, 0), 0]


def test_filter_prefix_spec_mixes_bools_and_callables():
    tree = {"a": (1, jnp.ones(2)), "b": [2.0, "s"], "c": None}
    spec = {"a": ec.is_array, "b": True, "c": None}
    out = ec.filter(tree, spec)
    assert out["a"][0] is None and out["a"][1] is tree["a"][1]
    assert out["b"] == [2.0, "s"] and out["c"] is None
    left, right = ec.partition(tree, spec, replace="-")
    assert left["a"][0] == "-" and right["a"][1] == "-" and right["b"] == ["-", "-"]


def test_filter_is_leaf_passes_whole_subtrees():
    tree = [(1, 2), (3, jnp.ones(1))]
    out = ec.filter(tree, lambda x: isinstance(x, tuple), is_leaf=lambda x: x != ())
    assert out is None  # the whole list is one leaf for this is_leaf, not a tuple
    out = ec.filter(tree, lambda t: len(t) == 2, is_leaf=lambda x: type(x) is tuple)
    assert out[0] == (1, 2) and out[1] is tree[1]


def test_filter_on_modules_keeps_static_structure():
    mlp = make_mlp(2)
    params, static = ec.partition(mlp, ec.is_array)
    assert params.layers[0].weight is mlp.layers[0].weight
    assert params.activation is None and static.activation is jnp.tanh
    assert static.layers[1].weight is None and static.layers[1].size == 2
    assert jtu.tree_structure(ec.combine(params, static)) == jtu.tree_structure(mlp)
    assert ec.combine(params, static).layers[1].bias is mlp.layers[1].bias
    spec = ec.tree_at(
        lambda m: m.layers[0].weight, jtu.tree_map(lambda _: False, mlp), True
    )
    only = ec.filter(mlp, spec)
    assert only.layers[0].weight is mlp.layers[0].weight
    assert only.layers[0].bias is None and only.layers[1].weight is None


def test_filter_spec_with_tracer_raises():
    def f(x):
        return ec.filter((1, 2), (True, x > 0))

    with pytest.raises(ValueError, match=r"traced array .* at `filter_spec\[1\]`"):
        jax.jit(f)(1.0)


@pytest.mark.parametrize("bad", [np.bool_(True), 1, "yes"])
def test_filter_spec_non_bool_raises(bad):
    with pytest.raises(
        ValueError, match=r"Python bool or a callable.*`filter_spec\[1\]`"
    ):
        ec.filter((1, 2), (True, bad))
    with pytest.raises(ValueError, match=r"ecliptic.partition expected"):
        ec.partition((1, 2), (True, bad))


def test_filter_spec_must_be_a_prefix():
    with pytest.raises(ValueError):
        ec.filter((1, 2), (True, True, True))
    with pytest.raises(ValueError):
        ec.partition({"a": 1}, {"b": True})


def test_combine_first_non_none_and_prefix():
    assert ec.combine([None, 1, 2], [0, None, None]) == [0, 1, 2]
    assert ec.combine([None, None], [None, 5], [3, 4]) == [3, 5]
    assert ec.combine(None, [1, (2,)]) == [1, (2,)]
    assert ec.combine([1, None]) == [1, None]
    assert ec.combine([(1, None)], [None], is_leaf=lambda x: isinstance(x, tuple)) == [
        (1, None)
    ]


def test_combine_needs_a_tree():
    with pytest.raises(TypeError, match="at least one PyTree"):
        ec.combine()


def test_combine_structure_mismatch_raises():
    with pytest.raises(ValueError):
        ec.combine([(1, 2)], [None])


def test_partition_under_jit_round_trips(getkey):
    lin = Linear(jax.random.normal(getkey(), (2, 2)), jnp.zeros(2))

    @jax.jit
    def f(params):
        return ec.combine(params, static).weight.sum()

    params, static = ec.partition(lin, ec.is_array)
    assert jnp.allclose(f(params), lin.weight.sum())


@settings(max_examples=30, deadline=None)
@given(pytrees, st.sampled_from(PREDICATES))
def test_partition_combine_round_trip(tree, pred):
    left, right = ec.partition(tree, pred)
    assert same(ec.combine(left, right), tree)
    assert same(ec.combine(right, left), tree)
    flat, treedef = jtu.tree_flatten(tree)
    for x, lx, rx in zip(
        flat, treedef.flatten_up_to(left), treedef.flatten_up_to(right)
    ):
        assert (lx is x and rx is None) if pred(x) else (rx is x and lx is None)


@settings(max_examples=30, deadline=None)
@given(pytrees, st.sampled_from(PREDICATES))
def test_filter_inverse_complements(tree, pred):
    kept = ec.filter(tree, pred, replace=0)
    dropped = ec.filter(tree, pred, inverse=True, replace=0)
    flat, treedef = jtu.tree_flatten(tree)
    assert jtu.tree_structure(kept) == treedef == jtu.tree_structure(dropped)
    for x, k, d in zip(flat, jtu.tree_leaves(kept), jtu.tree_leaves(dropped)):
        assert (k is x and d == 0) if pred(x) else (d is x and k == 0)
    left, right = ec.partition(tree, pred)
    assert same(left, ec.filter(tree, pred))
    assert same(right, ec.filter(tree, pred, inverse=True))


def test_combine_without_jax_none_leaf_registry(monkeypatch):
    import ecliptic._filters as filters_module

    monkeypatch.setattr(filters_module, "_NONE_LEAF_REGISTRY", None)
    assert ec.combine([None, (1, None)], [0, (None, 2)]) == [0, (1, 2)]
    assert ec.apply_updates([1, None, 2], [None, None, 3]) == [1, None, 5]


@pytest.mark.parametrize(
    "value, inexact",
    [
        (jnp.ones(2), True),
        (np.ones(2, np.float16), True),
        (jnp.ones(2, jnp.bfloat16), True),
        (jnp.ones(2, jnp.complex64), True),
        (jnp.ones(2, jnp.int32), False),
        (np.ones(2, bool), False),
        (jax.random.key(0), False),
        (jax.random.split(jax.random.key(0), 3), False),
    ],
)
def test_is_inexact_by_dtype(value, inexact):
    # PRNG keys have an extended dtype that NumPy cannot read: not inexact, no error.
    assert ec.is_inexact_array(value) is inexact
    assert ec.is_inexact_array_like(value) is inexact
