"""Abstract attributes: `AbstractVar[T]` and `AbstractClassVar[T]`.

An annotation `x: AbstractVar[int]` declares that concrete subclasses must provide `x`
(as a field, a class attribute or a property); `x: AbstractClassVar[int]` that they
must provide it as a class attribute (`ClassVar[int]`). Neither creates a dataclass
field. The metaclass calls [`abstract_attributes`][] once per class.
"""

from __future__ import annotations

import inspect
import re
from typing import ClassVar, Generic, get_args, get_origin, TypeVar

from .._messages import (
    abstract_annotation_arity_error,
    abstract_with_value_error,
    bare_abstract_annotation_error,
)


_T = TypeVar("_T")


class AbstractVar(Generic[_T]):
    """Annotates an abstract instance attribute: `x: AbstractVar[int]`.

    A subclass makes it concrete by declaring a field `x: int`, a class attribute
    or a property named `x`. Instantiating a Module whose `AbstractVar`s are not all
    concrete raises `TypeError`. Creates no dataclass field.
    """


class AbstractClassVar(Generic[_T]):
    """Annotates an abstract class attribute: `x: AbstractClassVar[int]`.

    A subclass makes it concrete with `x: ClassVar[int] = ...`. Instantiating a Module
    whose `AbstractClassVar`s are not all concrete raises `TypeError`.
    """


_STRING_KIND = re.compile(
    r"^\s*(?:[\w\.]+\.)?(AbstractVar|AbstractClassVar|ClassVar)\["
)


def annotation_kind(annotation: object) -> tuple[bool, bool]:
    """Classifies an annotation as `(is_abstract, is_class_level)`.

    String annotations (from `from __future__ import annotations`) are recognised by
    their spelling: `"AbstractVar[int]"`, `"eqx.AbstractClassVar[int]"`, ...
    """
    if isinstance(annotation, str):
        match = _STRING_KIND.match(annotation)
        if match is None:
            return False, False
        kind = match.group(1)
        return kind != "ClassVar", kind != "AbstractVar"
    if annotation is AbstractVar or annotation is AbstractClassVar:
        raise bare_abstract_annotation_error(annotation.__name__)
    origin = get_origin(annotation)
    if origin is AbstractVar or origin is AbstractClassVar:
        if len(get_args(annotation)) != 1:
            raise abstract_annotation_arity_error(origin.__name__, annotation)
        return True, origin is AbstractClassVar
    return False, origin is ClassVar


def abstract_attributes(cls: type) -> tuple[frozenset[str], frozenset[str]]:
    """Returns `(abstract_vars, abstract_class_vars)` still unresolved on `cls`,
    walking the MRO from `object` down to `cls`."""
    abstract_vars: set[str] = set()
    abstract_class_vars: set[str] = set()
    for kls in reversed(cls.__mro__):
        for name, annotation in inspect.get_annotations(kls).items():
            is_abstract, is_class = annotation_kind(annotation)
            if is_abstract:
                if name in kls.__dict__:
                    raise abstract_with_value_error(kls.__qualname__, name, is_class)
                if is_class:
                    abstract_vars.discard(name)
                    abstract_class_vars.add(name)
                elif name not in abstract_class_vars:
                    abstract_vars.add(name)
            else:
                abstract_class_vars.discard(name)
                if not is_class:
                    abstract_vars.discard(name)
        for name in kls.__dict__:
            abstract_vars.discard(name)
            abstract_class_vars.discard(name)
    return frozenset(abstract_vars), frozenset(abstract_class_vars)


def without_abstract_annotations(annotations: dict[str, object]) -> dict[str, object]:
    """The annotations that become dataclass fields (abstract ones removed)."""
    return {k: v for k, v in annotations.items() if not annotation_kind(v)[0]}
