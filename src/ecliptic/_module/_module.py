"""`Module`, its metaclass (class creation and construction) and `BoundMethod`
(design: `README.md` here).

`BoundMethod` lives in this file because the metaclass makes one on every method
read and the construction checks look for one; both are plain references to this
module's globals, resolved when they run.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import types
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import jax.tree_util as jtu
from typing_extensions import dataclass_transform

from .._messages import (
    abstract_message,
    delete_field_error,
    frozen_error,
    init_returned_error,
    method_in_init_error,
    not_a_module_class_error,
    post_init_never_runs_message,
    virtual_subclass_error,
)
from .._pretty_print import tree_pformat
from .._pytree import tree_equal
from .._tracebacks import hide_internal_frames
from ._abstract import abstract_attributes
from ._class_info import (
    class_info,
    ClassInfo,
    make_dataclass,
    make_shadow,
    uses_dataclass_init,
)
from ._field import field
from ._flatten import make_flatten_functions
from ._init_checks import (
    check_assigned_names,
    finish_init,
    TRANSFORM_TYPES,
    warn_transformed,
)


# `id`s of the instances whose `__init__` is running on the no-shadow path (classes
# whose MRO defines `__init_subclass__`); read it through `is_initialising`.
_initialising: set[int] = set()

_new = object.__new__
_setattr = object.__setattr__
_delattr = object.__delattr__


def is_initialising(obj: object) -> bool:
    """Whether `obj` is a Module whose `__init__` is running (on either construction
    path), so that its attributes may still change.

    **Arguments:**

    - `obj`: any object.

    **Returns:** `True` while `obj`'s `__init__` runs, else `False`.
    """
    return "_ecliptic_is_shadow" in type(obj).__dict__ or id(obj) in _initialising


def _is_magic(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class _MethodDescriptor:
    # Wraps a method defined on a Module class: reading it from an instance gives a
    # `BoundMethod`, which is a PyTree (so the instance's arrays are traced when the
    # bound method is passed through a transformation); reading it from the class
    # gives the function.
    #
    # To tools that walk the class `__dict__` (doctest, `pytest --doctest-modules`)
    # it looks like the function it wraps: `__doc__` reads the function's (a
    # property, so later edits show), and `__module__` and `__wrapped__` are set on
    # the instance (the class's own `__module__` string must stay for pickling).
    # `__name__`, `__qualname__` and the rest come through `__getattr__`.

    __slots__ = ("method", "__isabstractmethod__", "__dict__")

    def __init__(self, method: types.FunctionType):
        self.method = method
        self.__isabstractmethod__ = getattr(method, "__isabstractmethod__", False)
        self.__module__ = method.__module__
        self.__wrapped__ = method

    @property
    def __doc__(self) -> str | None:  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        hook = getattr(self.method, "__set_name__", None)
        if hook is not None:
            hook(owner, name)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.method
        bound = _new(BoundMethod)
        _setattr(bound, "__func__", self.method)
        _setattr(bound, "__self__", instance)
        return bound

    def __getattr__(self, name: str) -> Any:
        if name == "method":  # not set yet: a copy or unpickle is being built
            raise AttributeError(name)
        return getattr(self.method, name)


#
# Construction. One rule on both paths: while `__init__` runs, `self.x = v` and
# `del self.x` are `object`'s own operations; once it returns, the instance dict is
# checked in bulk (`_check_assignments`), then `finish_init` runs if needed.
#


def _construct(cls: Any, args: tuple, kwargs: dict) -> Any:
    """Instantiation when the fast path in `_ModuleMeta.__call__` does not apply:
    abstract classes, classes whose MRO defines `__init_subclass__` (no shadow
    class: the instance is marked as initialising by `id` instead) or `__new__`
    (which, as before, is not called: the instance is made by `object.__new__`)."""
    __tracebackhide__ = True
    info: ClassInfo = cls._ecliptic_info
    if info.abstract:
        raise TypeError(abstract_message(cls))
    shadows = cls._ecliptic_shadow
    if not shadows:
        obj = _new(cls)
        key = id(obj)
        _initialising.add(key)
        try:
            result = cls.__init__(obj, *args, **kwargs)
        finally:
            _initialising.discard(key)
    else:
        obj = _new(shadows[0])
        result = cls.__init__(obj, *args, **kwargs)
        _setattr(obj, "__class__", cls)
    if result is not None:
        # What `type.__call__` (the fast path) says.
        raise init_returned_error(result)
    _finish(cls, obj)
    return obj


def _finish(cls: Any, obj: Any) -> None:
    """The checks after `__init__`, in full: assignments, then `finish_init`."""
    __tracebackhide__ = True
    info: ClassInfo = cls._ecliptic_info
    _check_assignments(cls, info, obj)
    if info.needs_post_init or not obj.__dict__.keys() >= info.names_set:
        finish_init(cls, info, obj)


# The globals of the generated checks (`_make_fast_check`): `_special` is set to
# `_SPECIAL_VALUE_TYPES` once `BoundMethod` exists (read when a check runs).
_fast_check_globals: dict[str, Any] = {}


def _make_fast_check(info: ClassInfo) -> Callable[[dict[str, Any]], bool]:
    """Generates the common-case test of the post-`__init__` checks for one class:
    `check(obj.__dict__)` is true when the dict holds exactly the declared fields
    (the field lookups raise `KeyError` for a missing one), none of them a value
    that `_check_assignments` looks at more closely, and no converter,
    `__check_init__` or field warning needs to run. Otherwise the caller runs
    `_finish`, which does every check in full."""
    if info.needs_post_init:
        terms = " and False"
    else:
        terms = "".join(f" and type(d[{n!r}]) not in _special" for n in info.names)
    source = f"def check(d):\n    return len(d) == {len(info.names)}{terms}\n"
    defined: dict[str, Any] = {}
    code = compile(source, "<ecliptic construction check>", "exec")
    exec(code, _fast_check_globals, defined)  # `check` reads the shared globals
    return defined["check"]


def _shadow_metaclass(mcs: type) -> type:
    """The metaclass of the shadow classes of classes whose metaclass is `mcs`."""
    if mcs is _ModuleMeta:
        return _ShadowMeta
    return type(mcs)(f"{mcs.__name__}Shadow", (mcs,), {"__call__": type.__call__})


def _check_assignments(cls: type, info: ClassInfo, obj: Any) -> None:
    """After `__init__`: only declared fields were assigned, and none of them holds
    a mistake (see `_check_special_value`)."""
    d = obj.__dict__
    if d.keys() != info.names_set:
        check_assigned_names(cls, info, obj)
    if not _SPECIAL_VALUE_TYPES.isdisjoint(map(type, d.values())):
        _check_special_values(obj)


def _check_special_values(obj: Any) -> None:
    for name, value in obj.__dict__.items():
        if type(value) in _SPECIAL_VALUE_TYPES:
            _check_special_value(obj, name, value)


def _check_special_value(obj: Any, name: str, value: Any) -> None:
    """Assignments in `__init__` that are mistakes: a method of `obj` itself (a
    cycle), or a JAX-transformed callable that hides parameters."""
    if type(value) is BoundMethod:
        if value.__self__ is obj:
            raise method_in_init_error(obj, name, value.__func__.__name__)
    else:
        warn_transformed(type(obj), name, value)


@dataclass_transform(field_specifiers=(dataclasses.field, field))
class _ModuleMeta(abc.ABCMeta):
    """Metaclass of [`ecliptic.Module`][]: makes each subclass a dataclass, registers
    it as a PyTree, wraps its methods, and runs the post-`__init__` checks."""

    # Set on each class by `__new__` (declared here for type checkers only).
    _ecliptic_info: ClassInfo
    # `(shadow,)`, or `()` for a class without one: in a tuple, so that tools that
    # walk the class `__dict__` (doctest) do not take it for a nested class.
    _ecliptic_shadow: tuple[type, ...]
    # `(shadow, check)` where `__call__`'s fast path applies (see there), else None.
    _ecliptic_fast: tuple[type, Callable[[dict[str, Any]], bool]] | None
    __abstractvars__: frozenset[str]
    __abstractclassvars__: frozenset[str]

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        *,
        strict: bool | None = False,
        is_abstract: bool = False,
        **kwargs: Any,
    ):
        annotations = namespace.get("__annotations__", {})
        for key, value in list(namespace.items()):
            if (
                type(value) is types.FunctionType
                and not _is_magic(key)
                and key not in annotations
            ):
                namespace[key] = _MethodDescriptor(value)
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        has_dataclass_init = uses_dataclass_init(cls, namespace)
        if not has_dataclass_init and hasattr(cls, "__post_init__"):
            warnings.warn(post_init_never_runs_message(cls), stacklevel=2)
        make_dataclass(cls, has_dataclass_init)
        abstract_vars, abstract_class_vars = abstract_attributes(cls)
        cls.__abstractvars__ = abstract_vars
        cls.__abstractclassvars__ = abstract_class_vars
        info = class_info(
            cls,
            has_dataclass_init,
            strict is None or is_abstract,
            bool(abstract_vars or abstract_class_vars or cls.__abstractmethods__),
        )
        cls._ecliptic_info = info
        is_wrapper = isinstance(getattr(cls, "__wrapped__", None), property)
        flatten, flatten_with_keys, unflatten = make_flatten_functions(
            cls, info.dynamic, info.static, is_wrapper
        )
        jtu.register_pytree_with_keys(
            cls, flatten_with_keys, unflatten, flatten_func=flatten
        )
        shadow = make_shadow(_shadow_metaclass(mcs), cls, flatten_with_keys, unflatten)
        cls._ecliptic_shadow = () if shadow is None else (shadow,)
        new = any("__new__" in k.__dict__ for k in cls.__mro__[:-1])
        if shadow is None or info.abstract or new:
            cls._ecliptic_fast = None
        else:
            cls._ecliptic_fast = (shadow, _make_fast_check(info))
        return cls

    def __call__(cls, /, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        fast = cls._ecliptic_fast
        if fast is None:
            return _construct(cls, args, kwargs)
        # Fast path. `shadow` is a subclass of `cls` whose `__setattr__` and
        # `__delattr__` are `object`'s and whose metaclass's `__call__` is
        # `type.__call__`: calling it makes an instance and runs `__init__` in C.
        # The instance then becomes a `cls` (a plain store: the shadow's
        # `__setattr__` is `object`'s), and `check` tests the common case in one
        # generated expression; anything else gets every check, in full.
        shadow, check = fast
        obj = shadow(*args, **kwargs) if kwargs else shadow(*args)
        obj.__class__ = cls
        try:
            if check(obj.__dict__):
                return obj
        except KeyError:  # a field left unset: `_finish` says which
            pass
        _finish(cls, obj)
        return obj

    @property
    def __signature__(cls) -> inspect.Signature:
        signature = inspect.signature(cls.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])

    def __subclasses__(cls) -> list[type]:
        # The shadow class used while `__init__` runs is an implementation detail.
        return [
            k
            for k in type.__subclasses__(cls)
            if "_ecliptic_is_shadow" not in k.__dict__
        ]

    def register(cls, subclass: type) -> type:
        raise virtual_subclass_error(cls, subclass)


class _ShadowMeta(_ModuleMeta):
    """Metaclass of the shadow classes (see `make_shadow`): calling a shadow class
    is `type.__call__`, in C."""

    __call__ = type.__call__  # pyright: ignore[reportAssignmentType]


class Module(Hashable, metaclass=_ModuleMeta):
    """Base class of every model: subclass it and declare fields, as for a dataclass.

    A Module is an immutable dataclass and a PyTree. Its fields are the PyTree's
    children, in declaration order, except those declared `field(static=True)`,
    which are part of the structure. `jax.jit`, `jax.grad`, `jax.vmap`, optax and
    orbax work on it directly.

    - Fields are assigned once, in `__init__` (your own, or the generated one), and
      are read-only afterwards: use [`ecliptic.tree_at`][] to make a modified copy.
    - `__check_init__`, if defined on any class in the MRO, runs after `__init__`
      (every one of them, without `super()` calls) to check invariants.
    - `==` is [`ecliptic.tree_equal`][]; `hash` hashes the fields (so a Module
      holding arrays is unhashable); `repr` is [`ecliptic.tree_pformat`][].
    - Methods read from an instance are bound-method Modules, so `self` is part of
      the PyTree when a method is passed through a transformation.

    ```python
    class Linear(ecliptic.Module):
        weight: jax.Array
        bias: jax.Array

        def __call__(self, x):
            return self.weight @ x + self.bias
    ```
    """

    def __repr__(self) -> str:
        return tree_pformat(self)

    def __hash__(self) -> int:
        names = type(self)._ecliptic_info.names
        return hash(tuple((name, getattr(self, name)) for name in names))

    def __eq__(self, other: object) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        return tree_equal(self, other)

    # Reached only when the instance is not a shadow: on the no-shadow path during
    # `__init__` (then they act as `object`'s, the shadow's rule), or afterwards.
    def __setattr__(self, name: str, value: Any) -> None:
        if id(self) in _initialising or name == "__orig_class__":
            # `typing` sets `__orig_class__` on `SomeModule[int]()` after `__init__`.
            _setattr(self, name, value)
            return
        raise frozen_error(self, name)

    def __delattr__(self, name: str) -> None:
        if id(self) in _initialising:
            _delattr(self, name)
            return
        raise delete_field_error(self, name)


class BoundMethod(Module):
    """A method bound to a Module instance, as a PyTree: the function is static and
    the instance (`__self__`) is its child. Reading `module.method` returns one."""

    __func__: types.FunctionType = field(static=True)
    __self__: Module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.__func__(self.__self__, *args, **kwargs)
        except Exception as e:  # the user's method raised: hide this frame
            hide_internal_frames(e)
            raise

    @property
    def __wrapped__(self) -> Any:
        func: Any = self.__func__
        return func.__get__(self.__self__, type(self.__self__))

    def __getattr__(self, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            return getattr(self.__func__, name)
        raise AttributeError(name)


# Value types that `_check_assignments` looks at more closely (defined after
# `BoundMethod`; read when a Module is constructed, never while this file runs).
_SPECIAL_VALUE_TYPES: frozenset[type] = TRANSFORM_TYPES | {BoundMethod}
_fast_check_globals["_special"] = _SPECIAL_VALUE_TYPES


def is_abstract_module(cls: type) -> bool:
    """Whether `cls` (a Module subclass) cannot be instantiated yet."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise not_a_module_class_error(cls)
    info: ClassInfo = cls._ecliptic_info  # pyright: ignore[reportAttributeAccessIssue]
    return bool(
        cls.__abstractmethods__
        or cls.__abstractvars__  # pyright: ignore[reportAttributeAccessIssue]
        or cls.__abstractclassvars__  # pyright: ignore[reportAttributeAccessIssue]
        or info.force_abstract
    )
