"""`Enumeration`: JAX-compatible enumerations whose items can be traced."""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Int

from ._errors import branched_error_if
from ._module import field, Module


class EnumerationItem(Module):
    """One item of an [`ecliptic.Enumeration`][]: an `int32` scalar array (possibly
    traced) and the enumeration class it belongs to (static)."""

    _value: Int[Array, ""]
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
            raise ValueError(
                "Can only compare equality between enumerations of the same type: "
                f"an item of {self._enumeration.__qualname__} was compared with {got}. "
                f"Use `{self._enumeration.__qualname__}.promote(item)` to convert an "
                "item of a parent enumeration first."
            )
        return self._value == other._value

    def __ne__(self, other: object) -> Bool[Array, ""]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return jnp.invert(self.__eq__(other))

    def __hash__(self) -> int:
        return hash((self._enumeration, int(self._value)))

    def __repr__(self) -> str:
        cls = self._enumeration
        name = f"{cls.__module__}.{cls.__qualname__}"
        if self.is_traced():
            return f"{name}<traced>"
        return f"{name}<{cls._messages[int(self._value)]}>"

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


class _EnumerationMeta(type):
    # Set on every enumeration class by `__new__` (annotations only: no defaults).
    _names: tuple[str, ...]
    _messages: tuple[str, ...]
    _items: dict[str, EnumerationItem]
    _promote_tables: dict[type, np.ndarray]

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]):
        messages: list[str] = []
        names: list[str] = []
        for base in reversed(bases):
            for item_name, message in zip(
                getattr(base, "_names", ()), getattr(base, "_messages", ())
            ):
                if item_name not in names:
                    names.append(item_name)
                    messages.append(message)
        members = {}
        for key, value in namespace.items():
            if key.startswith("__") and key.endswith("__"):
                continue
            if key in ("promote", "where"):
                continue
            if not isinstance(value, str):
                raise TypeError(
                    f"Enumeration {name}.{key} must be a message string, as in "
                    f'`{key} = "what went wrong"`; got {type(value).__name__} '
                    f"{value!r}."
                )
            members[key] = value
        for key, value in members.items():
            if key in names:
                messages[names.index(key)] = value
            else:
                names.append(key)
                messages.append(value)
            del namespace[key]
        cls = super().__new__(mcs, name, bases, namespace)
        cls._names = tuple(names)
        cls._messages = tuple(messages)
        cls._items = {
            n: EnumerationItem(jnp.asarray(i, dtype=jnp.int32), cls)
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
            raise AttributeError(
                f"Enumeration {cls.__qualname__} has no item {name!r}; its items are "
                f"{list(items)}."
            ) from None

    def __getitem__(cls, item: EnumerationItem) -> str:
        if not isinstance(item, EnumerationItem) or item._enumeration is not cls:
            name = cls.__qualname__
            example = cls._names[0] if cls._names else "x"
            raise ValueError(
                f"{name}[...] takes an item of {name}, as in `{name}[{name}.{example}]`"
                f"; got {item!r}."
            )
        if item.is_traced():
            raise ValueError(
                f"{cls.__qualname__}[item] needs a concrete item to look up its "
                "message, but the item is traced (inside jit/vmap/grad). Look it up "
                "outside the transformation, or use `item.error_if(token, pred)`."
            )
        return cls._messages[int(item._value)]

    def __len__(cls) -> int:
        return len(cls._names)

    def __iter__(cls):
        return iter(cls._items.values())

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, EnumerationItem) and issubclass(
            instance._enumeration, cls
        )


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
    passed into `jit`. A subclass inherits its parent's items (with the same
    values) and may add more; [`promote`][ecliptic.Enumeration.promote] converts a
    parent's item into the subclass.
    """

    @classmethod
    def where(
        cls, pred: Bool[ArrayLike, ""], a: EnumerationItem, b: EnumerationItem
    ) -> EnumerationItem:
        """`a` where `pred` is true, else `b` (both items of this enumeration).

        **Arguments:**

        - `pred`: a boolean scalar (may be traced).
        - `a`, `b`: items of this enumeration.

        **Returns:** an item of this enumeration.
        """
        for item in (a, b):
            if not isinstance(item, EnumerationItem) or item._enumeration is not cls:
                raise ValueError(
                    f"{cls.__qualname__}.where(pred, a, b) needs `a` and `b` to be "
                    f"items of {cls.__qualname__}; got {item!r}."
                )
        return EnumerationItem(jnp.where(pred, a._value, b._value), cls)

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
            raise ValueError(
                f"{cls.__qualname__}.promote(item) converts items of a parent "
                f"enumeration of {cls.__qualname__}; got {item!r}."
            )
        return EnumerationItem(jnp.asarray(table)[item._value], cls)
