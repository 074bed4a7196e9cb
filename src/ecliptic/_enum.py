"""`Enumeration`: JAX-compatible enumerations whose items can be traced."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import wadler_lindig as wl
from jaxtyping import Array, ArrayLike, Bool, Int

from ._errors import branched_error_if
from ._messages import (
    enumeration_compare_error,
    enumeration_index_error,
    enumeration_item_redefined,
    enumeration_message_type_error,
    enumeration_no_item_error,
    enumeration_promote_error,
    enumeration_reserved_name_error,
    enumeration_where_error,
    enumeration_where_pred_error,
)
from ._module import field, Module


def _lookup(enumeration: Any, value: Any) -> str:
    # The message(s) of an item's value: one message for a scalar; for a batched
    # value (from `vmap`), the NumPy array of messages as `str` prints it.
    if isinstance(value, jax.core.Tracer):
        return "traced"
    if not isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return "unknown"  # a leaf swapped out by a tree map (None, a struct, ...)
    value = np.asarray(value)
    if value.ndim == 0:
        return enumeration._messages[int(value)]
    messages = np.asarray(enumeration._messages, dtype=str)
    return str(messages[value])


class EnumerationItem(Module):
    """One item of an [`ecliptic.Enumeration`][]: an `int32` scalar array (possibly
    traced, or batched by `vmap`) and the enumeration class it belongs to (static).

    Operations on items whose values are concrete (not traced) run at trace time,
    even inside `jit`, so their results are concrete too.
    """

    _value: Int[Array | np.ndarray, "*batch"]
    _enumeration: Any = field(static=True)

    def __eq__(self, other: object) -> Bool[Array, ""]:  # pyright: ignore[reportIncompatibleMethodOverride]
        if (
            not isinstance(other, EnumerationItem)
            or other._enumeration is not self._enumeration
        ):
            got = (
                other._enumeration.__qualname__
                if isinstance(other, EnumerationItem)
                else type(other).__name__
            )
            raise enumeration_compare_error(self._enumeration.__qualname__, got)
        with jax.ensure_compile_time_eval():
            return jnp.asarray(self._value == other._value)

    def __ne__(self, other: object) -> Bool[Array, ""]:  # pyright: ignore[reportIncompatibleMethodOverride]
        equal = self.__eq__(other)
        with jax.ensure_compile_time_eval():
            return jnp.invert(equal)

    def __hash__(self) -> int:
        return hash((self._enumeration, int(self._value)))

    def __repr__(self) -> str:
        cls = self._enumeration
        return f"{cls.__module__}.{cls.__qualname__}<{_lookup(cls, self._value)}>"

    def __pdoc__(self, **kwargs: Any) -> wl.AbstractDoc:
        # Inside a Module (or any tree) the item prints as its repr, not its fields.
        del kwargs
        return wl.TextDoc(repr(self))

    def is_traced(self) -> bool:
        """Whether the item's value is a tracer (unknown until run time)."""
        return isinstance(self._value, jax.core.Tracer)

    def error_if(self, token: Any, pred: Bool[ArrayLike, ...]) -> Any:
        """Raises a runtime error with this item's message where `pred` is true.

        **Arguments:**

        - `token`: a PyTree with at least one array; returned unchanged (use the
            returned value so the check is not removed as dead code).
        - `pred`: boolean scalar or array.

        **Returns:** `token`.
        """
        return branched_error_if(token, pred, self._value, self._enumeration._messages)


def _collect_items(
    cls_name: str, bases: tuple[type, ...], members: dict[str, str]
) -> tuple[list[str], list[str]]:
    # Item names and messages of a new enumeration, numbered in order: each base's
    # items (bases left to right), then its own. A name seen again keeps its number
    # and takes the later message, with a warning if that message differs.
    names: list[str] = []
    messages: list[str] = []
    index: dict[str, int] = {}
    inherited = [
        zip(getattr(base, "_names", ()), getattr(base, "_messages", ()))
        for base in bases
    ]
    for pairs in [*inherited, members.items()]:
        for item_name, message in pairs:
            if item_name not in index:
                index[item_name] = len(names)
                names.append(item_name)
                messages.append(message)
                continue
            old = messages[index[item_name]]
            if message != old:
                text = enumeration_item_redefined(cls_name, item_name, old, message)
                warnings.warn(text, UserWarning, stacklevel=3)
            messages[index[item_name]] = message
    return names, messages


class _EnumerationMeta(type):
    # Set on every enumeration class by `__new__` (annotations only: no defaults).
    _names: tuple[str, ...]
    _messages: tuple[str, ...]
    _items: dict[str, EnumerationItem]
    _promote_tables: dict[type, np.ndarray]

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]):
        members = {}
        for key, value in namespace.items():
            if key.startswith("__") and key.endswith("__"):
                continue
            if key in ("promote", "where"):
                if isinstance(value, str):
                    raise enumeration_reserved_name_error(name, key)
                continue
            if not isinstance(value, str):
                raise enumeration_message_type_error(name, key, value)
            members[key] = value
        for key in members:
            del namespace[key]
        names, messages = _collect_items(name, bases, members)
        cls = super().__new__(mcs, name, bases, namespace)
        cls._names = tuple(names)
        cls._messages = tuple(messages)
        # NumPy values, so defining an enumeration creates no device arrays.
        cls._items = {
            n: EnumerationItem(np.array(i, dtype=np.int32), cls)
            for i, n in enumerate(names)
        }
        cls._promote_tables = {}
        for base in cls.__mro__[1:]:
            base_names = getattr(base, "_names", None)
            if base_names:
                table = np.array([names.index(n) for n in base_names], np.int32)
                cls._promote_tables[base] = table
        return cls

    def __getattr__(cls, name: str) -> EnumerationItem:
        items = cls.__dict__.get("_items", {})
        try:
            return items[name]
        except KeyError:
            raise enumeration_no_item_error(cls.__qualname__, name, items) from None

    def __getitem__(cls, item: EnumerationItem) -> str:
        if not isinstance(item, EnumerationItem) or item._enumeration is not cls:
            raise enumeration_index_error(cls.__qualname__, cls._names, item)
        return _lookup(cls, item._value)

    def __len__(cls) -> int:
        return len(cls._names)

    def __iter__(cls):
        return iter(cls._items.values())

    def __instancecheck__(cls, instance: Any) -> bool:
        # Exactly this enumeration's items, as `cls[item]` accepts (an item of a
        # subclass must be looked up in that subclass), as in Equinox.
        return isinstance(instance, EnumerationItem) and instance._enumeration is cls


class Enumeration(metaclass=_EnumerationMeta):
    """Base class of JAX-compatible enumerations.

    ```python
    class Status(ecliptic.Enumeration):
        ok = "all went well"
        diverged = "the solver diverged"

    status = Status.where(residual > 1e3, Status.diverged, Status.ok)
    status == Status.ok  # a boolean array; works under jit
    Status[Status.diverged]  # "the solver diverged"
    ```

    Items are Modules holding an `int32` value, so they can be returned from or
    passed into `jit`. `==`, `!=`, `where` and `promote` on concrete items run at
    trace time (even inside `jit`), so `if status == Status.ok:` works there.
    `Status[item]` is `"traced"` for a traced item, and for a batched item (out of
    `vmap`) the array of its messages, as a string.

    A subclass inherits its parent's items (with the same values) and may add more;
    redefining an inherited item with another message warns (`UserWarning`).
    [`promote`][ecliptic.Enumeration.promote] converts a parent's item into the
    subclass.
    """

    @classmethod
    def where(
        cls, pred: Bool[ArrayLike, ""], a: EnumerationItem, b: EnumerationItem
    ) -> EnumerationItem:
        """`a` where `pred` is true, else `b` (both items of this enumeration).

        **Arguments:**

        - `pred`: a boolean scalar (may be traced).
        - `a`, `b`: items of this enumeration.

        **Returns:** an item of this enumeration: `a` itself when `a` and `b` are the
        same item (nothing is staged), otherwise concrete when all of `pred`, `a` and
        `b` are.
        """
        for item in (a, b):
            if not isinstance(item, EnumerationItem) or item._enumeration is not cls:
                raise enumeration_where_error(cls.__qualname__, item)
        p = pred if isinstance(pred, (jax.Array, np.ndarray)) else np.asarray(pred)
        if p.shape != () or p.dtype != np.bool_:
            raise enumeration_where_pred_error(cls.__qualname__, p.shape, p.dtype)
        if a._value is b._value:
            return a  # nothing to select: no operation is staged
        with jax.ensure_compile_time_eval():
            value = jnp.where(pred, a._value, b._value)
        return EnumerationItem(value, cls)

    @classmethod
    def promote(cls, item: EnumerationItem) -> EnumerationItem:
        """Converts an item of a parent enumeration into the same item of `cls`.

        **Arguments:**

        - `item`: an item of a strict parent class of `cls`.

        **Returns:** an item of `cls`.
        """
        table = None
        if isinstance(item, EnumerationItem):
            table = cls._promote_tables.get(item._enumeration)
        if table is None:
            raise enumeration_promote_error(cls.__qualname__, item)
        with jax.ensure_compile_time_eval():
            value = jnp.asarray(table)[item._value]
        return EnumerationItem(value, cls)
