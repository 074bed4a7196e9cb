"""Guards: the generated checks that serve `filter_jit` calls without a flatten.

White-box through the test hook `make_guard` (what a guard accepts and returns), then
black-box through `filter_jit` and `dispatch_info` (which calls guards serve).
"""

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
from ecliptic._dispatch import dispatch_info, GUARD_REARM, make_guard

from ..helpers import array_leaves, counted, linear, stack


Pair = collections.namedtuple("Pair", "first second")


class _Lin(ecliptic.Module):
    weight: Any
    bias: Any
    tag: str = ecliptic.field(static=True, default="lin")


class _Big(ecliptic.Module):
    """A Module large enough to be memoised, around any tree."""

    pad: tuple
    tree: Any


class _Wrapped(ecliptic.Module):
    inner: Any

    @property
    def __wrapped__(self):
        return self.inner


def pad16() -> tuple:
    return tuple(jnp.ones(2) for _ in range(16))


def _guard_for(args):
    leaves, treedef = jtu.tree_flatten(args)
    check, size, source = make_guard(args, leaves, treedef)
    assert size > 0 and "def guard" in source
    return check


def _same(a, b) -> bool:
    return (
        a is not None
        and len(a) == len(b)
        and all(x is y for x, y in zip(a, b, strict=True))
    )


def _signature(args):
    leaves, treedef = jtu.tree_flatten(args)
    types = tuple(map(type, leaves))
    statics = tuple(x for x in leaves if not isinstance(x, (jax.Array, np.ndarray)))
    return treedef, types, statics


def _example(w):
    return (
        _Lin(w, w + 1),
        (Pair(w * 2, None), [w, 3, "s"], {"b": w, "a": (w,)}),
        np.ones(2),
    )


# --- make_guard ----------------------------------------------------------------------


def test_guard_returns_the_array_leaves_in_flatten_order():
    args = _example(jnp.ones(3))
    check = _guard_for(args)
    assert _same(check(args), array_leaves(args))
    new = _example(jnp.zeros(3))  # new objects, same structure
    assert _same(check(new), array_leaves(new))


@pytest.mark.parametrize(
    "change",
    [
        lambda a: (a[0], a[1], jnp.ones(2)),  # NumPy array became a jax.Array
        lambda a: (_Lin(a[0].weight, a[0].bias, tag="other"), a[1], a[2]),  # static
        lambda a: (a[0], (a[1][0], [a[1][1][0], 4, "s"], a[1][2]), a[2]),  # leaf value
        lambda a: (a[0], (a[1][0], [a[1][1][0], 3.0, "s"], a[1][2]), a[2]),  # leaf type
        lambda a: (
            a[0],
            (a[1][0], [a[1][1][0], True, "s"], a[1][2]),
            a[2],
        ),  # 3 -> True
        lambda a: (a[0], (a[1][0], [*a[1][1], 1], a[1][2]), a[2]),  # list length
        lambda a: (a[0], (a[1][0], a[1][1], {"b": 1, "c": 2}), a[2]),  # dict keys
        lambda a: (a[0], (tuple(a[1][0]), a[1][1], a[1][2]), a[2]),  # namedtuple type
        lambda a: (a[0], (a[1][0]._replace(second=1), a[1][1], a[1][2]), a[2]),
        lambda a: (a[0], a[1]),  # argument count
        lambda a: (None, a[1], a[2]),  # node became None
        lambda a: (a[0], list(a[1]), a[2]),  # tuple became a list
    ],
)
def test_guard_rejects_any_difference_in_structure_or_statics(change):
    args = _example(jnp.ones(3))
    check = _guard_for(args)
    changed = change(args)
    assert _signature(changed) != _signature(args)  # the case is a real change
    assert check(changed) is None
    assert _same(check(args), array_leaves(args))  # a failure leaves no trace


def test_guard_rejects_a_module_missing_a_field_or_carrying_wrapper_attributes():
    check = _guard_for((_Lin(jnp.ones(2), jnp.ones(2)),))
    partial = object.__new__(_Lin)
    object.__setattr__(partial, "weight", jnp.ones(2))
    assert check((partial,)) is None
    wrapped = _Wrapped(jnp.ones(2))
    wrapper_check = _guard_for((wrapped,))
    assert _same(wrapper_check((wrapped,)), [wrapped.inner])
    named = ecliptic.module_update_wrapper(wrapped)
    assert wrapper_check((named,)) is None  # its flatten has other aux data


@pytest.mark.parametrize(
    "make, other",
    [
        (
            lambda w: collections.OrderedDict(a=w, b=1),
            lambda w: collections.OrderedDict(b=1, a=w),  # same keys, other order
        ),
        (
            lambda w: jax.tree_util.Partial(jnp.add, w),
            lambda w: jax.tree_util.Partial(jnp.subtract, w),  # other function
        ),
        (
            lambda w: _Big(pad16(), collections.OrderedDict(k=[w], j=1)),
            lambda w: _Big(pad16(), collections.OrderedDict(k=[w], j=2)),
        ),
    ],
)
def test_other_node_types_are_checked_through_their_flatten(make, other):
    args = (make(jnp.ones(2)),)
    check = _guard_for(args)
    same = (make(jnp.zeros(2)),)
    assert _same(check(same), array_leaves(same))
    different = (other(jnp.zeros(2)),)
    assert _signature(different) != _signature(args)
    assert check(different) is None


@pytest.mark.parametrize(
    "args",
    [
        (np.float32(1.0),),  # NumPy scalar leaf
        ([1, {2}],),  # unhashable static leaf
        (_Lin(jnp.ones(2), {3}),),  # unhashable static leaf in a Module
    ],
)
def test_no_guard_for_structures_it_cannot_check(args):
    leaves, treedef = jtu.tree_flatten(args)
    with pytest.raises(ValueError):
        make_guard(args, leaves, treedef)


def test_no_guard_for_tracers():
    raised = []

    @jax.jit
    def f(x):
        args = (_Lin(x, x),)
        leaves, treedef = jtu.tree_flatten(args)
        try:
            make_guard(args, leaves, treedef)
        except ValueError:
            raised.append(True)
        return x

    f(jnp.ones(2))
    assert raised == [True]


def test_user_eq_error_in_a_static_leaf_means_no_match():
    class Picky:
        def __eq__(self, other):
            raise RuntimeError("no comparisons")

        def __hash__(self):
            return 0

    check = _guard_for((Picky(),))
    assert check((Picky(),)) is None


def test_a_memoised_argument_is_still_checked_against_the_guard():
    # A memo hit for a Module of another structure must not pass the guard.
    pad = tuple(jnp.ones(2) for _ in range(16))
    a, b = _Big(pad, jnp.ones(2)), _Big(pad, "static")
    check_a, check_b = _guard_for((a,)), _guard_for((b,))
    for _ in range(3):  # walk and memoise both
        assert _same(check_a((a,)), array_leaves(a))
        assert _same(check_b((b,)), array_leaves(b))
    assert check_a((b,)) is None and check_b((a,)) is None
    assert _same(check_a((a,)), array_leaves(a))


# --- property: passing the guard means flattening gives the same signature ---------

_leaf = st.sampled_from(["jax", "numpy", 0, 1, 1.0, True, "s", None])


def _tree(draw_leaf, ordered_dicts: bool = False):
    def nodes(kids):
        options = [
            st.lists(kids, max_size=3).map(tuple),
            st.lists(kids, max_size=3),
            st.dictionaries(st.sampled_from("abc"), kids, max_size=3),
            st.tuples(kids, kids).map(lambda t: Pair(*t)),
            st.tuples(kids, kids, st.sampled_from(["x", "y"])).map(
                lambda t: _Lin(t[0], t[1], tag=t[2])
            ),
        ]
        if ordered_dicts:  # a node type checked through JAX's one-level flatten
            options.append(
                st.dictionaries(st.sampled_from("abc"), kids, max_size=3).map(
                    collections.OrderedDict
                )
            )
        return st.one_of(*options)

    return st.recursive(draw_leaf, nodes, max_leaves=8)


def _materialise(tree, big: bool):
    def leaf(x):
        if type(x) is str and x == "jax":
            return jnp.zeros(2)
        if type(x) is str and x == "numpy":
            return np.zeros(2)
        return x

    tree = jtu.tree_map(leaf, tree)
    if big:  # large enough for the memo
        return (_Big(tuple(jnp.zeros(2) for _ in range(16)), tree),)
    return (tree,)


def _check_property(a, b, big_a, big_b):
    new = _materialise(a, big_a)  # the same structure with new arrays
    a, b = _materialise(a, big_a), _materialise(b, big_b)
    check = _guard_for(a)
    for _ in range(2):  # the second time, a big `a` is a memo hit
        assert _same(check(a), array_leaves(a))
    for _ in range(2):
        out = check(b)
        if out is None:
            assert _signature(a) != _signature(b)
        else:
            assert _signature(a) == _signature(b)
            assert _same(out, array_leaves(b))
    assert _same(check(new), array_leaves(new))


@settings(max_examples=150, deadline=None)
@given(a=_tree(_leaf), b=_tree(_leaf), big_a=st.booleans(), big_b=st.booleans())
def test_guard_passes_exactly_when_the_signature_matches(a, b, big_a, big_b):
    _check_property(a, b, big_a, big_b)


@settings(max_examples=150, deadline=None)
@given(
    a=_tree(_leaf, ordered_dicts=True),
    b=_tree(_leaf, ordered_dicts=True),
    big_a=st.booleans(),
    big_b=st.booleans(),
)
def test_guard_property_with_other_node_types(a, b, big_a, big_b):
    _check_property(a, b, big_a, big_b)


# --- filter_jit's guard path ---------------------------------------------------------


def test_warm_calls_are_served_by_guards_with_the_same_result(getkey):
    model, x = stack(getkey, 3), jnp.arange(3.0)
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    outs = [jf(model, x) for _ in range(5)]
    info = dispatch_info(jf)
    assert info.guards == 1 and len(info.guard_sizes) == 1
    assert info.guard_calls >= 3 and info.guard_calls + info.ordinary_calls == 5
    by_keyword = jf(m=model, x=x)  # keyword arguments take the ordinary path
    assert dispatch_info(jf).ordinary_calls == info.ordinary_calls + 1
    assert len(f.traces) == 1
    for out in [*outs, by_keyword]:
        np.testing.assert_allclose(out, model(x), rtol=1e-5)


def test_training_loop_takes_the_guard_path_and_traces_once():
    def step(model, state, x):
        new = jtu.tree_map(lambda w: w + x, model)
        return new, (state[0] + 1, Pair(state[1].first, new.bias)), jnp.sum(new.weight)

    f = counted(step)
    jf = ecliptic.filter_jit(f)
    model = _Lin(jnp.zeros(2), jnp.zeros(2))
    state = (jnp.zeros(()), Pair("keep", jnp.zeros(2)))
    ref_model, ref_state = model, state
    for _ in range(5):
        model, state, total = jf(model, state, jnp.ones(()))
        ref_model, ref_state, ref_total = step(ref_model, ref_state, jnp.ones(()))
    assert len(f.traces) == 1
    info = dispatch_info(jf)
    assert info.ordinary_calls == 2 and info.guard_calls == 3
    np.testing.assert_allclose(model.weight, ref_model.weight)
    np.testing.assert_allclose(total, ref_total)
    assert state[1].first == "keep" and float(state[0]) == float(ref_state[0])
    model = _Lin(jnp.zeros(2), jnp.zeros(2), tag="new")  # a new static field
    jf(model, state, jnp.ones(()))
    assert len(f.traces) == 2 and dispatch_info(jf).ordinary_calls == 3


def test_a_new_static_leaf_retraces():
    f = counted(lambda x, k, name: (x * k, name))
    jf = ecliptic.filter_jit(f)
    x = jnp.arange(3.0)
    for k in (2, 2, 2, 3, 3, 2.0, 2):
        out, name = jf(x, k, "n")
        np.testing.assert_allclose(out, x * k)
        assert name == "n"
    assert len(f.traces) == 3  # 2, 3, 2.0 (another leaf type)
    out, name = jf(x, 2, "other")
    assert name == "other" and len(f.traces) == 4


def test_a_new_structure_retraces_and_keeps_the_old_guard(getkey):
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    x = jnp.ones(3)
    short, long = stack(getkey, 2), stack(getkey, 3)
    for _ in range(3):
        np.testing.assert_allclose(jf(short, x), short(x), rtol=1e-5)
    for _ in range(3):
        np.testing.assert_allclose(jf(long, x), long(x), rtol=1e-5)
    assert len(f.traces) == 2 and dispatch_info(jf).guards == 2
    before = dispatch_info(jf)
    np.testing.assert_allclose(jf(short, x), short(x), rtol=1e-5)
    after = dispatch_info(jf)
    assert after.guard_calls == before.guard_calls + 1
    assert after.ordinary_calls == before.ordinary_calls


def test_two_models_called_in_turn_are_both_served_by_guards(getkey):
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    x = jnp.ones(3)
    a, b = stack(getkey, 2), stack(getkey, 3)  # two structures
    for _ in range(3):
        jf(a, x)
        jf(b, x)
    warm = dispatch_info(jf)
    assert warm.guards == 2
    for _ in range(10):
        np.testing.assert_allclose(jf(a, x), a(x), rtol=1e-5)
        np.testing.assert_allclose(jf(b, x), b(x), rtol=1e-5)
    info = dispatch_info(jf)
    assert info.ordinary_calls == warm.ordinary_calls
    assert info.guard_calls == warm.guard_calls + 20
    assert len(f.traces) == 2


def test_guard_path_sees_a_list_mutated_in_place():
    class Layers(ecliptic.Module):
        layers: list

    f = counted(lambda m: sum(jnp.sum(x) for x in m.layers))
    jf = ecliptic.filter_jit(f)
    model = Layers([jnp.ones(2), jnp.ones(2)])
    for _ in range(3):
        assert float(jf(model)) == 4.0
    model.layers.append(jnp.ones(2))  # a new structure
    assert float(jf(model)) == 6.0 and len(f.traces) == 2
    before = dispatch_info(jf)
    model.layers[0] = jnp.zeros(2)  # same structure, other arrays
    assert float(jf(model)) == 4.0 and len(f.traces) == 2
    model.layers[0] = 5.0  # an array became a static leaf
    assert float(jf(model)) == 9.0 and len(f.traces) == 3
    assert dispatch_info(jf).ordinary_calls > before.ordinary_calls


def test_guard_path_matches_the_ordinary_path_with_non_array_outputs():
    def f(m, x):
        return ecliptic.tree_at(lambda t: t.weight, m, m.weight * x), "tag", 3

    jf = ecliptic.filter_jit(f)
    model = ref = _Lin(jnp.ones(2), jax.nn.relu)
    for _ in range(4):
        model, tag, n = jf(model, jnp.full(2, 2.0))
        ref, *_ = f(ref, jnp.full(2, 2.0))
    assert dispatch_info(jf).guard_calls == 2
    np.testing.assert_allclose(model.weight, ref.weight)
    assert model.bias is jax.nn.relu and tag == "tag" and n == 3


def test_donation_all_except_first_through_the_guard_path(getkey):
    f = counted(lambda m, b: (m(b), b + 1))
    jf = ecliptic.filter_jit(f, donate="all-except-first")
    model = stack(getkey, 2)
    for _ in range(5):
        b = jnp.ones(3)
        out, b2 = jf(model, b)
        assert b.is_deleted()
        assert not any(w.is_deleted() for w in jtu.tree_leaves(model))
        np.testing.assert_allclose(out, model(jnp.ones(3)), rtol=1e-5)
        np.testing.assert_allclose(b2, 2.0)
    assert dispatch_info(jf).guard_calls == 3 and len(f.traces) == 1


def test_donation_all_through_the_guard_path():
    jf = ecliptic.filter_jit(lambda m: jtu.tree_map(lambda w: w * 2, m), donate="all")
    model = _Lin(jnp.ones(2), jnp.ones(2))
    for i in range(5):
        old = model
        model = jf(model)
        assert old.weight.is_deleted()
        np.testing.assert_allclose(model.weight, 2.0 ** (i + 1))
    assert dispatch_info(jf).guard_calls == 3


def test_clear_caches_drops_guards():
    f = counted(lambda t: t[0] + 1)
    jf = ecliptic.filter_jit(f)
    jf((jnp.ones(2),))
    assert dispatch_info(jf).guards == 0  # made on the second ordinary call
    jf((jnp.ones(2),))
    assert dispatch_info(jf).guards == 1
    ecliptic.clear_caches()
    assert dispatch_info(jf).guards == 0
    np.testing.assert_allclose(jf((jnp.ones(2),)), 2.0)
    assert len(f.traces) == 2  # the compiled tables went too
    for _ in range(3):
        np.testing.assert_allclose(jf((jnp.ones(2),)), 2.0)
    assert dispatch_info(jf).guards == 1 and len(f.traces) == 2


def test_tracer_arguments_take_the_ordinary_path(getkey):
    inner = ecliptic.filter_jit(lambda m, x: m.weight @ x + m.bias)

    @jax.jit
    def outer(w, x):
        model = _Lin(w, x)  # a Module of tracers
        return inner(model, x) + inner(model, x) + inner(model, x)

    w, x = jax.random.normal(getkey(), (3, 3)), jnp.ones(3)
    want = 3 * (w @ x + x)
    for _ in range(2):
        np.testing.assert_allclose(outer(w, x), want, rtol=1e-5)
        np.testing.assert_allclose(outer(w + 1, x), want + 9, rtol=1e-5)
    info = dispatch_info(inner)
    assert info.guards == 0 and info.guard_calls == 0
    for _ in range(3):  # concrete calls of the same structure are guarded as usual
        np.testing.assert_allclose(inner(_Lin(w, x), x), w @ x + x, rtol=1e-5)
    assert dispatch_info(inner).guard_calls == 1


def test_unhashable_static_raises_on_either_path():
    jf = ecliptic.filter_jit(lambda x, s: x + len(s))
    for _ in range(3):  # a guard for (array, frozenset)
        np.testing.assert_allclose(jf(jnp.ones(2), frozenset({1, 2})), 3.0)
    assert dispatch_info(jf).guards == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="unhashable"):
            jf(jnp.ones(2), {1, 2})


def test_every_structure_is_served_after_warm_up_within_the_guard_bound():
    # Past the bound, the oldest guard is dropped; the newest stay.
    jf = ecliptic.filter_jit(lambda t: t[0] + 1)
    structures = [tuple(jnp.ones(2) for _ in range(n)) for n in range(1, 25)]
    for s in structures:
        jf(s)
        jf(s)
    bound = dispatch_info(jf).guards
    assert 1 <= bound < len(structures)
    before = dispatch_info(jf)
    for s in structures[-bound:]:
        np.testing.assert_allclose(jf(s), 2.0)
    after = dispatch_info(jf)
    assert after.guard_calls == before.guard_calls + bound
    assert after.ordinary_calls == before.ordinary_calls


def test_a_dropped_guard_is_made_again_when_its_structure_comes_back():
    jf = ecliptic.filter_jit(lambda t: t[0] + 1)
    structures = [tuple(jnp.ones(2) for _ in range(n)) for n in range(1, 25)]
    for s in structures:
        jf(s)
        jf(s)
    first = structures[0]  # its guard was dropped; now it is the only structure
    for _ in range(GUARD_REARM + 1):  # it waits GUARD_REARM ordinary calls
        jf(first)
    before = dispatch_info(jf)
    for _ in range(5):
        np.testing.assert_allclose(jf(first), 2.0)
    assert dispatch_info(jf).guard_calls == before.guard_calls + 5


def test_a_second_wrapper_of_the_same_function_gets_its_own_guards(getkey):
    def f(m, x):
        return m(x)

    model, x = linear(getkey), jnp.ones(3)
    first, second = ecliptic.filter_jit(f), ecliptic.filter_jit(f)
    for _ in range(4):
        first(model, x)
    for _ in range(4):
        np.testing.assert_allclose(second(model, x), model(x), rtol=1e-6)
    assert dispatch_info(first).guard_calls == 2
    assert dispatch_info(second).guard_calls == 2
