"""The wording of user-facing shape errors, written once.

Every `nn` layer acts on a single example. Layers call [`check_shape`][] at trace time
(it only reads static shapes, so it costs nothing at run time). A mismatch raises a
`ValueError` that reads *subject -> expected -> got -> fix*, for example::

    ecliptic.nn.Linear(in_features=64, out_features=16) expected `x` of shape (64,),
    but got shape (3, 16, 64). Layers act on a single example: map over the 2 leading
    axes with `jax.vmap(jax.vmap(layer))(x)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


Dim = int | str | None
"""One expected axis: an `int` is a required size; a `str` names an axis of any size
(printed as that name, for example `"H"`); `None` is any size, printed as `?`."""


def format_shape(shape: Sequence[Dim]) -> str:
    """Formats an expected or actual shape as a Python tuple, `(16,)` or `(3, H, W)`."""
    parts = ["?" if d is None else str(d) for d in shape]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def vmap_fix(num_extra: int, call: str = "layer", args: str = "x") -> str:
    """The call that maps `call` over `num_extra` leading axes, for example
    `jax.vmap(jax.vmap(layer))(x)`."""
    inner = call
    for _ in range(num_extra):
        inner = f"jax.vmap({inner})"
    return f"{inner}({args})"


def _matches(shape: Sequence[int], expected: Sequence[Dim]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(not isinstance(e, int) or e == s for s, e in zip(shape, expected))


def _axis_ordinal(i: int, ndim: int) -> str:
    if ndim == 1 or i == ndim - 1:
        return "the last axis" if ndim > 1 else "the only axis"
    return f"axis {i}"


def shape_error(
    subject: str,
    shape: Sequence[int],
    expected: Sequence[Dim],
    *,
    name: str = "x",
    call: str = "layer",
    axis_names: Sequence[str | None] | None = None,
    hint: str | None = None,
) -> ValueError:
    """Builds the `ValueError` for an input whose shape does not match.

    **Arguments:**

    - `subject`: what was called, with its configuration, e.g.
        `"ecliptic.nn.Linear(in_features=16, out_features=16)"`.
    - `shape`: the shape that was received.
    - `expected`: the expected shape, one [`Dim`][] per axis.
    - `name`: the argument's name, shown in backticks.
    - `call`: how the user's callable is spelled in the suggested fix.
    - `axis_names`: optional description of each expected axis (e.g.
        `"in_features=16"`), used to say which axis has the wrong size.
    - `hint`: an optional extra sentence appended to the message.

    **Returns:** the `ValueError` (the caller raises it).
    """
    shape = tuple(int(s) for s in shape)
    msg = (
        f"{subject} expected `{name}` of shape {format_shape(expected)}, but got "
        f"shape {format_shape(shape)}."
    )
    n_extra = len(shape) - len(expected)
    if n_extra > 0 and _matches(shape[n_extra:], expected):
        axes = "axis" if n_extra == 1 else f"{n_extra} leading axes"
        if n_extra == 1:
            axes = "leading axis"
        msg += (
            " Layers act on a single example: map over the "
            f"{axes} with `{vmap_fix(n_extra, call)}`."
        )
    elif len(shape) == len(expected):
        wrong = [
            i
            for i, (s, e) in enumerate(zip(shape, expected))
            if isinstance(e, int) and s != e
        ]
        details = []
        for i in wrong:
            label = axis_names[i] if axis_names and axis_names[i] else None
            want = label if label is not None else str(expected[i])
            details.append(
                f"{_axis_ordinal(i, len(shape))} must be {want}, not {shape[i]}"
            )
        if details:
            msg += " " + "; ".join(details).capitalize() + "."
    else:
        msg += (
            f" Layers act on a single example, so `{name}` must have "
            f"{len(expected)} axes, not {len(shape)}."
        )
        if n_extra > 0:
            msg += (
                f" If the {n_extra} leading axes are batch axes, map over them with "
                f"`{vmap_fix(n_extra, call)}`; the remaining axes must then be "
                f"{format_shape(expected)}."
            )
    if hint:
        msg += " " + hint
    return ValueError(msg)


def check_shape(
    subject: str,
    x: Any,
    expected: Sequence[Dim],
    *,
    name: str = "x",
    call: str = "layer",
    axis_names: Sequence[str | None] | None = None,
    hint: str | None = None,
) -> None:
    """Raises [`shape_error`][] unless `x.shape` matches `expected`.

    Only the static shape is read, so this costs nothing once traced. See
    [`shape_error`][] for the arguments.
    """
    shape = tuple(x.shape)
    if not _matches(shape, expected):
        raise shape_error(
            subject,
            shape,
            expected,
            name=name,
            call=call,
            axis_names=axis_names,
            hint=hint,
        )


def describe(obj: Any, **config: Any) -> str:
    """The subject of a message: `ecliptic.nn.Linear(in_features=16, out_features=8)`.

    **Arguments:**

    - `obj`: the layer (its class name is used).
    - `**config`: the configuration to show, in order.

    **Returns:** a string.
    """
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    module = type(obj).__module__
    prefix = "ecliptic.nn." if module.startswith("ecliptic.nn") else ""
    return f"{prefix}{type(obj).__qualname__}({args})"
