"""Messages of `ecliptic.nn.MultiheadAttention`'s causal, grouped-query and
key-value-cache options (its shape messages and `process_heads` check are in
`_nn.py`)."""

from __future__ import annotations

from typing import Any


def _divisors(n: int) -> str:
    found = [str(d) for d in range(1, n + 1) if n % d == 0]
    return found[0] if len(found) == 1 else ", ".join(found[:-1]) + " or " + found[-1]


def kv_heads_error(num_heads: Any, num_kv_heads: Any) -> ValueError:
    """The error for a `num_kv_heads` that is not a positive divisor of
    `num_heads`."""
    fix = (
        f"Pass a divisor of {num_heads}: {_divisors(num_heads)}"
        if isinstance(num_heads, int) and num_heads > 0
        else "Pass a positive divisor of num_heads"
    )
    return ValueError(
        f"ecliptic.nn.MultiheadAttention(num_heads={num_heads!r}) expected "
        "`num_kv_heads` to be a positive int dividing num_heads (each key/value head "
        "is shared by num_heads // num_kv_heads query heads), but got "
        f"num_kv_heads={num_kv_heads!r}. {fix} (1 for multi-query attention, "
        "None for one key/value head per query head)."
    )


def kv_cache_size_error(kv_cache_size: Any) -> ValueError:
    """The error for a `kv_cache_size` that is not a positive int."""
    return ValueError(
        "ecliptic.nn.MultiheadAttention expected `kv_cache_size` to be None or a "
        f"positive int (the longest sequence to decode), but got "
        f"kv_cache_size={kv_cache_size!r}. Pass e.g. kv_cache_size=2048."
    )


def kv_cache_hint() -> str:
    """The hint ending the shape errors of a `MultiheadAttention` with a cache."""
    return (
        "With a KV cache, `key_` and `value` hold the new tokens (one per query), "
        "and `mask` covers the whole cache: (q_seq, kv_cache_size). Layers act on "
        "a single example: map over the batch with `jax.vmap`, the state included."
    )


def kv_cache_missing_state_error(subject: str) -> TypeError:
    """The error for a call of a `MultiheadAttention` with a cache but no
    `state`."""
    return TypeError(
        f"{subject} holds a key-value cache, so it expected a `state=` argument, but "
        "got none. Build the layer with `mha, state = "
        "ecliptic.nn.make_with_state(ecliptic.nn.MultiheadAttention)(..., "
        "kv_cache_size=...)` and call it as `out, state = mha(q, k, v, "
        "state=state)`."
    )


def kv_cache_absent_error(subject: str, method: str) -> ValueError:
    """The error for `cache_position` / `reset_cache` on a layer without a
    cache."""
    return ValueError(
        f"{subject}.{method}(...) expected a layer with a key-value cache, but this "
        "one was built with kv_cache_size=None. Build it with `kv_cache_size=` (the "
        "longest sequence to decode) to decode with a cache."
    )


def kv_cache_chunk_error(subject: str, new: int, size: int) -> ValueError:
    """The trace-time error for a call that adds more tokens than the cache
    holds."""
    return ValueError(
        f"{subject} expected at most kv_cache_size={size} new tokens per call, but "
        f"got {new}. Build the layer with a larger `kv_cache_size`, or pass the "
        "sequence in shorter chunks."
    )


def kv_cache_overflow_error(
    subject: str, position: int, new: int, size: int
) -> ValueError:
    """The error for a call whose new tokens do not fit after the cache's (known)
    position."""
    return ValueError(
        f"{subject} expected the new tokens to fit in the cache: position {position} "
        f"+ {new} new tokens <= kv_cache_size={size}, but they would need "
        f"{position + new} slots. Rewind with `state = mha.reset_cache(state)` "
        "before a new sequence, or build the layer with a larger `kv_cache_size`."
    )


def kv_cache_overflow_message(subject: str, new: int, size: int) -> str:
    """The run-time message (under `jit`) for new tokens that do not fit after the
    cache's position."""
    return (
        f"{subject}: the key-value cache is full: position + {new} new tokens "
        f"exceeds kv_cache_size={size}. Rewind with `state = mha.reset_cache(state)` "
        "before a new sequence, or build the layer with a larger `kv_cache_size`."
    )


def kv_cache_position_error(subject: str, position: Any, size: int) -> ValueError:
    """The error for `reset_cache(state, position)` outside `[0, kv_cache_size]`."""
    return ValueError(
        f"{subject}.reset_cache(state, position) expected 0 <= position <= "
        f"kv_cache_size={size}, but got position={position!r}. Pass the number of "
        "cached tokens to keep (0 to start a new sequence)."
    )


def kv_cache_position_message(subject: str, size: int) -> str:
    """The run-time message (under `jit`) for a traced `reset_cache` position
    outside `[0, kv_cache_size]`."""
    return (
        f"{subject}.reset_cache(state, position): the position must satisfy 0 <= "
        f"position <= kv_cache_size={size}. Pass the number of cached tokens to "
        "keep (0 to start a new sequence)."
    )


def kv_cache_batched_state_error(subject: str, shape: tuple[int, ...]) -> ValueError:
    """The error for a cache state with a batch axis passed outside `vmap`."""
    return ValueError(
        f"{subject} expected the cache position in `state` to have shape (), but got "
        f"shape {tuple(shape)}: the state holds a batch of caches. Map over it "
        "together with the inputs: `jax.vmap(lambda q, k, v, s: mha(q, k, v, "
        "state=s))(qs, ks, vs, state)`."
    )
