"""`ω`: arithmetic on whole PyTrees, leaf by leaf.

`ω(tree)` wraps a PyTree; operators apply to every leaf (`jax.tree_util.tree_map`),
and `.ω` unwraps the result:

```python
(ω(x) + ω(y) * 2).ω   # == tree_map(lambda a, b: a + b * 2, x, y)
(x**ω - y**ω).ω       # the same wrapping, with fewer brackets
```

The other operand of a binary operator is another `ω` (same structure and the same
`is_leaf`) or a scalar / array, applied to every leaf. Also available:
`ω(x)[index]`, `ω(x).call(fn)` and `ω(x).at[index].set(v)` (and `.add`,
`.multiply`, `.divide`, `.power`, `.min`, `.max`), as on JAX arrays.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TYPE_CHECKING

import jax
import jax.tree_util as jtu
import numpy as np

from .. import _messages


_SCALARS = (bool, int, float, complex, jax.Array, np.ndarray, np.generic)


class _ωMeta(type):
    def __rpow__(cls, value: Any) -> Any:
        # `tree**ω` is `ω(tree)`.
        return cls(value)


class _ω(metaclass=_ωMeta):
    """Wraps a PyTree for leaf-by-leaf arithmetic; `.ω` gives the PyTree back.

    **Arguments:**

    - `value`: the PyTree.
    - `is_leaf`: optional, as for `jax.tree_util.tree_map` (not available with the
        `tree**ω` spelling).
    """

    def __init__(self, value: Any, is_leaf: Callable[[Any], bool] | None = None):
        self.ω = value
        self.is_leaf = is_leaf

    def __repr__(self) -> str:
        return f"ω({self.ω!r})"

    def _map(self, fn: Callable, *others: Any) -> _ω:
        return _ω(jtu.tree_map(fn, self.ω, *others, is_leaf=self.is_leaf), self.is_leaf)

    def __getitem__(self, item: Any) -> _ω:
        return self._map(lambda x: x[item])

    def call(self, fn: Callable[[Any], Any]) -> _ω:
        """`fn` applied to every leaf.

        **Arguments:**

        - `fn`: a function of one leaf.

        **Returns:** a new `ω`.
        """
        return self._map(fn)

    @property
    def at(self) -> _ωAt:
        """Out-of-place indexed updates of every leaf, as `jax.Array.at`."""
        return _ωAt(self.ω, self.is_leaf)


if TYPE_CHECKING:
    ω: Any = ...
else:
    ω = _ω
    _ω.__name__ = _ω.__qualname__ = "ω"


def _same_code(f: Callable | None, g: Callable | None) -> bool:
    """Whether two `is_leaf`s have the same code (a cheap check that catches the
    common mistake of giving `is_leaf` to one side only)."""
    missing = object()
    code_f = getattr(getattr(f, "__code__", missing), "co_code", missing)
    code_g = getattr(getattr(g, "__code__", missing), "co_code", missing)
    return type(code_f) is type(code_g) and code_f == code_g


def _binary(left: Any, is_leaf: Any, other: Any, op: Callable) -> _ω:
    """`op(leaf, other_leaf)` over the tree `left` (an `ω`'s value)."""
    if isinstance(other, _ω):
        if jtu.tree_structure(left, is_leaf=is_leaf) != jtu.tree_structure(
            other.ω, is_leaf=is_leaf
        ):
            raise _messages.omega_structure_error()
        if not _same_code(is_leaf, other.is_leaf):
            raise _messages.omega_is_leaf_error()
        return _ω(jtu.tree_map(op, left, other.ω, is_leaf=is_leaf), is_leaf)
    if isinstance(other, _SCALARS):
        return _ω(jtu.tree_map(lambda x: op(x, other), left, is_leaf=is_leaf), is_leaf)
    raise _messages.omega_other_error(other)


def _flip(op: Callable) -> Callable:
    def flipped(x: Any, y: Any) -> Any:
        return op(y, x)

    return flipped


_BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "matmul": operator.matmul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "and": operator.and_,
    "xor": operator.xor,
    "or": operator.or_,
}
_COMPARISONS = {
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
}
_UNARY = {
    "neg": operator.neg,
    "pos": operator.pos,
    "abs": operator.abs,
    "invert": operator.invert,
}


def _install(name: str, method: Callable) -> None:
    # Installed after the class is made (not in its body), so that defining `__eq__`
    # does not remove `__hash__`.
    method.__name__ = name
    method.__qualname__ = f"ω.{name}"
    setattr(_ω, name, method)


def _binary_method(op: Callable) -> Callable:
    def method(self: _ω, other: Any) -> _ω:
        return _binary(self.ω, self.is_leaf, other, op)

    return method


def _unary_method(op: Callable) -> Callable:
    def method(self: _ω) -> _ω:
        return self._map(op)

    return method


for _name, _op in _BINARY.items():
    _install(f"__{_name}__", _binary_method(_op))
    _install(f"__r{_name}__", _binary_method(_flip(_op)))
for _name, _op in _COMPARISONS.items():
    _install(f"__{_name}__", _binary_method(_op))
for _name, _op in _UNARY.items():
    _install(f"__{_name}__", _unary_method(_op))


class _ωAt:
    """`ω(x).at`: index it to get the updater."""

    def __init__(self, value: Any, is_leaf: Any):
        self.value = value
        self.is_leaf = is_leaf

    def __getitem__(self, item: Any) -> _ωUpdate:
        return _ωUpdate(self.value, item, self.is_leaf)


class _ωUpdate:
    """`ω(x).at[item]`: `.set(v)`, `.add(v)`, ... update every leaf at `item`, where
    `v` is an `ω` of the same structure or a scalar / array."""

    def __init__(self, value: Any, item: Any, is_leaf: Any):
        self.value = value
        self.item = item
        self.is_leaf = is_leaf


def _update_method(kind: str) -> Callable:
    def method(self: _ωUpdate, other: Any, **kwargs: Any) -> _ω:
        item = self.item

        def update(x: Any, y: Any) -> Any:
            return getattr(x.at[item], kind)(y, **kwargs)

        return _binary(self.value, self.is_leaf, other, update)

    method.__name__ = kind
    method.__qualname__ = f"ω.at.{kind}"
    return method


for _kind in ("set", "add", "multiply", "divide", "power", "min", "max"):
    setattr(_ωUpdate, _kind, _update_method(_kind))
