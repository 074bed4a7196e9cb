"""Tracebacks that show the user's code: an error raised by the user's function under
a filtered transformation (or through a `Partial` or a bound method) leaves with
ecliptic's own frames removed.

A ground-floor room: it imports only the standard library and JAX, so every floor
(the Module system included) can hide its frames. `_wrap.py` re-exports both names
for the transformations.
"""

from __future__ import annotations

import functools as ft
import os
import types
from collections.abc import Callable
from typing import Any, TypeVar

import jax


__all__ = ["api_boundary", "hide_internal_frames", "mark_wholly_ours"]

_F = TypeVar("_F", bound=Callable[..., Any])
_E = TypeVar("_E", bound=BaseException)

# Every frame whose code lies under this directory is ecliptic's own. (This file is in
# the package root.)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# An attribute set (by `mark_wholly_ours`) on an exception that ecliptic builds to
# report the user's error, e.g. a failed `error_if` check: when every frame is
# ecliptic's, none is kept.
_WHOLLY_OURS = "_ecliptic_wholly_ours"


def mark_wholly_ours(e: _E) -> _E:
    """Marks `e`, an exception that ecliptic built to report the user's error (its
    message says where the error is), so that `hide_internal_frames` drops every
    ecliptic frame of its traceback instead of keeping the innermost one.

    **Arguments:**

    - `e`: the exception, before it is raised.

    **Returns:** `e`.
    """
    setattr(e, _WHOLLY_OURS, True)
    return e


def hide_internal_frames(e: BaseException) -> None:
    """Removes ecliptic's own frames from `e.__traceback__`, so that an error raised
    by the user's function under a transformation shows the user's code: the call
    site, the user's function and what it calls.

    Call it at the outermost frame of a user-facing call path, on the error path
    only, then re-raise with a bare `raise` (which does not add the current frame
    back). A `try` costs nothing until something is raised:

    ```python
    def __call__(self, *args):
        try:
            ...  # the whole body
        except Exception as e:
            hide_internal_frames(e)
            raise
    ```

    Does nothing when JAX's traceback filtering is off
    (`JAX_TRACEBACK_FILTERING=off`, or
    `jax.config.update("jax_traceback_filtering", "off")`). If every frame is
    ecliptic's, the innermost one (where the error was raised) is kept, so the
    traceback is never empty, unless `e` was marked by `mark_wholly_ours`.

    **Arguments:**

    - `e`: the exception being handled; its traceback is replaced in place.
    """
    if getattr(jax.config, "jax_traceback_filtering", None) == "off":
        return
    kept: list[types.TracebackType] = []
    total = 0
    tb = last = e.__traceback__
    while tb is not None:
        total += 1
        last = tb
        if not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            kept.append(tb)
        tb = tb.tb_next
    if len(kept) == total:
        return  # nothing of ours (or no traceback at all)
    if not kept and last is not None:
        if getattr(e, _WHOLLY_OURS, False):
            e.with_traceback(None)  # the message says where; the caller's frame follows
            return
        kept = [last]
    new = None
    for tb in reversed(kept):
        new = types.TracebackType(new, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    e.with_traceback(new)


def api_boundary(fn: _F) -> _F:
    """Decorates a transformation's user-facing call (a wrapper's `__call__`, or a
    function such as `filter_jvp`) so that errors passing through it leave with
    ecliptic's frames hidden (see `hide_internal_frames`).

    Costs one Python call per call; a hot path (`filter_jit`'s dispatch, `Partial`,
    a bound method) inlines the `try`/`except` of `hide_internal_frames` instead.

    **Arguments:**

    - `fn`: the function or method.

    **Returns:** a function with the same signature, name and docstring.
    """

    @ft.wraps(fn)
    def boundary(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            hide_internal_frames(e)
            raise

    return boundary  # pyright: ignore[reportReturnType]
