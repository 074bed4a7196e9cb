"""Leaf predicates and the filter / partition / combine trio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


PyTree = Any

_ARRAY_TYPES: tuple[type, ...] = (jax.Array, np.ndarray, np.generic)
_NUMPY_TYPES: tuple[type, ...] = (np.ndarray, np.generic)
_ARRAY_LIKE_TYPES: tuple[type, ...] = (
    jax.Array,
    np.ndarray,
    np.generic,
    bool,
    int,
    float,
    complex,
)
_PY_INEXACT_TYPES: tuple[type, ...] = (float, complex)


def is_array(element: Any) -> bool:
    """Returns `True` if `element` is a JAX array (tracers included), a NumPy array or
    a NumPy scalar; `False` otherwise (Python scalars included).

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    return isinstance(element, _ARRAY_TYPES)


def is_array_like(element: Any) -> bool:
    """Returns `True` if `element` can be turned into a JAX array: anything for which
    [`ecliptic.is_array`][] is `True`, a Python `bool`/`int`/`float`/`complex`, or an
    object with a `__jax_array__` method.

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    return isinstance(element, _ARRAY_LIKE_TYPES) or hasattr(element, "__jax_array__")


def _is_inexact_dtype(dtype: Any) -> bool:
    return bool(np.issubdtype(dtype, np.inexact)) or jnp.issubdtype(dtype, jnp.inexact)


def is_inexact_array(element: Any) -> bool:
    """Returns `True` if `element` is a floating-point or complex array (JAX or NumPy).

    Python floats are *not* inexact arrays: use [`ecliptic.is_inexact_array_like`][].

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    if isinstance(element, _ARRAY_TYPES):
        return _is_inexact_dtype(element.dtype)
    return False


def is_inexact_array_like(element: Any) -> bool:
    """Returns `True` if `element` is a floating-point or complex array, a Python
    `float`/`complex`, or an object whose `__jax_array__()` is inexact.

    **Arguments:**

    - `element`: any Python object.

    **Returns:** a Python `bool`.
    """
    if hasattr(element, "__jax_array__"):
        element = element.__jax_array__()
    if isinstance(element, _ARRAY_TYPES):
        return _is_inexact_dtype(element.dtype)
    return isinstance(element, _PY_INEXACT_TYPES)
