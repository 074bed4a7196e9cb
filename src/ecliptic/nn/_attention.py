"""`MultiheadAttention`: scaled dot-product attention over `num_heads` heads."""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe, warn_deprecated
from .._messages import (
    attention_hint,
    attention_mask_shape_error,
    process_heads_shape_error,
)
from .._module import field, Module
from ._dropout import Dropout
from ._linear import Linear
from ._misc import compute_dtype, param_dtype


def dot_product_attention_weights(
    query: Array, key: Array, mask: Array | None = None
) -> Array:
    """Softmax of `query @ key.T / sqrt(qk_size)`, computed in at least float32 and
    cast back; logits where `mask` is False are set to the dtype's minimum.

    **Arguments:**

    - `query`: shape `(q_seq, qk_size)`.
    - `key`: shape `(kv_seq, qk_size)`.
    - `mask`: optional boolean array of shape `(q_seq, kv_seq)`; True = attend.

    **Returns:** the attention weights, shape `(q_seq, kv_seq)`, `query`'s dtype.
    """
    query = query / math.sqrt(query.shape[-1])
    logits = jnp.einsum("sd,Sd->sS", query, key)
    if mask is not None:
        if mask.shape != logits.shape:
            raise attention_mask_shape_error(logits.shape, mask.shape)
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    dtype = compute_dtype(logits.dtype)
    return jax.nn.softmax(logits.astype(dtype)).astype(logits.dtype)


def dot_product_attention(
    query: Array,
    key_: Array,
    value: Array,
    mask: Array | None = None,
    dropout: Dropout | None = None,
    *,
    key: PRNGKeyArray | None = None,
    inference: bool | None = None,
) -> Array:
    """Scaled dot-product attention of one head (as in Equinox's private helper).

    **Arguments:**

    - `query`: shape `(q_seq, qk_size)`.
    - `key_`: shape `(kv_seq, qk_size)`.
    - `value`: shape `(kv_seq, v_size)`.
    - `mask`: optional boolean array of shape `(q_seq, kv_seq)`; True = attend.
    - `dropout`: optional [`ecliptic.nn.Dropout`][] applied to the weights.
    - `key`: PRNG key for the dropout.
    - `inference`: passed to the dropout.

    **Returns:** shape `(q_seq, v_size)`.
    """
    weights = dot_product_attention_weights(query, key_, mask)
    if dropout is not None:
        weights = dropout(weights, key=key, inference=inference)
    return jnp.einsum("sS,Sd->sd", weights, value)


class MultiheadAttention(Module):
    r"""Multi-head scaled dot-product attention,
    $\sum_i \mathrm{softmax}(Q W^Q_i (K W^K_i)^T / \sqrt{d_{qk}}) V W^V_i W^O_i$.

    Projections `query_proj` `(num_heads*qk_size, query_size)`, `key_proj`,
    `value_proj` `(num_heads*vo_size, value_size)` and `output_proj`
    `(output_size, num_heads*vo_size)` are [`ecliptic.nn.Linear`][] layers, without
    biases by default (as in Equinox). Dropout acts on the attention weights.
    """

    query_proj: Linear
    key_proj: Linear
    value_proj: Linear
    output_proj: Linear
    dropout: Dropout
    num_heads: int = field(static=True)
    query_size: int = field(static=True)
    key_size: int = field(static=True)
    value_size: int = field(static=True)
    output_size: int = field(static=True)
    qk_size: int = field(static=True)
    vo_size: int = field(static=True)
    use_query_bias: bool = field(static=True)
    use_key_bias: bool = field(static=True)
    use_value_bias: bool = field(static=True)
    use_output_bias: bool = field(static=True)

    def __init__(
        self,
        num_heads: int,
        query_size: int,
        key_size: int | None = None,
        value_size: int | None = None,
        output_size: int | None = None,
        qk_size: int | None = None,
        vo_size: int | None = None,
        use_query_bias: bool = False,
        use_key_bias: bool = False,
        use_value_bias: bool = False,
        use_output_bias: bool = False,
        dropout_p: float = 0.0,
        inference: bool = False,
        dtype: Any = None,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `num_heads`: the number of heads.
        - `query_size`: channels of the query. `key_size`, `value_size` and
            `output_size` default to it.
        - `key_size`, `value_size`: channels of the key and value inputs.
        - `output_size`: channels of the output.
        - `qk_size`, `vo_size`: per-head channels of query/key and value/output;
            default `query_size // num_heads`.
        - `use_query_bias`, `use_key_bias`, `use_value_bias`, `use_output_bias`:
            biases of the four projections (all off by default).
        - `dropout_p`: dropout probability on the attention weights.
        - `inference`: disables dropout; toggle with
            [`ecliptic.nn.inference_mode`][] or the call argument.
        - `dtype`: dtype of the parameters; defaults to float32 (float64 in 64-bit
            mode).
        - `key`: PRNG key for the initialisation.
        """
        dtype = param_dtype(dtype)
        qkey, kkey, vkey, okey = jr.split(key, 4)
        key_size = query_size if key_size is None else key_size
        value_size = query_size if value_size is None else value_size
        output_size = query_size if output_size is None else output_size
        qk_size = query_size // num_heads if qk_size is None else qk_size
        vo_size = query_size // num_heads if vo_size is None else vo_size
        qk, vo = num_heads * qk_size, num_heads * vo_size
        self.query_proj = Linear(
            query_size, qk, use_bias=use_query_bias, dtype=dtype, key=qkey
        )
        self.key_proj = Linear(
            key_size, qk, use_bias=use_key_bias, dtype=dtype, key=kkey
        )
        self.value_proj = Linear(
            value_size, vo, use_bias=use_value_bias, dtype=dtype, key=vkey
        )
        self.output_proj = Linear(
            vo, output_size, use_bias=use_output_bias, dtype=dtype, key=okey
        )
        self.dropout = Dropout(dropout_p, inference=inference)
        self.num_heads = num_heads
        self.query_size = query_size
        self.key_size = key_size
        self.value_size = value_size
        self.output_size = output_size
        self.qk_size = qk_size
        self.vo_size = vo_size
        self.use_query_bias = use_query_bias
        self.use_key_bias = use_key_bias
        self.use_value_bias = use_value_bias
        self.use_output_bias = use_output_bias

    def _subject(self) -> str:
        return describe(
            self,
            num_heads=self.num_heads,
            query_size=self.query_size,
            key_size=self.key_size,
            value_size=self.value_size,
        )

    def _check(self, query: Array, key_: Array, value: Array, mask: Any) -> None:
        subject = self._subject()
        check = ft.partial(check_shape, subject, call="mha", hint=attention_hint())
        check(query, ("q_seq", self.query_size), name="query")
        check(key_, ("kv_seq", self.key_size), name="key_")
        kv_seq = key_.shape[0]
        check(value, (kv_seq, self.value_size), name="value")
        if mask is None:
            return
        q_seq = query.shape[0]
        if getattr(mask, "ndim", None) == 3:
            check(mask, (self.num_heads, q_seq, kv_seq), name="mask")
        else:
            check(mask, (q_seq, kv_seq), name="mask")

    def _project(self, proj: Linear, x: Array) -> Array:
        return jax.vmap(proj)(x).reshape(x.shape[0], self.num_heads, -1)

    def __call__(
        self,
        query: Array,
        key_: Array,
        value: Array,
        mask: Array | None = None,
        *,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
        deterministic: bool | None = None,
        process_heads: Callable[[Array, Array, Array], tuple[Array, Array, Array]]
        | None = None,
    ) -> Array:
        """**Arguments:**

        - `query`: shape `(q_seq, query_size)`.
        - `key_`: shape `(kv_seq, key_size)`.
        - `value`: shape `(kv_seq, value_size)`.
        - `mask`: optional boolean mask, shape `(q_seq, kv_seq)` or
            `(num_heads, q_seq, kv_seq)`; `True` means "attend".
        - `key`: PRNG key for dropout (split per head); needed when dropout is on.
        - `inference`: overrides the dropout's `inference` flag if not `None`.
        - `deterministic`: deprecated alias of `inference`.
        - `process_heads`: optional `(q, k, v) -> (q, k, v)` applied to the heads,
            of shapes `(seq, num_heads, qk_size)` / `(seq, num_heads, vo_size)`,
            e.g. rotary embeddings; it must keep the shapes.

        **Returns:** shape `(q_seq, output_size)`.
        """
        if deterministic is not None:
            warn_deprecated(  # a `UserWarning`, as in Equinox
                "ecliptic.nn.MultiheadAttention()(deterministic=...)",
                "`MultiheadAttention()(inference=...)`",
                category=UserWarning,
            )
            inference = deterministic
        self._check(query, key_, value, mask)
        with jax.named_scope("ecliptic.nn.MultiheadAttention"):
            q = self._project(self.query_proj, query)
            k = self._project(self.key_proj, key_)
            v = self._project(self.value_proj, value)
            if process_heads is not None:
                q, k, v = self._process(process_heads, q, k, v)
            keys = None if key is None else jr.split(key, self.num_heads)

            def attend(q, k, v, mask, key):
                return dot_product_attention(
                    q, k, v, mask, self.dropout, key=key, inference=inference
                )

            mask_axis = 0 if mask is not None and mask.ndim == 3 else None
            attn = jax.vmap(attend, in_axes=(1, 1, 1, mask_axis, 0), out_axes=1)(
                q, k, v, mask, keys
            )
            attn = attn.reshape(query.shape[0], -1)
            return jax.vmap(self.output_proj)(attn)

    def _process(
        self, process_heads: Callable, q: Array, k: Array, v: Array
    ) -> tuple[Array, Array, Array]:
        shapes = (q.shape, k.shape, v.shape)
        q, k, v = process_heads(q, k, v)
        new_shapes = (q.shape, k.shape, v.shape)
        if new_shapes != shapes:
            raise process_heads_shape_error(self._subject(), shapes, new_shapes)
        return q, k, v
