"""Module classes as class machinery sees them: abstract members, strict mode,
generics and subclass lists, doctest and docstrings, pickling by value."""

import abc
import dataclasses
import doctest
import inspect
from typing import ClassVar, Generic, TypeVar

import jax.tree_util as jtu
import pytest

import ecliptic as eqx
from ecliptic._module import (
    is_abstract_module,
)


def test_abstract_method():
    class A(eqx.Module):
        @abc.abstractmethod
        def f(self): ...

    with pytest.raises(TypeError, match="abstract"):
        A()

    class B(A):
        def f(self):
            return 3

    assert B().f() == 3
    assert is_abstract_module(A) and not is_abstract_module(B)


def test_abstract_var():
    class A(eqx.Module):
        x: eqx.AbstractVar[int]

    with pytest.raises(TypeError, match=r"abstract attributes \['x'\]"):
        A()
    assert [f.name for f in dataclasses.fields(A)] == []

    class B(A):
        x: int

    class C(A):
        @property
        def x(self):
            return 5

    assert B(1).x == 1 and C().x == 5


def test_abstract_class_var():
    class A(eqx.Module):
        x: eqx.AbstractClassVar[int]

    class B(A):
        x: ClassVar[int] = 3

    with pytest.raises(TypeError, match=r"abstract class attributes \['x'\]"):
        A()
    assert B().x == 3
    assert [f.name for f in dataclasses.fields(B)] == []


def test_abstract_var_errors():
    with pytest.raises(TypeError, match="must be subscripted"):

        class A(eqx.Module):
            x: eqx.AbstractVar

    with pytest.raises(TypeError, match="cannot also be given a value"):

        class B(eqx.Module):
            x: eqx.AbstractVar[int] = 3


def test_abstract_var_string_annotation():
    class A(eqx.Module):
        x: "eqx.AbstractVar[int]"

    with pytest.raises(TypeError, match="abstract attributes"):
        A()


def test_strict_config():
    class A(eqx.Module, strict=True):
        x: int

    assert A(1).x == 1

    class B(eqx.Module, strict=eqx.StrictConfig(force_abstact=True)):
        pass

    with pytest.raises(TypeError, match="declared abstract"):
        B()


def test_register_forbidden():
    with pytest.raises(ValueError, match="virtual subclasses"):
        eqx.Module.register(int)


def test_generic_module():
    T = TypeVar("T")

    class G(eqx.Module, Generic[T]):
        x: int

    g = G[int](1)
    assert g.x == 1 and jtu.tree_leaves(g) == [1]


def test_subclasses_are_the_user_s_only():
    class Base(eqx.Module):
        x: int

    class Child(Base):
        pass

    Base(1), Child(2)
    assert Base.__subclasses__() == [Child]
    assert Child.__subclasses__() == []


class _Documented(eqx.Module):
    """A Module whose docstrings hold examples.

    >>> _Documented(2).x
    2
    """

    x: int

    def double(self):
        """
        >>> _Documented(2).double()
        4
        """
        return 2 * self.x

    def __call__(self, y):
        """
        >>> _Documented(2)(3)
        5
        """
        return self.x + y


class _PlainDocumented:
    def double(self):
        """
        >>> 2 * 2
        4
        """


def test_doctest_finds_examples_in_methods():
    def examples(cls):
        tests = doctest.DocTestFinder().find(cls)
        return {t.name: len(t.examples) for t in tests if t.examples}

    # Each docstring once: the methods, and the class's own (no hidden copy).
    assert examples(_Documented) == {
        "_Documented": 1,
        "_Documented.double": 1,
        "_Documented.__call__": 1,
    }
    assert examples(_PlainDocumented) == {"_PlainDocumented.double": 1}
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_Documented):
        runner.run(test, out=lambda text: None)
    assert runner.summarize(verbose=False) == (0, 3)  # (failed, attempted)


def test_generated_init_keeps_the_inherited_docstring():
    class Parent(eqx.Module):
        size: int

    Parent.__init__.__doc__ = "Build it.\n\n**Arguments:** `size`: how many."

    class Child(Parent):
        extra: int = 0

    class Grandchild(Child):
        more: int = 0

    for cls in (Child, Grandchild):
        assert cls.__init__ is not Parent.__init__  # a generated one
        assert cls.__init__.__doc__ == Parent.__init__.__doc__
        assert inspect.getdoc(cls.__init__) == inspect.getdoc(Parent.__init__)
    # With nothing documented above it, the docstring is `object.__init__`'s.
    assert eqx.Module.__init__.__doc__ == object.__init__.__doc__

    class Custom(eqx.Module):
        size: int

        def __init__(self, size):
            """My own."""
            self.size = size

    class CustomChild(Custom):
        pass

    assert CustomChild.__init__.__doc__ == "My own."


def test_a_class_pickled_by_value_keeps_its_methods():
    cloudpickle = pytest.importorskip("cloudpickle")

    class Local(eqx.Module):  # local: cloudpickle copies the class, methods too
        x: int = 1

        def get(self):
            """The field."""
            return self.x

    Copy = cloudpickle.loads(cloudpickle.dumps(Local))
    assert Copy(3).get() == 3
    assert Copy.get.__doc__ == "The field."
