"""Guards (`ecliptic._guard`): generated re-flattens for `filter_jit`'s hot path."""

import collections
from typing import Any

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings

import ecliptic
from ecliptic._guard import make_guard

from .helpers_jit import counted


Pair = collections.namedtuple("Pair", "first second")


class _Lin(ecliptic.Module):
    weight: Any
    bias: Any
    tag: str = ecliptic.field(static=True, default="lin")


class _Wrapped(ecliptic.Module):
    inner: Any

    @property
    def __wrapped__(self):
        return self.inner


def _guard_for(args):
    leaves, treedef = jtu.tree_flatten(args)
    return make_guard(args, leaves, treedef)


def _arrays(args):
    return [x for x in jtu.tree_leaves(args) if isinstance(x, (jax.Array, np.ndarray))]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _example(w):
    return (
        _Lin(w, w + 1),
        (Pair(w * 2, None), [w, 3, "s"], {"b": w, "a": (w,)}),
        np.ones(2),
    )


def test_guard_returns_the_array_leaves_in_flatten_order():
    args = _example(jnp.ones(3))
    guard = _guard_for(args)
    assert guard is not None
    assert _same(guard(args), _arrays(args))
    fresh = _example(jnp.zeros(3))  # new objects, same structure
    assert _same(guard(fresh), _arrays(fresh))


@pytest.mark.parametrize(
    "change",
    [
        lambda a: (a[0], a[1], jnp.ones(2)),  # NumPy array became a jax.Array
        lambda a: (_Lin(a[0].weight, a[0].bias, tag="other"), a[1], a[2]),  # static
        lambda a: (a[0], (a[1][0], [a[1][1][0], 4, "s"], a[1][2]), a[2]),  # leaf value
        lambda a: (a[0], (a[1][0], [a[1][1][0], 3.0, "s"], a[1][2]), a[2]),  # leaf type
        lambda a: (a[0], (a[1][0], [*a[1][1], 1], a[1][2]), a[2]),  # list length
        lambda a: (a[0], (a[1][0], a[1][1], {"b": 1, "c": 2}), a[2]),  # dict keys
        lambda a: (a[0], (tuple(a[1][0]), a[1][1], a[1][2]), a[2]),  # namedtuple type
        lambda a: (a[0], (a[1][0]._replace(second=1), a[1][1], a[1][2]), a[2]),
        lambda a: (a[0], a[1]),  # argument count
        lambda a: (None, a[1], a[2]),  # node became None
    ],
)
def test_guard_rejects_any_difference_in_structure_or_statics(change):
    args = _example(jnp.ones(3))
    guard = _guard_for(args)
    assert guard(change(args)) is None


def test_guard_rejects_a_module_missing_a_field_or_carrying_wrapper_attributes():
    guard = _guard_for((_Lin(jnp.ones(2), jnp.ones(2)),))
    partial = object.__new__(_Lin)
    object.__setattr__(partial, "weight", jnp.ones(2))
    assert guard((partial,)) is None
    wrapped = _Wrapped(jnp.ones(2))
    wrapper_guard = _guard_for((wrapped,))
    assert _same(wrapper_guard((wrapped,)), [wrapped.inner])
    named = ecliptic.module_update_wrapper(wrapped)
    assert wrapper_guard((named,)) is None  # its flatten has other aux data


@pytest.mark.parametrize(
    "args",
    [
        (collections.OrderedDict(a=jnp.ones(2)),),  # a node type guards do not know
        (jax.tree_util.Partial(jnp.add, jnp.ones(2)),),
        (np.float32(1.0),),  # NumPy scalar leaf
        ([1, {2}],),  # unhashable static leaf
    ],
)
def test_no_guard_for_structures_it_cannot_check(args):
    assert _guard_for(args) is None


def test_no_guard_for_tracers():
    made = []

    @jax.jit
    def f(x):
        made.append(_guard_for((x,)))
        return x

    f(jnp.ones(2))
    assert made == [None]


def test_user_eq_error_in_a_static_leaf_means_no_match():
    class Picky:
        def __eq__(self, other):
            raise RuntimeError("no comparisons")

        def __hash__(self):
            return 0

    guard = _guard_for((Picky(),))
    assert guard is not None and guard((Picky(),)) is None


# --- property: passing the guard means flattening gives the same signature ---------

_leaf = st.sampled_from(["jax", "numpy", 0, 1, 1.0, True, "s", None])


def _tree(draw_leaf):
    return st.recursive(
        draw_leaf,
        lambda kids: st.one_of(
            st.lists(kids, max_size=3).map(tuple),
            st.lists(kids, max_size=3),
            st.dictionaries(st.sampled_from("abc"), kids, max_size=3),
            st.tuples(kids, kids).map(lambda t: Pair(*t)),
            st.tuples(kids, kids, st.sampled_from(["x", "y"])).map(
                lambda t: _Lin(t[0], t[1], tag=t[2])
            ),
        ),
        max_leaves=8,
    )


def _materialise(tree):
    def leaf(x):
        if type(x) is str and x == "jax":
            return jnp.zeros(2)
        if type(x) is str and x == "numpy":
            return np.zeros(2)
        return x

    return jtu.tree_map(leaf, tree)


def _signature(args):
    leaves, treedef = jtu.tree_flatten(args)
    types = tuple(map(type, leaves))
    statics = tuple(x for x in leaves if not isinstance(x, (jax.Array, np.ndarray)))
    return treedef, types, statics


@settings(max_examples=150, deadline=None)
@given(a=_tree(_leaf), b=_tree(_leaf))
def test_guard_passes_exactly_when_the_signature_matches(a, b):
    fresh = _materialise((a,))  # the same structure with new arrays
    a, b = _materialise((a,)), _materialise((b,))
    guard = _guard_for(a)
    assert guard is not None
    assert _same(guard(a), _arrays(a))
    out = guard(b)
    if out is None:
        assert _signature(a) != _signature(b)
    else:
        assert _signature(a) == _signature(b)
        assert _same(out, _arrays(b))
    assert _same(guard(fresh), _arrays(fresh))


# --- filter_jit's guard path ---------------------------------------------------------


def test_training_loop_takes_the_guard_path_and_traces_once():
    def step(model, state, x):
        new = jtu.tree_map(lambda w: w + x, model)
        return new, (state[0] + 1, Pair(state[1].first, new.bias)), jnp.sum(new.weight)

    f = counted(step)
    jf = ecliptic.filter_jit(f)
    model = _Lin(jnp.zeros(2), jnp.zeros(2))
    state = (jnp.zeros(()), Pair("keep", jnp.zeros(2)))
    for _ in range(5):
        model, state, total = jf(model, state, jnp.ones(()))
    assert len(f.traces) == 1
    assert jf._dispatch.guard is not None
    np.testing.assert_allclose(model.weight, 5.0)
    assert state[1].first == "keep" and float(state[0]) == 5.0
    model = _Lin(jnp.zeros(2), jnp.zeros(2), tag="new")  # a new static: retrace
    jf(model, state, jnp.ones(()))
    assert len(f.traces) == 2


def test_guard_path_sees_a_list_mutated_in_place():
    class Stack(ecliptic.Module):
        layers: list

    jf = ecliptic.filter_jit(lambda m: sum(jnp.sum(x) for x in m.layers))
    model = Stack([jnp.ones(2), jnp.ones(2)])
    assert float(jf(model)) == 4.0
    assert float(jf(model)) == 4.0
    model.layers.append(jnp.ones(2))
    assert float(jf(model)) == 6.0
    model.layers[0] = jnp.zeros(2)
    assert float(jf(model)) == 4.0


def test_guard_path_matches_the_ordinary_path_with_non_array_outputs():
    @ecliptic.filter_jit
    def f(m, x):
        return ecliptic.tree_at(lambda t: t.weight, m, m.weight * x), "tag", 3

    model = _Lin(jnp.ones(2), jax.nn.relu)
    for _ in range(3):
        model, tag, n = f(model, jnp.full(2, 2.0))
    np.testing.assert_allclose(model.weight, 8.0)
    assert model.bias is jax.nn.relu and tag == "tag" and n == 3


def test_clear_caches_drops_guards():
    jf = ecliptic.filter_jit(lambda t: t[0] + 1)  # a tuple argument: never memoised
    jf((jnp.ones(2),))
    assert jf._dispatch.guard is None  # built on the second ordinary call
    jf((jnp.ones(2),))
    assert jf._dispatch.guard is not None
    ecliptic.clear_caches()
    assert jf._dispatch.guard is None
    np.testing.assert_allclose(jf((jnp.ones(2),)), 2.0)
