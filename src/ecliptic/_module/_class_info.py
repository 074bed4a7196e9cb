"""What the metaclass works out once per Module class: the dataclass, the `ClassInfo`
record that construction, flatten and the dispatch guard read, and the shadow
class."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.tree_util as jtu

from ._abstract import without_abstract_annotations


class ClassInfo(NamedTuple):
    """What construction, `__setattr__` and flatten need to know about a Module
    class, computed once when the class is created (stored as `cls._ecliptic_info`)."""

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


def uses_dataclass_init(cls: type, namespace: dict[str, Any]) -> bool:
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


def make_dataclass(cls: type, has_dataclass_init: bool) -> None:
    """Makes `cls` a dataclass in place (abstract annotations hidden meanwhile); a
    generated `__init__` annotates each converted field with its converter's input
    and keeps the docstring of the `__init__` it replaces (the one `cls` inherited),
    so `help` shows the parent's documentation, as in Equinox."""
    annotations = cls.__dict__.get("__annotations__", {})
    inherited_doc = cls.__init__.__doc__
    cls.__annotations__ = without_abstract_annotations(annotations)
    try:
        dataclasses.dataclass(eq=False, repr=False, init=has_dataclass_init)(cls)
    finally:
        cls.__annotations__ = annotations
    if has_dataclass_init:
        cls.__init__.__doc__ = inherited_doc
        init_annotations = cls.__init__.__annotations__
        for f in dataclasses.fields(cls):
            converter = f.metadata.get("converter")
            if converter is not None and f.name in init_annotations:
                init_annotations[f.name] = _converter_annotation(converter)


def class_info(
    cls: type, has_dataclass_init: bool, force: bool, abstract: bool
) -> ClassInfo:
    """The `ClassInfo` of the dataclass `cls`.

    **Arguments:**

    - `cls`: the class, already a dataclass.
    - `has_dataclass_init`: whether its `__init__` is generated.
    - `force`: whether it was declared abstract (`strict=StrictConfig(...)`,
        `is_abstract=True`).
    - `abstract`: whether it has unresolved abstract methods or attributes.

    **Returns:** the `ClassInfo`.
    """
    fields = dataclasses.fields(cls)  # pyright: ignore[reportArgumentType]
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
    return ClassInfo(
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


def make_shadow(
    mcs: type, cls: type, flatten_with_keys: Callable, unflatten: Callable
) -> type | None:
    """The class that instances of `cls` have while `__init__` runs: `cls` with
    `object`'s `__setattr__` and `__delattr__`, so assignments in `__init__` cost what
    they cost on a plain object. `mcs` is its metaclass: a subclass of `type(cls)`
    whose `__call__` is `type.__call__`, so `shadow(*args)` creates an instance and
    runs `__init__` without a Python frame. Not made when a class in the MRO defines
    `__init_subclass__` (the hook would see the shadow); instances of those classes
    are marked as initialising by `id` instead, and `Module.__setattr__` and
    `__delattr__` then act as `object`'s (same rule, Python speed)."""
    if any("__init_subclass__" in k.__dict__ for k in cls.__mro__[:-1]):
        return None
    namespace = {
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_ecliptic_shadow": (),
        "_ecliptic_fast": None,
        "_ecliptic_is_shadow": True,
    }
    shadow = type.__new__(mcs, cls.__name__, (cls,), namespace)  # pyright: ignore
    jtu.register_pytree_with_keys(shadow, flatten_with_keys, unflatten)
    return shadow
