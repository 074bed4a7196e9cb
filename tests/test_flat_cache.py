"""The memoised Module flatten (`ecliptic._flat_cache`) and `filter_jit`'s memo path.

Small arguments are served by a short guard (`_guard.py`) instead of the memo path;
the fixture below turns short guards off so that these tests exercise the memo path.
"""

import collections
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic
from ecliptic import _jit
from ecliptic._jit import filter_jit
from ecliptic._module import Module

from .helpers_jit import counted, Linear, linear


@pytest.fixture(autouse=True)
def _memo_path(monkeypatch):
    monkeypatch.setattr(_jit, "_SHORT_GUARD", -1)


class _Stack(Module):
    layers: list
    extra: Any = None

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _stack(getkey, depth=2):
    return _Stack([linear(getkey) for _ in range(depth)])


def _fast_hits(jf, *args) -> bool:
    """Whether this call of `jf` would be served by the fast table."""
    from ecliptic import _flat_cache

    key = []
    for a in args:
        if type(a) in _flat_cache.FAST_ARRAY_TYPES:
            key.append(type(a))
            continue
        e = _flat_cache.CACHE.get(id(a))
        if e is None or e.ref() is not a or _flat_cache.stale(e):
            return False
        key.append(e.token)
    return tuple(key) in jf._dispatch.fast


def test_fast_path_output_identical_to_slow_path(getkey):
    model, x = _stack(getkey, 3), jnp.arange(3.0)
    f = counted(lambda m, x: m(x))
    jf = filter_jit(f)
    slow = jf(model, x)
    assert not _fast_hits(jf, model, x)
    jf(model, x)  # second sighting: memoised
    assert _fast_hits(jf, model, x)
    fast = jf(model, x)
    by_keyword = jf(m=model, x=x)  # never takes the fast path
    assert len(f.traces) == 1
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(by_keyword, slow)


def test_list_mutated_in_place_is_seen(getkey):
    model, x = _stack(getkey, 2), jnp.arange(3.0)
    f = counted(lambda m, x: m(x))
    jf = filter_jit(f)
    for _ in range(3):
        jf(model, x)
    assert _fast_hits(jf, model, x)
    new = linear(getkey)
    model.layers[1] = new  # same structure, other arrays: no retrace
    assert not _fast_hits(jf, model, x)
    expected = new(model.layers[0](x))
    np.testing.assert_allclose(jf(model, x), expected, rtol=1e-6)
    assert len(f.traces) == 1
    model.layers.append(linear(getkey))  # new structure: retrace
    expected = model.layers[2](expected)
    np.testing.assert_allclose(jf(model, x), expected, rtol=1e-6)
    np.testing.assert_allclose(jf(model, x), expected, rtol=1e-6)
    assert len(f.traces) == 2
    model.layers.pop()
    model.layers.pop()
    np.testing.assert_allclose(jf(model, x), model.layers[0](x), rtol=1e-6)
    assert len(f.traces) == 3


def test_second_container_and_dict_mutation_are_seen(getkey):
    model = _Stack([linear(getkey)], extra=({"k": 1.0}, [2.0]))
    jf = filter_jit(lambda m: m.extra)
    for _ in range(3):
        jf(model)
    model.extra[1][0] = 3.0  # the third container (list) of the tree
    assert jf(model) == ({"k": 1.0}, [3.0])
    jf(model)
    model.extra[0]["k"] = 5.0  # a dict's value
    assert jf(model) == ({"k": 5.0}, [3.0])
    jf(model)
    model.extra[0]["j"] = 6.0  # a dict's keys
    assert jf(model) == ({"j": 6.0, "k": 5.0}, [3.0])


def test_numpy_leaf_mutated_in_place_is_seen():
    model = _Stack([], extra=np.zeros(2))
    jf = filter_jit(lambda m: m.extra + 1)
    for _ in range(3):
        jf(model)
    model.extra[:] = 4.0
    np.testing.assert_array_equal(jf(model), [5.0, 5.0])


def test_equal_but_distinct_models_share_one_compilation(getkey):
    from ecliptic import _flat_cache

    a = _stack(getkey, 2)
    b = jtu.tree_map(lambda w: w + 1, a)
    b_copy = jtu.tree_map(lambda w: w, b)
    f = counted(lambda m, x: m(x))
    jf = filter_jit(f)
    x = jnp.ones(3)
    for m in (a, b, a, b, b_copy, b_copy):
        out = jf(m, x)
        np.testing.assert_allclose(out, m(x), rtol=1e-6)
    assert len(f.traces) == 1
    assert _flat_cache.CACHE[id(a)].token is _flat_cache.CACHE[id(b)].token
    assert _fast_hits(jf, b_copy, x)
    np.testing.assert_array_equal(jf(b_copy, x), jf(b, x))


def test_dead_model_is_dropped_and_not_confused_with_a_new_one(getkey):
    import gc
    import weakref

    from ecliptic import _flat_cache

    jf = filter_jit(lambda m, x: m(x))
    x = jnp.ones(3)
    old = _stack(getkey, 2)
    jf(old, x)
    jf(old, x)
    key = id(old)
    assert _flat_cache.CACHE[key].ref() is old
    weight = weakref.ref(old.layers[0].weight)
    del old
    gc.collect()
    assert key not in _flat_cache.CACHE  # dropped with the model ...
    assert weight() is None  # ... so its arrays were not kept alive
    dead = _stack(getkey, 2)
    jf(dead, x)
    jf(dead, x)
    entry = _flat_cache.CACHE[id(dead)]
    del dead
    gc.collect()
    new = _stack(getkey, 2)
    # A recycled id: plant the dead model's entry (and then a live model's) at it.
    _flat_cache.CACHE[id(new)] = entry
    assert not _fast_hits(jf, new, x)
    np.testing.assert_allclose(jf(new, x), new(x), rtol=1e-6)
    other = _stack(getkey, 2)
    jf(other, x)
    jf(other, x)
    _flat_cache.CACHE[id(new)] = _flat_cache.CACHE[id(other)]
    np.testing.assert_allclose(jf(new, x), new(x), rtol=1e-6)


def test_clear_caches_empties_the_flat_cache(getkey):
    from ecliptic import _flat_cache

    f = counted(lambda m, x: m(x))
    jf = filter_jit(f)
    model, x = _stack(getkey, 2), jnp.ones(3)
    for _ in range(3):
        jf(model, x)
    assert _flat_cache.CACHE and jf._dispatch.fast
    ecliptic.clear_caches()
    assert not _flat_cache.CACHE and not _flat_cache._SEEN
    assert not _flat_cache._TOKENS and not jf._dispatch.fast
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-6)
    assert len(f.traces) == 2


def test_uncacheable_trees_take_the_ordinary_path(getkey):
    from ecliptic import _flat_cache

    class Holder(Module):
        value: Any

    jf = filter_jit(lambda m: m.value)
    cases = [
        Holder(collections.OrderedDict(a=1)),  # a node type the cache does not know
        Holder(frozenset({1})),  # a hashable leaf: cached
    ]
    for holder in cases:
        for _ in range(3):
            jf(holder)
    assert _flat_cache.CACHE[id(cases[0])].token is None
    assert _flat_cache.CACHE[id(cases[1])].token is not None
    unhashable = Holder([{1, 2}])
    for _ in range(2):
        with pytest.raises(ValueError, match="unhashable set"):
            jf(unhashable)
    assert id(unhashable) not in _flat_cache.CACHE  # the error comes first
    cases[0].value["a"] = 2
    assert jf(cases[0]) == collections.OrderedDict(a=2)


def test_module_passed_during_its_own_init_is_not_memoised():
    jf = filter_jit(lambda m: len(jtu.tree_leaves(m)))
    seen = []

    class Growing(Module):
        a: jax.Array
        b: Any

        def __init__(self):
            self.a = jnp.ones(2)
            seen.append(jf(self))
            seen.append(jf(self))
            self.b = jnp.zeros(2)

    grown = Growing()
    assert jf(grown) == 2 and jf(grown) == 2 and seen == [1, 1]


def test_tracer_leaves_are_not_memoised(getkey):
    from ecliptic import _flat_cache

    inner = filter_jit(lambda m, x: m(x))

    @jax.jit
    def outer(w, x):
        model = _Stack([Linear(w, x)])
        a = inner(model, x)
        b = inner(model, x)
        entry = _flat_cache.CACHE.get(id(model))
        assert entry is None or entry.token is None
        return a + b

    w = jax.random.normal(getkey(), (3, 3))
    np.testing.assert_allclose(outer(w, jnp.ones(3)), 2 * (w @ jnp.ones(3) + 1))


def test_fast_path_donation_splits_first_argument(getkey):
    jf = filter_jit(lambda m, b: (m(b), b + 1), donate="all-except-first")
    model = _stack(getkey, 2)
    for _ in range(3):
        b = jnp.ones(3)
        jf(model, b)
        assert b.is_deleted()
        assert not any(w.is_deleted() for w in jtu.tree_leaves(model))
    assert _fast_hits(jf, model, jnp.ones(3))


def test_fast_entries_still_recorded_after_many_unrememberable_calls(getkey):
    f = counted(lambda m, x: m(x))
    jf = filter_jit(f)
    x = jnp.ones(3)
    model = _stack(getkey, 1)
    for _ in range(12):  # a new model each call, as in a training loop
        model = jtu.tree_map(lambda w: w + 1, model)
        np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-6)
    assert jf._dispatch.fails >= 8 and not jf._dispatch.fast
    for _ in range(130):  # then a model that stays
        out = jf(model, x)
    assert _fast_hits(jf, model, x) and jf._dispatch.fails == 0
    np.testing.assert_allclose(out, model(x), rtol=1e-6)
    assert len(f.traces) == 1


def test_memo_and_ordinary_paths_share_one_trace():
    # Both paths must hand JAX the arrays in the same container type, or JAX sees
    # two argument structures and traces twice.
    class WithFn(Module):
        w: jax.Array
        fn: Any

    f = counted(lambda m, x: m.fn(m.w) + x)
    jf = filter_jit(f)
    model = WithFn(jnp.ones(3), jnp.tanh)
    for _ in range(4):
        np.testing.assert_allclose(jf(model, jnp.ones(3)), jnp.tanh(1.0) + 1, rtol=1e-6)
    assert _fast_hits(jf, model, jnp.ones(3))
    assert len(f.traces) == 1
