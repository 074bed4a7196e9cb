"""Messages of mixed precision: `Policy`, `MixedPrecision` and the loss scales."""

from __future__ import annotations

from typing import Any

import numpy as np


def precision_dtype_error(role: str, dtype: Any) -> TypeError:
    """A `Policy` dtype is not a floating-point dtype (or not a dtype at all).

    **Arguments:** `role`: `"param"`, `"compute"` or `"output"`; `dtype`: as given.
    """
    try:
        shown = f"dtype {np.dtype(dtype).name}"
    except TypeError:
        shown = f"{dtype!r}, which is not a dtype"
    return TypeError(
        f"ecliptic.Policy expected `{role}_dtype` to be a floating-point dtype "
        f"(float32, bfloat16, float16 or float64), but got {shown}. Only floating "
        "arrays are cast; integer arrays and PRNG keys keep their dtypes whatever the "
        "policy says."
    )


def precision_policy_string_error(
    text: Any, *, part: str | None = None, repeated: str | None = None
) -> ValueError:
    """`Policy.from_string` could not read its string.

    **Arguments:** `text`: the string; `part`: the comma-separated piece it could not
    read; `repeated`: a key given twice (neither: the string is empty).
    """
    if part is not None:
        problem = f"cannot read {part!r}"
    elif repeated is not None:
        problem = f"{repeated!r} is given twice"
    else:
        problem = "expected a non-empty string"
    return ValueError(
        f"ecliptic.Policy.from_string could not read {text!r}: {problem}. Write "
        "comma-separated `key=dtype` pairs with the keys `params`, `compute` and "
        "`output` (or `p`, `c`, `o`), e.g. "
        "'params=float32,compute=bfloat16,output=float32', or a single dtype for "
        "all three."
    )


def precision_policy_type_error(policy: Any) -> TypeError:
    """`MixedPrecision` got a policy that is neither a `Policy` nor a string."""
    return TypeError(
        "ecliptic.MixedPrecision expected `policy` to be an ecliptic.Policy or a "
        "string such as 'params=float32,compute=bfloat16,output=float32', but got "
        f"{type(policy).__name__}."
    )


def _loss_scale_option_error(name: str, value: Any, requirement: str) -> ValueError:
    return ValueError(
        f"ecliptic.DynamicLossScale expected `{name}` to be {requirement}, but got "
        f"{value!r}."
    )


def loss_scale_period_error(period: Any) -> ValueError:
    """`DynamicLossScale`'s `period` is not an int of at least 1."""
    return _loss_scale_option_error("period", period, "an int of at least 1")


def loss_scale_factor_error(factor: Any) -> ValueError:
    """`DynamicLossScale`'s `factor` is not a number greater than 1."""
    return _loss_scale_option_error("factor", factor, "a number greater than 1")


def loss_scale_min_scale_error(min_scale: Any) -> ValueError:
    """`DynamicLossScale`'s `min_scale` is not a positive number."""
    return _loss_scale_option_error("min_scale", min_scale, "a positive number")
