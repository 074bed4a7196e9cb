"""`Module`: an immutable dataclass that is a PyTree (design: `README.md` here)."""

from __future__ import annotations

import abc
import dataclasses
import inspect
import types
import warnings
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import jax
import jax.tree_util as jtu
from typing_extensions import dataclass_transform

from .._filters import is_array, is_inexact_array_like
from ._abstract import abstract_attributes, without_abstract_annotations
from ._field import field
from ._flatten import make_flatten_functions, WRAPPER_FIELD_NAMES


_ModuleT = TypeVar("_ModuleT", bound="Module")

# `id`s of the Modules whose `__init__` is running: only they may set attributes.
_initialising: set[int] = set()

_TRANSFORM_TYPES: frozenset[type] = frozenset(
    type(transform(lambda x: x))
    for transform in (
        jax.jit,
        jax.grad,
        jax.vmap,
        jax.value_and_grad,
        jax.jacfwd,
        jax.jacrev,
        jax.hessian,
        jax.custom_jvp,
        jax.custom_vjp,
        jax.checkpoint,
    )
)


class _ClassInfo(NamedTuple):
    """What `__call__`, `__setattr__` and flatten need to know about a Module class,
    computed once when the class is created."""

    names: tuple[str, ...]
    names_set: frozenset[str]
    dynamic: tuple[str, ...]
    static: tuple[str, ...]
    init_false: tuple[str, ...]
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]
    check_inits: tuple[Callable[[Any], None], ...]
    has_dataclass_init: bool
    force_abstract: bool
    abstract: bool
    needs_post_init: bool


def _is_magic(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class _MethodDescriptor:
    """Wraps a method defined on a Module class: reading it from an instance gives a
    [`BoundMethod`][ecliptic._module.BoundMethod], which is a PyTree (so the instance's
    arrays are traced when the bound method is passed through a transformation)."""

    __slots__ = ("method", "__isabstractmethod__")

    def __init__(self, method: types.FunctionType):
        self.method = method
        self.__isabstractmethod__ = getattr(method, "__isabstractmethod__", False)

    def __set_name__(self, owner: type, name: str) -> None:
        hook = getattr(self.method, "__set_name__", None)
        if hook is not None:
            hook(owner, name)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.method
        bound = _new(_BoundMethod)
        _setattr(bound, "__func__", self.method)
        _setattr(bound, "__self__", instance)
        return bound

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)


_new = object.__new__
_setattr = object.__setattr__
_BoundMethod: type = type(None)  # Set by `_prebuilt.py` once `BoundMethod` exists.
_SPECIAL_VALUE_TYPES: frozenset[type] = _TRANSFORM_TYPES


def _uses_dataclass_init(cls: type, namespace: dict[str, Any]) -> bool:
    """A class gets a generated `__init__` only if it defines none and its nearest
    parent with an `__init__` has a generated one (unlike plain dataclasses)."""
    if "__init__" in namespace:
        return False
    for kls in cls.__mro__[1:]:
        info = kls.__dict__.get("_ecliptic_info")
        if info is not None:
            return info.has_dataclass_init
        if kls is object:
            break
        if "__init__" in kls.__dict__:
            return False
    return True


def _converter_annotation(converter: Callable[[Any], Any]) -> Any:
    try:
        parameters = list(inspect.signature(converter).parameters.values())
    except (TypeError, ValueError):
        return Any
    if not parameters or parameters[0].annotation is inspect.Parameter.empty:
        return Any
    return parameters[0].annotation


def _make_dataclass(cls: type, has_dataclass_init: bool) -> None:
    annotations = cls.__dict__.get("__annotations__", {})
    cls.__annotations__ = without_abstract_annotations(annotations)
    try:
        dataclasses.dataclass(eq=False, repr=False, init=has_dataclass_init)(cls)
    finally:
        cls.__annotations__ = annotations
    if has_dataclass_init:
        init_annotations = cls.__init__.__annotations__
        for f in dataclasses.fields(cls):
            converter = f.metadata.get("converter")
            if converter is not None and f.name in init_annotations:
                init_annotations[f.name] = _converter_annotation(converter)


def _class_info(
    cls: type, has_dataclass_init: bool, force: bool, abstract: bool
) -> _ClassInfo:
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    static = tuple(f.name for f in fields if f.metadata.get("static", False))
    converters = tuple(
        (f.name, f.metadata["converter"])
        for f in fields
        if f.metadata.get("converter") is not None
    )
    check_inits = tuple(
        kls.__dict__["__check_init__"]
        for kls in cls.__mro__
        if "__check_init__" in kls.__dict__
    )
    init_false = tuple(f.name for f in fields if not f.init)
    return _ClassInfo(
        names=names,
        names_set=frozenset(names),
        dynamic=tuple(n for n in names if n not in static),
        static=static,
        init_false=init_false,
        converters=converters,
        check_inits=check_inits,
        has_dataclass_init=has_dataclass_init,
        force_abstract=force,
        abstract=force or abstract,
        needs_post_init=bool(converters or check_inits or static or init_false),
    )


def _warn_static_and_init_false(cls: type, info: _ClassInfo, obj: Any) -> None:
    for name in info.static:
        value = getattr(obj, name)
        if any(is_array(x) for x in jtu.tree_leaves(value)):
            warnings.warn(
                f"{cls.__qualname__}.{name} is a static field but was given a JAX or "
                "NumPy array. Static values are part of the PyTree structure: they "
                "are never traced or differentiated, and a new value recompiles. "
                f"Declare `{name}` without `static=True` if it holds parameters.",
                stacklevel=3,
            )
    for name in info.init_false:
        value = getattr(obj, name, None)
        if any(is_inexact_array_like(x) for x in jtu.tree_leaves(value)):
            warnings.warn(
                f"{cls.__qualname__}.{name} is declared with `field(init=False)` and "
                "holds floating-point arrays. It is a PyTree leaf like any other "
                "field: "
                "`jax.grad` differentiates it directly, not the fields it was "
                "computed from. Compute it in a method or property instead, so that "
                "gradients flow to its inputs.",
                stacklevel=3,
            )


def _finish_init(cls: type, info: _ClassInfo, obj: Any) -> None:
    """Runs after `__init__`: fields set, converters, warnings, `__check_init__`."""
    d = obj.__dict__
    if not d.keys() >= info.names_set:
        for name in info.names:
            if name not in d and not hasattr(cls, name):
                raise TypeError(
                    f"Field {name!r} was not initialized. {cls.__qualname__}.__init__ "
                    f"must assign every field; add `self.{name} = ...` to it, or give "
                    f"the field a default in the class body."
                )
    if not info.needs_post_init:
        return
    for name, converter in info.converters:
        _setattr(obj, name, converter(getattr(obj, name)))
    if info.static or info.init_false:
        _warn_static_and_init_false(cls, info, obj)
    for check in info.check_inits:
        check(obj)


def _make_shadow(
    mcs: type, cls: type, flatten_with_keys: Callable, unflatten: Callable
) -> type | None:
    """The class that instances of `cls` have while `__init__` runs: `cls` with a
    C-level `__setattr__`, so assignments in `__init__` cost what they cost on a plain
    object. Not made when a class in the MRO defines `__init_subclass__` (it would
    see the shadow); those classes check each assignment instead."""
    if any("__init_subclass__" in k.__dict__ for k in cls.__mro__[:-1]):
        return None
    namespace = {
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_ecliptic_shadow": None,
        "_ecliptic_fast_shadow": None,
        "_ecliptic_is_shadow": True,
    }
    shadow = type.__new__(mcs, cls.__name__, (cls,), namespace)
    jtu.register_pytree_with_keys(shadow, flatten_with_keys, unflatten)
    return shadow


def _construct(cls: Any, args: tuple, kwargs: dict) -> Any:
    """Instantiation when the fast path does not apply: abstract classes, classes
    with converters, `__check_init__`, static or `init=False` fields, and classes
    whose MRO defines `__init_subclass__` (no shadow class)."""
    __tracebackhide__ = True
    info: _ClassInfo = cls._ecliptic_info
    if info.abstract:
        raise TypeError(_abstract_message(cls))
    shadow = cls._ecliptic_shadow
    if shadow is None:
        obj = _new(cls)
        key = id(obj)
        _initialising.add(key)
        try:
            cls.__init__(obj, *args, **kwargs)
        finally:
            _initialising.discard(key)
    else:
        obj = _new(shadow)
        cls.__init__(obj, *args, **kwargs)
        _setattr(obj, "__class__", cls)
        _check_assignments(cls, info, obj)
    if info.needs_post_init or not obj.__dict__.keys() >= info.names_set:
        _finish_init(cls, info, obj)
    return obj


def _check_assignments(cls: type, info: _ClassInfo, obj: Any) -> None:
    """After `__init__` ran on a shadow instance: only declared fields were
    assigned, and none of them holds a mistake (see `_check_special_value`)."""
    d = obj.__dict__
    if d.keys() != info.names_set:
        _check_assigned_names(cls, info, obj)
    if not _SPECIAL_VALUE_TYPES.isdisjoint(map(type, d.values())):
        _check_special_values(obj)


def _check_assigned_names(cls: type, info: _ClassInfo, obj: Any) -> None:
    for name in obj.__dict__:
        if name not in info.names_set and name not in WRAPPER_FIELD_NAMES:
            if name == "__orig_class__":
                continue
            raise dataclasses.FrozenInstanceError(
                f"cannot assign to field {name!r}: {cls.__qualname__} declares no "
                f"field {name!r}. Declare it in the class body (`{name}: <type>`) "
                "before assigning it in `__init__`."
            )


def _check_special_values(obj: Any) -> None:
    for name, value in obj.__dict__.items():
        if type(value) in _SPECIAL_VALUE_TYPES:
            _check_special_value(obj, name, value)


_METHOD_IN_INIT = (
    "Cannot assign methods in __init__: `self.{name} = self.{method}` would store "
    "{cls} inside itself, which is not a tree. Use a property instead:\n"
    "    @property\n"
    "    def {name}(self):\n"
    "        return self.{method}"
)


@dataclass_transform(field_specifiers=(dataclasses.field, field))
class _ModuleMeta(abc.ABCMeta):
    """Metaclass of [`ecliptic.Module`][]: makes each subclass a dataclass, registers
    it as a PyTree, wraps its methods, and runs the post-`__init__` checks."""

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
        has_dataclass_init = _uses_dataclass_init(cls, namespace)
        if not has_dataclass_init and hasattr(cls, "__post_init__"):
            warnings.warn(
                f"{cls.__module__}.{cls.__qualname__} defines (or inherits) both a "
                "custom `__init__` and `__post_init__`: `__post_init__` only runs "
                "after a generated dataclass `__init__`, so it will never run here. "
                "Move the checks into `__check_init__`, which always runs.",
                stacklevel=2,
            )
        _make_dataclass(cls, has_dataclass_init)
        abstract_vars, abstract_class_vars = abstract_attributes(cls)
        cls.__abstractvars__ = abstract_vars
        cls.__abstractclassvars__ = abstract_class_vars
        info = _class_info(
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
        shadow = _make_shadow(mcs, cls, flatten_with_keys, unflatten)
        cls._ecliptic_shadow = shadow
        cls._ecliptic_names = info.names_set
        fast = not (info.abstract or info.needs_post_init)
        cls._ecliptic_fast_shadow = shadow if fast else None
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        shadow = cls._ecliptic_fast_shadow
        if shadow is None:
            return _construct(cls, args, kwargs)
        # Fast path. `__init__` runs on an instance of `shadow`, a subclass of `cls`
        # whose `__setattr__` is `object.__setattr__`; the assignments are then
        # checked in bulk and the instance becomes a `cls`.
        obj = _new(shadow)
        cls.__init__(obj, *args, **kwargs)
        # A plain store: the shadow's `__setattr__` is `object.__setattr__` (faster
        # than calling it by name).
        obj.__class__ = cls
        d = obj.__dict__
        if d.keys() != cls._ecliptic_names or not _SPECIAL_VALUE_TYPES.isdisjoint(
            map(type, d.values())
        ):
            _check_assignments(cls, cls._ecliptic_info, obj)
            _finish_init(cls, cls._ecliptic_info, obj)
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
        raise ValueError(
            f"{cls.__qualname__}.register({subclass!r}) is not supported: Modules are "
            "dataclasses, so virtual subclasses cannot be registered. Subclass "
            f"{cls.__qualname__} instead."
        )


def _abstract_message(cls: type) -> str:
    if cls.__abstractmethods__:
        names = sorted(cls.__abstractmethods__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract methods "
            f"{names}: implement them in a subclass and instantiate that."
        )
    if cls.__abstractclassvars__:
        names = sorted(cls.__abstractclassvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract class "
            f"attributes {names}: declare them on a subclass as "
            f"`{names[0]}: ClassVar[...] = ...`."
        )
    if cls.__abstractvars__:
        names = sorted(cls.__abstractvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract "
            f"attributes {names}: declare them on a subclass as a field, a class "
            "attribute or a property."
        )
    return (
        f"Can't instantiate abstract class {cls.__name__}: it was declared abstract "
        "(`strict=StrictConfig(force_abstact=True)` or `is_abstract=True`); "
        "instantiate a concrete subclass."
    )


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
        from .._pretty_print import tree_pformat

        return tree_pformat(self)

    def __hash__(self) -> int:
        names = type(self)._ecliptic_info.names
        return hash(tuple((name, getattr(self, name)) for name in names))

    def __eq__(self, other: object) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        from .._tree import tree_equal

        return tree_equal(self, other)

    def __setattr__(self, name: str, value: Any) -> None:
        if id(self) in _initialising and (
            name in type(self)._ecliptic_info.names_set or name in WRAPPER_FIELD_NAMES
        ):
            if type(value) in _SPECIAL_VALUE_TYPES:
                _check_special_value(self, name, value)
            _setattr(self, name, value)
            return
        if name == "__orig_class__":  # set by `typing` on `SomeModule[int]()`
            _setattr(self, name, value)
            return
        _raise_frozen(self, name)

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(
            f"cannot delete field {name!r}: {type(self).__qualname__} is immutable."
        )


def _check_special_value(obj: Module, name: str, value: Any) -> None:
    """Assignments in `__init__` that are mistakes: a method of `obj` itself (a
    cycle), or a JAX-transformed callable that hides parameters."""
    if type(value) is _BoundMethod:
        if value.__self__ is obj:
            raise ValueError(
                _METHOD_IN_INIT.format(
                    name=name, method=value.__func__.__name__, cls=type(obj).__name__
                )
            )
    else:
        _warn_transformed(type(obj), name, value)


def _raise_frozen(obj: Module, name: str) -> None:
    cls = type(obj).__qualname__
    if id(obj) in _initialising:
        raise dataclasses.FrozenInstanceError(
            f"cannot assign to field {name!r}: {cls} declares no field {name!r}. "
            f"Declare it in the class body (`{name}: <type>`) before assigning "
            "it in `__init__`."
        )
    raise dataclasses.FrozenInstanceError(
        f"cannot assign to field {name!r}: {cls} is immutable once created. Make "
        f"a modified copy instead: `ecliptic.tree_at(lambda m: m.{name}, model, "
        "new_value)`."
    )


def _warn_transformed(cls: type, name: str, value: Any) -> None:
    inner = value
    while True:
        inner = getattr(inner, "__wrapped__", None)
        if inner is None:
            return
        try:
            leaves = jtu.tree_leaves(inner)
        except Exception:  # noqa: BLE001 - any non-PyTree callable: nothing to warn about
            return
        if any(is_array(x) or isinstance(x, (int, float, complex)) for x in leaves):
            warnings.warn(
                f"{cls.__module__}.{cls.__qualname__}.{name} is assigned a "
                "JAX-transformed callable (e.g. `jax.vmap(layer)`) that holds "
                "parameters. Such callables are not PyTrees, so those parameters "
                "will never be trained. Store the layer itself and apply the "
                "transformation in `__call__`, or use the filtered transformation "
                "(e.g. `ecliptic.filter_vmap(layer)`), which is a PyTree.",
                stacklevel=3,
            )
            return


def is_abstract_module(cls: type) -> bool:
    """Whether `cls` (a Module subclass) cannot be instantiated yet."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"{cls!r} is not a subclass of ecliptic.Module.")
    info: _ClassInfo = cls._ecliptic_info  # pyright: ignore[reportAttributeAccessIssue]
    return bool(
        cls.__abstractmethods__
        or cls.__abstractvars__  # pyright: ignore[reportAttributeAccessIssue]
        or cls.__abstractclassvars__  # pyright: ignore[reportAttributeAccessIssue]
        or info.force_abstract
    )
