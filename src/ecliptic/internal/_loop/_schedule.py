"""Where a checkpointed loop keeps its states: the two controllers.

Forward pass (the number of steps is not known yet): the online scheme of Wang,
Moin and Iaccarino (2009, "Minimal repetition dynamic checkpointing algorithm for
unsteady adjoint calculation"). Every state is stored as it is reached; once the
`c` slots are full, a new state evicts a *dispensable* one (a state with a later
state of higher level), taking level 0, or, when none is dispensable, replaces the
most recent state, taking that state's level plus one. Levels grow like the
repetition number of binomial checkpointing, so the saved states thin out
geometrically towards the start of the loop.

Backward pass (the number of steps is known): each stretch between saved states is
reversed with binomial checkpointing (Griewank 1992; Griewank and Walther 2000,
"revolve"), with every free slot. `advance(l, s)` is revolve's rule: to reverse `l`
steps from a saved state with `s` slots (that state's included), run `advance`
steps forward and save there. It minimises the total number of recomputed steps.

All of it is integer work on the unbatched controller state; none of it depends on
the loop's values.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from ._rewrite import step_dtype


def default_checkpoints(max_steps: int) -> int:
    """The number of checkpoints used when none is given: the smallest `c` with
    `(c + 1)(c + 2) / 2 > max_steps`, so about `sqrt(2 * max_steps)`. With it no step
    is recomputed more than twice."""
    c = max(1, math.isqrt(2 * max_steps) - 2)
    while (c + 1) * (c + 2) <= 2 * max_steps:
        c += 1
    return c


def never() -> Any:
    """The step number of an empty slot (sorts after every real step)."""
    return jnp.iinfo(step_dtype()).max


# ---------------------------------------------------------------------------------
# Forward: dynamic checkpointing.
# ---------------------------------------------------------------------------------


class Slots(NamedTuple):
    """The forward controller.

    Between two promotions the dispensable states only ever leave (a new state has
    level 0, which makes nothing dispensable), latest first, so they are kept as a
    stack sorted by step: a step costs O(1), a promotion one sort of `c` numbers.
    """

    steps: Any  # (c,) int: the step of each saved state, `never()` if empty
    levels: Any  # (c,) int
    stack: Any  # (c,) int: slots of the dispensable states, by step, latest on top
    size: Any  # () int: the number of dispensable states
    count: Any  # () int: the number of slots in use


def slots_init(c: int) -> Slots:
    """Slot 0 is for the initial state (step 0, never evicted); it is marked in
    use by `slots_store(slots, 0)`, and already holds step 0 for a loop that stores
    nothing else."""
    dtype = step_dtype()
    steps = jnp.full((c,), never(), dtype).at[0].set(0)
    levels = jnp.zeros((c,), dtype).at[0].set(never())
    zero = jnp.zeros((), dtype)
    return Slots(steps, levels, jnp.zeros((c,), dtype), zero, zero)


def _take(slots: Slots) -> tuple[Any, Any, Slots]:
    """A free slot if any, else the latest dispensable state's; level 0."""
    steps, levels, stack, size, count = slots
    free = count < steps.shape[0]
    slot = jnp.where(free, count, stack[jnp.maximum(size - 1, 0)])
    size = jnp.where(free, size, size - 1)
    count = jnp.where(free, count + 1, count)
    return slot, jnp.zeros_like(count), Slots(steps, levels, stack, size, count)


def _promote(slots: Slots) -> tuple[Any, Any, Slots]:
    """No state is dispensable: the latest one makes way, one level up."""
    steps, levels, stack, size, count = slots
    slot = jnp.argmax(steps).astype(steps.dtype)
    level = levels[slot] + 1
    # Now every other state of a lower level than the new one is dispensable.
    dispensable = (levels < level) & (jnp.arange(steps.shape[0]) != slot)
    # By step, the dispensable states first (the others sort last).
    stack = jnp.argsort(jnp.where(dispensable, steps, never())).astype(steps.dtype)
    size = jnp.sum(dispensable).astype(steps.dtype)
    return slot, level, Slots(steps, levels, stack, size, count)


def slots_store(slots: Slots, step: Any) -> tuple[Any, Slots]:
    """Chooses the slot for the state at `step` (0, 1, 2, ... in turn) and updates
    the controller.

    **Returns:** `(slot, slots)`: the slot to write (int scalar) and the new state.
    """
    c = slots.steps.shape[0]
    easy = (slots.count < c) | (slots.size > 0)
    slot, level, slots = lax.cond(easy, _take, _promote, slots)
    level = jnp.where(step == 0, never(), level)  # the initial state stays
    steps = slots.steps.at[slot].set(step)
    levels = slots.levels.at[slot].set(level)
    return slot, slots._replace(steps=steps, levels=levels)


# ---------------------------------------------------------------------------------
# Backward: binomial checkpointing.
# ---------------------------------------------------------------------------------

_T_TABLE = 64  # repetition numbers found by one vector op; larger ones by bisection
# Lower-triangular ones: a cumulative sum as a matrix product (quick to compile).
_CUMSUM = np.tril(np.ones((_T_TABLE, _T_TABLE), np.float32))


def _repetitions_small(sf: Any, log_l: Any) -> tuple[Any, Any]:
    """The least `t` with `C(s + t, s) >= l` when it is at most `_T_TABLE`, and
    `C(s + t - 1, s)`. (`t == _T_TABLE + 1` means "larger".)"""
    j = jnp.arange(1, _T_TABLE + 1, dtype=jnp.float32)
    logs = jnp.asarray(_CUMSUM) @ jnp.log(1.0 + sf / j)  # [t - 1]: log C(s + t, s)
    t = 1 + jnp.sum(logs < log_l)
    below = jnp.concatenate([jnp.zeros((1,), jnp.float32), logs])[t - 1]
    return t.astype(jnp.float32), jnp.exp(below)


def _binom_small_s(s: Any, t: Any) -> Any:
    """`C(s + t, s)` for float `t >= 0` and `s <= _T_TABLE` (`t` of shape `(n,)`), as
    a product of `s` factors (`inf` past the float range: compares correctly)."""
    i = jnp.arange(1, _T_TABLE + 1, dtype=jnp.float32)[None, :]
    factors = jnp.where(i <= s, (t[:, None] + i) / i, 1.0)
    return jnp.prod(factors, axis=1)


def _repetitions_large(sf: Any, lf: Any) -> tuple[Any, Any]:
    """As `_repetitions_small`, when `t` exceeds `_T_TABLE` (which for `l < 2**63`
    implies `s < _T_TABLE`, and then `t` is large next to `s`). From
    `C(s + t, s) ~ (t + (s + 1) / 2) ** s / s!`, good to well under one step there;
    the neighbours of the estimate are checked exactly."""
    log_factorial = jax.lax.lgamma(sf + 1.0)
    guess = jnp.floor(jnp.exp((jnp.log(lf) + log_factorial) / sf) - (sf + 1.0) / 2)
    offsets = jnp.arange(-2.0, 3.0, dtype=jnp.float32)
    candidates = jnp.maximum(guess + offsets, _T_TABLE + 1.0)
    enough = _binom_small_s(sf, candidates) >= lf
    t = jnp.min(jnp.where(enough, candidates, jnp.inf))
    t = jnp.where(jnp.isfinite(t), t, candidates[-1] + 1.0)
    return t, _binom_small_s(sf, t[None] - 1.0)[0]


def advance(length: Any, snapshots: Any) -> Any:
    """Revolve's first step: how far to run before saving the next state.

    **Arguments:**

    - `length`: int scalar >= 2, the steps left to reverse from the current state.
    - `snapshots`: int scalar >= 2, the slots available, the current state's included.

    **Returns:** an int scalar in `[1, length - 1]` (the dtype of `length`).
    """
    lf = length.astype(jnp.float32)
    sf = snapshots.astype(jnp.float32)
    t, b = _repetitions_small(sf, jnp.log(lf) - 1e-6)
    t, b = lax.cond(t > _T_TABLE, lambda: _repetitions_large(sf, lf), lambda: (t, b))
    # The binomials revolve's rule needs, from b = C(s + t - 1, s) (the steps
    # reversible with one repetition fewer) by exact ratios.
    b_top = b * (sf + t) / t  # C(s + t, s)
    b_s1 = b * sf / (sf + t - 1.0)  # C(s - 1 + t - 1, s - 1)
    b_s2 = b_s1 * (sf - 1.0) / (sf + t - 2.0)  # C(s - 2 + t - 1, s - 2)
    b_t2 = b * (t - 1.0) / (sf + t - 1.0)  # C(s + t - 2, s)
    b_s3 = b_s2 * (sf - 2.0) / t  # C(s - 3 + t, s - 3)
    b, b_top, b_s1, b_s2, b_t2, b_s3 = (
        jnp.round(x) for x in (b, b_top, b_s1, b_s2, b_t2, b_s3)
    )
    m = jnp.where(
        lf <= b + b_s2,
        b_t2,
        jnp.where(lf + b_s3 >= b_top, b, lf - b_s1 - b_s2),
    )
    return jnp.clip(m, 1.0, lf - 1.0).astype(length.dtype)
