"""The flatten memo: Module objects `filter_jit` has walked or built are known by id.

Black-box through `filter_jit` (results against an un-jitted run, trace counts,
`dispatch_info`) and the test hook `is_memoised`. The models here are `Stack`s of
`MEMO_DEPTH` layers, except where a test is about small Modules.
"""

import collections
import gc
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic
from ecliptic._dispatch import dispatch_info, FRESH_INLINE_MAX, is_memoised

from ..helpers import counted, Linear, linear, MEMO_DEPTH, Stack, stack


def _warm(jf, *args, calls: int = 3):
    """Calls `jf` until its guard has walked (and memoised) the arguments."""
    for _ in range(calls):
        out = jf(*args)
    return out


def test_a_model_passed_again_is_memoised_and_gives_the_same_result(getkey):
    model, x = stack(getkey), jnp.arange(3.0)
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    assert not is_memoised(model)
    first = jf(model, x)
    _warm(jf, model, x)
    assert is_memoised(model)
    before = dispatch_info(jf)
    again = jf(model, x)  # a memo hit
    after = dispatch_info(jf)
    assert after.guard_calls == before.guard_calls + 1
    assert after.ordinary_calls == before.ordinary_calls
    assert len(f.traces) == 1
    np.testing.assert_allclose(first, model(x), rtol=1e-5)
    np.testing.assert_array_equal(again, first)


def test_non_module_arguments_are_not_memoised(getkey):
    jf = ecliptic.filter_jit(lambda t: t[0] + 1)
    arg = tuple(jnp.ones(2) for _ in range(40))
    _warm(jf, arg)
    assert not is_memoised(arg) and not is_memoised(arg[0])
    assert dispatch_info(jf).guard_calls == 1


def test_list_mutated_in_place_is_seen(getkey):
    model, x = stack(getkey), jnp.arange(3.0)
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    _warm(jf, model, x)
    assert is_memoised(model)
    model.layers[1] = linear(getkey)  # same structure, other arrays: no retrace
    assert not is_memoised(model)
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert len(f.traces) == 1
    model.layers.append(linear(getkey))  # new structure: retrace
    for _ in range(2):
        np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert len(f.traces) == 2
    model.layers.pop()
    model.layers.pop()  # a third structure
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert len(f.traces) == 3
    model.layers.append(model.layers[0])  # back to the first structure
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert len(f.traces) == 3


def test_second_container_and_dict_mutations_are_seen(getkey):
    model = stack(getkey, extra=({"k": 1.0}, [2.0]))
    f = counted(lambda m: m.extra)
    jf = ecliptic.filter_jit(f)
    _warm(jf, model)
    assert is_memoised(model)
    model.extra[1][0] = 3.0  # a later list of the tree
    assert jf(model) == ({"k": 1.0}, [3.0])
    _warm(jf, model)
    model.extra[0]["k"] = 5.0  # a dict's value
    assert jf(model) == ({"k": 5.0}, [3.0])
    _warm(jf, model)
    model.extra[0]["j"] = 6.0  # a dict's keys
    assert jf(model) == ({"j": 6.0, "k": 5.0}, [3.0])
    _warm(jf, model)
    del model.extra[0]["j"]
    model.extra[0]["i"] = 6.0  # other keys, same count
    assert jf(model) == ({"i": 6.0, "k": 5.0}, [3.0])
    assert len(f.traces) == 5


@pytest.mark.parametrize("count", [1, FRESH_INLINE_MAX, FRESH_INLINE_MAX + 1])
def test_every_list_of_a_model_is_checked_whatever_their_number(getkey, count):
    # Up to FRESH_INLINE_MAX lists are checked inline by the guard, more by a call.
    model = stack(getkey, extra=tuple([float(i)] for i in range(count)))
    f = counted(lambda m: m.extra)
    jf = ecliptic.filter_jit(f)
    _warm(jf, model)
    assert is_memoised(model)
    for i in (0, count - 1):
        model.extra[i][0] = 10.0 + i
        expected = tuple(list(lst) for lst in model.extra)
        assert jf(model) == expected
        _warm(jf, model)
    model.extra[-1].append(1.0)  # a longer list: another structure
    assert jf(model)[-1] == [10.0 + count - 1, 1.0]
    assert len(f.traces) == 4 if count > 1 else len(f.traces) == 3


def test_a_list_inside_a_nested_module_mutated_in_place_is_seen(getkey):
    inner = stack(getkey, 2)
    model = stack(getkey, extra=inner)
    jf = ecliptic.filter_jit(lambda m, x: m.extra(m(x)))
    x = jnp.ones(3)
    _warm(jf, model, x)
    assert is_memoised(model)
    inner.layers[0] = linear(getkey)
    np.testing.assert_allclose(jf(model, x), inner(model(x)), rtol=1e-5)


def test_numpy_leaf_mutated_in_place_is_seen(getkey):
    model = stack(getkey, extra=np.zeros(2))
    jf = ecliptic.filter_jit(lambda m: m.extra + 1)
    _warm(jf, model)
    assert is_memoised(model)
    model.extra[:] = 4.0
    np.testing.assert_array_equal(jf(model), [5.0, 5.0])


def test_equal_but_distinct_models_share_one_compilation(getkey):
    a = stack(getkey)
    b = jtu.tree_map(lambda w: w + 1, a)
    b_copy = jtu.tree_map(lambda w: w, b)
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    x = jnp.ones(3)
    for m in (a, b, a, b, b_copy, b_copy, a):
        np.testing.assert_allclose(jf(m, x), m(x), rtol=1e-5)
    assert len(f.traces) == 1
    assert is_memoised(a) and is_memoised(b) and is_memoised(b_copy)
    info = dispatch_info(jf)
    assert info.guards == 1 and info.ordinary_calls == 2
    np.testing.assert_array_equal(jf(b_copy, x), jf(b, x))


def test_a_model_is_memoised_across_functions(getkey):
    model, x = stack(getkey), jnp.ones(3)
    jf = ecliptic.filter_jit(lambda m, x: m(x))
    jg = ecliptic.filter_jit(lambda m: m.layers[0].weight * 2)
    _warm(jf, model, x)
    _warm(jg, model)
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    np.testing.assert_allclose(jg(model), model.layers[0].weight * 2)


def test_dead_model_is_dropped_and_not_confused_with_a_new_one(getkey):
    jf = ecliptic.filter_jit(lambda m, x: m(x))
    x = jnp.ones(3)
    old = stack(getkey)
    _warm(jf, old, x)
    assert is_memoised(old)
    weight = weakref.ref(old.layers[0].weight)
    del old
    gc.collect()
    assert weight() is None  # the memo did not keep its arrays alive
    # New models, now and then at a recycled id: never taken for a dead one.
    for _ in range(5):
        dead = stack(getkey)
        _warm(jf, dead, x)
        assert is_memoised(dead)
        del dead
        gc.collect()
        new = stack(getkey)
        assert not is_memoised(new)
        np.testing.assert_allclose(jf(new, x), new(x), rtol=1e-5)
        del new
    assert dispatch_info(jf).ordinary_calls == 2


def test_clear_caches_drops_the_memo(getkey):
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    model, x = stack(getkey), jnp.ones(3)
    _warm(jf, model, x)
    assert is_memoised(model) and dispatch_info(jf).guards == 1
    ecliptic.clear_caches()
    assert not is_memoised(model) and dispatch_info(jf).guards == 0
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert len(f.traces) == 2
    _warm(jf, model, x)
    assert is_memoised(model) and len(f.traces) == 2


class _Holder(ecliptic.Module):
    pad: list
    value: Any


def _holder(value):
    return _Holder([jnp.ones(2) for _ in range(20)], value)


def test_other_mutable_node_types_are_not_memoised_and_mutation_is_seen():
    jf = ecliptic.filter_jit(lambda m: m.value)
    ordered = _holder(collections.OrderedDict(a=1))
    _warm(jf, ordered)
    assert not is_memoised(ordered)  # an OrderedDict is not known to be immutable
    ordered.value["a"] = 2
    assert jf(ordered) == collections.OrderedDict(a=2)
    frozen = _holder(frozenset({1}))  # a hashable leaf: memoised
    assert _warm(jf, frozen) == frozenset({1})
    assert is_memoised(frozen)


def test_unhashable_static_leaf_raises_and_is_not_memoised():
    jf = ecliptic.filter_jit(lambda m: m.value)
    unhashable = _holder([{1, 2}])
    for _ in range(3):
        with pytest.raises(ValueError, match="unhashable"):
            jf(unhashable)
    assert not is_memoised(unhashable)


def test_module_passed_during_its_own_init_is_not_memoised():
    jf = ecliptic.filter_jit(lambda m: sum(jnp.sum(w) for w in m.ws) + m.b)
    seen = []

    class Growing(ecliptic.Module):
        ws: tuple
        b: Any

        def __init__(self, b, call: bool = False):
            self.ws = tuple(jnp.ones(2) for _ in range(20))
            self.b = jnp.zeros(())
            if call:  # a complete structure, while __init__ still runs
                seen.append(float(jf(self)))
                seen.append(float(jf(self)))
                assert not is_memoised(self)
            self.b = b

    done = Growing(jnp.zeros(()))
    _warm(jf, done)  # a guard for this structure, and a memo entry for `done`
    assert is_memoised(done)
    grown = Growing(jnp.full((), 5.0), call=True)
    assert seen == [40.0, 40.0]
    assert float(jf(grown)) == 45.0 and float(jf(grown)) == 45.0


def test_tracer_leaves_are_not_memoised(getkey):
    inner = ecliptic.filter_jit(lambda m, x: m(x))
    memoised = []

    def tracer_stack(w, x):
        return Stack([Linear(w * 0.3, x) for _ in range(MEMO_DEPTH)])

    @jax.jit
    def outer(w, x):
        model = tracer_stack(w, x)  # a big Module of tracers
        out = inner(model, x) + inner(model, x) + inner(model, x)
        memoised.append(is_memoised(model))
        return out

    w, x = jax.random.normal(getkey(), (3, 3)), jnp.ones(3)
    want = 3 * tracer_stack(w, x)(x)
    np.testing.assert_allclose(outer(w, x), want, rtol=1e-5)
    assert memoised == [False]
    assert dispatch_info(inner).guards == 0


def test_new_models_each_call_are_served_by_the_guard(getkey):
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    x = jnp.ones(3)
    model = stack(getkey)
    for _ in range(12):  # a new model each call, as in a training loop
        model = jtu.tree_map(lambda w: w * 0.9, model)
        np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    info = dispatch_info(jf)
    assert info.ordinary_calls == 2 and info.guard_calls == 10
    for _ in range(5):  # then a model that stays
        out = jf(model, x)
    assert is_memoised(model) and dispatch_info(jf).ordinary_calls == 2
    np.testing.assert_allclose(out, model(x), rtol=1e-5)
    assert len(f.traces) == 1


def test_memo_and_ordinary_paths_share_one_trace():
    # Every path must hand JAX the arrays in the same container type, or JAX sees
    # two argument structures and traces twice.
    class WithFn(ecliptic.Module):
        ws: tuple
        fn: Any

    f = counted(lambda m, x: m.fn(m.ws[0]) + x)
    jf = ecliptic.filter_jit(f)
    model = WithFn(tuple(jnp.ones(3) for _ in range(20)), jnp.tanh)
    for _ in range(5):
        np.testing.assert_allclose(jf(model, jnp.ones(3)), jnp.tanh(1.0) + 1, rtol=1e-6)
    assert is_memoised(model) and dispatch_info(jf).guard_calls == 3
    assert len(f.traces) == 1


def test_small_model_passed_again_is_served_and_released(getkey):
    # A small Module (walked, not memoised) passed again is served by its guard's
    # identity check; the guard holds it weakly, so its arrays go with it.
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    model, x = linear(getkey), jnp.arange(3.0)
    for _ in range(4):
        np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-6)
    assert len(f.traces) == 1
    assert dispatch_info(jf).guard_calls == 2
    weight = weakref.ref(model.weight)
    del model
    gc.collect()
    assert weight() is None
    other = linear(getkey)  # a new object of the same structure: checked, not reused
    np.testing.assert_allclose(jf(other, x), other(x), rtol=1e-6)
    changed = Linear(other.weight, other.bias, name="other")  # another static value
    np.testing.assert_allclose(jf(changed, x), changed(x), rtol=1e-6)
    assert len(f.traces) == 2


class _Three(ecliptic.Module):
    """Three layers as fields: 10 PyTree nodes, memoised but small (no list)."""

    a: Linear
    b: Linear
    c: Linear

    def __call__(self, x):
        return self.c(self.b(self.a(x)))


def test_small_returned_model_is_memoised_and_passed_again_is_served(getkey):
    # A model of a few layers that a step returns is memoised by the output builder,
    # so the next step finds it without a walk; passed again unchanged (inference),
    # the guard's identity cell serves it. Either way: no retrace, same results.
    model = _Three(linear(getkey), linear(getkey), linear(getkey))
    f = counted(lambda m: jtu.tree_map(lambda w: w * 0.5, m))
    step = ecliptic.filter_jit(f)
    for _ in range(4):
        new = step(model)
        assert ecliptic.tree_equal(new, jtu.tree_map(lambda w: w * 0.5, model))
        model = new
    assert is_memoised(model)
    assert len(f.traces) == 1 and dispatch_info(step).guard_calls == 2
    g = counted(lambda m, x: m(x))
    infer = ecliptic.filter_jit(g)
    x = jnp.arange(3.0)
    for _ in range(4):
        np.testing.assert_allclose(infer(model, x), model(x), rtol=1e-5)
    assert len(g.traces) == 1 and dispatch_info(infer).guard_calls == 2
    weight = weakref.ref(model.a.weight)
    del model, new
    gc.collect()
    assert weight() is None
