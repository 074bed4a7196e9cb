"""The small tools of `ecliptic.internal`: `nextafter`/`prevbefore`, `scan_trick`,
`eval_empty`/`eval_zero`, `left_broadcast_to`, `str2jax`, `GetKey`, `ContainerMeta`,
hashable partitions, `cached_filter_eval_shape`, `closure_to_pytree`, documentation
helpers, `TreeWLCustom`, `assert_dce` and `to_onnx`."""

import importlib.util
import inspect
import typing

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
import wadler_lindig as wl

import ecliptic as eqx
import ecliptic.internal as eqxi


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.float32])
def test_nextafter_and_prevbefore(dtype):
    x = jnp.array([-1.0, 0.5, 1.0, 3.0], dtype)
    up, down = eqxi.nextafter(x), eqxi.prevbefore(x)
    assert up.dtype == dtype and down.dtype == dtype
    assert jnp.all(up > x) and jnp.all(down < x)
    # Adjacent: nothing representable in between.
    assert jnp.array_equal(eqxi.prevbefore(up), x)
    assert jnp.array_equal(eqxi.nextafter(down), x)


def test_nextafter_steps_past_zero_to_a_normal_number():
    zero = jnp.array(0.0)
    tiny = jnp.finfo(jnp.float32).tiny
    assert eqxi.nextafter(zero) == tiny and eqxi.nextafter(zero) > 0
    assert eqxi.prevbefore(zero) == -tiny and eqxi.prevbefore(zero) < 0


def test_nextafter_under_transforms():
    x = jnp.array([1.0, 2.0])
    assert jnp.array_equal(jax.jit(eqxi.nextafter)(x), eqxi.nextafter(x))
    assert jnp.array_equal(jax.vmap(eqxi.prevbefore)(x), eqxi.prevbefore(x))
    grad = jax.grad(lambda y: jnp.sum(eqxi.nextafter(y) + eqxi.prevbefore(y)))(x)
    assert jnp.array_equal(grad, jnp.full(2, 2.0))


def test_scan_trick_order_and_single_trace():
    traces = []

    def fn(x):
        traces.append(None)
        return x + 1

    out = eqxi.scan_trick(fn, [lambda x: x * 2, lambda x: x * 3], jnp.array(1.0))
    # fn, *2, fn, *3, fn
    assert out == ((1.0 + 1) * 2 + 1) * 3 + 1
    assert len(traces) == 1


def test_eval_empty_and_zero():
    def fn(x):
        return {"a": x, "b": jnp.ones((2, 3), jnp.int32)}

    x = jnp.ones(4)
    zeros = eqxi.eval_zero(fn, x)
    assert jnp.array_equal(zeros["a"], jnp.zeros(4))
    assert zeros["b"].dtype == jnp.int32 and jnp.all(zeros["b"] == 0)
    empty = eqxi.eval_empty(fn, x)
    assert empty["a"].shape == (4,) and empty["b"].shape == (2, 3)


def test_left_broadcast_to():
    out = eqxi.left_broadcast_to(jnp.arange(3), (3, 2))
    assert jnp.array_equal(out, jnp.array([[0, 0], [1, 1], [2, 2]]))


def test_str2jax_passes_through_jit():
    marker = eqxi.str2jax("my marker")
    assert str(marker) == repr(marker) == "my marker"
    assert jtu.tree_leaves(marker) == []
    out = eqx.filter_jit(lambda m, x: (m, x + 1))(marker, jnp.array(1.0))
    assert out[0] is marker or str(out[0]) == "my marker"


def test_getkey():
    getkey = eqxi.GetKey(seed=3)
    a, b = getkey(), getkey()
    assert not jnp.array_equal(jax.random.key_data(a), jax.random.key_data(b))
    assert getkey.seed == 3 and getkey.call == 2
    assert isinstance(eqxi.GetKey().seed, int)
    assert eqxi.GetKey(0) != eqxi.GetKey(0)  # identity equality


def test_container_meta():
    class Colour(metaclass=eqxi.ContainerMeta):
        red = "the red one"
        blue = "the blue one"

    assert Colour.red == 0 and Colour.blue == 1
    assert Colour[1] == "the blue one" and len(Colour) == 2
    assert isinstance(1, Colour) and isinstance(jnp.array(1), Colour)
    assert not isinstance(jnp.array([1]), Colour)


def test_hashable_partition_and_combine():
    tree = {"a": jnp.ones(2), "b": "text", "c": (1, jnp.zeros(1))}
    dynamic, static = eqxi.hashable_partition(tree, eqx.is_array)
    hash(static)
    assert all(x is None for x in static[0] if eqx.is_array(x))
    back = eqxi.hashable_combine(dynamic, static)
    assert eqx.tree_equal(back, tree)


def test_cached_filter_eval_shape():
    calls = []

    def fn(x, n):
        calls.append(None)
        return x * n

    out = eqxi.cached_filter_eval_shape(fn, jnp.ones(3), 2)
    assert out.shape == (3,) and out.dtype == jnp.float32
    eqxi.cached_filter_eval_shape(fn, jnp.zeros(3), 2)  # same shapes: cached
    assert len(calls) == 1
    eqxi.cached_filter_eval_shape(fn, jnp.zeros(4), 2)
    assert len(calls) == 2


def test_closure_to_pytree():
    def make(a):
        def fn(x):
            return x + a

        return fn

    f1 = eqxi.closure_to_pytree(make(jnp.array(1.0)))
    f2 = eqxi.closure_to_pytree(make(jnp.array(2.0)))
    assert jtu.tree_leaves(f1)[0] == 1.0
    assert f1(jnp.array(1.0)) == 2.0 and f2(jnp.array(1.0)) == 3.0
    traces = []

    @eqx.filter_jit
    def call(fn, x):
        traces.append(None)
        return fn(x)

    assert call(f1, jnp.array(0.0)) == 1.0
    assert call(f2, jnp.array(0.0)) == 2.0
    assert len(traces) == 1  # the closed-over value is traced, not static


def test_closure_to_pytree_local_recursion():
    def make():
        def countdown(n):
            return 0 if n == 0 else countdown(n - 1)

        return countdown

    assert eqxi.closure_to_pytree(make())(3) == 0


def test_doc_helpers_do_nothing_outside_documentation_builds():
    def fn(a, b, c):
        return a

    assert eqxi.doc_repr(fn, "FN") is fn
    assert eqxi.doc_remove_args("b")(fn) is fn
    assert list(inspect.signature(fn).parameters) == ["a", "b", "c"]


def test_doc_helpers_in_documentation_builds(monkeypatch):
    monkeypatch.setattr(typing, "GENERATING_DOCUMENTATION", "ecliptic", raising=False)

    def fn(a, b, c):
        return a + c

    shown = eqxi.doc_repr(fn, "FN")
    assert repr(shown) == "FN" and shown(1, 2, 3) == 4
    eqxi.doc_remove_args("b")(fn)
    assert list(inspect.signature(fn).parameters) == ["a", "c"]


def test_tree_wl_custom():
    custom = eqxi.TreeWLCustom(
        truncate_leaf=lambda x: isinstance(x, dict),
        short_arrays=True,
        struct_as_array=True,
    )
    text = wl.pformat([jnp.ones((2, 3)), {"a": 1}], custom=custom)
    assert "f32[2,3]" in text and "dict(...)" in text
    struct = jax.ShapeDtypeStruct((4,), jnp.int32)
    assert "i32[4]" in wl.pformat(struct, custom=custom)
    assert custom(3) is None


def test_assert_dce():
    x = jnp.array(1.0)
    assert eqxi.assert_dce(x, "never checked outside jit") is x

    @jax.jit
    def dead(y):
        eqxi.assert_dce(y, "should be dead")
        return y + 1

    assert dead(x) == 2.0

    @eqx.filter_jit
    def alive(y):
        return eqxi.assert_dce(y, "still alive")

    with pytest.raises(eqx.EquinoxRuntimeError, match="still alive"):
        alive(x)


def test_to_onnx_names_missing_dependencies():
    missing = [
        m for m in ("tensorflow", "tf2onnx") if importlib.util.find_spec(m) is None
    ]
    if not missing:
        pytest.skip("the ONNX dependencies are installed")
    with pytest.raises(ImportError, match=missing[0]):
        eqxi.to_onnx(lambda x: x)


def test_reexported_aliases_are_ecliptics_own():
    assert eqxi.error_if is eqx.error_if
    assert eqxi.Enumeration is eqx.Enumeration
    assert eqxi.debug_backward_nan is eqx.debug.backward_nan
    assert eqxi.Static(3).value == 3
    out = eqxi.unvmap_any(np.array([False, True]))
    assert bool(out)
