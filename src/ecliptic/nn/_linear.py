"""`Linear` and `Identity`."""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, TypeVar

import jax
import jax.numpy as jnp
import jax.random as jr
from jax.dtypes import TypePromotionError
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe, dtype_error
from .._module import field, Module
from ._misc import check_features, default_init, initialise, Initialiser, param_dtype


_T = TypeVar("_T")


class Linear(Module):
    """Performs a linear transformation `weight @ x + bias` on one example."""

    weight: Array
    bias: Array | None
    in_features: int | Literal["scalar"] = field(static=True)
    out_features: int | Literal["scalar"] = field(static=True)
    use_bias: bool = field(static=True)

    def __init__(
        self,
        in_features: int | Literal["scalar"],
        out_features: int | Literal["scalar"],
        use_bias: bool = True,
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `in_features`: the input size: the input is a vector of shape
            `(in_features,)`, or a scalar of shape `()` if this is `"scalar"`.
        - `out_features`: the output size: the output is a vector of shape
            `(out_features,)`, or a scalar of shape `()` if this is `"scalar"`.
        - `use_bias`: whether to add a bias.
        - `dtype`: the dtype of the weight and bias. Defaults to `float32`, or
            `float64` when JAX runs in 64-bit mode.
        - `weight_init`: how to draw the weight instead of the default: an
            initialiser `init(key, shape, dtype) -> array`, such as those of
            `jax.nn.initializers`. It is called with the weight's half of `key`
            (the one the default would use), the shape `(out_features,
            in_features)` and the dtype. (Keyword only.)
        - `bias_init`: the same for the bias, called with the shape
            `(out_features,)`, e.g. `jax.nn.initializers.zeros`. Unused when
            `use_bias=False`. (Keyword only.)
        - `key`: a `jax.random.PRNGKey` for the initialisation. (Keyword only.)

        The weight has shape `(out_features, in_features)` and the bias
        `(out_features,)` (a `"scalar"` size is stored as 1). By default both are
        drawn from `U(-1/sqrt(in_features), 1/sqrt(in_features))`, as in Equinox
        and PyTorch.

        **Fan axes.** `jax.nn.initializers` assume an `(in, out)` matrix: their
        defaults `in_axis=-2, out_axis=-1` read this `(out, in)` weight the wrong
        way round, so that `lecun_normal()` would scale by `1/out_features` and
        `he_normal()` likewise. Name the axes:
        `jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)` (the same for
        `he_*`, `glorot_*` and `variance_scaling`). Initialisers without fans
        (`normal`, `uniform`, `truncated_normal`, `zeros`, `constant`) need
        nothing.
        """
        n_in = check_features("ecliptic.nn.Linear", "in_features", in_features)
        n_out = check_features("ecliptic.nn.Linear", "out_features", out_features)
        dtype = param_dtype(dtype)
        wkey, bkey = jr.split(key, 2)
        lim = 1.0 if n_in == 0 else 1 / math.sqrt(n_in)
        default = functools.partial(default_init, lim=lim)
        owner = "ecliptic.nn.Linear"
        self.weight = initialise(
            owner, "weight_init", weight_init, wkey, (n_out, n_in), dtype, default
        )
        self.bias = (
            initialise(owner, "bias_init", bias_init, bkey, (n_out,), dtype, default)
            if use_bias
            else None
        )
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias

    @jax.named_scope("ecliptic.nn.Linear")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(in_features,)` (or `()` if
            `in_features="scalar"`). Batch with `jax.vmap(linear)(x)`.
        - `key`: ignored; accepted for a uniform layer API. (Keyword only.)

        **Returns:** an array of shape `(out_features,)` (or `()` if
        `out_features="scalar"`).
        """
        del key
        if not isinstance(x, jax.Array):
            x = jnp.asarray(x)
        if self.in_features == "scalar":
            check_shape(self._subject, x, ())
            x = jnp.reshape(x, (1,))
        else:
            check_shape(
                self._subject,
                x,
                (self.in_features,),
                axis_names=(f"in_features={self.in_features}",),
            )
        try:
            y = self.weight @ x
        except TypePromotionError as e:  # strict promotion and mixed dtypes
            raise dtype_error(
                self._subject(), self.weight.dtype, x.dtype, strict=True
            ) from e
        if self.bias is not None:
            y = y + self.bias
        if self.out_features == "scalar":
            y = jnp.reshape(y, ())
        return y

    def _subject(self) -> str:
        return describe(
            self, in_features=self.in_features, out_features=self.out_features
        )


class Identity(Module):
    """Returns its input unchanged; useful as a placeholder for another layer."""

    def __init__(self, *args: Any, **kwargs: Any):
        """Accepts and ignores any `*args` and `**kwargs`."""

    @jax.named_scope("ecliptic.nn.Identity")
    def __call__(self, x: _T, *, key: PRNGKeyArray | None = None) -> _T:
        """**Arguments:**

        - `x`: anything.
        - `key`: ignored. (Keyword only.)

        **Returns:** `x`, unchanged.
        """
        return x
