import gc
import warnings
import weakref

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic
from ecliptic import filter_jit
from ecliptic._module import Module

from .helpers import counted, Linear, linear


def test_arrays_traced_and_others_static():
    @filter_jit
    def f(x, n, flag, name):
        assert isinstance(x, jax.core.Tracer)
        assert type(n) is int and type(flag) is bool and name == "s"
        return x * n if flag else x

    out = f(jnp.arange(3.0), 2, True, "s")
    np.testing.assert_allclose(out, [0.0, 2.0, 4.0])
    np.testing.assert_allclose(f(np.arange(3.0), 2, False, "s"), [0.0, 1.0, 2.0])


def test_non_array_outputs_returned_as_is():
    @filter_jit
    def f(x, s):
        return {"y": x + 1, "s": s, "shape": x.shape, "none": None, "fn": jnp.sin}

    out = f(jnp.zeros(2), "hello")
    assert out["s"] == "hello" and out["shape"] == (2,) and out["none"] is None
    assert out["fn"] is jnp.sin
    assert isinstance(out["y"], jax.Array)
    np.testing.assert_allclose(out["y"], [1.0, 1.0])


def test_decorator_with_and_without_arguments():
    @filter_jit
    def f(x):
        return x + 1

    @filter_jit(donate="none")
    def g(x):
        return x + 2

    assert int(f(jnp.array(1))) == 2
    assert int(g(jnp.array(1))) == 3


def test_no_retrace_when_static_parts_equal():
    f = counted(lambda x, k, opts: x * k + len(opts))
    jf = filter_jit(f)
    for i in range(4):
        jf(jnp.full(3, float(i)), 2, ("a", "b"))
    assert len(f.traces) == 1
    jf(jnp.ones(3), 3, ("a", "b"))
    assert len(f.traces) == 2
    jf(jnp.ones(4), 3, ("a", "b"))  # new shape: JAX retraces
    assert len(f.traces) == 3


def test_equal_but_differently_typed_statics_do_not_share_a_trace():
    f = counted(lambda x, k: (x, k))
    jf = filter_jit(f)
    outs = [jf(jnp.ones(1), k)[1] for k in (1, 1.0, True)]
    assert [type(o) for o in outs] == [int, float, bool]
    assert len(f.traces) == 3


def test_keyword_and_positional_calls_share_a_trace():
    f = counted(lambda x, y, scale=1.0: (x + y) * scale)
    jf = filter_jit(f)
    a, b = jnp.ones(2), jnp.arange(2.0)
    r1 = jf(a, b)
    r2 = jf(a, y=b)
    r3 = jf(x=a, y=b)
    assert len(f.traces) == 1
    for r in (r2, r3):
        np.testing.assert_allclose(r, r1)
    np.testing.assert_allclose(jf(a, b, scale=2.0), 2 * r1)


def test_varargs_and_keyword_only():
    @filter_jit
    def f(x, *rest, k, **extra):
        return x + sum(rest) + k + extra.get("e", 0)

    assert float(f(jnp.array(1.0), 2.0, 3.0, k=4.0, e=5.0)) == 15.0
    with pytest.raises(TypeError, match="k"):
        f(jnp.array(1.0))


def test_unhashable_static_leaf_names_its_path():
    class Unhashable:
        __hash__ = None

    f = filter_jit(lambda x, y: x)
    with pytest.raises(ValueError, match=r"Non-hashable static.*`args\[1\]\['foo'\]`"):
        f(jnp.ones(1), {"foo": Unhashable()})
    with pytest.raises(ValueError, match=r"`kwargs\['y'\]\[0\]`"):
        filter_jit(lambda x, **kw: x)(jnp.ones(1), y=[Unhashable()])


def test_unhashable_static_leaf_in_fun():
    class UnhashableFn:
        __hash__ = None

        def __call__(self, x):
            return x

    with pytest.raises(ValueError, match="Non-hashable static.*`fun`"):
        filter_jit(UnhashableFn())


def test_module_fun_arrays_are_traced(getkey):
    model = linear(getkey)
    jmodel = filter_jit(model)
    x = jnp.ones(3)
    np.testing.assert_allclose(jmodel(x), model(x), rtol=1e-6)
    # The wrapper is a PyTree whose leaves are the model's arrays.
    assert len(jtu.tree_leaves(jmodel)) == 2
    doubled = jtu.tree_map(lambda a: 2 * a, jmodel)
    np.testing.assert_allclose(doubled(x), 2 * model(x), rtol=1e-6)
    text = jmodel.lower(x).as_text()
    assert text.count("tensor<3x3xf32>") >= 1  # weight is a parameter, not a constant
    assert "dense<" not in text


def test_bound_magic_method_traces_weights(getkey):
    model = linear(getkey)
    f = counted(type(model).__call__)
    jcall = filter_jit(f.__get__(model))
    x = jnp.ones(3)
    np.testing.assert_allclose(jcall(x), model(x), rtol=1e-6)
    text = jcall.lower(x).as_text()
    assert "dense<" not in text  # weights are arguments, not baked-in constants
    other = linear(getkey)
    jother = filter_jit(f.__get__(other))
    np.testing.assert_allclose(jother(x), other(x), rtol=1e-6)
    assert len(f.traces) == 1  # same structure: the compiled entry is shared
    assert jcall.__wrapped__.__self__ is not None


def test_filter_jit_as_method(getkey):
    class M(Module):
        w: jax.Array

        @filter_jit
        def apply(self, x, k):
            return self.w * x * k

    m = M(jnp.arange(3.0))
    np.testing.assert_allclose(m.apply(jnp.ones(3), 2), [0.0, 2.0, 4.0])
    assert M.apply is M.__dict__["apply"]


def test_partial_and_closure():
    w = jnp.arange(3.0)
    f = filter_jit(lambda x: x * w)  # closed-over arrays are constants
    np.testing.assert_allclose(f(jnp.ones(3)), w)
    g = filter_jit(ecliptic._module.Partial(lambda w, x: x * w, w))
    np.testing.assert_allclose(g(jnp.ones(3)), w)
    assert len(jtu.tree_leaves(g)) == 1


def test_returns_module(getkey):
    model = linear(getkey)

    @filter_jit
    def update(m, lr):
        return jtu.tree_map(lambda a: a - lr * a, m)

    new = update(model, 0.5)
    assert type(new) is Linear and new.name == "lin"
    np.testing.assert_allclose(new.weight, 0.5 * model.weight, rtol=1e-6)


def test_nested_and_under_transforms():
    inner = filter_jit(lambda x, k: jnp.sin(x) * k)
    outer = filter_jit(lambda x: inner(x, 2) + 1)
    x = jnp.linspace(0.0, 1.0, 4)
    np.testing.assert_allclose(outer(x), jnp.sin(x) * 2 + 1, rtol=1e-6)
    grad = jax.grad(lambda x: inner(x, 3).sum())(x)
    np.testing.assert_allclose(grad, 3 * jnp.cos(x), rtol=1e-6)
    vm = jax.vmap(lambda x: inner(x, 2))(x)
    np.testing.assert_allclose(vm, 2 * jnp.sin(x), rtol=1e-6)


def test_lower_and_compile():
    @filter_jit
    def my_function(x, k):
        return x * k

    lowered = my_function.lower(jnp.ones(2), 3)
    assert "my_function" in lowered.as_text()
    compiled = lowered.compile()
    np.testing.assert_allclose(compiled(jnp.arange(2.0), 3), [0.0, 3.0])
    assert "multiply" in compiled.as_text()
    with pytest.raises(TypeError, match="lowered for other static arguments"):
        compiled(jnp.arange(2.0), 4)


def test_donate_modes():
    def run(donate):
        f = filter_jit(lambda a, b: (a + 1, b + 1), donate=donate)
        a, b = jnp.ones(3), jnp.ones(3)
        f(a, b)
        return a.is_deleted(), b.is_deleted()

    assert run("none") == (False, False)
    assert run("all") == (True, True)
    assert run("all-except-first") == (False, True)
    assert run("warn-except-first") == (False, True)


def test_donate_warning_modes():
    def call(donate):
        f = filter_jit(lambda a: a.sum(), donate=donate)  # buffer can't be reused
        f(jnp.ones(5))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call("all")
    with pytest.warns(UserWarning, match="donated buffers were not usable"):
        call("warn")


def test_bad_options():
    f = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="donate.*got 'some'"):
        filter_jit(f, donate="some")
    for name in ("static_argnums", "static_argnames", "donate_argnums"):
        with pytest.raises(ValueError, match=f"does not accept `{name}=`"):
            filter_jit(f, **{name: 0})
    with pytest.raises(ValueError, match="does not accept `in_shardings=`"):
        filter_jit(f, in_shardings=None)
    for name in ("default", "fn", "args", "kwargs", "out"):
        with pytest.raises(ValueError, match=f"no longer accepts `{name}=`"):
            filter_jit(f, **{name: None})
    with pytest.raises(TypeError, match="expected a callable, but got int 3"):
        filter_jit(3)


def test_jitkwargs_forwarded():
    f = filter_jit(lambda x: x + 1, keep_unused=True, inline=False)
    assert int(f(jnp.array(1))) == 2


def test_wrapper_metadata():
    def documented(x):
        """Docs here."""
        return x

    jf = filter_jit(documented)
    assert jf.fn == "documented"
    assert jf.__wrapped__ is documented
    assert jf.__name__ == "documented" and jf.__doc__ == "Docs here."
    assert repr(jf) == "_JitWrapper(fn='documented')"


def test_clear_caches_forces_a_retrace():
    f = counted(lambda x: x * 2)
    jf = filter_jit(f)
    jf(jnp.ones(2))
    jf(jnp.ones(2))
    assert len(f.traces) == 1
    ecliptic._caches.clear_caches()
    jf(jnp.ones(2))
    assert len(f.traces) == 2


def test_new_wrapper_of_same_function_reuses_compilation():
    f = counted(lambda x: x * 2)
    for _ in range(3):
        filter_jit(f)(jnp.ones(2))
    assert len(f.traces) == 1


def test_a_dropped_function_frees_what_it_compiled():
    # As with `jax.jit`: once a function and its wrappers are gone, ecliptic's
    # caches keep neither it nor its compiled code.
    def use_and_drop():
        fn = lambda x: x * 2  # noqa: E731
        jf = filter_jit(fn)
        for _ in range(3):  # the ordinary path, then a guard
            jf(jnp.ones(2))
        filter_jit(fn)(jnp.ones(2))  # a second wrapper shares the first's table
        return weakref.ref(fn), ecliptic._caches.cached_entries()

    ref, while_alive = use_and_drop()
    gc.collect()
    assert ref() is None
    assert ecliptic._caches.cached_entries() < while_alive


def test_dispatch_does_not_block():
    @filter_jit
    def slow(m):
        for _ in range(8):
            m = jnp.tanh(m @ m)
        return m

    m = jnp.ones((512, 512)) / 512
    slow(m).block_until_ready()  # compile
    out = slow(m)
    # A call that waited for the result would hand back a ready array.
    assert not out.is_ready()
    out.block_until_ready()
    assert out.is_ready()


def test_tuple_and_dict_positionals_do_not_collide_with_keywords():
    @filter_jit
    def f(*args, **kwargs):
        return len(args), sorted(kwargs)

    one = jnp.ones(())
    # Same leaves, same nesting: `((a, b), {"c": c})` as positionals vs as (args, kw).
    assert f((one, one), {"c": one}) == (2, [])
    assert f(one, one, c=one) == (2, ["c"])
    assert f((one, one), {"c": one}) == (2, [])


def test_unhashable_non_array_output():
    class Opaque:
        __hash__ = None

    obj = Opaque()
    f = filter_jit(lambda a: (a * 2, obj, [1, "s"]))
    for _ in range(2):
        arr, out, rest = f(jnp.ones(2))
        assert out is obj and rest == [1, "s"]
        np.testing.assert_allclose(arr, [2.0, 2.0])


def test_bound_method_module_traces_weights(getkey):
    model = linear(getkey)
    jf = filter_jit(model.scaled)
    x = jnp.ones(3)
    np.testing.assert_allclose(jf(x, 2.0), model.scaled(x, 2.0), rtol=1e-6)
    text = jf.lower(x, 2.0).as_text()
    (main,) = [line for line in text.splitlines() if "func.func public @main" in line]
    assert "tensor<3x3xf32>" in main  # the weight is an argument of the program


def test_donate_all_except_first_with_static_leaves_in_first():
    f = filter_jit(lambda first, b: (first[0] + 1, b + 1), donate="all-except-first")
    a, b = jnp.ones(3), jnp.ones(3)
    f((a, "static", 3), b)
    assert not a.is_deleted() and b.is_deleted()


def test_unhashable_fallback_message():
    class FlakyHash:
        calls = 0

        def __hash__(self):
            FlakyHash.calls += 1
            if FlakyHash.calls == 1:
                raise TypeError("unhashable the first time")
            return 0

    f = filter_jit(lambda x, y: x)
    with pytest.raises(ValueError, match="hashing the static leaves of the arguments"):
        f(jnp.ones(1), FlakyHash())


def test_register_cache_clear():
    from ecliptic._caches import register_cache_clear

    cleared = []
    register_cache_clear(lambda: cleared.append(True))
    ecliptic.clear_caches()
    assert cleared == [True]
    with pytest.raises(TypeError, match="expected a callable of no arguments, but got"):
        register_cache_clear({})


@pytest.mark.parametrize(
    "style", ["jit-call", "jit-method", "outer-call", "outer-method"]
)
def test_retrace_counts_for_module_methods(style):
    traces = []

    class Adder(Module):
        increment: object

        def add(self, x):
            traces.append(None)
            return x + self.increment

        if style == "jit-method":
            add_jit = filter_jit(add)

        if style == "jit-call":
            __call__ = filter_jit(add)
        else:
            __call__ = add

    def run(m):
        y = jnp.array(1.0)
        if style in ("jit-call", "jit-method"):
            return m(y) if style == "jit-call" else m.add_jit(y)
        return filter_jit(m)(y) if style == "outer-call" else filter_jit(m.add)(y)

    one, two = Adder(1), Adder(2)
    assert [float(run(one)), float(run(one))] == [2.0, 2.0] and len(traces) == 1
    assert [float(run(two)), float(run(two))] == [3.0, 3.0] and len(traces) == 2
    # Array increments are traced: one compilation serves both values.
    assert float(run(Adder(jnp.array(1.0)))) == 2.0
    assert float(run(Adder(jnp.array(2.0)))) == 3.0
    assert len(traces) == 3


def test_wrapping_transformed_functions_reuses_compilation():
    f = counted(lambda x: (x * x).sum())
    for x in (jnp.arange(2.0), jnp.arange(2.0) + 1):
        ecliptic.filter_jit(ecliptic.filter_jit(f))(x)
        ecliptic.filter_jit(ecliptic.filter_grad(f))(x)
        ecliptic.filter_jit(ecliptic.filter_vmap(f))(x[:, None])
    assert len(f.traces) == 3  # one per kind of wrapper, none per new wrapper


def test_donated_module_fun_is_consumed_and_shared(getkey):
    class Counter(Module):
        buffer: jax.Array
        mlp: ecliptic.nn.MLP

        def __call__(self, x):
            new = ecliptic.tree_at(lambda s: s.buffer, self, self.buffer + 1)
            return self.mlp(x), new

    first = Counter(jnp.zeros(8), ecliptic.nn.MLP(2, 2, 2, 1, key=getkey()))
    _, second = filter_jit(first, donate="all")(jnp.ones(2))
    _, third = filter_jit(second, donate="all")(jnp.ones(2))
    assert first.buffer.is_deleted() and second.buffer.is_deleted()
    np.testing.assert_allclose(third.buffer, 2 * jnp.ones(8))


def test_non_array_outputs_keep_jax_cpp_dispatch(monkeypatch):
    # A function returning a Module with a non-array leaf (here a function) must still
    # dispatch through JAX's C++ fast path: JAX only builds it when every output leaf
    # is an array, and otherwise runs its Python `ExecuteReplicated` on every call.
    from jax._src.interpreters import pxla

    class WithActivation(ecliptic.Module):
        weight: jax.Array
        activation: object

    @ecliptic.filter_jit
    def step(m, x):
        return ecliptic.tree_at(lambda t: t.weight, m, m.weight + x), "done"

    model = WithActivation(jnp.ones(3), jax.nn.relu)
    for _ in range(3):
        model, tag = step(model, jnp.ones(3))
    calls = []
    original = pxla.ExecuteReplicated.__call__

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(pxla.ExecuteReplicated, "__call__", counting)
    for _ in range(3):
        model, tag = step(model, jnp.ones(3))
    assert calls == []
    assert tag == "done" and model.activation is jax.nn.relu
    assert jnp.array_equal(model.weight, jnp.full(3, 7.0))


def test_out_shardings_lay_out_the_output():
    # `out_shardings` (a prefix of the output, `None` where there are no arrays) is
    # a constraint inside the trace: the output's arrays come back laid out so.
    device = jax.devices()[0]
    one = jax.sharding.SingleDeviceSharding(device)
    f = filter_jit(
        lambda x: ({"w": x * 2, "name": "w"}, x + 1),
        out_shardings=({"w": one, "name": None}, one),
    )
    (tree, y) = f(jnp.arange(3.0))
    assert tree["name"] == "w" and tree["w"].sharding == one and y.sharding == one
    np.testing.assert_array_equal(tree["w"], [0.0, 2.0, 4.0])
    assert "sharding" in f.lower(jnp.arange(3.0)).as_text()
    g = filter_jit(
        lambda x: ({"w": x * 2, "name": "w"}, x + 1), out_shardings=(None, one)
    )
    tree, y = g(jnp.arange(3.0))  # `None`: that part is left to XLA
    assert tree["name"] == "w" and y.sharding == one
