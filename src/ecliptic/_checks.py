"""ecliptic's exception classes, the wording of shape and dtype errors, and the
deprecation helper, each written once.

This module is on the ground floor: it imports only the standard library, JAX and
NumPy, so every other module can raise from it. Other message builders (checkpoints,
filter specs, PyTree descriptions, `tree_at`, Module construction, unhashable static
leaves) are in `_messages.py`, one floor up.

Every exception class here has its public module as `__module__` (`"ecliptic"`,
`"ecliptic.nn"` or `"ecliptic.debug"`), so tracebacks show the public name
(`ecliptic.CheckpointError`); the packages' `__init__.py` re-export the public ones.
Classes whose errors carry data (`CheckpointError`, `ShapeError`,
`TooManyTracesError`) hold it as attributes, so code can act on them without parsing
the message; they pickle with those attributes.

Every `nn` layer acts on a single example. Layers call [`check_shape`][] at trace time
(it only reads static shapes, so it costs nothing at run time). A mismatch raises a
`ShapeError` (a `ValueError` whose attributes hold the layer, the argument and
both shapes) that reads *subject -> expected -> got -> fix*, for example::

    ecliptic.nn.Linear(in_features=64, out_features=16) expected `x` of shape (64,),
    but got shape (3, 16, 64). Layers act on a single example: map over the 2 leading
    axes with `jax.vmap(jax.vmap(layer))(x)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jax.dtypes import TypePromotionError


__all__ = [
    "CheckpointError",
    "Dim",
    "EquinoxRuntimeError",
    "EquinoxTracetimeError",
    "ShapeError",
    "TooManyTracesError",
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


def _shape_or_none(shape: Any) -> tuple[int, ...] | None:
    return None if shape is None else tuple(int(s) for s in shape)


def _dtype_or_none(dtype: Any) -> Any:
    """A `np.dtype`, `None`, or a dtype that NumPy has no name for (JAX's PRNG-key
    dtypes), kept as given."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return dtype


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
    - `expected_shape`: the shape that `like` asks for, a tuple of ints, or `None`
        where no shape applies (a problem with the file as a whole).
    - `found_shape`: the shape of the record in the file, or `None` where none was
        read (a malformed header, or a file that ends before the record).
    - `expected_dtype`: the `numpy.dtype` that `like` asks for, or `None` where no
        dtype applies (a Python scalar leaf asks for a kind, not a dtype).
    - `found_dtype`: the `numpy.dtype` of the record in the file, or `None` where
        none was read.
    - `offset`: the byte offset in the file at which the failing record starts (for
        trailing data or a bad checksum: where the unexpected bytes or the trailer
        start), or `None` where it is unknown (a stream that cannot `tell()`).
    """

    path: tuple
    expected_shape: tuple[int, ...] | None
    found_shape: tuple[int, ...] | None
    expected_dtype: np.dtype | None
    found_dtype: np.dtype | None
    offset: int | None

    def __init__(
        self,
        message: str,
        path: tuple = (),
        *,
        expected_shape: Sequence[int] | None = None,
        found_shape: Sequence[int] | None = None,
        expected_dtype: Any = None,
        found_dtype: Any = None,
        offset: int | None = None,
    ):
        super().__init__(message)
        self.path = path
        self.expected_shape = _shape_or_none(expected_shape)
        self.found_shape = _shape_or_none(found_shape)
        self.expected_dtype = _dtype_or_none(expected_dtype)
        self.found_dtype = _dtype_or_none(found_dtype)
        self.offset = None if offset is None else int(offset)


class DTypePromotionError(TypePromotionError, TypeError):
    """Raised when a layer gets an input whose dtype its parameters may not be mixed
    with under `jax.numpy_dtype_promotion("strict")`. Both JAX's
    `TypePromotionError` (what Equinox raises here) and a `TypeError` (what ecliptic
    raises for other dtype mismatches). Not exported: catch it as either base
    class."""


class ShapeError(ValueError, TypeError):
    """Raised when a layer of `ecliptic.nn` is called on an input of the wrong shape
    (at trace time, before anything runs). Both a `ValueError` and a `TypeError`, so
    code written for Equinox keeps catching it whichever it expected (Equinox's
    `Linear` and `MLP` fail inside `jnp.matmul` with a `TypeError`, its convolutions
    and normalisations with a `ValueError`).

    **Attributes:**

    - `layer`: the layer, described with its configuration, e.g.
        `"ecliptic.nn.Linear(in_features=3, out_features=2)"`.
    - `argument`: the name of the argument whose shape is wrong, e.g. `"x"`.
    - `expected`: the expected shape, as a tuple with one entry per axis: an `int`
        for a required size, a `str` for a named axis of any size (e.g. `"H"`), or
        `None` for any size.
    - `actual`: the shape that was received, a tuple of ints.
    """

    layer: str | None
    argument: str | None
    expected: tuple[int | str | None, ...] | None
    actual: tuple[int, ...] | None

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        argument: str | None = None,
        expected: Sequence[int | str | None] | None = None,
        actual: Sequence[int] | None = None,
    ):
        super().__init__(message)
        self.layer = layer
        self.argument = argument
        self.expected = None if expected is None else tuple(expected)
        self.actual = _shape_or_none(actual)


class TooManyTracesError(RuntimeError):
    """Raised by a function wrapped with `ecliptic.debug.assert_max_traces` when it
    is traced more often than allowed. A `RuntimeError` (as in Equinox).

    **Attributes:**

    - `function_name`: the wrapped function's name (its `__name__`, e.g.
        `"f"` or `"<lambda>"`).
    - `max_traces`: the allowed number of traces.
    - `count`: the number of traces so far, this one included.
    - `argument`: the name of the argument whose shape, dtype or static value
        changed and so caused the retrace, or `None` when no single argument did.
    """

    function_name: str | None
    max_traces: int | None
    count: int | None
    argument: str | None

    def __init__(
        self,
        message: str,
        *,
        function_name: str | None = None,
        max_traces: int | None = None,
        count: int | None = None,
        argument: str | None = None,
    ):
        super().__init__(message)
        self.function_name = function_name
        self.max_traces = max_traces
        self.count = count
        self.argument = argument


class UnboundAxisNameError(NameError, ValueError):
    """Raised when `ecliptic.nn.BatchNorm` runs outside a `vmap`/`pmap` with its
    `axis_name`. A `NameError` (as in Equinox and JAX) and a `ValueError`. Not
    exported: catch it as either base class."""


for _cls in (EquinoxRuntimeError, EquinoxTracetimeError, CheckpointError, ShapeError):
    _cls.__module__ = "ecliptic"
TooManyTracesError.__module__ = "ecliptic.debug"
UnboundAxisNameError.__module__ = "ecliptic.nn"
DTypePromotionError.__module__ = "ecliptic.nn"
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
) -> ShapeError:
    """Builds the [`ShapeError`][] (a `ValueError`) for an input whose shape does not
    match.

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

    **Returns:** the `ShapeError`, with `subject`, `name`, `expected` and `shape` as
    its `layer`, `argument`, `expected` and `actual` attributes (the caller raises
    it).
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
            f"`{vmap_fix(n_extra, call, name)}` ({sizes})"
        )
        if n_extra > 1:
            msg += f", or `ecliptic.vmap_leading({call}, {n_extra})({name})`"
        msg += "."
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
    return ShapeError(
        msg, layer=subject, argument=name, expected=tuple(expected), actual=shape
    )


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


def dtype_error(
    subject: str,
    param_dtype: Any,
    x_dtype: Any,
    *,
    name: str = "x",
    strict: bool = False,
) -> TypeError:
    """Builds the `TypeError` for an input whose dtype does not match the layer's
    parameters (where JAX would not, or under strict promotion may not, mix them).

    **Arguments:**

    - `subject`: the layer with its configuration.
    - `param_dtype`: the dtype of the layer's parameters.
    - `x_dtype`: the dtype of the input.
    - `name`: the argument's name, shown in backticks.
    - `strict`: whether JAX refused to mix them under strict dtype promotion: then
        the error is also a `jax.dtypes.TypePromotionError`, as JAX's own would be.

    **Returns:** the `TypeError` (the caller raises it).
    """
    p, x = np.dtype(param_dtype).name, np.dtype(x_dtype).name
    cls = DTypePromotionError if strict else TypeError
    return cls(
        f"{subject} has {p} parameters, but got `{name}` of dtype {x}. Cast the "
        f"input with `{name}.astype(jnp.{p})`, or build the layer with "
        f"`dtype=jnp.{x}`."
    )


class StateDictError(ValueError):
    """Raised by [`ecliptic.load_state_dict`][] and [`ecliptic.load_safetensors`][]
    (strict mode) when the incoming tensors do not fit the model: every missing key,
    unexpected key and shape or dtype mismatch is listed at once, and nothing is
    loaded.

    **Attributes:**

    - `missing`: the names the model needs that were not given, a list of `str`.
    - `unexpected`: the given names (after renaming) the model has no place for.
    - `mismatched`: one tuple `(name, expected_shape, expected_dtype, found_shape,
        found_dtype)` per tensor whose shape or dtype differs (shapes are tuples of
        ints, dtypes `numpy.dtype`s).
    """

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], Any, tuple[int, ...], Any]]

    def __init__(
        self,
        message: str,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, Any, Any, Any, Any]] = (),
    ):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = [tuple(m) for m in mismatched]  # pyright: ignore


StateDictError.__module__ = "ecliptic"
