"""`while_loop` and `scan`: the public faces of the three loop kinds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool

from ..._messages import (
    base_value_error,
    bounded_needs_max_steps_error,
    checkpoints_needed_error,
    checkpoints_value_error,
    max_steps_type_error,
    negative_max_steps_error,
    scan_lengths_error,
    unknown_kind_error,
)
from ._bounded import bounded_while_loop
from ._checkpointed import checkpointed_while_loop
from ._rewrite import rewrite
from ._schedule import default_checkpoints


_Carry = TypeVar("_Carry")
_X = TypeVar("_X")
_Y = TypeVar("_Y")
_Node = Any
_KINDS = ("lax", "checkpointed", "bounded")
_SCAN_KINDS = ("lax", "checkpointed")


def _as_count(value: Any) -> int | None:
    """`value` as a Python int if it is a whole number (not a bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if count == value else None


def _checkpoint_count(checkpoints: Any, max_steps: int | None) -> int:
    if checkpoints is None:
        if max_steps is None:
            raise checkpoints_needed_error()
        return default_checkpoints(max_steps)
    count = _as_count(checkpoints)
    if count is None or count < 1:
        raise checkpoints_value_error(checkpoints)
    return count if max_steps is None else min(count, max_steps)


def while_loop(
    cond_fun: Callable[[_Carry], bool | Bool[Array, ""]],
    body_fun: Callable[[_Carry], _Carry],
    init_val: _Carry,
    *,
    max_steps: int | None = None,
    buffers: Callable[[_Carry], _Node | Sequence[_Node]] | None = None,
    kind: Literal["lax", "checkpointed", "bounded"],
    checkpoints: int | None = None,
    base: int = 16,
) -> _Carry:
    """`lax.while_loop` with a step bound, in-place buffers and reverse-mode autodiff.

    **Arguments:**

    - `cond_fun`: `val -> bool scalar`, as `lax.while_loop`.
    - `body_fun`: `val -> val` (same structure, shapes and dtypes), as
        `lax.while_loop`.
    - `init_val`: the initial value, any PyTree of arrays.
    - `max_steps`: a Python int: the loop stops after this many steps whatever
        `cond_fun` says. `None` for no bound.
    - `buffers`: `val -> node or sequence of nodes` selecting arrays of the value
        that the body only writes into, each location once, with
        `buf.at[i].set(x)` (and reads back only where written, `buf[i]`). They are
        updated in place, never copied per step, and not stored by checkpoints.
        These rules are not checked: breaking them gives wrong gradients.
    - `kind`: how the loop is built.
        - `"lax"`: `lax.while_loop`: forward-mode differentiable only.
        - `"checkpointed"`: reverse-mode differentiable (not forward-mode) in the
            memory of `checkpoints` copies of the value, recomputing the rest
            (binomial checkpointing). Buffers are write-only in the body.
        - `"bounded"`: nested `lax.scan`s of length `base`; both modes, needs
            `max_steps`; cost grows with `max_steps` even when the loop ends early.
    - `checkpoints`: `kind="checkpointed"` only: the number of saved states (at
        most `max_steps`). `None`: about `sqrt(2 * max_steps)`.
    - `base`: `kind="bounded"` only: the length of each nested scan. Larger is a
        little slower to run and much faster to compile.

    Under `jax.vmap` with a batched condition the loop runs until every member has
    finished; a finished member's value no longer changes.

    **Returns:** the final value, like `init_val`.
    """
    if max_steps is not None and type(max_steps) is not int:
        raise max_steps_type_error(max_steps)
    if kind == "lax":
        rw = rewrite(cond_fun, body_fun, init_val, max_steps, buffers, False)
        return lax.while_loop(rw.cond, rw.body, rw.init)[2]
    if kind == "checkpointed":
        count = _checkpoint_count(checkpoints, max_steps)
        if max_steps is not None and max_steps <= 0:
            return _initial(kind, init_val, max_steps)
        return checkpointed_while_loop(
            cond_fun,
            body_fun,
            init_val,
            max_steps=max_steps,
            buffers=buffers,
            checkpoints=count,
        )
    if kind == "bounded":
        if max_steps is None:
            raise bounded_needs_max_steps_error()
        if _as_count(base) is None or base < 2:
            raise base_value_error(base)
        if max_steps <= 0:
            return _initial(kind, init_val, max_steps)
        return bounded_while_loop(
            cond_fun,
            body_fun,
            init_val,
            max_steps=max_steps,
            buffers=buffers,
            base=int(base),
        )
    raise unknown_kind_error(kind, _KINDS)


def _initial(kind: str, init_val: Any, max_steps: int) -> Any:
    if max_steps < 0:
        raise negative_max_steps_error(kind, max_steps)
    return jtu.tree_map(jnp.asarray, init_val)


def scan(
    f: Callable[[_Carry, _X], tuple[_Carry, _Y]],
    init: _Carry,
    xs: _X,
    length: int | None = None,
    *,
    buffers: Callable[[_Carry], _Node | Sequence[_Node]] | None = None,
    kind: Literal["lax", "checkpointed"],
    checkpoints: None | int | Literal["all"] = None,
) -> tuple[_Carry, _Y]:
    """`lax.scan`, optionally checkpointed to bound the memory of reverse mode.

    **Arguments:**

    - `f`: `(carry, x) -> (carry, y)`, as `lax.scan`.
    - `init`: the initial carry.
    - `xs`: PyTree of arrays with a common leading axis of length `length` (or
        `None` with `length` given).
    - `length`: the number of steps; needed only when `xs` has no arrays.
    - `buffers`: `carry -> node(s)`: arrays of the carry written in place, as for
        `while_loop` (the stacked outputs `ys` are always handled this way).
    - `kind`: `"lax"` (`lax.scan`: every step's residuals stored) or
        `"checkpointed"` (reverse mode only, in fixed memory).
    - `checkpoints`: `kind="checkpointed"` only: the number of saved steps, `"all"`
        for every step, or `None` for about `sqrt(2 * length)`.

    **Returns:** `(final carry, ys)`, with `ys` stacked along a new leading axis of
    length `length`, as `lax.scan`.
    """
    init, xs = jtu.tree_map(jnp.asarray, (init, xs))
    if kind == "lax":
        return lax.scan(f, init, xs, length)
    if kind != "checkpointed":
        raise unknown_kind_error(kind, _SCAN_KINDS)
    lengths = {jnp.shape(x)[0] for x in jtu.tree_leaves(xs)}
    if length is not None:
        lengths.add(length)
    if len(lengths) != 1:
        raise scan_lengths_error(lengths)
    (length,) = lengths
    if checkpoints == "all":
        checkpoints = max(length, 1)
    x0 = jtu.tree_map(lambda z: z[0], xs)
    _, y_struct = jax.eval_shape(f, init, x0)
    ys = jtu.tree_map(lambda y: jnp.zeros((length,) + y.shape, y.dtype), y_struct)

    def _body(val: tuple) -> tuple:
        i, carry, ys = val
        carry, y = f(carry, jtu.tree_map(lambda z: z[i], xs))
        ys = jtu.tree_map(lambda y, buf: buf.at[i].set(y), y, ys)
        return i + 1, carry, ys

    def _buffers(val: tuple) -> list:
        return [val[2]] if buffers is None else [buffers(val[1]), val[2]]

    step0 = jnp.zeros((), jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32)
    _, carry, ys = while_loop(
        lambda _: True,
        _body,
        (step0, init, ys),
        max_steps=int(length),
        buffers=_buffers,
        kind="checkpointed",
        checkpoints=checkpoints,
    )
    return carry, ys
