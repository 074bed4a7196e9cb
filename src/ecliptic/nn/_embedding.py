"""`Embedding` (a lookup table) and `RotaryPositionalEmbedding` (RoPE)."""

from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.dtypes import TypePromotionError
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._caches import BoundedCache
from .._checks import check_shape, describe
from .._messages import (
    embedding_arguments_error,
    embedding_index_dtype_error,
    embedding_negative_size_error,
    embedding_weight_and_init_error,
    embedding_weight_shape_error,
    rope_offset_error,
    rope_size_error,
    rope_strict_promotion_error,
)
from .._module import field, Module
from ._misc import default_floating_dtype, initialise, Initialiser, param_dtype


class Embedding(Module):
    """A lookup table of `num_embeddings` vectors of size `embedding_size`."""

    num_embeddings: int = field(static=True)
    embedding_size: int = field(static=True)
    weight: Array

    def __init__(
        self,
        num_embeddings: int | None = None,
        embedding_size: int | None = None,
        weight: Float[Array, "num_embeddings embedding_size"] | None = None,  # noqa: F722
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        key: PRNGKeyArray | None = None,
    ):
        """Build it either from sizes and a key, or from a given table.

        **Arguments:**

        - `num_embeddings`: the number of rows of the table.
        - `embedding_size`: the size of each row.
        - `weight`: a table of shape `(num_embeddings, embedding_size)` to use
            instead of a random one. The sizes may then be left out.
        - `dtype`: the dtype of a random table. Defaults to `float32`, or
            `float64` when JAX runs in 64-bit mode.
        - `weight_init`: how to draw a random table instead of from `N(0, 1)`: an
            initialiser `init(key, shape, dtype) -> array`, such as those of
            `jax.nn.initializers`, called with `key` itself (as the default draw
            is), the shape `(num_embeddings, embedding_size)` and the dtype, e.g.
            `jax.nn.initializers.normal(stddev=0.02)`. Not allowed with `weight`.
            (Keyword only.)
        - `key`: a `jax.random.PRNGKey` for a random table, drawn from `N(0, 1)`.
            (Keyword only.)

        **Fan axes.** The lookup `table[x]` is `one_hot(x) @ table`, so the table is
        an `(in, out)` matrix, the layout `jax.nn.initializers` assume: their
        defaults `in_axis=-2, out_axis=-1` take `num_embeddings` as the fan-in and
        `embedding_size` as the fan-out.
        """
        if weight is not None and weight_init is not None:
            raise embedding_weight_and_init_error()
        if weight is None:
            if num_embeddings is None or embedding_size is None or key is None:
                raise embedding_arguments_error(num_embeddings, embedding_size, key)
            for name, n in (
                ("num_embeddings", num_embeddings),
                ("embedding_size", embedding_size),
            ):
                if n < 0:
                    raise embedding_negative_size_error(name, n)
            dtype = param_dtype(dtype)
            self.weight = initialise(
                "ecliptic.nn.Embedding",
                "weight_init",
                weight_init,
                key,
                (num_embeddings, embedding_size),
                dtype,
                jr.normal,
            )
        else:
            shape = tuple(jnp.shape(weight))
            want = (num_embeddings, embedding_size)
            if len(shape) != 2 or any(
                w is not None and w != s for w, s in zip(want, shape, strict=True)
            ):
                raise embedding_weight_shape_error(want, shape)
            num_embeddings, embedding_size = shape
            self.weight = weight
        self.num_embeddings = num_embeddings
        self.embedding_size = embedding_size

    @jax.named_scope("ecliptic.nn.Embedding")
    def __call__(
        self,
        x: Int[ArrayLike, ""],  # noqa: F722
        *,
        key: PRNGKeyArray | None = None,
    ) -> Array:
        """**Arguments:**

        - `x`: one integer index, of shape `()`. For a sequence of indices use
            `jax.vmap(embedding)(indices)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** the `x`-th row of the table, of shape `(embedding_size,)`.
        """
        del key
        dtype = jnp.result_type(x)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise embedding_index_dtype_error(self._subject(), dtype)
        check_shape(self._subject, jnp.asarray(x), ())
        return self.weight[x]

    def _subject(self) -> str:
        return describe(
            self,
            num_embeddings=self.num_embeddings,
            embedding_size=self.embedding_size,
        )


# Bound on the RoPE table cache, one entry per (embedding_size, table length, theta,
# dtype, 64-bit mode). Lengths are rounded up to powers of two, so a model needs only a
# few entries. A miss when the bound is hit recomputes one table: a handful of numpy
# ops at trace time, no recompilation.
_ROPE_TABLES_MAXSIZE = 64
_ROPE_TABLES: BoundedCache = BoundedCache(_ROPE_TABLES_MAXSIZE)


def _rope_tables(
    embedding_size: int, length: int, theta: float, dtype: Any, x64: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine tables, `(length, embedding_size)` each (the half-size
    table repeated twice along the last axis, ready for `rotate_half`), as numpy.

    Cached on everything that changes the values: size, length, `theta`, dtype
    and 64-bit mode (which changes jnp's default precision). (Equinox's cache
    forgets `theta`.)
    """
    key = (embedding_size, length, theta, dtype, x64)
    tables = _ROPE_TABLES.get(key)
    if tables is None:
        with jax.ensure_compile_time_eval():
            angles = _angles(embedding_size, jnp.arange(float(length)), theta)
            cos = np.tile(np.asarray(jnp.cos(angles).astype(dtype)), (1, 2))
            sin = np.tile(np.asarray(jnp.sin(angles).astype(dtype)), (1, 2))
        tables = _ROPE_TABLES[key] = (cos, sin)
    return tables


def _angles(embedding_size: int, positions: Array, theta: float) -> Array:
    """`positions[:, None] * inv_freq[None, :]`, the RoPE rotation angles."""
    exponents = jnp.arange(0.0, embedding_size, 2)[None, :] / embedding_size
    inv_freq = 1.0 / (theta**exponents)
    return jnp.outer(positions, inv_freq)


class RotaryPositionalEmbedding(Module):
    """Rotary positional embedding (RoPE, "RoFormer", Su et al. 2021), in the
    rotate-half (GPT-NeoX) convention.

    Rotates pairs `(x[i], x[i + d/2])` of each position's vector by an angle that
    grows with the position, so that dot products between rotated queries and keys
    depend on relative position. No parameters. Typically applied per head through
    `MultiheadAttention(..., process_heads=...)` with `jax.vmap(rope, in_axes=1,
    out_axes=1)`.

    Unlike Equinox, the frequency cache is keyed on `theta` too, and `__call__`
    takes an `offset` for the position of the first row (for decoding with a
    KV cache).
    """

    embedding_size: int = field(static=True)
    theta: float = field(static=True, default=10_000.0)
    dtype: Any = field(static=True, default_factory=default_floating_dtype)

    def __check_init__(self):
        if self.embedding_size < 0 or self.embedding_size % 2 != 0:
            raise rope_size_error(self.embedding_size)

    @staticmethod
    def rotate_half(x: Float[Array, "seq_length embedding_size"]) -> Array:  # noqa: F722
        """`[x1, x2] -> [-x2, x1]`, splitting the last axis into halves."""
        half = x.shape[-1] // 2
        return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)

    @staticmethod
    def precompute_freqs_cis(
        embedding_size: int, end: int, theta: float, dtype: Any
    ) -> tuple[Float[Array, "end half_emb_size"], Float[Array, "end half_emb_size"]]:  # noqa: F722
        """The cosine and sine tables for positions `0..end-1`, each of shape
        `(end, embedding_size // 2)`."""
        angles = _angles(embedding_size, jnp.arange(float(end)), theta)
        return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)

    def _subject(self) -> str:
        return describe(self, embedding_size=self.embedding_size, theta=self.theta)

    @jax.named_scope("ecliptic.nn.RotaryPositionalEmbedding")
    def __call__(
        self,
        x: Float[Array, "seq_length embedding_size"],  # noqa: F722
        *,
        offset: int | Int[ArrayLike, ""] = 0,  # noqa: F722
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "seq_length embedding_size"]:  # noqa: F722
        """**Arguments:**

        - `x`: one sequence, of shape `(seq_length, embedding_size)`. Under strict
            dtype promotion its dtype must be the layer's `dtype` (else
            `TypePromotionError`); otherwise the two are promoted as JAX does.
        - `offset`: the position of the first row (default 0): row `i` is rotated
            as position `offset + i`. May be a traced integer (e.g. the decoding
            step). (Keyword only.)
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(seq_length, embedding_size)` and the dtype
        of `x`.
        """
        del key
        check_shape(
            self._subject,
            x,
            ("seq_length", self.embedding_size),
            axis_names=(None, f"embedding_size={self.embedding_size}"),
        )
        seq_len = x.shape[0]
        if isinstance(offset, (int, np.integer)) and not isinstance(offset, bool):
            if offset < 0:
                raise rope_offset_error(self._subject(), offset)
            # Round the table up to a power of two so that growing sequences (or
            # offsets) reuse it; the values do not depend on the table's length.
            length = 1 << max(int(offset) + seq_len - 1, 0).bit_length()
            cos, sin = _rope_tables(
                self.embedding_size,
                length,
                float(self.theta),
                jnp.dtype(self.dtype),
                bool(jax.config.read("jax_enable_x64")),
            )
            stop = int(offset) + seq_len
            cos, sin = cos[int(offset) : stop], sin[int(offset) : stop]
        else:
            positions = jnp.asarray(offset) + jnp.arange(seq_len)
            angles = _angles(self.embedding_size, positions.astype(float), self.theta)
            cos = jnp.tile(jnp.cos(angles).astype(self.dtype), (1, 2))
            sin = jnp.tile(jnp.sin(angles).astype(self.dtype), (1, 2))
        # Compute in the dtype that the user's promotion rules give `x` and the
        # tables (so strict promotion refuses to mix them), return `x`'s dtype.
        try:
            dtype = jnp.result_type(x, jnp.dtype(self.dtype))
        except TypePromotionError as e:
            raise rope_strict_promotion_error(
                self._subject(), self.dtype, x.dtype
            ) from e
        y = x.astype(dtype) * cos.astype(dtype)
        y = y + self.rotate_half(x).astype(dtype) * sin.astype(dtype)
        return y.astype(x.dtype)
