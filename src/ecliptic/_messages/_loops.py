"""The loops' user-facing messages, one builder each (subject, expected, got, fix).

Each returns the exception for the caller to raise, so that tracebacks point at the
caller. (Kept together here so that they can move into `ecliptic/_messages.py`
unchanged.)
"""

from __future__ import annotations

from typing import Any


def unknown_kind_error(kind: Any, allowed: tuple[str, ...]) -> ValueError:
    """`kind=` names no loop kind."""
    names = ", ".join(f"'{a}'" for a in allowed)
    return ValueError(
        f"`kind` must be one of {names}, but got {kind!r}. Pick 'lax' for a forward-"
        "only loop, 'checkpointed' for reverse-mode differentiation with a fixed "
        "memory budget, or 'bounded' (needs `max_steps`) for both modes."
    )


def max_steps_type_error(max_steps: Any) -> ValueError:
    """`max_steps` is not a Python `int` (or `None`)."""
    return ValueError(
        "`max_steps` must be a Python integer or None, but got "
        f"{max_steps!r} of type {type(max_steps).__name__}. Pass `int(max_steps)`: "
        "the bound is fixed when the loop is traced."
    )


def negative_max_steps_error(kind: str, max_steps: int) -> ValueError:
    """`max_steps` is negative for a kind that sizes its memory by it."""
    return ValueError(
        f"`max_steps` must be a non-negative integer for kind='{kind}', but got "
        f"{max_steps}. Pass 0 or more (0 returns the initial value)."
    )


def bounded_needs_max_steps_error() -> ValueError:
    """`kind="bounded"` without `max_steps`."""
    return ValueError(
        "kind='bounded' needs `max_steps`: it unrolls into nested scans sized by that "
        "bound, but got max_steps=None. Pass `max_steps=`, or use "
        "kind='checkpointed' for a loop of unknown length."
    )


def checkpoints_needed_error() -> ValueError:
    """`kind="checkpointed"` with neither `checkpoints` nor `max_steps`."""
    return ValueError(
        "kind='checkpointed' needs `checkpoints` (how many states to keep for the "
        "backward pass) or `max_steps` (to derive that number from), but got "
        "neither. Pass `checkpoints=` (memory grows with it, recomputation shrinks) "
        "or `max_steps=`."
    )


def checkpoints_value_error(checkpoints: Any) -> ValueError:
    """`checkpoints` is not a positive integer."""
    return ValueError(
        f"`checkpoints` must be a positive integer, but got {checkpoints!r}. Pass 1 "
        "or more (the number of saved states of the loop)."
    )


def buffer_dtype_error(buffer_dtype: Any, value_dtype: Any) -> ValueError:
    """`buffer.at[i].set(value)` with a value that does not fit the buffer's dtype."""
    return ValueError(
        f"`buffer.at[i].set(value)` writes into a buffer of dtype {buffer_dtype}, so "
        "`value` must have a dtype that promotes to it, but got "
        f"{value_dtype}. Cast the value first (`value.astype(buffer.dtype)`)."
    )


def buffer_pred_error(pred: Any) -> ValueError:
    """`buffer.at[i].set(value, pred=...)` with a `pred` that is not a bool scalar."""
    shape = getattr(pred, "shape", ())
    dtype = getattr(pred, "dtype", type(pred).__name__)
    return ValueError(
        "The predicate `pred` of `buffer.at[i].set(value, pred=pred)` must be a "
        f"boolean scalar, but got shape {tuple(shape)} and dtype {dtype}. Reduce "
        "it to one bool (`jnp.all(...)`, `jnp.any(...)`)."
    )


def cond_output_error(shape: Any, dtype: Any) -> TypeError:
    """`cond_fun` returned something other than a boolean scalar."""
    return TypeError(
        "`cond_fun` must return a boolean scalar (shape ()), but got shape "
        f"{tuple(shape)} and dtype {dtype}. Reduce it to one bool, e.g. "
        "`jnp.all(...)`; under `jax.vmap` each member's scalar is batched for you."
    )


def body_structure_error(before: str, after: str) -> ValueError:
    """`body_fun` changed the structure, shapes or dtypes of the loop's value."""
    return ValueError(
        "`body_fun` must return a value with the same structure, shapes and dtypes "
        "as its input, but they differ (- input, + output):\n"
        f"{_diff(before, after)}\nCast or reshape the outputs to match the initial "
        "value (`init_val`)."
    )


def scan_lengths_error(lengths: set) -> ValueError:
    """The leading axes of `xs` (and `length`) disagree."""
    return ValueError(
        "Every array in `xs` must have the same leading axis, equal to `length` when "
        f"given, but got the lengths {sorted(lengths)}. Pass arrays of one length."
    )


def _diff(before: str, after: str) -> str:
    lines_a, lines_b = before.split("\n"), after.split("\n")
    out = []
    for j in range(max(len(lines_a), len(lines_b))):
        a = lines_a[j] if j < len(lines_a) else ""
        b = lines_b[j] if j < len(lines_b) else ""
        if a == b:
            out.append("  " + a)
        else:
            out.extend(["- " + a, "+ " + b])
    return "\n".join(out)


def base_value_error(base: Any) -> ValueError:
    """`base` of the bounded loop is not an integer of at least 2."""
    return ValueError(
        f"`base` must be an integer of at least 2, but got {base!r}. It is the length "
        "of each nested scan of kind='bounded' (16 by default)."
    )
