"""`kind="bounded"`: a while loop as nested scans, differentiable in both modes.

`max_steps` is rounded up to `base ** depth`. The loop becomes `depth` levels of
`lax.scan` of length `base`; every step at every level is guarded by a `lax.cond` on
the loop's (unbatched) condition, so a finished loop skips whole blocks. Each level
but the innermost is wrapped in `jax.checkpoint`, so reverse mode stores about
`base * depth` states and recomputes each step about `depth` times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.lax as lax

from ._rewrite import rewrite


def bounded_while_loop(
    cond_fun: Callable,
    body_fun: Callable,
    init_val: Any,
    *,
    max_steps: int,
    buffers: Callable | None,
    base: int,
) -> Any:
    """The bounded loop, for validated arguments (`max_steps >= 1`, `base >= 2`).
    Returns the final value, as `lax.while_loop`."""
    # Under transformations the guard of a step may be a select rather than a
    # branch, so the body's selects are real ones (`makes_false_steps=True`).
    rw = rewrite(cond_fun, body_fun, init_val, max_steps, buffers, True)
    depth = 0
    while base**depth < max_steps:
        depth += 1
    _, _, final_val = _steps(rw.cond, rw.body, depth, base)(rw.init)
    return final_val


def _steps(cond: Callable, body: Callable, depth: int, base: int) -> Callable:
    """A function running up to `base ** depth` steps, each guarded by `cond`."""
    if depth == 0:
        return lambda carry: lax.cond(cond(carry), body, lambda c: c, carry)
    inner = _steps(cond, body, depth - 1, base)
    if depth == 1:
        guarded = inner  # already one guarded step
    else:

        def guarded(carry: Any) -> Any:  # skips a whole block once finished
            return lax.cond(cond(carry), inner, lambda c: c, carry)

    def _step(carry: Any, _: None) -> tuple:
        return guarded(carry), None

    if depth > 1:  # the innermost level keeps its residuals
        _step = jax.checkpoint(_step, prevent_cse=False)

    def _block(carry: Any) -> Any:
        return lax.scan(_step, carry, None, length=base)[0]

    return _block
