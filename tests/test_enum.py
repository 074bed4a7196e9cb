import jax
import jax.numpy as jnp
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
        with pytest.raises(ValueError, match="traced"):
            Status[item]
        assert "traced" in repr(item)
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
