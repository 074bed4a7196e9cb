"""`breakpoint_if`: a debugger breakpoint inside traced code, on a condition."""

from typing import Any

import jax
import jax.lax as lax
from jaxtyping import ArrayLike, Bool

from .._unvmap import unvmap_any


def breakpoint_if(pred: Bool[ArrayLike, "..."], **kwargs: Any) -> Any:
    """As `jax.debug.breakpoint`, but only opens the debugger if `pred` is `True`.

    **Arguments:**

    - `pred`: a boolean or boolean array of any shape `(...)`; the breakpoint opens if
        any element is `True` (under `vmap`: in any batch element).
    - `**kwargs`: passed to `jax.debug.breakpoint` (e.g. `num_frames=`, `token=`).

    **Returns:** whatever `jax.debug.breakpoint` returns (`token`, or `None`).
    """
    token = kwargs.get("token", None)
    fire = unvmap_any(pred)
    return lax.cond(fire, lambda: jax.debug.breakpoint(**kwargs), lambda: token)
