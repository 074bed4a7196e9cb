"""Runtime checks that work under JIT: `error_if` and `branched_error_if`.

How a failed check reaches the user:

1. `branched_error_if` puts a `lax.cond` on the (batch-reduced, see `_unvmap.py`)
   predicate into the program; its true branch is a `jax.pure_callback` that raises
   `EquinoxRuntimeError(msg)` on the host. If the returned value is unused the whole
   check is dead code and XLA removes it.
2. JAX turns the callback's exception into a `JaxRuntimeError` (or a `ValueError` on
   CPU) whose text contains `ecliptic.EquinoxRuntimeError: <msg>`. That happens at
   dispatch on CPU (programs with host callbacks run synchronously there) and at the
   latest when the result is used or blocked on elsewhere.
3. Where `filter_jit` sees that exception it re-raises a clean `EquinoxRuntimeError`
   carrying the user's message and the user's frames where the check was made,
   captured when it was traced (see `_runtime_error.py`).

A predicate that is a Python bool is resolved at once: `x` is returned, or (if `True`)
`EquinoxTracetimeError` is raised; only a check deferred to run time needs an array
in `x` to carry it.

The mode is chosen by `on_error=` or, by default, by the environment variable
`ECLIPTIC_ON_ERROR` (or `EQX_ON_ERROR`), read once at import: `raise` (default),
`nan`, `breakpoint` or `off`.
"""

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Literal

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import jaxlib
import numpy as np
from jaxtyping import ArrayLike, Bool, Int, PyTree

from ._checks import EquinoxTracetimeError
from ._dispatch import filter_jit
from ._filters import is_array
from ._messages import (
    breakpoint_mode_message,
    check_site,
    error_if_message_type_error,
    error_if_nan_at_trace_message,
    error_if_no_array_error,
    on_error_env_error,
    on_error_value_error,
)
from ._runtime_error import raise_failed_check, Stack
from ._unvmap import unvmap_any, unvmap_max


OnError = Literal["default", "raise", "breakpoint", "nan", "off"]
_MODES = ("raise", "breakpoint", "nan", "off")


def _read_mode() -> str:
    for var in ("ECLIPTIC_ON_ERROR", "EQX_ON_ERROR"):
        value = os.environ.get(var)
        if value is not None:
            if value not in _MODES:
                raise on_error_env_error(var, value)
            return value
    return "raise"


ON_ERROR: str = _read_mode()
BREAKPOINT_FRAMES = int(os.environ.get("EQX_ON_ERROR_BREAKPOINT_FRAMES", "1"))
if ON_ERROR == "breakpoint":
    warnings.warn(breakpoint_mode_message(), stacklevel=2)


# Where the check is made: ecliptic's own frames and JAX's are never the user's.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_JAX_DIRS = tuple(
    os.path.dirname(os.path.abspath(str(m.__file__))) + os.sep for m in (jax, jaxlib)
)
# How many of the user's frames (innermost first) a failed check made under a
# transformation shows. Past it the outer frames are left out of the message.
MAX_STACK_FRAMES = 12


def _user_stack(traced: bool) -> Stack:
    """The user's frames at the `error_if` call, as `(filename, line, function)`,
    outermost first (frames of ecliptic and JAX are never the user's).

    **Arguments:**

    - `traced`: whether the check is being traced by a transformation (its inputs
        hold tracers). Then the frames are those inside the outermost JAX frame (the
        user's code inside the jitted, vmapped, ... function, not the code that
        called it while tracing, which may not be what calls it at run time), at
        most `MAX_STACK_FRAMES`. Otherwise the check runs where it is called, and
        the error's own traceback shows the callers: only the `error_if` call site.
    """
    frames: list[tuple[str, int, str]] = []
    inside = None  # how many user frames lie inside the outermost JAX frame
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if file.startswith(_JAX_DIRS):
            inside = len(frames)
        elif not file.startswith(_PACKAGE_DIR):
            frames.append((file, frame.f_lineno, frame.f_code.co_name))
            if not traced:
                break
        frame = frame.f_back
    if traced and inside:
        del frames[inside:]
    return tuple(reversed(frames[:MAX_STACK_FRAMES]))


# ---------------------------------------------------------------------------
# The check itself.


def _nan_like(x):
    dtype = np.dtype(x.dtype)  # `x` is an array (or a tracer)
    if np.issubdtype(dtype, np.inexact):
        fill = np.nan
    elif np.issubdtype(dtype, np.integer):
        fill = np.iinfo(dtype).max
    elif np.issubdtype(dtype, np.bool_):
        fill = True
    else:
        return x
    return jnp.full(jnp.shape(x), fill, dtype)


def _failure_branch(leaves, index, msgs, mode, where):
    structs = [jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)) for x in leaves]

    def raise_msg(i):
        raise_failed_check(msgs[int(i)], where)

    def show_msg(i):
        print(f"ecliptic.EquinoxRuntimeError: {msgs[int(i)]} ({check_site(where)})")

    if mode == "raise":
        return lambda: jax.pure_callback(
            raise_msg, structs, index, vmap_method="broadcast_all"
        )

    def breakpoint_branch():
        jax.debug.callback(show_msg, index)
        jax.debug.breakpoint(num_frames=BREAKPOINT_FRAMES)
        return [_nan_like(x) for x in leaves]

    return breakpoint_branch


def _checked(leaves, pred, index, msgs, mode, where):
    @jax.custom_jvp
    def check(leaves, pred, index):
        if mode == "nan":
            return jax.lax.cond(
                pred, lambda: [_nan_like(x) for x in leaves], lambda: list(leaves)
            )
        branch = _failure_branch(leaves, index, msgs, mode, where)
        return jax.lax.cond(pred, branch, lambda: list(leaves))

    @check.defjvp
    def check_jvp(primals, tangents):
        # The check sits outside AD: tangents pass through untouched.
        return check(*primals), list(tangents[0])

    return check(list(leaves), pred, index)


def _static_outcome(x, pred, index, msgs, mode, stacklevel=4):
    """Resolves a predicate known while tracing. Returns `x` (no error), raises, or
    returns `None` when the check must happen at run time. `stacklevel` is that of
    the warning of `on_error='nan'`, counted from here."""
    if isinstance(pred, jax.core.Tracer):
        return None
    if not bool(pred):
        return x
    if isinstance(index, jax.core.Tracer):
        return None
    msg = msgs[int(index)]
    if mode == "raise":
        raise EquinoxTracetimeError(msg)
    if mode == "nan":
        warnings.warn(error_if_nan_at_trace_message(msg), stacklevel=stacklevel)
        return jtu.tree_map(lambda a: _nan_like(a) if is_array(a) else a, x)
    if mode == "breakpoint":
        print(f"ecliptic.EquinoxTracetimeError: {msg}")
        breakpoint()
    return x


def _branched_error_if_impl(x, pred, index, msgs, *, on_error, where):
    mode = ON_ERROR if on_error == "default" else on_error
    if mode == "off":
        return x
    with jax.ensure_compile_time_eval():
        if not isinstance(pred, bool):
            pred = unvmap_any(pred)
        if not isinstance(index, int):
            index = unvmap_max(index)
        done = _static_outcome(x, pred, index, msgs, mode)
    if done is not None:
        return done
    leaves, treedef = jtu.tree_flatten(x)
    positions = [i for i, leaf in enumerate(leaves) if is_array(leaf)]
    if not positions:
        raise error_if_no_array_error(x)
    checked = _checked([leaves[i] for i in positions], pred, index, msgs, mode, where)
    for i, new in zip(positions, checked, strict=True):
        leaves[i] = new
    return jtu.tree_unflatten(treedef, leaves)


_checked_impl = filter_jit(_branched_error_if_impl)


def _validate(x, msgs, on_error) -> None:
    if on_error != "default" and on_error not in _MODES:
        raise on_error_value_error(on_error)
    for m in msgs:
        if not isinstance(m, str):
            raise error_if_message_type_error(m)


def error_if(
    x: PyTree,
    pred: Bool[ArrayLike, "..."],
    msg: str,
    *,
    on_error: OnError = "default",
) -> PyTree:
    """Raises an error at run time if `pred` is `True`. Works under `jit`, `vmap` and
    `grad`.

    **Arguments:**

    - `x`: any PyTree; returned unchanged. It must contain at least one array
        unless `pred` is a Python bool (a check resolved while tracing). The check
        runs after `x` is computed and before the returned value is used: **if the
        returned value is unused, the check is removed** (dead code elimination).
    - `pred`: a boolean, or boolean array of any shape `(...)`; the error fires if any
        element is `True` (under `vmap`: in any batch element).
    - `msg`: the error message.
    - `on_error`: `"raise"`, `"nan"` (return NaNs instead), `"breakpoint"` (open a
        debugger), `"off"`, or `"default"` to use the environment variable
        `ECLIPTIC_ON_ERROR` / `EQX_ON_ERROR` (read at import; default `raise`).

    **Returns:** `x`, unchanged.

    A failed check surfaces as [`ecliptic.EquinoxRuntimeError`][] carrying `msg` where
    [`ecliptic.filter_jit`][] sees it; under a plain `jax.jit` JAX's own runtime error
    carries `msg`. A predicate known to be `True` while tracing raises
    [`ecliptic.EquinoxTracetimeError`][] immediately.
    """
    return _branched(x, pred, 0, (msg,), on_error)


def branched_error_if(
    x: PyTree,
    pred: Bool[ArrayLike, "..."],
    index: Int[ArrayLike, "..."],
    msgs: Sequence[str],
    *,
    on_error: OnError = "default",
) -> PyTree:
    """As [`ecliptic.error_if`][], with the message chosen at run time.

    **Arguments:**

    - `x`: as for `error_if`.
    - `pred`: as for `error_if`, shape `(...)`.
    - `index`: integer, shape `(...)`: which of `msgs` to raise (under `vmap`, the
        largest index across the batch).
    - `msgs`: a sequence of strings.
    - `on_error`: as for `error_if`.

    **Returns:** `x`, unchanged.
    """
    return _branched(x, pred, index, tuple(msgs), on_error)


def _branched(x, pred, index, msgs: tuple, on_error: str):
    """`branched_error_if`, called by both public functions (so that a warning's
    `stacklevel` reaches the user's code the same way from either)."""
    _validate(x, msgs, on_error)
    if not (is_array(pred) or is_array(index)):
        # Python values: resolved now, without tracing a program (and with no
        # array needed in `x`).
        mode = ON_ERROR if on_error == "default" else on_error
        if mode == "off":
            return x
        return _static_outcome(x, bool(pred), int(index), msgs, mode, stacklevel=4)
    traced = any(
        isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves((x, pred, index))
    )
    where = _user_stack(traced)
    return _checked_impl(x, pred, index, msgs, on_error=on_error, where=where)
