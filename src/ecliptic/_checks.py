"""ecliptic's exception classes, the wording of shape and dtype errors, and the
deprecation helper, each written once.

This module is on the ground floor: it imports only the standard library, JAX and
NumPy, so every other module can raise from it. Other message builders (checkpoints,
filter specs, PyTree descriptions, `tree_at`, Module construction, unhashable static
leaves) are in `_messages.py`, one floor up.

Every exception class here has `__module__ = "ecliptic"`, so tracebacks show the
public name (`ecliptic.CheckpointError`); `__init__.py` re-exports the public ones.

Every `nn` layer acts on a single example. Layers call [`check_shape`][] at trace time
(it only reads static shapes, so it costs nothing at run time). A mismatch raises a
`ValueError` that reads *subject -> expected -> got -> fix*, for example::

    ecliptic.nn.Linear(in_features=64, out_features=16) expected `x` of shape (64,),
    but got shape (3, 16, 64). Layers act on a single example: map over the 2 leading
    axes with `jax.vmap(jax.vmap(layer))(x)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


__all__ = [
    "CheckpointError",
    "Dim",
    "EquinoxRuntimeError",
    "EquinoxTracetimeError",
    "UnboundAxisNameError",
    "check_shape",
    "deprecation_message",
    "describe",
    "dtype_error",
    "format_shape",
    "shape_error",
    "vmap_fix",
    "warn_deprecated",
]


# ---------------------------------------------------------------------------------
# Exception classes.
# ---------------------------------------------------------------------------------


class EquinoxRuntimeError(RuntimeError):
    """Raised when an [`ecliptic.error_if`][] check fails at run time."""


class EquinoxTracetimeError(RuntimeError):
    """Raised when an [`ecliptic.error_if`][] predicate is known to be `True` while
    tracing (so the error is certain before anything runs)."""


class CheckpointError(ValueError, RuntimeError):
    """Raised when a checkpoint file is corrupt, truncated, or does not match `like`.

    Every failure while loading a leaf (a malformed or truncated record, a shape,
    dtype or kind that differs from `like`, data after the last leaf, a checksum
    mismatch) is raised as this class. The message names the leaf's key path and the
    expected versus found shape and dtype; the original exception, if any, is the
    `__cause__`.

    It subclasses both `ValueError` and `RuntimeError`, so code written for Equinox
    (which raises `RuntimeError` on mismatches) keeps catching it.

    **Attributes:**

    - `path`: the key path of the leaf that failed, as a tuple of JAX key entries
        (`()` for whole-file problems such as trailing data or a bad checksum).
    """

    path: tuple

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple:  # keep `path` through pickling (multiprocessing)
        return (type(self), (str(self), self.path))


class UnboundAxisNameError(NameError, ValueError):
    """Raised when `ecliptic.nn.BatchNorm` runs outside a `vmap`/`pmap` with its
    `axis_name`. A `NameError` (as in Equinox and JAX) and a `ValueError`. Not
    exported: catch it as either base class."""


for _cls in (EquinoxRuntimeError, EquinoxTracetimeError, CheckpointError):
    _cls.__module__ = "ecliptic"
UnboundAxisNameError.__module__ = "ecliptic.nn"
del _cls


# ---------------------------------------------------------------------------------
# Deprecations.
# ---------------------------------------------------------------------------------


def deprecation_message(what: str, instead: str, detail: str | None = None) -> str:
    """`"{what} is deprecated: use {instead} instead."`, then `detail` if given.

    **Arguments:**

    - `what`: the deprecated spelling, with its subject, e.g.
        ``"ecliptic.nn.LayerNorm(elementwise_affine=...)"``.
    - `instead`: the spelling to use, e.g. ``"`LayerNorm(use_weight=...)`"``.
    - `detail`: an optional sentence on how the two differ.

    **Returns:** the message.
    """
    msg = f"{what} is deprecated: use {instead} instead."
    return f"{msg} {detail}" if detail else msg


def warn_deprecated(
    what: str,
    instead: str,
    *,
    stacklevel: int = 2,
    category: type[Warning] = DeprecationWarning,
    detail: str | None = None,
) -> None:
    """Warns that `what` is deprecated in favour of `instead`.

    The category is `DeprecationWarning`, except where Equinox raises another one for
    the same deprecation (its `UserWarning`s for old keyword arguments): programs
    that filter or catch Equinox's category keep working.

    **Arguments:**

    - `what`, `instead`, `detail`: as [`deprecation_message`][].
    - `stacklevel`: as for `warnings.warn`, counted from the caller of this function
        (`2`: the caller's caller).
    - `category`: the warning class.

    **Returns:** `None`.
    """
    msg = deprecation_message(what, instead, detail)
    warnings.warn(msg, category, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------------
# Shapes and dtypes.
# ---------------------------------------------------------------------------------


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
    return all(
        not isinstance(e, int) or e == s for s, e in zip(shape, expected, strict=True)
    )


def _axes(n: int) -> str:
    return "1 axis" if n == 1 else f"{n} axes"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _axis_ordinal(i: int, ndim: int) -> str:
    if ndim == 1:
        return "the only axis"
    if i == ndim - 1:
        return "the last axis"
    return f"axis {i}"


def _wrong_axes(
    shape: Sequence[int],
    expected: Sequence[Dim],
    axis_names: Sequence[str | None] | None,
    offset: int = 0,
) -> list[str]:
    """One phrase per wrong axis, e.g. `axis 0 must be in_channels=3, not 8`.

    `shape` is the trailing part of an input with `offset` more leading axes."""
    details = []
    ndim = len(shape) + offset
    for i, (s, e) in enumerate(zip(shape, expected, strict=True)):
        if isinstance(e, int) and s != e:
            label = axis_names[i] if axis_names and axis_names[i] else str(e)
            where = _axis_ordinal(i + offset, ndim)
            details.append(f"{where} must be {label}, not {s}")
    return details


def _batch_axis_elsewhere(
    shape: Sequence[int], expected: Sequence[Dim], call: str, name: str
) -> str | None:
    """With one extra axis that is not the leading one, the `in_axes=` fix."""
    for i in range(1, len(shape)):
        rest = tuple(shape[:i]) + tuple(shape[i + 1 :])
        if _matches(rest, expected):
            return (
                f"If axis {i} (size {shape[i]}) is the batch axis, map over it with "
                f"`jax.vmap({call}, in_axes={i})({name})`."
            )
    return None


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

    The message reads *subject -> expected -> got -> fix*:

    - extra leading axes with matching trailing axes: the fix names as many
      `jax.vmap`s as there are extra axes;
    - the right number of axes but a wrong size: which axis, and which size it must
      have (from `axis_names`);
    - a different number of axes otherwise, with the `jax.vmap` fix for the leading
      axes and what the remaining axes must be.

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
        if n_extra == 1:
            where = "the leading axis"
            sizes = f"axis 0, of size {shape[0]}, is the batch axis"
        else:
            where = f"the {n_extra} leading axes"
            sizes = "sizes " + ", ".join(str(s) for s in shape[:n_extra])
        msg += (
            f" Layers act on a single example: map over {where} with "
            f"`{vmap_fix(n_extra, call, name)}` ({sizes})."
        )
    elif n_extra == 0:
        details = _wrong_axes(shape, expected, axis_names)
        msg += " " + _sentence("; ".join(details)) + "."
    else:
        msg += (
            f" Layers act on a single example, so `{name}` must have "
            f"{_axes(len(expected))}, not {len(shape)}."
        )
        if n_extra > 0:
            lead = "the leading axis" if n_extra == 1 else f"the {n_extra} leading axes"
            rest = _wrong_axes(shape[n_extra:], expected, axis_names, n_extra)
            msg += (
                f" Mapping over {lead} with `{vmap_fix(n_extra, call, name)}` would "
                f"not fix it: {'; '.join(rest)}."
            )
            if n_extra == 1:
                other = _batch_axis_elsewhere(shape, expected, call, name)
                if other:
                    msg += " " + other
    if hint:
        msg += " " + hint
    return ValueError(msg)


def check_shape(
    subject: str | Callable[[], str],
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
    [`shape_error`][] for the arguments; `subject` may also be a function returning
    the subject, called only to word an error.
    """
    shape = tuple(np.shape(x))
    if not _matches(shape, expected):
        raise shape_error(
            subject() if callable(subject) else subject,
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
    return f"{prefix}{type(obj).__name__}({args})"


def dtype_error(subject: str, param_dtype: Any, x_dtype: Any, *, name: str = "x"):
    """Builds the `TypeError` for an input whose dtype does not match the layer's
    parameters (where JAX would not, or under strict promotion may not, mix them).

    **Arguments:**

    - `subject`: the layer with its configuration.
    - `param_dtype`: the dtype of the layer's parameters.
    - `x_dtype`: the dtype of the input.
    - `name`: the argument's name, shown in backticks.

    **Returns:** the `TypeError` (the caller raises it).
    """
    p, x = np.dtype(param_dtype).name, np.dtype(x_dtype).name
    return TypeError(
        f"{subject} has {p} parameters, but got `{name}` of dtype {x}. Cast the "
        f"input with `{name}.astype(jnp.{p})`, or build the layer with "
        f"`dtype=jnp.{x}`."
    )
