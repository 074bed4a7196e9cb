"""Filters and tree tools give the same results, and raise the same error types, as
Equinox 0.13.8."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic as ec

from ..helpers import getter, pytrees


def _outcome(fn, *args, **kwargs):
    """('ok', result) or ('raise', exception type)."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return "raise", type(e)


def _same(a, b) -> bool:
    return jtu.tree_structure(a) == jtu.tree_structure(b) and all(
        x is y or bool(ec.tree_equal(x, y, typematch=True))
        for x, y in zip(jtu.tree_leaves(a), jtu.tree_leaves(b))
    )


def assert_parity(name, *args, **kwargs):
    ours = _outcome(getattr(ec, name), *args, **kwargs)
    theirs = _outcome(getattr(eqx, name), *args, **kwargs)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "raise":
        assert ours[1] is theirs[1], (ours, theirs)
    else:
        assert _same(ours[1], theirs[1]), (ours, theirs)


PREDICATES = [
    ("is_array", ec.is_array, eqx.is_array),
    ("is_inexact_array", ec.is_inexact_array, eqx.is_inexact_array),
    ("is_array_like", ec.is_array_like, eqx.is_array_like),
]


@settings(max_examples=30, deadline=None)
@given(pytrees, st.sampled_from(PREDICATES), st.booleans())
def test_filter_partition_combine_parity(tree, preds, inverse):
    _, ours, theirs = preds
    assert _same(
        ec.filter(tree, ours, inverse=inverse),
        eqx.filter(tree, theirs, inverse=inverse),
    )
    left, right = ec.partition(tree, ours, replace=0)
    eleft, eright = eqx.partition(tree, theirs, replace=0)
    assert _same(left, eleft) and _same(right, eright)
    a, b = ec.partition(tree, ours)
    assert _same(ec.combine(a, b), eqx.combine(a, b))
    assert _same(ec.combine(b, a), eqx.combine(b, a))


@pytest.mark.parametrize(
    "tree, spec",
    [
        ((1, 2), (True, False)),
        ({"a": (1, jnp.ones(1)), "b": 2}, {"a": eqx.is_array, "b": True}),
        ((1, 2), (True, np.bool_(True))),
        ((1, 2), (True, 1)),
        ((1, 2), (True, True, True)),
        ([1, None], [True, None]),
        ([1, 2], [True, None]),
    ],
)
def test_filter_spec_parity(tree, spec):
    assert_parity("filter", tree, spec)
    assert_parity("filter", tree, spec, inverse=True, replace="r")
    assert_parity("partition", tree, spec)


@pytest.mark.parametrize(
    "trees",
    [
        ([None, 1, 2], [0, None, None]),
        ([None, None], [None, 5], [3, 4]),
        (None, [1, (2,)]),
        ([1, None],),
        ([(1, 2)], [None]),
        ([1, None], [None]),
    ],
)
def test_combine_parity(trees):
    assert_parity("combine", *trees)


def test_filter_on_traced_spec_parity():
    def run(lib):
        return _outcome(jax.jit(lambda x: lib.filter((1, 2), (True, x > 0))), 1.0)

    assert run(ec)[1] is run(eqx)[1] is ValueError


TREE = [1, [2, {"a": 3, "b": 4}], (), (), None, (5, None)]

TREE_AT_CASES = [
    (lambda t: t[1][1]["a"], {"replace": 9}),
    (lambda t: t[1], {"replace": "x"}),
    (lambda t: (t[0], t[1][0]), {"replace": ("a", "b")}),
    (lambda t: t[1], {"replace_fn": lambda x: (x, x)}),
    (lambda t: t[2], {"replace": 7}),
    (lambda t: t[3], {"replace_fn": len}),
    (lambda t: t[4], {"replace": 1}),  # `None` occurs twice
    (lambda t: t[4], {"replace": 1, "is_leaf": lambda x: x is None}),
    (lambda t: t[5][1], {"replace": 1, "is_leaf": lambda x: x is None}),
    (lambda t: [x for x in t if isinstance(x, int)], {"replace": (0,)}),
    (lambda t: t[0], {}),
    (lambda t: t[0], {"replace": 1, "replace_fn": lambda x: x}),
    (lambda t: (t[0], t[1]), {"replace": (1, 2, 3)}),
    (lambda t: (t[0], t[1]), {"replace": 3}),
    (lambda t: 5, {"replace": 3}),
    (lambda t: (t[1], t[1][0]), {"replace": (3, 4)}),
    (lambda t: (), {"replace": ()}),
    (lambda t: t, {"replace": 0}),
    (lambda t: t[1][1], {"replace": 0, "is_leaf": lambda x: isinstance(x, dict)}),
]


@pytest.mark.parametrize("where, kwargs", TREE_AT_CASES)
def test_tree_at_parity(where, kwargs):
    assert_parity("tree_at", where, TREE, **kwargs)


def _models(lib):
    class Linear(lib.Module):
        weight: Any
        bias: Any
        size: int = lib.field(static=True, default=2)

        def __check_init__(self):
            if self.size < 0:
                raise ValueError("negative size")

    class MLP(lib.Module):
        layers: tuple
        activation: Any = jnp.tanh

    return MLP(tuple(Linear(jnp.full((2, 2), i), jnp.full((2,), i)) for i in range(3)))


@pytest.mark.parametrize(
    "where, kwargs",
    [
        (lambda m: m.layers[1].weight, {"replace": jnp.zeros(3)}),
        (lambda m: (m.layers[0].bias, m.activation), {"replace": (None, jnp.sin)}),
        (lambda m: m.layers[2], {"replace_fn": lambda l: l.weight}),
        (lambda m: m.layers, {"replace": ()}),
    ],
)
def test_tree_at_module_parity(where, kwargs):
    ours = ec.tree_at(where, _models(ec), **kwargs)
    theirs = eqx.tree_at(where, _models(eqx), **kwargs)
    assert jtu.tree_map(type, jtu.tree_leaves(ours)) == jtu.tree_map(
        type, jtu.tree_leaves(theirs)
    )
    assert all(
        bool(ec.tree_equal(a, b))
        for a, b in zip(jtu.tree_leaves(ours), jtu.tree_leaves(theirs))
    )


@settings(max_examples=30, deadline=None)
@given(pytrees, st.data())
def test_tree_at_read_back_parity(tree, data):
    paths = jtu.tree_flatten_with_path(tree)[0]
    if not paths:
        return
    where = getter(paths[data.draw(st.integers(0, len(paths) - 1))][0])
    assert_parity("tree_at", where, tree, replace="new")
    assert_parity("tree_at", where, tree, replace_fn=lambda x: (x, x))


@settings(max_examples=30, deadline=None)
@given(pytrees, st.data())
def test_tree_at_subtree_parity(tree, data):
    paths = jtu.tree_flatten_with_path(tree)[0]
    if not paths:
        return
    path = paths[data.draw(st.integers(0, len(paths) - 1))][0]
    outer = getter(path[: data.draw(st.integers(0, len(path)))])
    inner = getter(path)
    assert_parity("tree_at", outer, tree, replace="new")
    assert_parity("tree_at", outer, tree, replace_fn=lambda x: [x])
    assert_parity("tree_at", lambda t: (outer(t), inner(t)), tree, replace=(1, 2))
    assert_parity("tree_at", lambda t: (outer(t), outer(t)), tree, replace=(1, 2))


TREE_EQUAL_CASES = [
    ((1, "a"), (1, "a"), {}),
    ((1, "a"), [1, "a"], {}),
    (jnp.ones(2), np.ones(2, np.float32), {}),
    (jnp.ones(2), np.ones(2, np.float32), {"typematch": True}),
    (jnp.ones(2), jnp.ones(3), {}),
    (jnp.ones(2), jnp.ones(2, jnp.int32), {}),
    (np.ones(2), np.ones(2) + 1e-4, {"rtol": 1e-3}),
    (jnp.ones(2), jnp.ones(2) + 1e-4, {"atol": 1e-3}),
    (jnp.array(jnp.nan), jnp.array(jnp.nan), {}),
    (1, 1.0, {}),
    (1, 1.0, {"typematch": True}),
    (jnp.ones(1), 1.0, {}),
]


@pytest.mark.parametrize("a, b, kwargs", TREE_EQUAL_CASES)
def test_tree_equal_parity(a, b, kwargs):
    assert bool(ec.tree_equal(a, b, **kwargs)) == bool(eqx.tree_equal(a, b, **kwargs))
    assert bool(ec.tree_equal(a, a, b, **kwargs)) == bool(
        eqx.tree_equal(a, a, b, **kwargs)
    )


def test_tree_equal_under_jit_parity():
    def run(lib, y):
        return bool(jax.jit(lambda x, y: lib.tree_equal(x, y))(jnp.ones(2), y))

    for y in (jnp.ones(2), jnp.zeros(2)):
        assert run(ec, y) == run(eqx, y)


def _cycles():
    x = []
    x.append(x)
    y, z = [], []
    y.append(z)
    z.append(y)
    shared = [1]
    return [x, y, [shared, shared], [[1], [1]], [None, None], [[], []], [1, 1]]


@pytest.mark.parametrize("tree", _cycles())
def test_tree_check_parity(tree):
    assert_parity("tree_check", tree)


@pytest.mark.parametrize(
    "tree", [{"a": 3, "b": (1, 2)}, 4, None, [[1], 2], _cycles()[0]]
)
def test_tree_flatten_one_level_parity(tree):
    assert_parity("tree_flatten_one_level", tree)


@pytest.mark.parametrize(
    "model, updates",
    [
        ({"w": jnp.ones(2), "f": 3}, {"w": jnp.ones(2), "f": None}),
        ([(jnp.ones(1), 1), 2.0], [None, 1.0]),
        ([jnp.ones(1)], [jnp.ones(1), jnp.ones(1)]),
    ],
)
def test_apply_updates_parity(model, updates):
    assert_parity("apply_updates", model, updates)
