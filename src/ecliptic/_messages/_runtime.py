"""Messages of run-time checks (`error_if` and its sites, `backward_nan`, axes) and of
`ecliptic.debug` (`store_dce`, trace counts)."""

from __future__ import annotations

from typing import Any

import jax
import jax.tree_util as jtu


def _backward_nan_label(name: str | None) -> str:
    return "backward_nan" if name is None else f"backward_nan {name!r}"


def _indent_after_first(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


def backward_nan_report(name: str | None, rows: list[tuple]) -> str:
    """What `ecliptic.debug.backward_nan` prints on the backward pass: each leaf by
    key path, with its primal and cotangent, and the leaves with a NaN cotangent.

    **Arguments:**

    - `name`: the label given to `backward_nan`, or `None`.
    - `rows`: one `(path, description, kind, primal, cotangent, has_nan)` per leaf:
        `path` as `jax.tree_util.keystr` gives it (`""` for the root),
        `description` such as `float32[2, 3]` (or the `repr` of a non-array leaf),
        `kind` one of `"float"`, `"array"` (not differentiable), `"opaque"` (an
        array whose values are not printed, such as PRNG keys) and `"static"` (not
        an array), `primal` and `cotangent` the printed values (`None` where
        there are none; for a `"float"` leaf a `None` cotangent is a zero that
        nothing flowed back to), `has_nan` whether the cotangent holds a NaN.

    **Returns:** the text, several lines.
    """
    lines = [f"{_backward_nan_label(name)}: primal and cotangent of each leaf"]
    nan_paths = []
    for path, description, kind, primal, cotangent, has_nan in rows:
        where = path or "(root)"
        flag = "  <-- NaN in the cotangent" if has_nan else ""
        if kind == "static":
            lines.append(f"  {where}: {description} (not an array, so not traced)")
            continue
        if kind == "opaque":
            lines.append(f"  {where}: {description} (values not printed)")
            continue
        lines.append(f"  {where}: {description}{flag}")
        lines.append("       primal=" + _indent_after_first(primal, 14))
        if kind == "array":
            shown = "none (not a floating-point array)"
        elif cotangent is None:
            shown = "zero (nothing flowed back to this leaf)"
        else:
            shown = _indent_after_first(cotangent, 14)
        lines.append("    cotangent=" + shown)
        if has_nan:
            nan_paths.append(where)
    if nan_paths:
        lines.append("NaN in the cotangent of: " + ", ".join(nan_paths))
    return "\n".join(lines)


def backward_nan_nan_message(name: str | None, path: str) -> str:
    """The error of `ecliptic.debug.backward_nan(..., terminate=True)` when the
    cotangent of the leaf at `path` (`jax.tree_util.keystr`, `""` for the root)
    holds a NaN. `name` is the label given to `backward_nan`, or `None`.

    **Returns:** the message.
    """
    where = f"`{path}`" if path else "the value"
    return (
        f"{_backward_nan_label(name)}: NaN in the cotangent of {where} (the first "
        "such leaf; the report printed above lists every leaf). Fix: find the "
        "operation after this point whose derivative is NaN, e.g. sqrt or log at "
        "0, or a division by zero."
    )


# --- errors-and-edges ---


def error_if_no_array_error(x: Any) -> ValueError:
    """The error of `error_if` when its predicate is known only at run time but `x`
    (the PyTree the check is attached to) holds no array.

    **Arguments:**

    - `x`: the user's `x`.

    **Returns:** the `ValueError` to raise.
    """
    return ValueError(
        "error_if expected `x` to contain at least one array (the check is attached "
        "to it, because the predicate is only known at run time), but got a PyTree "
        f"with no arrays: {x!r}. Fix: pass an array that the following computation "
        "uses, e.g. `x = error_if(x, ...)`, or a predicate that is a Python bool."
    )


def check_site(stack: tuple[tuple[str, int, str], ...]) -> str:
    """`"error_if called at file.py:12"`: where a check was made, in one line.

    **Arguments:**

    - `stack`: the user's frames when the check was made, as `(filename, line,
        function name)`, outermost first; may be empty.

    **Returns:** the text (`"location unknown"` for an empty stack).
    """
    if not stack:
        return "location unknown"
    file, line, _ = stack[-1]
    return f"error_if called at {file}:{line}"


def failed_check_stack_message(
    msg: str, stack: tuple[tuple[str, int, str], ...]
) -> str:
    """The text of the clean `EquinoxRuntimeError` for a failed `error_if` check,
    with the user's frames where the check was made, as a traceback shows them.

    **Arguments:**

    - `msg`: the user's message.
    - `stack`: as for `check_site`; outermost first, the `error_if` call last.

    **Returns:** the message, where the check was made and how to debug it.
    """
    import linecache

    if stack:
        lines = [
            "An `error_if` check failed while the JAX program ran. It was made here",
            "(your code when the program was traced, most recent call last):",
        ]
        for file, line, name in stack:
            lines.append(f'  File "{file}", line {line}, in {name}')
            source = linecache.getline(file, line).strip()
            if source:
                lines.append(f"    {source}")
    else:
        lines = [
            "An `error_if` check failed while the JAX program ran (location unknown)."
        ]
    return (
        f"{msg}\n\n-------------------\n"
        + "\n".join(lines)
        + "\nTo debug: set ECLIPTIC_ON_ERROR=breakpoint (or EQX_ON_ERROR=breakpoint) "
        "to open a\ndebugger at the failure, or JAX_DISABLE_JIT=1 to run the program "
        "eagerly."
    )


def mapped_axis_error(where: str, path: str, shape: Any, axis: int) -> ValueError:
    """The error of `filter_vmap`/`filter_pmap` when an array leaf has no axis
    `axis` to map over (e.g. a 0-d array mapped over axis 0).

    **Arguments:**

    - `where`: the transformation, e.g. `"filter_pmap"`.
    - `path`: the leaf's key path among the arguments (`jax.tree_util.keystr`).
    - `shape`: the leaf's shape.
    - `axis`: the axis `in_axes` asked to map over.

    **Returns:** the `ValueError` to raise.
    """
    shape = tuple(shape)
    need = axis + 1 if axis >= 0 else -axis
    return ValueError(
        f"ecliptic.{where} was asked to map over axis {axis} of args{path}, an array "
        f"of shape {shape} (rank {len(shape)}): mapping over axis {axis} needs an "
        f"array of rank at least {need}, with that axis as long as the mapped size. "
        "Fix: give it that axis (e.g. `x[None]` for one device or batch element), "
        "or broadcast it instead with `in_axes=None` for that argument."
    )


def on_error_env_error(var: str, value: str) -> ValueError:
    """The error for the environment variable `var` (`ECLIPTIC_ON_ERROR` or
    `EQX_ON_ERROR`) set to `value`, which is no mode of `error_if`."""
    return ValueError(
        f"Environment variable {var} must be one of 'raise', 'breakpoint', "
        f"'nan' or 'off', but got {value!r}. Fix: set e.g. {var}=raise."
    )


def breakpoint_mode_message() -> str:
    """The warning, at import, that failed `error_if` checks open a debugger.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        "ECLIPTIC_ON_ERROR/EQX_ON_ERROR=breakpoint is set: failed `error_if` checks "
        "open a debugger. This slows programs down; use it for debugging only."
    )


def error_if_nan_at_trace_message(msg: str) -> str:
    """The warning of `error_if(..., on_error="nan")` when the predicate is already
    true while tracing (`msg`: the user's message).

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"error_if: the predicate is True while tracing, so NaNs replace the "
        f"value now (on_error='nan'). Message: {msg}"
    )


def on_error_value_error(on_error: Any) -> ValueError:
    """The error for `error_if(..., on_error=...)` given no mode of `error_if`."""
    return ValueError(
        "error_if expected `on_error` to be one of 'default', 'raise', "
        f"'breakpoint', 'nan' or 'off', but got {on_error!r}. Fix: pass e.g. "
        "on_error='raise', or leave it out to use ECLIPTIC_ON_ERROR."
    )


def error_if_message_type_error(m: Any) -> TypeError:
    """The error for an `error_if` message that is not a `str`."""
    return TypeError(
        f"error_if expected each message to be a str, but got "
        f"{type(m).__name__} {m!r}. Fix: pass the message as a string."
    )


# ---------------------------------------------------------------------------------
# `ecliptic.debug`: dead-code elimination and trace counts.
# ---------------------------------------------------------------------------------


def store_dce_outside_jit_error() -> RuntimeError:
    """The error for `ecliptic.debug.store_dce` called outside of JIT."""
    return RuntimeError(
        "ecliptic.debug.store_dce must be called inside a jitted function, but it "
        "was called outside of JIT (nothing is dead-code eliminated there). Fix: "
        "call it inside the function you pass to `filter_jit` / `jax.jit`."
    )


def inspect_dce_inside_jit_error() -> RuntimeError:
    """The error for `ecliptic.debug.inspect_dce` called while tracing."""
    return RuntimeError(
        "ecliptic.debug.inspect_dce must be called outside of JIT, after the "
        "jitted function has run, but it was called while tracing. Fix: call it "
        "after the jitted call returns."
    )


def max_traces_type_error(max_traces: Any) -> TypeError:
    """The error for `assert_max_traces(max_traces=...)` given neither an `int` nor
    `None`."""
    return TypeError(
        "assert_max_traces expected `max_traces` to be an int or None, but got "
        f"{type(max_traces).__name__} {max_traces!r}. Fix: e.g. max_traces=1."
    )


def not_trace_counted_error(fn: Any) -> ValueError:
    """The error for `get_num_traces` given a function that `assert_max_traces` did
    not wrap."""
    return ValueError(
        f"get_num_traces expected a function wrapped with "
        f"`ecliptic.debug.assert_max_traces`, but got {fn!r}, which is not. Fix: "
        "wrap it, e.g. `assert_max_traces(f, max_traces=None)`."
    )


def _describe_trace_summary(summary: tuple) -> str:
    treedef, leaves = summary
    shown = [
        f"{x.dtype}{list(x.shape)}" if isinstance(x, jax.ShapeDtypeStruct) else repr(x)
        for x in leaves
    ]
    return str(jtu.tree_unflatten(treedef, shown)).replace("'", "")


def too_many_traces_message(
    fn: Any,
    max_traces: int | None,
    count: int,
    argument: str | None,
    summary: tuple | None,
    previous: list[tuple],
) -> str:
    """The message of the `TooManyTracesError` of `assert_max_traces`.

    **Arguments:**

    - `fn`: the wrapped function.
    - `max_traces`, `count`: the limit, and the number of traces so far.
    - `argument`: the first argument whose summary differs from all its earlier ones,
        or `None` if none does.
    - `summary`, `previous`: that argument's summary now and its earlier ones, each a
        `(treedef, leaves)` with a `jax.ShapeDtypeStruct` for each array leaf
        (ignored when `argument` is `None`).

    **Returns:** the message.
    """
    head = (
        f"{fn} may be traced at most {max_traces} times, but it has "
        f"now been traced {count} times."
    )
    if argument is None or summary is None:
        return (
            f"{head} No single argument changed shape, dtype or static value, so "
            "the retrace came from elsewhere (e.g. a new jit wrapper, changed jit "
            "options, or `clear_caches`). Fix: reuse one jitted function."
        )
    before = (
        "\n".join("  " + _describe_trace_summary(p) for p in previous) or "  (none)"
    )
    return (
        f"{head} The argument '{argument}' caused the retrace: it is now\n  "
        f"{_describe_trace_summary(summary)}\nand previously was\n{before}\nFix: keep "
        "its shapes, dtypes and non-array values the same between calls "
        "(non-array values are static under filter_jit), or raise "
        "`max_traces`."
    )
