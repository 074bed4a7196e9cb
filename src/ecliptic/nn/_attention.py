"""`MultiheadAttention`: scaled dot-product attention over `num_heads` heads, with
optional causal masking, grouped-query attention and a key-value cache for
decoding."""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from .._checks import check_shape, describe, warn_deprecated
from .._errors import error_if
from .._messages import (
    attention_hint,
    attention_mask_shape_error,
    kv_cache_absent_error,
    kv_cache_batched_state_error,
    kv_cache_chunk_error,
    kv_cache_hint,
    kv_cache_missing_state_error,
    kv_cache_overflow_error,
    kv_cache_overflow_message,
    kv_cache_position_error,
    kv_cache_position_message,
    kv_cache_size_error,
    kv_heads_error,
    process_heads_shape_error,
)
from .._module import field, Module
from ._dropout import Dropout
from ._linear import Linear
from ._misc import compute_dtype, param_dtype
from ._stateful import missing_state, State, StateIndex


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


def _is_count(n: Any) -> bool:
    """Whether `n` is a positive Python int (not a bool)."""
    return bool(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0)


def _kv_heads(num_heads: Any, num_kv_heads: Any, kv_cache_size: Any) -> int:
    """Checks the decoder options; returns the number of key/value heads."""
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if not (_is_count(kv_heads) and _is_count(num_heads)) or num_heads % kv_heads:
        raise kv_heads_error(num_heads, num_kv_heads)
    if kv_cache_size is not None and not _is_count(kv_cache_size):
        raise kv_cache_size_error(kv_cache_size)
    return kv_heads


def _new_cache(size: int, kv_heads: int, qk: int, vo: int, dtype: Any) -> StateIndex:
    """The cache's `StateIndex`: keys `(size, kv_heads, qk)`, values
    `(size, kv_heads, vo)` (zeros) and the position (int32 0)."""
    keys = jnp.zeros((size, kv_heads, qk), dtype)
    values = jnp.zeros((size, kv_heads, vo), dtype)
    return StateIndex((keys, values, jnp.array(0, jnp.int32)))


def _causal_mask(q_seq: int, kv_seq: int) -> Array:
    """Boolean `(q_seq, kv_seq)`, aligned to the end of the keys: query `i` (at
    position `kv_seq - q_seq + i`) sees keys `j <= kv_seq - q_seq + i`."""
    return jnp.asarray(np.tri(q_seq, kv_seq, k=kv_seq - q_seq, dtype=bool))


def _and_mask(mask: Array | None, extra: Array) -> Array:
    """`mask AND extra`, where `mask` is `None`, `(q_seq, kv_seq)` or
    `(num_heads, q_seq, kv_seq)` and `extra` is `(q_seq, kv_seq)`."""
    if mask is None:
        return extra
    mask = jnp.asarray(mask).astype(bool)
    if mask.ndim == 3:
        extra = extra[None]
    return jnp.logical_and(mask, extra)


class MultiheadAttention(Module):
    r"""Multi-head scaled dot-product attention,
    $\sum_i \mathrm{softmax}(Q W^Q_i (K W^K_i)^T / \sqrt{d_{qk}}) V W^V_i W^O_i$.

    Projections `query_proj` `(num_heads*qk_size, query_size)`, `key_proj`
    `(num_kv_heads*qk_size, key_size)`, `value_proj`
    `(num_kv_heads*vo_size, value_size)` and `output_proj`
    `(output_size, num_heads*vo_size)` are [`ecliptic.nn.Linear`][] layers, without
    biases by default (as in Equinox). Dropout acts on the attention weights.

    Options for decoder models (all off by default, which is Equinox's layer):

    - `is_causal=True`: query `i` sees only keys up to its own position. When the
      query is shorter than the key, the queries are the *last* positions: query
      `i` sits at position `kv_seq - q_seq + i`. (A query with no key to see, when
      `q_seq > kv_seq`, gets uniform weights, as every fully masked row does.)
    - `num_kv_heads`: grouped-query attention (GQA; `1` is multi-query attention):
      the key and value projections make `num_kv_heads` heads, and key/value head
      `j` serves query heads `j*g ... (j+1)*g - 1`, `g = num_heads // num_kv_heads`.
    - `kv_cache_size`: a key-value cache of that many positions, kept in a
      [`ecliptic.nn.State`][], for autoregressive decoding. Build the layer with
      [`ecliptic.nn.make_with_state`][] and call it as
      `out, state = mha(q, k, v, state=state)`: the new keys and values (after
      `process_heads`) are written at the cache's position, the queries attend to
      every filled position (causally if `is_causal`), and the position advances.
      Prefill a prompt in one call, then feed one token per call. Under `jax.vmap`
      each example has its own cache: map over the state too (see `__call__`).
      New tokens that do not fit (position + `q_seq` > `kv_cache_size`) raise a
      `ValueError` when the position is known (eager calls). Under `jit` the
      position is traced and the check is an [`ecliptic.error_if`][] (an
      [`ecliptic.EquinoxRuntimeError`][] under `filter_jit`); with
      `ECLIPTIC_ON_ERROR=off` there is no check, an overflowing write is clamped
      to the end of the cache, and the outputs are wrong.
    """

    query_proj: Linear
    key_proj: Linear
    value_proj: Linear
    output_proj: Linear
    dropout: Dropout
    kv_cache: StateIndex | None
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
    num_kv_heads: int = field(static=True)
    is_causal: bool = field(static=True)
    kv_cache_size: int | None = field(static=True)

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
        num_kv_heads: int | None = None,
        is_causal: bool = False,
        kv_cache_size: int | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `num_heads`: the number of (query) heads.
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
        - `dtype`: dtype of the parameters (and of the cache); defaults to float32
            (float64 in 64-bit mode).
        - `num_kv_heads`: the number of key/value heads, a divisor of `num_heads`;
            `None` (default) means `num_heads`. (Keyword only.)
        - `is_causal`: mask each query from the keys after its position (aligned
            to the end of the keys). (Keyword only.)
        - `kv_cache_size`: if not `None`, the number of positions of a key-value
            cache kept in a `State`; the layer then takes and returns `state`.
            (Keyword only.)
        - `key`: PRNG key for the initialisation. The same key gives the same
            weights as Equinox's layer when `num_kv_heads` is `None` (or
            `num_heads`).
        """
        kv_heads = _kv_heads(num_heads, num_kv_heads, kv_cache_size)
        dtype = param_dtype(dtype)
        qkey, kkey, vkey, okey = jr.split(key, 4)
        key_size = query_size if key_size is None else key_size
        value_size = query_size if value_size is None else value_size
        output_size = query_size if output_size is None else output_size
        qk_size = query_size // num_heads if qk_size is None else qk_size
        vo_size = query_size // num_heads if vo_size is None else vo_size
        qk, vo = num_heads * qk_size, num_heads * vo_size
        kv_qk, kv_vo = kv_heads * qk_size, kv_heads * vo_size
        self.query_proj = Linear(
            query_size, qk, use_bias=use_query_bias, dtype=dtype, key=qkey
        )
        self.key_proj = Linear(
            key_size, kv_qk, use_bias=use_key_bias, dtype=dtype, key=kkey
        )
        self.value_proj = Linear(
            value_size, kv_vo, use_bias=use_value_bias, dtype=dtype, key=vkey
        )
        self.output_proj = Linear(
            vo, output_size, use_bias=use_output_bias, dtype=dtype, key=okey
        )
        self.dropout = Dropout(dropout_p, inference=inference)
        self.kv_cache = None
        if kv_cache_size is not None:
            self.kv_cache = _new_cache(kv_cache_size, kv_heads, qk_size, vo_size, dtype)
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
        self.num_kv_heads = kv_heads
        self.is_causal = is_causal
        self.kv_cache_size = kv_cache_size

    def _subject(self) -> str:
        extra: dict[str, Any] = {}
        if self.num_kv_heads != self.num_heads:
            extra["num_kv_heads"] = self.num_kv_heads
        if self.is_causal:
            extra["is_causal"] = True
        if self.kv_cache_size is not None:
            extra["kv_cache_size"] = self.kv_cache_size
        return describe(
            self,
            num_heads=self.num_heads,
            query_size=self.query_size,
            key_size=self.key_size,
            value_size=self.value_size,
            **extra,
        )

    def _check(self, query: Array, key_: Array, value: Array, mask: Any) -> None:
        subject = self._subject()
        size = self.kv_cache_size
        hint = attention_hint() if size is None else kv_cache_hint()
        check = ft.partial(check_shape, subject, call="mha", hint=hint)
        check(query, ("q_seq", self.query_size), name="query")
        q_seq = query.shape[0]
        check(key_, ("kv_seq" if size is None else q_seq, self.key_size), name="key_")
        kv_seq = key_.shape[0]
        check(value, (kv_seq, self.value_size), name="value")
        if size is not None and q_seq > size:
            raise kv_cache_chunk_error(subject, q_seq, size)
        if mask is None:
            return
        width = kv_seq if size is None else size
        if getattr(mask, "ndim", None) == 3:
            check(mask, (self.num_heads, q_seq, width), name="mask")
        else:
            check(mask, (q_seq, width), name="mask")

    def _project(self, proj: Linear, x: Array, heads: int) -> Array:
        return jax.vmap(proj)(x).reshape(x.shape[0], heads, -1)

    def __call__(
        self,
        query: Array,
        key_: Array,
        value: Array,
        mask: Array | None = None,
        *,
        state: State = missing_state,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
        deterministic: bool | None = None,
        process_heads: Callable[[Array, Array, Array], tuple[Array, Array, Array]]
        | None = None,
    ) -> Array | tuple[Array, State]:
        """**Arguments:**

        - `query`: shape `(q_seq, query_size)`.
        - `key_`: shape `(kv_seq, key_size)`. With a cache: the new tokens only,
            `kv_seq == q_seq`.
        - `value`: shape `(kv_seq, value_size)`.
        - `mask`: optional boolean mask, shape `(q_seq, kv_seq)` or
            `(num_heads, q_seq, kv_seq)`; `True` means "attend". With a cache it
            covers the whole cache: `kv_seq` is `kv_cache_size`. Combined (AND)
            with the causal mask and the cache's filled positions.
        - `state`: the [`ecliptic.nn.State`][] holding the cache; required when
            the layer has one. A layer without a cache returns it unchanged.
            Under `jax.vmap`, map over a state with a leading batch axis, e.g.
            `states = jax.tree.map(lambda x: jnp.broadcast_to(x, (batch, *x.shape)),
            state)` and `jax.vmap(lambda q, s: mha(q, q, q, state=s))(qs, states)`.
            (Keyword only.)
        - `key`: PRNG key for dropout (split per query head); needed when dropout
            is on.
        - `inference`: overrides the dropout's `inference` flag if not `None`.
        - `deterministic`: deprecated alias of `inference`.
        - `process_heads`: optional `(q, k, v) -> (q, k, v)` applied to the heads,
            of shapes `(q_seq, num_heads, qk_size)`, `(kv_seq, num_kv_heads,
            qk_size)` and `(kv_seq, num_kv_heads, vo_size)`, e.g. rotary
            embeddings; it must keep the shapes. With a cache it sees the new
            tokens only, before they are cached: rotate them from position
            `mha.cache_position(state)` (read before the call).

        **Returns:** shape `(q_seq, output_size)`; `(out, state)` if `state` was
        given.
        """
        if deterministic is not None:
            warn_deprecated(  # a `UserWarning`, as in Equinox
                "ecliptic.nn.MultiheadAttention()(deterministic=...)",
                "`MultiheadAttention()(inference=...)`",
                category=UserWarning,
            )
            inference = deterministic
        if self.kv_cache is not None and state is missing_state:
            raise kv_cache_missing_state_error(self._subject())
        self._check(query, key_, value, mask)
        overflow = None
        with jax.named_scope("ecliptic.nn.MultiheadAttention"):
            q = self._project(self.query_proj, query, self.num_heads)
            k = self._project(self.key_proj, key_, self.num_kv_heads)
            v = self._project(self.value_proj, value, self.num_kv_heads)
            if process_heads is not None:
                q, k, v = self._process(process_heads, q, k, v)
            if self.kv_cache is not None:
                k, v, mask, state, overflow = self._use_cache(state, k, v, mask)
            elif self.is_causal:
                mask = _and_mask(mask, _causal_mask(q.shape[0], k.shape[0]))
            attn = self._attend(q, k, v, mask, key, inference)
            out = jax.vmap(self.output_proj)(attn)
        if overflow is not None:
            size = self.kv_cache_size
            assert size is not None
            message = kv_cache_overflow_message(self._subject(), query.shape[0], size)
            out, state = error_if((out, state), overflow, message)
        return out if state is missing_state else (out, state)

    def _attend(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None,
        key: PRNGKeyArray | None,
        inference: bool | None,
    ) -> Array:
        """Equinox's core: one `dot_product_attention` per query head, mapped
        over the heads. With grouped heads, query head `j*g + i` uses key/value
        head `j` (mapped over its group, not copied)."""
        keys = None if key is None else jr.split(key, self.num_heads)

        def attend(q, k, v, mask, key):
            return dot_product_attention(
                q, k, v, mask, self.dropout, key=key, inference=inference
            )

        mask_axis = 0 if mask is not None and mask.ndim == 3 else None
        q_seq, groups = q.shape[0], self.num_heads // self.num_kv_heads
        if groups == 1:
            attn = jax.vmap(attend, in_axes=(1, 1, 1, mask_axis, 0), out_axes=1)(
                q, k, v, mask, keys
            )
            return attn.reshape(q_seq, -1)
        q = q.reshape(q_seq, self.num_kv_heads, groups, -1)
        if mask_axis == 0:
            mask = mask.reshape(self.num_kv_heads, groups, *mask.shape[1:])  # pyright: ignore
        if keys is not None:
            keys = keys.reshape(self.num_kv_heads, groups, *keys.shape[1:])
        per_group = jax.vmap(attend, in_axes=(1, None, None, mask_axis, 0), out_axes=1)
        attn = jax.vmap(per_group, in_axes=(1, 1, 1, mask_axis, 0), out_axes=1)(
            q, k, v, mask, keys
        )
        return attn.reshape(q_seq, -1)

    def _process(
        self, process_heads: Callable, q: Array, k: Array, v: Array
    ) -> tuple[Array, Array, Array]:
        shapes = (q.shape, k.shape, v.shape)
        q, k, v = process_heads(q, k, v)
        new_shapes = (q.shape, k.shape, v.shape)
        if new_shapes != shapes:
            raise process_heads_shape_error(self._subject(), shapes, new_shapes)
        return q, k, v

    # -- the key-value cache --

    def _cache_index(self, method: str) -> StateIndex:
        if self.kv_cache is None:
            raise kv_cache_absent_error(self._subject(), method)
        return self.kv_cache

    def _use_cache(
        self, state: State, k: Array, v: Array, mask: Array | None
    ) -> tuple[Array, Array, Array, State, Array | None]:
        """Writes the new heads `k`, `v` at the cache's position; returns the whole
        cache, the mask of what each query may see, the new state, and (when the
        position is traced) the overflow predicate for `error_if`."""
        index = self._cache_index("__call__")
        keys, values, position = state.get(index)
        new, size = k.shape[0], self.kv_cache_size
        assert size is not None
        if jnp.ndim(position) != 0:
            raise kv_cache_batched_state_error(self._subject(), jnp.shape(position))
        overflow = None
        if isinstance(position, jax.core.Tracer):
            overflow = position + new > size
        elif int(position) + new > size:
            raise kv_cache_overflow_error(self._subject(), int(position), new, size)
        keys = lax.dynamic_update_slice_in_dim(keys, k.astype(keys.dtype), position, 0)
        values = lax.dynamic_update_slice_in_dim(
            values, v.astype(values.dtype), position, 0
        )
        state = state.set(index, (keys, values, position + new))
        cols = jnp.arange(size, dtype=position.dtype)[None, :]
        visible = cols < position + new  # the filled positions, (1, size)
        if self.is_causal:  # query i is at position `position + i`
            rows = jnp.arange(new, dtype=position.dtype)[:, None] + position
            visible = jnp.logical_and(visible, cols <= rows)
        visible = jnp.broadcast_to(visible, (new, size))
        mask = _and_mask(mask, visible)
        return keys.astype(k.dtype), values.astype(v.dtype), mask, state, overflow

    def cache_position(self, state: State) -> Int[Array, ""]:
        """The number of positions filled in this layer's cache: the position at
        which the next token is written (and the `offset` to give
        [`ecliptic.nn.RotaryPositionalEmbedding`][] for it).

        **Arguments:**

        - `state`: the [`ecliptic.nn.State`][] holding the cache.

        **Returns:** an int32 array of shape `()` (with a leading batch axis for a
        batched state outside `vmap`).
        """
        return state.get(self._cache_index("cache_position"))[2]

    def reset_cache(self, state: State, position: int | Int[Array, ""] = 0) -> State:
        """Rewinds the cache to `position`: the next call writes there, and what
        was cached at `position` and after is no longer seen (it is overwritten
        as decoding goes on). `position=0` starts a new sequence; a larger one
        keeps a shared prefix.

        **Arguments:**

        - `state`: the [`ecliptic.nn.State`][] holding the cache. It becomes
            invalid: use the returned one.
        - `position`: the number of cached positions to keep, in
            `[0, kv_cache_size]`. A Python int is checked at once; a traced one
            with [`ecliptic.error_if`][].

        **Returns:** the updated `State`.
        """
        index = self._cache_index("reset_cache")
        size = self.kv_cache_size
        assert size is not None
        keys, values, old = state.get(index)
        if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
            if not 0 <= position <= size:
                raise kv_cache_position_error(self._subject(), position, size)
        new = jnp.broadcast_to(jnp.asarray(position).astype(old.dtype), old.shape)
        if isinstance(new, jax.core.Tracer):
            bad = jnp.logical_or(new < 0, new > size)
            new = error_if(new, bad, kv_cache_position_message(self._subject(), size))
        return state.set(index, (keys, values, new))
