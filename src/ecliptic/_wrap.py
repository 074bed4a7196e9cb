"""The filtered transformations' shared kit.

Every filtered transformation (`filter_jit`, `filter_grad`, `filter_vmap`, ...) needs
the same few pieces; each is written once here:

- `MethodWrapper`: the base of the wrapper Modules, so that a transformed function
    written in a class body binds to the instance like a method.
- `Lowered` / `Compiled`: what `.lower(...)` / `.lower(...).compile()` return.
- `check_removed_kwargs`: the error for keyword arguments removed in Equinox 0.10.
- `hashable_static`: the check that static (non-array) leaves hash; its error
    (`unhashable_static_error`, from `_messages.py`) names the offending leaf by its
    key path.
- `fun_names`, `name_like`, `fun_repr`: how a user's callable is named, in traced
    functions (so jaxprs and HLO show the user's name) and in messages.
- `is_none`, `is_struct`, `static_equal`: small predicates used when splitting a
    transformation's inputs and outputs into traced and static parts.
- `hide_internal_frames` / `api_boundary` (from `_tracebacks.py`, re-exported): an
    error raised by the user's function under a transformation shows the user's
    frames, not ecliptic's.

A static (non-traced) value that must travel through JAX inside a PyTree's structure
is wrapped in `ecliptic._module.Static`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.tree_util as jtu
import numpy as np

from ._filters import combine, is_array, partition
from ._messages import removed_kwarg_error, unhashable_static_error
from ._module import Module, Partial
from ._tracebacks import (
    api_boundary as api_boundary,
    hide_internal_frames as hide_internal_frames,
)


PyTree = Any
_F = TypeVar("_F", bound=Callable[..., Any])


# -- predicates ---------------------------------------------------------------------


def is_none(x: Any) -> bool:
    """`x is None`, as an `is_leaf` function."""
    return x is None


def is_struct(x: Any) -> bool:
    """An array, or a `jax.ShapeDtypeStruct` standing in for one."""
    return is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def _leaf_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray | np.generic):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.all(a == b))
    if isinstance(a, jax.Array):
        return False  # never compare traced or device values by content here
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an `__eq__` that fails means "not equal"
        return False


def static_equal(a: PyTree, b: PyTree) -> bool:
    """Whether two trees of static (non-traced) objects are equal: same structure and
    equal leaves. Never returns a traced value, and never raises."""
    leaves_a, treedef_a = jtu.tree_flatten(a)
    leaves_b, treedef_b = jtu.tree_flatten(b)
    if treedef_a != treedef_b:
        return False
    return all(_leaf_equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True))


# -- methods ------------------------------------------------------------------------


class MethodWrapper(Module):
    """Base class of the Modules that transformations return.

    A transformed function assigned in a class body behaves like a method: reading it
    from an instance gives `Partial(wrapper, instance)`, so the instance is passed as
    the first argument (and, being a PyTree child of the `Partial`, is traced like
    any other argument). Reading it from the class gives the wrapper itself.

    Subclasses define their fields, `__call__` and a `__wrapped__` property.
    """

    def __get__(self, instance: Any, owner: Any) -> Any:
        del owner
        if instance is None:
            return self
        return Partial(self, instance)


# -- names --------------------------------------------------------------------------


def fun_names(fun: Any) -> tuple[str, str]:
    """`(__name__, __qualname__)` of a callable; a callable object without them is
    named after its type."""
    name = getattr(fun, "__name__", None)
    if not isinstance(name, str):
        name = type(fun).__name__
    qualname = getattr(fun, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = name
    return name, qualname


def name_like(inner: _F, fun: Any) -> _F:
    """Gives `inner` (a function traced on the user's behalf) the `__name__` and
    `__qualname__` of the user's `fun`, so that jaxprs and compiled programs show the
    user's name. Returns `inner`."""
    inner.__name__, inner.__qualname__ = fun_names(fun)
    return inner


def fun_repr(fun: Any) -> str:
    """How to show the user's callable in messages: its `__qualname__` (or
    `__name__`) in backticks, or `` `TypeName instance` `` for other objects."""
    name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None)
    if name is None:
        name = type(fun).__qualname__ + " instance"
    return f"`{name}`"


# -- removed keyword arguments ------------------------------------------------------

# Keyword arguments of `filter_jit`, `filter_vmap` and `filter_pmap` removed in
# Equinox 0.10 (the filter spec and the old ways of passing the function and its
# arguments).
REMOVED_FILTER_KWARGS: tuple[str, ...] = ("default", "fn", "args", "kwargs", "out")


def check_removed_kwargs(
    kwargs: Mapping[str, Any], removed: Sequence[str], where: str, instead: str
) -> None:
    """Raises `ValueError` if `kwargs` holds one of the `removed` keyword arguments.

    **Arguments:**

    - `kwargs`: the extra keyword arguments the transformation received.
    - `removed`: the names removed in Equinox 0.10.
    - `where`: the transformation's name as the message shows it, e.g.
        `"ecliptic.filter_vmap"`.
    - `instead`: one or two sentences saying what to do instead.
    """
    for name in removed:
        if name in kwargs:
            raise removed_kwarg_error(where, name, instead)


# -- hashable static leaves ---------------------------------------------------------


def constrain(x: PyTree, shardings: Any) -> PyTree:
    """`x` with its array leaves constrained to `shardings` inside a trace
    (`jax.lax.with_sharding_constraint`); other leaves pass through.

    **Arguments:**

    - `x`: any PyTree (a model, an output tuple, ...), traced.
    - `shardings`: a `jax.sharding.Sharding`, or a PyTree of them whose structure is
        a prefix of `x`; `None` leaves that part of `x` unconstrained.

    **Returns:** `x` with the constraints.
    """

    def one(sharding: Any, part: PyTree) -> PyTree:
        if sharding is None:
            return part
        return jax.lax.with_sharding_constraint(part, sharding)

    dynamic, static = partition(x, is_array)
    dynamic = jtu.tree_map(one, shardings, dynamic, is_leaf=is_none)
    return combine(dynamic, static)


def static_leaves(leaves: Sequence[Any]) -> tuple[Any, ...]:
    """The static part of a flat list of leaves: `None` in place of each array."""
    return tuple(None if is_array(x) else x for x in leaves)


def hashable_static(
    where: str, static: Any, trees: Mapping[str, PyTree], what: str = "arguments"
) -> Any:
    """Returns `static` (e.g. from `static_leaves`) after checking that it hashes;
    raises `unhashable_static_error(where, trees, what)` otherwise."""
    try:
        hash(static)
    except TypeError:
        raise unhashable_static_error(where, trees, what) from None
    return static


# -- ahead-of-time compilation ------------------------------------------------------

# `call(compiled, args, kwargs)`: runs a compiled JAX stage on a user's arguments.
CallCompiled = Callable[[Any, tuple, dict], Any]


class Compiled:
    """A transformed function compiled ahead of time for one kind of arguments: call
    it with arguments of the same structure, shapes, dtypes and static values.

    **Arguments:**

    - `compiled`: JAX's compiled stage (`jax.stages.Compiled`).
    - `call`: `call(compiled, args, kwargs)`, which turns the user's arguments into
        the compiled stage's inputs, runs it, and returns the user's output.
    """

    def __init__(self, compiled: Any, call: CallCompiled):
        self._compiled = compiled
        self._call = call

    def as_text(self) -> str:
        """The compiled program as text."""
        return self._compiled.as_text()

    @api_boundary
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._compiled, args, kwargs)


class Lowered:
    """What a transformed function's `.lower(*args, **kwargs)` returns.

    **Arguments:**

    - `lowered`: JAX's lowered stage (`jax.stages.Lowered`), also readable as
        `.lowered`.
    - `call`: as for [`Compiled`][], handed on by `.compile()`.
    """

    def __init__(self, lowered: Any, call: CallCompiled):
        self.lowered = lowered
        self._call = call

    def as_text(self) -> str:
        """The lowered program (StableHLO) as text."""
        return self.lowered.as_text()

    def compile(
        self, compiler_options: Mapping[str, str | bool | int | float] | None = None
    ) -> Compiled:
        """Compiles the lowered program.

        **Arguments:**

        - `compiler_options`: optional XLA compiler options, by name (e.g.
            `{"xla_embed_ir_in_executable": True}`), handed to XLA as JAX's
            `Lowered.compile(compiler_options=...)` does. An option XLA does not know
            makes XLA raise.

        **Returns:** a callable [`Compiled`][].
        """
        compiled = self.lowered.compile(compiler_options=compiler_options)
        return Compiled(compiled, self._call)
