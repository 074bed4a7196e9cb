"""Messages of the conveniences: `vmap_leading` and `tree_summary`."""

from __future__ import annotations

from typing import Any

from .._checks import format_shape, ShapeError


def leading_axes_spec_error(n: Any, example_shape: Any) -> ValueError:
    """`vmap_leading` got neither or both of `n` and `example_shape`, or a bad `n`."""
    if n is None and example_shape is None:
        got = "neither"
    elif n is not None and example_shape is not None:
        got = f"both (n={n!r}, example_shape={example_shape!r})"
    else:
        got = f"n={n!r}"
    return ValueError(
        "ecliptic.vmap_leading expected either `n`, the number of leading axes to map "
        "over (an int of at least 0), or `example_shape`, the shape of one example, "
        f"but got {got}. Write `vmap_leading(layer, 2)` or "
        "`vmap_leading(layer, example_shape=(64,))`."
    )


def leading_axes_count_error(n: int, shape: tuple[int, ...]) -> ShapeError:
    """The first array has fewer axes than the `n` leading axes to map over."""
    return ShapeError(
        f"ecliptic.vmap_leading(..., {n}) expected the first array argument to have "
        f"at least {n} axes to map over, but got shape {format_shape(shape)}. Pass a "
        "smaller `n`, or `example_shape=` to count the axes from the input.",
        layer="ecliptic.vmap_leading",
        argument="the first array argument",
        actual=shape,
    )


def leading_axes_example_error(
    shape: tuple[int, ...], example: tuple[int | None, ...]
) -> ShapeError:
    """The first array's trailing axes do not match `example_shape`."""
    return ShapeError(
        f"ecliptic.vmap_leading(..., example_shape={format_shape(example)}) "
        f"expected the first array argument to end in an example of shape "
        f"{format_shape(example)}, with any leading axes before it, but got shape "
        f"{format_shape(shape)}. Check the order of the axes (examples last), or "
        "pass `n` instead.",
        layer="ecliptic.vmap_leading",
        argument="the first array argument",
        expected=(None,) * max(len(shape) - len(example), 0) + example,
        actual=shape,
    )


def leading_axes_no_array_error(
    n: int | None, example: tuple[int | None, ...] | None
) -> ValueError:
    """No positional argument holds an array to map over."""
    how = f"{n}" if example is None else f"example_shape={format_shape(example)}"
    return ValueError(
        f"ecliptic.vmap_leading(..., {how}) maps over the leading axes of the arrays "
        "among the positional arguments, but there is none. Pass the input "
        "positionally (keyword arguments are not mapped)."
    )


def summary_filter_error(filter_spec: Any, error: Exception) -> ValueError:
    """`tree_summary`'s `trainable` is neither a callable nor a prefix of the tree."""
    return ValueError(
        "ecliptic.tree_summary expected `trainable` to be a callable (such as "
        "`ecliptic.is_inexact_array`) or a PyTree of bools shaped like the model, but "
        f"got {type(filter_spec).__name__}, which does not match the model ({error}). "
        "Pass the same filter spec you give to `ecliptic.partition`."
    )
