import dataclasses
import inspect

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic as eqx
from ecliptic._module import (
    BoundMethod,
    is_initialising,
    MISSING,
    Static,
)


class Linear(eqx.Module):
    weight: jax.Array
    bias: jax.Array
    size: int = eqx.field(static=True)

    def __init__(self, size, key):
        self.weight = jax.random.normal(key, (size, size))
        self.bias = jnp.zeros(size)
        self.size = size

    def __call__(self, x):
        return self.weight @ x + self.bias

    def double(self, x):
        return 2 * self(x)


class Stack(eqx.Module):
    layers: tuple


def test_is_pytree_with_static_in_treedef(getkey):
    lin = Linear(3, getkey())
    leaves, treedef = jtu.tree_flatten(lin)
    assert len(leaves) == 2
    assert leaves[0] is lin.weight and leaves[1] is lin.bias
    other = Linear(4, getkey())
    assert jtu.tree_structure(other) != treedef
    rebuilt = jtu.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is Linear and rebuilt.size == 3
    assert rebuilt.weight is lin.weight


def test_key_paths(getkey):
    model = Stack((Linear(2, getkey()), Linear(2, getkey())))
    paths = [jtu.keystr(p) for p, _ in jtu.tree_flatten_with_path(model)[0]]
    assert paths == [
        ".layers[0].weight",
        ".layers[0].bias",
        ".layers[1].weight",
        ".layers[1].bias",
    ]


def test_unflatten_does_not_run_init_or_checks():
    calls = []

    class M(eqx.Module):
        x: jax.Array = eqx.field(converter=lambda v: calls.append("conv") or v)

        def __check_init__(self):
            calls.append("check")

    m = M(jnp.array(1.0))
    assert calls == ["conv", "check"]
    jax.tree.map(lambda v: v + 1, m)
    assert calls == ["conv", "check"]


def test_jit_and_grad_directly(getkey):
    lin = Linear(3, getkey())
    x = jnp.ones(3)
    out = jax.jit(lambda m, x: m(x))(lin, x)
    np.testing.assert_allclose(out, lin(x), rtol=1e-6)
    grads = jax.grad(lambda m: jnp.sum(m(x)))(lin)
    assert isinstance(grads, Linear) and grads.size == 3
    np.testing.assert_allclose(grads.bias, jnp.ones(3))


def test_frozen_after_init(getkey):
    lin = Linear(2, getkey())
    with pytest.raises(dataclasses.FrozenInstanceError, match="tree_at"):
        lin.weight = jnp.zeros((2, 2))
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete"):
        del lin.weight


class _PlainBase(eqx.Module):
    pass


class _HookBase(eqx.Module):
    # A class whose MRO defines `__init_subclass__` is built without a shadow class.
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)


class _CheckedBase(eqx.Module):
    # `__check_init__`: the quick check after `__init__` never passes, so every
    # check runs in full.
    def __check_init__(self):
        pass


class _NewBase(eqx.Module):
    # A class whose MRO defines `__new__` is built without calling the shadow class.
    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)


_BASES = pytest.mark.parametrize(
    "base",
    [_PlainBase, _HookBase, _CheckedBase, _NewBase],
    ids=["plain", "hook", "checked", "new"],
)


@_BASES
def test_keyword_arguments_and_init_return_value(base):
    class M(base):
        x: int
        y: int = 3

        def __init__(self, x, *, y=None, result=None):
            self.x = x
            if y is not None:
                self.y = y
            return result

    assert (M(1).x, M(1).y, M(x=1, y=2).y) == (1, 3, 2)
    # As `type.__call__` says, on every construction path.
    with pytest.raises(TypeError, match="should return None, not 'int'"):
        M(1, result=5)


def test_metaclass_subclass():
    calls = []

    class Meta(type(eqx.Module)):
        def __call__(cls, *args, **kwargs):
            calls.append(cls.__name__)
            return super().__call__(*args, **kwargs)

    class M(eqx.Module, metaclass=Meta):
        x: int

        def __init__(self, x):
            self.x = x

    m = M(x=1)
    assert (type(m), type(type(m)), m.x, calls) == (M, Meta, 1, ["M"])
    assert M.__subclasses__() == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.x = 2


@_BASES
def test_assign_and_delete_inside_init(base):
    # As in Equinox: `__init__` may assign, reassign, delete and reassign a field;
    # afterwards the instance is frozen, and a field deleted for good is reported
    # as unset. The same on every construction path.
    class M(base):
        x: int

        def __init__(self, steps):
            for step in steps:
                if step == "del":
                    del self.x
                else:
                    self.x = step

    assert M([1]).x == 1
    assert M([1, 2]).x == 2
    assert M([1, "del", 3]).x == 3
    with pytest.raises(TypeError, match="Field 'x' was not initialized"):
        M([1, "del"])
    with pytest.raises(AttributeError, match="'x'"):
        M(["del"])
    m = M([1])
    with pytest.raises(dataclasses.FrozenInstanceError, match="tree_at"):
        m.x = 2
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete"):
        del m.x


@_BASES
def test_undeclared_and_method_assignments_same_on_every_path(base):
    class M(base):
        x: int

        def __init__(self, mistake):
            self.x = 1
            if mistake == "undeclared":
                self.y = 2
            elif mistake == "method":
                self.x = self.f

        def f(self):
            return 0

    assert M(None).x == 1
    with pytest.raises(ValueError, match="Cannot assign methods in __init__"):
        M("method")
    with pytest.raises(dataclasses.FrozenInstanceError, match="declares no field 'y'"):
        M("undeclared")


@_BASES
def test_is_initialising(base):
    seen = []

    class M(base):
        x: int

        def __init__(self):
            seen.append(is_initialising(self))
            self.x = 1

    m = M()
    assert seen == [True]
    assert not is_initialising(m)
    assert not is_initialising(object())
    assert not is_initialising(M)


def test_undeclared_attribute_in_init():
    class M(eqx.Module):
        x: int

        def __init__(self):
            self.x = 1
            self.y = 2

    with pytest.raises(dataclasses.FrozenInstanceError, match="declares no field 'y'"):
        M()


def test_field_not_initialised():
    class M(eqx.Module):
        x: int

        def __init__(self):
            pass

    with pytest.raises(TypeError, match="Field 'x' was not initialized"):
        M()


def test_class_default_not_set_in_custom_init_flattens_missing():
    class M(eqx.Module):
        x: int = 3

        def __init__(self):
            pass

    m = M()
    assert m.x == 3
    assert jtu.tree_leaves(m) == []
    rebuilt = jtu.tree_unflatten(jtu.tree_structure(m), [])
    assert rebuilt.x == 3 and "x" not in rebuilt.__dict__
    assert repr(MISSING) == "MISSING"


def test_generated_init_and_defaults():
    class M(eqx.Module):
        a: int
        b: float = 2.0
        c: list = eqx.field(default_factory=list)

    m = M(1)
    assert (m.a, m.b, m.c) == (1, 2.0, [])
    assert (
        str(inspect.signature(M))
        == "(a: int, b: float = 2.0, c: list = <factory>) -> None"
    )


def test_custom_init_inheritance():
    class Parent(eqx.Module):
        x: int

        def __init__(self, value):
            self.x = value * 10

    class Child(Parent):
        pass

    class Grandchild(Child):
        y: int = 5

    assert Child(1).x == 10
    assert Grandchild(2).x == 20  # no generated __init__ below a custom one
    assert Grandchild(2).y == 5


def test_generated_init_inherited():
    class Parent(eqx.Module):
        x: int

    class Child(Parent):
        y: int

    c = Child(1, 2)
    assert (c.x, c.y) == (1, 2)


def test_post_init_with_custom_init_warns():
    with pytest.warns(UserWarning, match="__post_init__` only runs"):

        class M(eqx.Module):
            x: int

            def __init__(self):
                self.x = 1

            def __post_init__(self):
                pass


def test_post_init_runs_with_generated_init_and_then_converter():
    class M(eqx.Module):
        x: float = eqx.field(converter=float)
        y: float = eqx.field(init=False)

        def __post_init__(self):
            self.y = 2 * self.x

    m = M(3)
    assert m.x == 3.0 and isinstance(m.x, float) and m.y == 6


def test_converter_annotation():
    def to_array(x: float) -> jax.Array:
        return jnp.asarray(x)

    class M(eqx.Module):
        x: jax.Array = eqx.field(converter=to_array)
        y: int = eqx.field(converter=int)

    assert M.__init__.__annotations__["x"] is float
    m = M(1.0, 2.5)
    assert isinstance(m.x, jax.Array) and m.y == 2


def test_check_init_every_class_in_mro():
    seen = []

    class A(eqx.Module):
        x: int

        def __check_init__(self):
            seen.append("A")
            if self.x < 0:
                raise ValueError("x must be >= 0")

    class B(A):
        y: int

        def __check_init__(self):
            seen.append("B")

    B(1, 2)
    assert sorted(seen) == ["A", "B"]
    with pytest.raises(ValueError, match="x must be >= 0"):
        B(-1, 2)


def test_check_init_cannot_assign():
    class A(eqx.Module):
        x: int

        def __check_init__(self):
            self.x = 2

    with pytest.raises(dataclasses.FrozenInstanceError):
        A(1)


def test_field_metadata_errors():
    with pytest.raises(ValueError, match="already sets 'converter'"):
        eqx.field(metadata={"converter": int})
    with pytest.raises(ValueError, match="already sets 'static'"):
        eqx.field(metadata={"static": True})


def test_field_keeps_metadata_and_kwargs():
    f = eqx.field(static=True, metadata={"doc": "hi"}, default=1, repr=False)
    assert f.metadata["static"] is True and f.metadata["doc"] == "hi"
    assert f.default == 1 and f.repr is False


def test_static_field_deprecated():
    with pytest.warns(UserWarning, match="deprecated"):
        f = eqx.static_field(default=1)
    assert f.metadata["static"] is True


def test_static_array_warns():
    class M(eqx.Module):
        x: jax.Array = eqx.field(static=True)

    with pytest.warns(UserWarning, match="static field but was given a JAX or NumPy"):
        M(np.ones(2))


def test_init_false_inexact_warns():
    class M(eqx.Module):
        a: jax.Array
        n: jax.Array = eqx.field(init=False)

        def __post_init__(self):
            self.n = 2 * self.a

    with pytest.warns(UserWarning, match="field\\(init=False\\)"):
        M(jnp.ones(2))


def test_assign_bound_method_of_self_errors():
    class M(eqx.Module):
        f: object

        def __init__(self):
            self.f = self.g

        def g(self):
            return 1

    with pytest.raises(ValueError, match="Cannot assign methods in __init__"):
        M()


def test_assign_transformed_callable_warns(getkey):
    lin = Linear(2, getkey())

    class M(eqx.Module):
        f: object

        def __init__(self):
            self.f = jax.vmap(lin)

    with pytest.warns(UserWarning, match="JAX-transformed callable"):
        M()


def test_eq_hash_repr(getkey):
    class P(eqx.Module):
        a: int
        b: str

    assert P(1, "x") == P(1, "x")
    assert P(1, "x") != P(2, "x")
    assert hash(P(1, "x")) == hash(P(1, "x"))
    assert repr(P(1, "x")).endswith("P(a=1, b='x')")
    lin = Linear(2, getkey())
    assert repr(lin).endswith("Linear(weight=f32[2,2], bias=f32[2], size=2)")
    with pytest.raises(TypeError, match="unhashable"):
        hash(lin)


def test_eq_traced_under_jit(getkey):
    lin = Linear(2, getkey())
    out = jax.jit(lambda a, b: a == b)(lin, lin)
    assert isinstance(out, jax.Array) and bool(out)


def test_bound_method_is_pytree(getkey):
    lin = Linear(2, getkey())
    method = lin.double
    assert isinstance(method, BoundMethod)
    assert method.__self__ is lin
    assert method.__name__ == "double" and method.__qualname__ == "Linear.double"
    leaves = jtu.tree_leaves(method)
    assert len(leaves) == 2 and leaves[0] is lin.weight
    x = jnp.ones(2)
    np.testing.assert_allclose(method(x), 2 * lin(x), rtol=1e-6)
    assert str(inspect.signature(method)) == "(x)"
    assert Linear.double.__name__ == "double"  # plain function on the class
    # Weights are traced, not baked in as constants.
    jaxpr = jax.make_jaxpr(lambda m, x: m(x))(method, x)
    assert len(jaxpr.jaxpr.invars) == 3 and not jaxpr.consts


def test_magic_methods_not_wrapped(getkey):
    lin = Linear(2, getkey())
    assert not isinstance(lin.__call__, BoundMethod)


def test_super_method_call():
    class A(eqx.Module):
        def f(self):
            return 1

    class B(A):
        def f(self):
            return super().f() + 1

    assert B().f() == 2


def test_partial():
    def f(a, b, *, c):
        return a + b + c

    p = eqx.Partial(f, jnp.array(1.0), c=jnp.array(10.0))
    assert float(p(jnp.array(2.0))) == 13.0
    leaves = jtu.tree_leaves(p)
    assert leaves[0] is f and sum(eqx.is_array(x) for x in leaves) == 2
    doubled = jax.tree.map(lambda x: 2 * x if eqx.is_array(x) else x, p)
    assert float(doubled(jnp.array(2.0))) == 24.0

    class Callable_(eqx.Module):
        def __call__(self, x, y):
            return x * y

    assert eqx.Partial(Callable_(), 3)(4) == 12


def test_static():
    s = Static([1, (2, "a")])
    assert s.value == [1, (2, "a")]
    assert jtu.tree_leaves(s) == []
    assert jtu.tree_structure(Static([1])) == jtu.tree_structure(Static([1]))
    assert jtu.tree_structure(Static([1])) != jtu.tree_structure(Static([2]))


def test_static_matches_the_general_construction_path():
    # `Static` is built directly (it is made on every eager call of the custom-
    # derivative and checkpoint transformations); the result is the same Module.
    s = Static(value={"a": (1, None)})
    assert s.value == {"a": (1, None)} and type(s) is Static
    assert s == Static({"a": (1, None)}) and hash(s) == hash(Static({"a": (1, None)}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s._leaves = ()  # pyright: ignore[reportAttributeAccessIssue]

    class Sub(Static):
        pass

    assert Sub([3]).value == [3]


def test_static_holding_an_array_warns():
    with pytest.warns(UserWarning, match="Static._leaves is a static field"):
        Static((1, np.ones(2)))


def test_module_update_wrapper():
    class Wrapper(eqx.Module):
        fn: object

        def __call__(self, *a):
            return self.fn(*a)

        @property
        def __wrapped__(self):
            return self.fn

    def add(x, y):
        """Adds."""
        return x + y

    w = Wrapper(add)
    w2 = eqx.module_update_wrapper(w)
    assert w2.__name__ == "add" and w2.__doc__ == "Adds."
    assert "__name__" not in w.__dict__  # input untouched
    rebuilt = jtu.tree_unflatten(*reversed(jtu.tree_flatten(w2)))
    assert rebuilt.__name__ == "add" and rebuilt(1, 2) == 3

    class NoWrapped(eqx.Module):
        fn: object

    with pytest.raises(ValueError, match="`__wrapped__` as a property"):
        eqx.module_update_wrapper(NoWrapped(add), add)


def test_optax_partition_combine_workflow(getkey):
    optax = pytest.importorskip("optax")
    lin = Linear(3, getkey())
    optim = optax.sgd(0.1)
    opt_state = optim.init(lin)
    x = jnp.ones(3)
    grads = jax.grad(lambda m: jnp.sum(m(x) ** 2))(lin)
    updates, opt_state = optim.update(grads, opt_state)
    new = optax.apply_updates(lin, updates)
    assert isinstance(new, Linear)
    assert jnp.sum(new(x) ** 2) < jnp.sum(lin(x) ** 2)
