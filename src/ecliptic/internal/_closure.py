"""`closure_to_pytree`: functions whose closed-over values are PyTree leaves.

A local function is an opaque leaf to JAX, so under `filter_jit` it is static: a new
closure (say, an optimiser built with a new learning rate) means a recompile. Here
every function in a PyTree becomes a Module whose children are the contents of its
closure cells; calling it rebuilds the function with those contents. Two such
functions made from the same source compare equal, so only the closed-over values
decide whether to retrace.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import jax.tree_util as jtu
from jaxtyping import PyTree

from .._module import field, Module


def _cell(value: Any) -> Any:
    return (lambda: value).__closure__[0]  # pyright: ignore[reportOptionalSubscript]


def _rebuild(fn: types.FunctionType, cells: tuple | None) -> types.FunctionType:
    """A copy of `fn` with the closure `cells`."""
    new = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells
    )
    new.__module__ = fn.__module__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__annotations__.update(fn.__annotations__)
    if fn.__kwdefaults__ is not None:
        new.__kwdefaults__ = dict(fn.__kwdefaults__)
    return new


class _SameSource:
    """Not a PyTree: a function that compares equal to any function with the same
    name, module and source (or, when the source cannot be read, e.g. in a REPL, to
    itself only)."""

    __slots__ = ("fn",)

    def __init__(self, fn: types.FunctionType):
        self.fn = fn

    def _identity(self) -> Any:
        try:
            source = inspect.getsource(self.fn)
        except (OSError, TypeError):
            return self.fn
        return self.fn.__qualname__, self.fn.__module__, source

    def __hash__(self) -> int:
        return hash(self._identity())

    def __eq__(self, other: object) -> bool:
        return type(other) is _SameSource and self._identity() == other._identity()


class _Closure(Module):
    fn: _SameSource = field(static=True)
    contents: tuple[Any, ...] | None

    def __init__(self, fn: types.FunctionType, seen: frozenset = frozenset()):
        self.fn = _SameSource(fn)
        if fn.__closure__ is None:
            self.contents = None
        else:
            seen = seen | {id(fn)}
            self.contents = tuple(
                _convert_tree(c.cell_contents, seen) for c in fn.__closure__
            )

    @property
    def __wrapped__(self) -> types.FunctionType:
        return self.fn.fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cells = None if self.contents is None else tuple(map(_cell, self.contents))
        return _rebuild(self.fn.fn, cells)(*args, **kwargs)


def _convert_tree(tree: PyTree, seen: frozenset) -> PyTree:
    # A function that closes over itself (local recursion) stays a plain function
    # inside its own closure, rather than being converted forever.
    def convert(leaf: Any) -> Any:
        if isinstance(leaf, types.FunctionType) and id(leaf) not in seen:
            return _Closure(leaf, seen)
        return leaf

    return jtu.tree_map(convert, tree)


def closure_to_pytree(tree: PyTree) -> PyTree:
    """Replaces every function in `tree` by a callable PyTree whose leaves are the
    values in the function's closure (recursively).

    Only closures count: names a function reads from module globals stay outside
    the PyTree, so this is meant for local functions (for instance those that Optax
    builds).

    **Arguments:**

    - `tree`: any PyTree.

    **Returns:** a copy of `tree` in which each function is replaced by an object that
    is called like it and whose PyTree children are its closed-over values.
    """
    return _convert_tree(tree, frozenset())
