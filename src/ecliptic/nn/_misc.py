"""What the `nn` layer files share: default and compute dtypes, the default
initialiser, argument checks, and helpers for wrappers that swap a layer's weight.

Every `nn` family file may import this module; it imports no `nn` sibling. A helper
that two or more layer files need lives here, not in one layer's file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._filters import is_array
from .._messages import (
    features_type_error,
    features_value_error,
    initialiser_output_error,
    initialiser_type_error,
    ntuple_length_error,
    ntuple_type_error,
    weight_not_child_error,
    weight_rank_error,
    window_too_small_error,
)


# --- dtypes ---------------------------------------------------------------------


def default_floating_dtype() -> Any:
    """`float64` when JAX runs in 64-bit mode, else `float32`."""
    return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32


def param_dtype(dtype: Any) -> Any:
    """The dtype of a layer's parameters: `dtype`, or `default_floating_dtype()`
    when `dtype` is `None`."""
    return default_floating_dtype() if dtype is None else dtype


def compute_dtype(dtype: Any) -> Any:
    """The dtype to compute statistics in: `dtype` promoted to at least float32."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(dtype, jnp.float32)


# --- initialisation ---------------------------------------------------------------


def default_init(
    key: PRNGKeyArray, shape: tuple[int, ...], dtype: Any, lim: float
) -> Array:
    """Draws `U(-lim, lim)` of `shape` and `dtype` (PyTorch's default for layers).

    Complex dtypes draw the real and imaginary parts independently, from the two
    halves of `key`. The draws are the same as Equinox's for the same key.

    **Arguments:**

    - `key`: a PRNG key.
    - `shape`: the shape to draw.
    - `dtype`: a floating or complex dtype.
    - `lim`: the half-width of the interval.

    **Returns:** an array of `shape` and `dtype`.
    """
    if jnp.issubdtype(dtype, jnp.complexfloating):
        real = jnp.finfo(dtype).dtype
        rkey, ikey = jr.split(key, 2)
        re = jr.uniform(rkey, shape, real, minval=-lim, maxval=lim)
        im = jr.uniform(ikey, shape, real, minval=-lim, maxval=lim)
        return re.astype(dtype) + 1j * im.astype(dtype)
    return jr.uniform(key, shape, dtype, minval=-lim, maxval=lim)


# --- argument checks --------------------------------------------------------------


def owner_name(layer: Any) -> str:
    """`"ecliptic.nn.<class name>"`: the subject of a constructor's messages."""
    return f"ecliptic.nn.{type(layer).__name__}"


def check_features(owner: str, name: str, value: Any) -> int:
    """Validates an `int | "scalar"` size and returns the stored size.

    **Arguments:**

    - `owner`: the layer named in the message, e.g. `"ecliptic.nn.Linear"`.
    - `name`: the argument's name, e.g. `"in_features"`.
    - `value`: the argument: a non-negative int or the string `"scalar"`.

    **Returns:** `value`, or `1` for `"scalar"`.
    """
    if value == "scalar" and isinstance(value, str):
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise features_type_error(owner, name, value)
    if value < 0:
        raise features_value_error(owner, name, value)
    return value


def ntuple(owner: str, name: str, value: Any, n: int) -> tuple[int, ...]:
    """One int per spatial axis: `3 -> (3, 3)` for `n=2`.

    **Arguments:**

    - `owner`: the layer named in the message.
    - `name`: the argument's name, e.g. `"kernel_size"`.
    - `value`: an int, or a sequence of `n` ints.
    - `n`: the number of spatial axes.

    **Returns:** a tuple of `n` ints.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ntuple_length_error(owner, name, value, n)
        return tuple(int(v) for v in value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    raise ntuple_type_error(owner, name, value, n)


def check_windows_fit(
    subject: Callable[[], str],
    shape: tuple[int, ...],
    pads: Sequence[tuple[int, int]],
    windows: Sequence[int],
    *,
    convolution: bool,
) -> None:
    """Each spatial axis of an input `(channels, *spatial)`, once padded, must hold
    at least one window (a kernel of a convolution or pooling layer).

    **Arguments:**

    - `subject`: gives the layer's name for the message (only called on error).
    - `shape`: the input's shape, channels first.
    - `pads`: one `(low, high)` padding per spatial axis.
    - `windows`: the window size on each spatial axis.
    - `convolution`: whether the layer is a convolution (else a pooling layer),
        which picks the wording of the message.

    **Returns:** `None`; raises `ValueError` for the first axis that is too small.
    """
    for i, (size, (lo, hi), k) in enumerate(zip(shape[1:], pads, windows, strict=True)):
        if size + lo + hi < k:
            raise window_too_small_error(
                subject(), tuple(shape), i, size + lo + hi, k, convolution=convolution
            )


# --- wrappers that substitute a weight (SpectralNorm, WeightNorm) -----------------


def children(node: Any) -> tuple[list[tuple[Any, Any]], Any]:
    """One level of `node`: its `(key, child)` pairs and the treedef to rebuild it.

    A leaf comes back as the single pair `(None, node)`.
    """
    pairs, treedef = jtu.tree_flatten_with_path(node, is_leaf=lambda y: y is not node)
    return [(path[0] if path else None, child) for path, child in pairs], treedef


def with_attr(node: Any, name: str, value: Any) -> Any:
    """A copy of the pytree node `node` whose child attribute `name` is `value`.

    Used by wrappers (`SpectralNorm`, `WeightNorm`) that substitute a parameter of
    the layer they wrap. Raises `ValueError` if `name` is not a child of `node`
    (e.g. a static field).

    **Arguments:**

    - `node`: a pytree node, usually a layer.
    - `name`: the name of one of its child attributes.
    - `value`: the new child.

    **Returns:** a node of the same type with `name` replaced.
    """
    pairs, treedef = children(node)
    new, found = [], False
    for key, child in pairs:
        if isinstance(key, jtu.GetAttrKey) and key.name == name:
            new.append(value)
            found = True
        else:
            new.append(child)
    if not found:
        names = [k.name for k, _ in pairs if isinstance(k, jtu.GetAttrKey)]
        raise weight_not_child_error(node, name, names)
    return jtu.tree_unflatten(treedef, new)


def matrix_weight(layer: Any, weight_name: str, subject: str, min_ndim: int) -> Array:
    """`getattr(layer, weight_name)`, checked to be an array of rank >= `min_ndim`.

    **Arguments:**

    - `layer`: the wrapped layer.
    - `weight_name`: the name of its weight attribute.
    - `subject`: the wrapper named in the message.
    - `min_ndim`: the fewest axes the weight may have.

    **Returns:** the weight.
    """
    weight = getattr(layer, weight_name, None)
    if not hasattr(weight, "ndim") or weight.ndim < min_ndim:  # pyright: ignore
        raise weight_rank_error(subject, weight_name, min_ndim, weight)
    return weight  # pyright: ignore


# `init(key, shape, dtype) -> array`, as the functions of `jax.nn.initializers`.
Initialiser = Callable[[PRNGKeyArray, tuple[int, ...], Any], Array]


def initialise(
    owner: str,
    name: str,
    init: Initialiser | None,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    dtype: Any,
    default: Initialiser,
) -> Array:
    """Draws one parameter: `default(key, shape, dtype)` when `init` is `None`, else
    `init(key, shape, dtype)`, checked to be an array of that shape and dtype.

    **Arguments:**

    - `owner`: the layer (or function) named in an error, e.g.
        `"ecliptic.nn.Linear"`.
    - `name`: the argument that gave `init`, e.g. `"weight_init"`.
    - `init`: the user's initialiser, or `None`.
    - `key`: the parameter's PRNG key.
    - `shape`: the parameter's shape.
    - `dtype`: the parameter's dtype.
    - `default`: the layer's own draw, used (unchecked) when `init` is `None`.

    **Returns:** the parameter.
    """
    if init is None:
        return default(key, shape, dtype)
    if not callable(init):
        raise initialiser_type_error(owner, name, init)
    value = init(key, shape, dtype)
    if (
        not is_array(value)
        or tuple(value.shape) != tuple(shape)
        or jax.dtypes.canonicalize_dtype(value.dtype)
        != jax.dtypes.canonicalize_dtype(dtype)
    ):
        raise initialiser_output_error(owner, name, tuple(shape), dtype, value)
    if isinstance(value, (np.ndarray, np.generic)):
        value = jnp.asarray(value)
    return value


def path_rule(where: Any) -> Callable[[str, Any], bool] | None:
    """A rule that selects parts of a model by key path, as a predicate
    `(path, x) -> bool`, where `path` is the key path as `jax.tree_util.keystr` prints
    it (`".layers[0].weight"`).

    **Arguments:**

    - `where`: a regex (a string or a compiled pattern), searched in the path, or a
        callable `(path, x) -> bool`.

    **Returns:** the predicate, or `None` when `where` is none of these (the caller
    raises its own error). A string that is not a valid regex raises `re.error`.
    """
    if isinstance(where, str):
        where = re.compile(where)
    if isinstance(where, re.Pattern):
        pattern = where
        return lambda path, x: pattern.search(path) is not None
    if callable(where):
        rule = where
        return lambda path, x: bool(rule(path, x))
    return None
