"""Outputs: a `filter_jit` output with non-array leaves or Modules is rebuilt by
`jax.tree_util` on the first call of a compiled signature and by a generated builder
after that; the builder memoises the outermost Modules it makes.

Every output is compared with an un-jitted run of the same function, on the 1st,
2nd and 3rd call (generic unflatten, then builder).
"""

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import ecliptic
from ecliptic._dispatch import dispatch_info, is_memoised

from ..helpers import assert_same_tree, counted, linear, MEMO_DEPTH, Stack, stack


Pair = collections.namedtuple("Pair", "first second")


class Empty(NamedTuple):
    pass


class _Tagged(ecliptic.Module):
    value: Any
    fn: Any
    tag: str = ecliptic.field(static=True, default="t")


class _Outer(ecliptic.Module):
    inner: Any
    table: dict
    items: list
    none: Any = None


def _big_outer(x):
    """A Module with nested Modules, an unsorted dict, a list, None and statics, large
    enough to be memoised."""
    return _Outer(
        inner=_Tagged(Pair(x, "s"), jax.nn.relu, tag="inner"),
        table={"b": x + 1, "a": "text", "c": [x * 2, Empty()]},
        items=[x * i for i in range(MEMO_DEPTH)] + [3, None],
    )


_OUTPUTS = {
    "module_with_static_field": lambda x: _Tagged(x, jax.nn.relu, tag="out"),
    "namedtuple": lambda x: Pair(x, "s"),
    "empty_namedtuples": lambda x: (x, Empty(), optax.EmptyState(), "s"),
    "none": lambda x: (x, None, _Tagged(None, None)),
    "unsorted_dict": lambda x: {"b": x, "a": "s", "c": None, "0": (x, 1)},
    "lists": lambda x: [x, 1, [x, "t"], []],
    "nested_modules": lambda x: _Tagged(_Tagged(x, "in"), Pair(_Tagged(x, 2), x)),
    "big_module": _big_outer,
    "modules_in_containers": lambda x: [{"m": _big_outer(x)}, (_big_outer(x + 1),)],
    "ordered_dict": lambda x: _Tagged(collections.OrderedDict(b=x, a="s"), None),
    "partial": lambda x: (jax.tree_util.Partial(jnp.add, x), "s"),
    "bare_static": lambda x: "just a string",
    "static_and_array": lambda x: (x * 2, 3, "s"),
    "wrapper_module": lambda x: ecliptic.module_update_wrapper(_Wrapper(x)),
    "empty_module": lambda x: (_NoFields(), x),
}


class _Wrapper(ecliptic.Module):
    inner: Any

    @property
    def __wrapped__(self):
        return jnp.sum


class _NoFields(ecliptic.Module):
    pass


def _nodes(tree) -> list:
    """Every container object in `tree` (dicts, lists, Modules ...), outermost
    first."""
    out = []

    def visit(x):
        children, treedef = jtu.tree_flatten(x, is_leaf=lambda y: y is not x)
        if not jtu.treedef_is_leaf(treedef):
            out.append(x)
            for child in children:
                visit(child)

    visit(tree)
    return out


def _dict_orders(tree) -> list:
    """The key order of every dict in `tree` (outputs must not reorder between
    calls)."""
    return [list(node) for node in _nodes(tree) if isinstance(node, dict)]


@pytest.mark.parametrize("name", sorted(_OUTPUTS))
def test_outputs_equal_the_unjitted_run_on_every_call(name):
    f = counted(_OUTPUTS[name])
    jf = ecliptic.filter_jit(f)
    outs = []
    for i in range(4):
        x = jnp.arange(3.0) + i
        out = jf(x)
        assert_same_tree(out, _OUTPUTS[name](x))
        outs.append(out)
    assert len(f.traces) == 1
    orders = [_dict_orders(out) for out in outs]
    assert all(o == orders[0] for o in orders)
    # Each call builds its own containers: mutating one output leaves the rest.
    firsts = [[n for n in _nodes(out) if isinstance(n, (list, dict))] for out in outs]
    for a, b in zip(firsts, firsts[1:]):
        assert all(x is not y for x, y in zip(a, b))


class _Padded(ecliptic.Module):
    pad: list
    value: Any


# Output structures the builder writes (the others are rebuilt by `jax.tree_util`).
_BUILT = set(_OUTPUTS) - {"ordered_dict", "partial", "wrapper_module"}


@pytest.mark.parametrize("name", sorted(_OUTPUTS))
def test_outputs_inside_a_big_module_are_built_and_memoised(name):
    def f(x):
        return _Padded([x + i for i in range(MEMO_DEPTH)], _OUTPUTS[name](x))

    jf = ecliptic.filter_jit(f)
    for i in range(4):
        x = jnp.arange(3.0) + i
        out = jf(x)
        assert_same_tree(out, f(x))
    if name in _BUILT:
        assert is_memoised(out)
    again = jf(jnp.arange(3.0))
    assert again is not out and again.pad is not out.pad


def test_returned_list_mutated_in_place_does_not_leak_into_later_outputs():
    jf = ecliptic.filter_jit(_big_outer)
    x = jnp.ones(2)
    outs = [jf(x) for _ in range(3)]
    outs[1].items.append("extra")
    outs[1].table["new"] = 1
    out = jf(x)
    assert len(out.items) == MEMO_DEPTH + 2 and "new" not in out.table
    assert_same_tree(out, _big_outer(x))


def test_outermost_output_modules_are_memoised():
    jf = ecliptic.filter_jit(lambda x: [{"m": _big_outer(x)}, (_big_outer(x), 1)])
    for _ in range(3):
        out = jf(jnp.ones(2))
    (d, (m, _)) = out
    assert is_memoised(d["m"]) and is_memoised(m)
    assert not is_memoised(d["m"].inner)  # only the outermost Modules
    assert not is_memoised(out) and not is_memoised(d)


def test_a_returned_model_fed_back_is_a_memo_hit_and_mutation_is_seen(getkey):
    f = counted(lambda m, x: (jtu.tree_map(lambda w: w * 0.5, m), m(x)))
    jf = ecliptic.filter_jit(f)
    model, x = stack(getkey), jnp.ones(3)
    for _ in range(4):
        model, y = jf(model, x)
    assert is_memoised(model)
    assert len(f.traces) == 1 and dispatch_info(jf).ordinary_calls == 2
    model.layers[0] = linear(getkey)  # a list of a built output, changed in place
    assert not is_memoised(model)
    _, y = jf(model, x)
    np.testing.assert_allclose(y, model(x), rtol=1e-5)
    model.layers.append(linear(getkey))  # a new structure
    _, y = jf(model, x)
    np.testing.assert_allclose(y, model(x), rtol=1e-5)
    assert len(f.traces) == 2


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def test_optax_training_loop_is_served_by_guards_and_traces_once(getkey):
    opt = optax.adam(1e-2)

    def step(model, opt_state, x, y):
        loss, grads = ecliptic.filter_value_and_grad(_loss)(model, x, y)
        updates, opt_state = opt.update(grads, opt_state, model)
        return ecliptic.apply_updates(model, updates), opt_state, loss

    f = counted(step)
    jstep = ecliptic.filter_jit(f)
    ref_step = jax.jit(step)  # the reference: plain `jax.jit` (no non-array leaves)
    model = ref_model = stack(getkey)
    opt_state = ref_state = opt.init(model)
    x = jax.random.normal(getkey(), (4, 3))
    y = jax.random.normal(getkey(), (4, 3))
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and ints
        for _ in range(6):
            model, opt_state, loss = jstep(model, opt_state, x, y)
            ref_model, ref_state, ref_loss = ref_step(ref_model, ref_state, x, y)
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    assert len(f.traces) == 1
    info = dispatch_info(jstep)
    assert info.ordinary_calls == 2 and info.guard_calls == 4
    assert_same_tree(model, ref_model, rtol=1e-4)
    assert_same_tree(opt_state, ref_state, rtol=1e-4)
    # The returned Modules (the model, and Adam's moments, Modules of the model's
    # shape inside the state's namedtuples) are known without a flatten.
    assert isinstance(opt_state[0].mu, Stack)
    assert is_memoised(model)
    assert is_memoised(opt_state[0].mu) and is_memoised(opt_state[0].nu)


@pytest.mark.parametrize("enabled", [True, False])
def test_output_builder_leaves_the_garbage_collector_as_it_found_it(getkey, enabled):
    import gc

    jf = ecliptic.filter_jit(lambda m: jax.tree.map(lambda a: a + 1, m))
    model = stack(getkey)
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        for _ in range(4):  # the builder serves the calls after the first
            model = jf(model)
            assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
    assert isinstance(model, Stack)
