"""The namespace of a generated function (guards in `_guard.py`, output builders in
`_output.py`): its global constants and its fresh variable names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Namespace:
    """Names for the constants and variables of one generated source.

    **Arguments:**

    - `values`: globals the source uses by name (functions it calls).
    """

    def __init__(self, values: dict[str, Any]):
        self.values = dict(values)
        self._names: dict[int, str] = {}
        self._count = 0

    def const(self, value: Any) -> str:
        """The global name that holds `value`: one name per distinct object (types
        and static values recur at every node of a class)."""
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"k{len(self.values)}"
            self.values[name] = value
        return name

    def var(self, prefix: str = "v") -> str:
        """A fresh local variable name."""
        self._count += 1
        return f"{prefix}{self._count}"

    def define(
        self, src: str, filename: str, name: str, extra: dict | None = None
    ) -> Callable:
        """Compiles `src` with these globals (and `extra`, which the source uses by
        name); returns its function `name`."""
        return self.namespace(src, filename, extra)[name]

    def namespace(self, src: str, filename: str, extra: dict | None = None) -> dict:
        """Runs `src` with these globals and `extra`; returns the namespace (what
        the source defined, by name)."""
        namespace = dict(self.values)
        if extra:
            namespace.update(extra)
        exec(compile(src, filename, "exec"), namespace)
        return namespace
