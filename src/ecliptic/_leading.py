"""`vmap_leading`: a single-example function mapped over several leading axes at once.

Layers act on one example. An input of shape `(batch, tokens, features)` needs one
`jax.vmap` per extra leading axis; `vmap_leading(layer, 2)(x)` writes them for you,
with the number of axes given or inferred from the shape of one example.
"""

from __future__ import annotations

import functools as ft
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax.tree_util as jtu

from ._filters import is_array
from ._messages import (
    leading_axes_count_error,
    leading_axes_example_error,
    leading_axes_no_array_error,
    leading_axes_spec_error,
)
from ._vmap_pmap import filter_vmap


def vmap_leading(
    fn: Callable,
    n: int | None = None,
    *,
    example_shape: Sequence[int | None] | None = None,
) -> Callable:
    """Maps a function written for one example over `n` leading axes of its inputs:
    `vmap_leading(layer, 2)(x)` is `jax.vmap(jax.vmap(layer))(x)`.

    Every array in the positional arguments is mapped over its leading axes (so all of
    them carry the same batch axes, e.g. `query`, `key` and `value` of an attention
    layer); everything else in them (Python numbers, functions) is passed unchanged to
    every example. Keyword arguments are not mapped: each example gets the same value.
    So a PRNG key given as `key=` is shared by the whole batch; to give each example
    its own, pass split keys positionally through your own `jax.vmap`.

    **Arguments:**

    - `fn`: a callable that takes one example, e.g. a layer of `ecliptic.nn` or a
        whole model.
    - `n`: how many leading axes to map over (0 returns `fn`'s result unmapped).
    - `example_shape`: instead of `n`, the shape of one example of the first array
        argument, with `None` for an axis of any size; `n` is then that array's number
        of axes minus `len(example_shape)`, worked out at each call. For a
        `Linear(64, 16)`, `example_shape=(64,)` maps over whatever leading axes come.

    Give exactly one of `n` and `example_shape`.

    **Returns:** a function of `fn`'s arguments (its signature reads `(*args,
    **kwargs)`, since positional and keyword arguments are treated differently) whose
    array arguments carry `n` extra leading axes, and whose array outputs do too.

    **Raises:** `ValueError` for a bad `n`/`example_shape`; `ecliptic.ShapeError`
    when the first array's trailing axes do not match `example_shape`, or it has fewer
    than `n` axes.
    """
    if (n is None) == (example_shape is None):
        raise leading_axes_spec_error(n, example_shape)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        raise leading_axes_spec_error(n, example_shape)
    example = None if example_shape is None else tuple(example_shape)

    @ft.wraps(fn)
    def mapped(*args: Any, **kwargs: Any) -> Any:
        first = _first_array(args)
        count = n if n is not None else _count_from_example(first, example or ())
        if count and first is None:
            raise leading_axes_no_array_error(n, example)
        if count and first.ndim < count:
            raise leading_axes_count_error(count, first.shape)
        call: Callable = ft.partial(_call, fn, kwargs)
        for _ in range(count):
            call = filter_vmap(call)
        return call(*args)

    # Positional and keyword arguments are treated differently, so callers must not
    # canonicalise one into the other by `fn`'s signature (as `filter_jit` does, found
    # through `__wrapped__`): the signature stops here.
    mapped.__signature__ = _ANY_ARGUMENTS  # pyright: ignore[reportAttributeAccessIssue]
    return mapped


_ANY_ARGUMENTS = inspect.Signature(
    [
        inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
)


def _call(fn: Callable, kwargs: dict, *args: Any) -> Any:
    return fn(*args, **kwargs)


def _first_array(args: tuple) -> Any:
    for leaf in jtu.tree_leaves(args):
        if is_array(leaf):
            return leaf
    return None


def _count_from_example(first: Any, example: tuple[int | None, ...]) -> int:
    if first is None:
        raise leading_axes_no_array_error(None, example)
    shape = tuple(first.shape)
    k = len(shape) - len(example)
    trailing = shape[max(k, 0) :]
    fits = k >= 0 and all(e is None or e == s for e, s in zip(example, trailing))
    if not fits:
        raise leading_axes_example_error(shape, example)
    return k
