"""Messages of run-time checks: `error_if` and its sites, `backward_nan`, axes."""

from __future__ import annotations

from typing import Any


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
