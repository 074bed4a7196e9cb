"""`tree_pformat` / `tree_pprint`: PyTrees printed with arrays abbreviated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.tree_util as jtu
import wadler_lindig as wl


def _never(_: Any) -> bool:
    return False


class _PartialDoc:
    """Stand-in that prints a `jax.tree_util.Partial` like a dataclass."""

    def __init__(self, partial: jtu.Partial):
        self.partial = partial

    def __pdoc__(self, **kwargs: Any) -> wl.AbstractDoc:
        p = self.partial
        fields = [("func", p.func), ("args", p.args), ("keywords", p.keywords)]
        return wl.bracketed(
            begin=wl.TextDoc("Partial("),
            docs=wl.named_objs(fields, **kwargs),
            sep=wl.comma,
            end=wl.TextDoc(")"),
            indent=kwargs["indent"],
        )


def make_custom(
    truncate_leaf: Callable[[Any], bool], short_arrays: bool, struct_as_array: bool
) -> Callable[[Any], wl.AbstractDoc | None]:
    """The `custom` hook of `wadler_lindig.pformat` that prints PyTrees as
    `tree_pformat` does (also behind `ecliptic.internal.TreeWLCustom`).

    **Arguments:** as for `tree_pformat`.

    **Returns:** `custom(obj)`, a document for `obj`, or `None` for the default.
    """

    def custom(obj: Any) -> wl.AbstractDoc | None:
        if truncate_leaf(obj):
            return wl.TextDoc(f"{type(obj).__name__}(...)")
        if short_arrays and (
            isinstance(obj, jax.Array)
            or (struct_as_array and isinstance(obj, jax.ShapeDtypeStruct))
        ):
            dtype = obj.dtype.name
            if getattr(obj, "weak_type", False):
                dtype = f"weak_{dtype}"
            return wl.array_summary(obj.shape, dtype, kind=None)
        if isinstance(obj, (jax.custom_jvp, jax.custom_vjp)):
            return wl.pdoc(obj.__wrapped__)
        if isinstance(obj, jtu.Partial):
            return wl.pdoc(_PartialDoc(obj))
        return None

    return custom


def tree_pformat(
    pytree: Any,
    *,
    width: int = 80,
    indent: int = 2,
    short_arrays: bool = True,
    struct_as_array: bool = False,
    truncate_leaf: Callable[[Any], bool] = _never,
) -> str:
    """Formats a PyTree as a string, abbreviating arrays to `f32[3,4]`.

    This is `repr` of every [`ecliptic.Module`][]. Objects may customise their
    output with a `__pdoc__` method (see `wadler_lindig`).

    **Arguments:**

    - `pytree`: any PyTree (or any Python object).
    - `width`: the line width to fit within.
    - `indent`: spaces per nesting level.
    - `short_arrays`: abbreviate JAX and NumPy arrays to dtype and shape.
    - `struct_as_array`: also abbreviate `jax.ShapeDtypeStruct`s.
    - `truncate_leaf`: `truncate_leaf(node) -> bool`; nodes for which it is true are
        printed as `ClassName(...)`.

    **Returns:** the formatted string.
    """
    return wl.pformat(
        pytree,
        width=width,
        indent=indent,
        short_arrays=short_arrays,
        custom=make_custom(truncate_leaf, short_arrays, struct_as_array),
    )


def tree_pprint(
    pytree: Any,
    *,
    width: int = 80,
    indent: int = 2,
    short_arrays: bool = True,
    struct_as_array: bool = False,
    truncate_leaf: Callable[[Any], bool] = _never,
) -> None:
    """Prints [`ecliptic.tree_pformat`][]`(pytree, ...)`; same arguments.

    **Returns:** `None`.
    """
    print(
        tree_pformat(
            pytree,
            width=width,
            indent=indent,
            short_arrays=short_arrays,
            struct_as_array=struct_as_array,
            truncate_leaf=truncate_leaf,
        )
    )
