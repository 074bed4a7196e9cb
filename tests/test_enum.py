import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic as eqx


class Status(eqx.Enumeration):
    ok = "all went well"
    bad = "it broke"


class MoreStatus(Status):
    worse = "it broke badly"


def test_items_and_messages():
    assert Status[Status.ok] == "all went well"
    assert Status[Status.bad] == "it broke"
    assert len(Status) == 2 and len(MoreStatus) == 3
    assert [Status[i] for i in Status] == ["all went well", "it broke"]
    assert repr(Status.ok).endswith("Status<all went well>")


def test_equality_is_array():
    out = Status.ok == Status.ok
    assert isinstance(out, jax.Array) and bool(out)
    assert not bool(Status.ok == Status.bad)
    assert bool(Status.ok != Status.bad)


def test_equality_between_different_enumerations_errors():
    with pytest.raises(ValueError, match="same type"):
        Status.ok == MoreStatus.ok  # noqa: B015
    with pytest.raises(ValueError, match="same type"):
        Status.ok == 1  # noqa: B015


def test_inheritance_and_promote():
    assert int(MoreStatus.ok._value) == int(Status.ok._value)
    promoted = MoreStatus.promote(Status.bad)
    assert MoreStatus[promoted] == "it broke"
    assert bool(promoted == MoreStatus.bad)
    with pytest.raises(ValueError, match="parent enumeration"):
        MoreStatus.promote(MoreStatus.ok)


def test_where_and_jit():
    @jax.jit
    def f(x):
        return Status.where(x > 0, Status.ok, Status.bad)

    assert Status[f(jnp.array(1.0))] == "all went well"
    assert Status[f(jnp.array(-1.0))] == "it broke"
    assert bool(jax.jit(lambda s: s == Status.bad)(Status.bad))
    with pytest.raises(ValueError, match="items of Status"):
        Status.where(True, Status.ok, MoreStatus.ok)


def test_traced_item():
    def f(item):
        assert item.is_traced()
        assert Status[item] == "traced"
        assert repr(item).endswith("Status<traced>")
        return item

    jax.jit(f)(Status.ok)
    assert not Status.ok.is_traced()


def test_bad_definitions_and_lookups():
    with pytest.raises(TypeError, match="must be a message string"):

        class Bad(eqx.Enumeration):
            x = 1

    with pytest.raises(AttributeError, match="has no item 'nope'"):
        Status.nope  # noqa: B018
    with pytest.raises(ValueError, match="takes an item of Status"):
        Status[MoreStatus.ok]


def _batched(x: jax.Array) -> Any:
    return jax.vmap(lambda x: Status.where(x > 0, Status.ok, Status.bad))(x)


def test_batched_item_prints_and_looks_up():
    item = _batched(jnp.array([1.0, -1.0]))
    expected = str(np.array([Status[Status.ok], Status[Status.bad]]))
    assert Status[item] == expected
    assert repr(item).endswith(f"Status<{expected}>")
    assert str(item) == repr(item)
    grid = jax.vmap(_batched)(jnp.array([[1.0, -1.0], [-1.0, 1.0]]))
    ok, bad = Status[Status.ok], Status[Status.bad]
    assert Status[grid] == str(np.array([[ok, bad], [bad, ok]]))
    assert repr(grid).endswith(f"Status<{Status[grid]}>")
    empty = _batched(jnp.zeros((0,)))
    assert Status[empty] == str(np.array([], dtype=str))


class _Holder(eqx.Module):
    status: Any
    x: jax.Array


def test_item_prints_itself_inside_a_module():
    holder = _Holder(Status.bad, jnp.ones(3))
    for text in (eqx.tree_pformat(holder), repr(holder)):
        assert f"status={Status.bad!r}" in text and "_value" not in text
    batched = _Holder(_batched(jnp.array([1.0, -1.0])), jnp.ones(2))
    assert repr(_batched(jnp.array([1.0, -1.0]))) in eqx.tree_pformat(batched)

    def f(holder):
        assert "status=" + repr(holder.status) in repr(holder)
        assert repr(holder.status).endswith("Status<traced>")
        return holder

    jax.jit(f)(holder)


def test_constant_operations_are_evaluated_at_compile_time():
    def f(x):
        traced = Status.where(x > 0, Status.ok, Status.bad)
        constant = Status.where(True, Status.ok, Status.bad)
        concrete = [
            Status.ok == Status.ok,
            Status.ok != Status.bad,
            constant._value,
            MoreStatus.promote(Status.bad)._value,
        ]
        for out in concrete:
            assert not isinstance(out, jax.core.Tracer)
        assert isinstance(traced == Status.ok, jax.core.Tracer)
        assert isinstance(MoreStatus.promote(traced)._value, jax.core.Tracer)
        if constant == Status.ok and Status.ok != Status.bad:
            return x + 1
        return x

    assert float(jax.jit(f)(jnp.array(1.0))) == 2.0
    assert (
        Status[jax.jit(lambda: Status.where(False, Status.ok, Status.bad))()]
        == (Status[Status.bad])
    )


def test_where_of_one_item_adds_no_select():
    assert Status.where(True, Status.ok, Status.ok) is Status.ok
    jaxpr = jax.make_jaxpr(lambda p: Status.where(p, Status.ok, Status.ok))(True)
    assert not jaxpr.eqns
    jaxpr = jax.make_jaxpr(lambda p, i: Status.where(p, i, i))(True, Status.ok)
    assert not jaxpr.eqns
    jaxpr = jax.make_jaxpr(lambda p, i: Status.where(p, i, Status.bad))(True, Status.ok)
    assert jaxpr.eqns


def test_redefined_item_warns():
    with pytest.warns(UserWarning, match="ok"):

        class Redefined(Status):
            ok = "a different message"

    assert Redefined[Redefined.ok] == "a different message"
    assert int(Redefined.ok._value) == int(Status.ok._value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Same(Status):
            ok = "all went well"

        class Grandchild(Redefined):
            extra = "extra"

    assert Grandchild[Grandchild.ok] == "a different message"

    class Other(eqx.Enumeration):
        bad = "broken elsewhere"
        other = "other"

    with pytest.warns(UserWarning, match="bad"):

        class Both(Status, Other):
            pass

    assert Both[Both.bad] == "broken elsewhere"


def test_multiple_inheritance_numbers_first_base_first():
    class Other(eqx.Enumeration):
        other = "other"
        ok = "all went well"

    class Both(Status, Other):
        own = "own"

    values = [int(getattr(Both, n)._value) for n in ("ok", "bad", "other", "own")]
    assert values == list(range(4))
    assert Both[Both.promote(Other.other)] == "other"


def test_where_needs_a_boolean_scalar():
    for pred in (jnp.array(1), jnp.array(1.0), jnp.array([True, False]), 1):
        with pytest.raises(ValueError, match="boolean scalar"):
            Status.where(pred, Status.ok, Status.bad)
    assert Status.where(jnp.array(True), Status.ok, Status.bad) == Status.ok
    assert Status.where(np.bool_(False), Status.ok, Status.bad) == Status.bad
    batched = jax.vmap(lambda p: Status.where(p, Status.ok, Status.bad))
    ok, bad = Status[Status.ok], Status[Status.bad]
    assert Status[batched(jnp.array([True, False]))] == str(np.array([ok, bad]))


@pytest.mark.parametrize("name", ["promote", "where"])
def test_items_may_not_take_a_method_name(name):
    with pytest.raises(ValueError, match=f"cannot have an item named `{name}`"):
        type(eqx.Enumeration)("Bad", (eqx.Enumeration,), {name: "a message"})


def test_isinstance_is_exactly_this_enumeration():
    class Child(Status):
        extra = "extra"

    assert isinstance(Status.ok, Status) and isinstance(Child.extra, Child)
    assert not isinstance(Child.ok, Status)  # as `Status[Child.ok]` refuses it
    assert not isinstance(Status.ok, Child) and not isinstance("ok", Status)
