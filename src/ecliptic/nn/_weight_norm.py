"""`WeightNorm`: reparametrise a layer's weight as magnitude `g` times direction."""

from __future__ import annotations

from typing import Generic, TypeVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._messages import weight_norm_axis_error
from .._module import field, Module
from ._misc import matrix_weight, with_attr


_Layer = TypeVar("_Layer")


def _norm_except_axis(v: Array, axis: int | None) -> Array:
    """The 2-norm of `v` over every axis except `axis` (all axes if `None`), with
    the reduced axes kept as size 1."""
    if axis is None:
        axes = tuple(range(v.ndim))
    else:
        axis = axis % v.ndim
        axes = tuple(i for i in range(v.ndim) if i != axis)
    return jnp.sqrt(jnp.sum(jnp.real(v * jnp.conj(v)), axis=axes, keepdims=True))


class WeightNorm(Module, Generic[_Layer]):
    r"""Wraps a layer so that its weight is $g \, v / \lVert v \rVert$: the direction
    `v` (the layer's own weight) and the magnitude `g` are learnt separately. The norm
    is taken over every axis except `axis`; `g` starts as that norm (shape `(out, 1)`
    for a `Linear`). Two `WeightNorm`s with equal contents compare equal.
    """

    layer: _Layer
    g: Array
    weight_name: str = field(static=True)
    axis: int | None = field(static=True)

    def __init__(
        self, layer: _Layer, weight_name: str = "weight", axis: int | None = 0
    ):
        """**Arguments:**

        - `layer`: the layer to wrap, e.g. an [`ecliptic.nn.Linear`][].
        - `weight_name`: the name of its weight array.
        - `axis`: the axis kept when taking the norm (`0`: one norm per output
            feature); `None` takes one norm over all axes.
        """
        subject = f"ecliptic.nn.WeightNorm(weight_name={weight_name!r}, axis={axis})"
        weight = matrix_weight(layer, weight_name, subject, 1)
        if axis is not None and not -weight.ndim <= axis < weight.ndim:
            raise weight_norm_axis_error(subject, weight, axis)
        self.layer = layer
        self.weight_name = weight_name
        self.axis = axis
        self.g = _norm_except_axis(weight, axis)

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: the wrapped layer's input (whatever shape it takes).
        - `key`: ignored.

        **Returns:** `layer(x)` computed with the weight `g * v / norm(v)`.
        """
        with jax.named_scope("ecliptic.nn.WeightNorm"):
            v = getattr(self.layer, self.weight_name)
            weight = v * self.g / _norm_except_axis(v, self.axis)
            return with_attr(self.layer, self.weight_name, weight)(x)  # pyright: ignore
