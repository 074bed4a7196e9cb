"""`GRUCell` and `LSTMCell`: one step of a recurrent cell. Scan them with
`jax.lax.scan` over a sequence."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.nn as jnn
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe
from .._messages import lstm_hidden_error, rnn_scan_hint
from .._module import field, Module
from ._misc import default_init, param_dtype


class GRUCell(Module):
    """One step of a Gated Recurrent Unit: `(input, hidden) -> hidden`.

    Weights `weight_ih` `(3*hidden_size, input_size)`, `weight_hh`
    `(3*hidden_size, hidden_size)`, biases `bias` `(3*hidden_size,)` and `bias_n`
    `(hidden_size,)`, all drawn from `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
    """

    weight_ih: Array
    weight_hh: Array
    bias: Array | None
    bias_n: Array | None
    input_size: int = field(static=True)
    hidden_size: int = field(static=True)
    use_bias: bool = field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        use_bias: bool = True,
        dtype: Any = None,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `input_size`: the size of the input at each step.
        - `hidden_size`: the size of the hidden state.
        - `use_bias`: whether to learn `bias` and `bias_n`.
        - `dtype`: dtype of the parameters; defaults to float32 (float64 in 64-bit
            mode).
        - `key`: PRNG key for the initialisation.
        """
        dtype = param_dtype(dtype)
        ihkey, hhkey, bkey, bkey2 = jr.split(key, 4)
        lim = math.sqrt(1 / hidden_size)
        h3 = 3 * hidden_size
        self.weight_ih = default_init(ihkey, (h3, input_size), dtype, lim)
        self.weight_hh = default_init(hhkey, (h3, hidden_size), dtype, lim)
        if use_bias:
            self.bias = default_init(bkey, (h3,), dtype, lim)
            self.bias_n = default_init(bkey2, (hidden_size,), dtype, lim)
        else:
            self.bias = None
            self.bias_n = None
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.use_bias = use_bias

    def __call__(
        self, input: Array, hidden: Array, *, key: PRNGKeyArray | None = None
    ) -> Array:
        """**Arguments:**

        - `input`: shape `(input_size,)`.
        - `hidden`: shape `(hidden_size,)`.
        - `key`: ignored.

        **Returns:** the new hidden state, shape `(hidden_size,)`.
        """
        subject = describe(
            self, input_size=self.input_size, hidden_size=self.hidden_size
        )
        names = dict(call="cell", hint=rnn_scan_hint())
        check_shape(subject, input, (self.input_size,), name="input", **names)
        check_shape(subject, hidden, (self.hidden_size,), name="hidden", **names)
        with jax.named_scope("ecliptic.nn.GRUCell"):
            igates = self.weight_ih @ input
            if self.bias is not None:
                igates = igates + self.bias
            i_r, i_z, i_n = jnp.split(igates, 3)
            h_r, h_z, h_n = jnp.split(self.weight_hh @ hidden, 3)
            if self.bias_n is not None:
                h_n = h_n + self.bias_n
            reset = jnn.sigmoid(i_r + h_r)
            update = jnn.sigmoid(i_z + h_z)
            new = jnn.tanh(i_n + reset * h_n)
            return new + update * (hidden - new)


class LSTMCell(Module):
    """One step of a Long Short-Term Memory cell: `(input, (h, c)) -> (h, c)`.

    Weights `weight_ih` `(4*hidden_size, input_size)`, `weight_hh`
    `(4*hidden_size, hidden_size)`, bias `(4*hidden_size,)`, all drawn from
    `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`. Gate order: input, forget,
    cell, output.
    """

    weight_ih: Array
    weight_hh: Array
    bias: Array | None
    input_size: int = field(static=True)
    hidden_size: int = field(static=True)
    use_bias: bool = field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        use_bias: bool = True,
        dtype: Any = None,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `input_size`: the size of the input at each step.
        - `hidden_size`: the size of `h` and `c`.
        - `use_bias`: whether to learn `bias`.
        - `dtype`: dtype of the parameters; defaults to float32 (float64 in 64-bit
            mode).
        - `key`: PRNG key for the initialisation.
        """
        dtype = param_dtype(dtype)
        ihkey, hhkey, bkey = jr.split(key, 3)
        lim = math.sqrt(1 / hidden_size)
        h4 = 4 * hidden_size
        self.weight_ih = default_init(ihkey, (h4, input_size), dtype, lim)
        self.weight_hh = default_init(hhkey, (h4, hidden_size), dtype, lim)
        self.bias = default_init(bkey, (h4,), dtype, lim) if use_bias else None
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.use_bias = use_bias

    def __call__(
        self,
        input: Array,
        hidden: tuple[Array, Array],
        *,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Array, Array]:
        """**Arguments:**

        - `input`: shape `(input_size,)`.
        - `hidden`: the pair `(h, c)`, each of shape `(hidden_size,)`.
        - `key`: ignored.

        **Returns:** the new pair `(h, c)`, each of shape `(hidden_size,)`.
        """
        subject = describe(
            self, input_size=self.input_size, hidden_size=self.hidden_size
        )
        if not (isinstance(hidden, (tuple, list)) and len(hidden) == 2):
            raise lstm_hidden_error(subject, hidden)
        h, c = hidden
        names = dict(call="cell", hint=rnn_scan_hint())
        check_shape(subject, input, (self.input_size,), name="input", **names)
        check_shape(subject, h, (self.hidden_size,), name="h", **names)
        check_shape(subject, c, (self.hidden_size,), name="c", **names)
        with jax.named_scope("ecliptic.nn.LSTMCell"):
            lin = self.weight_ih @ input + self.weight_hh @ h
            if self.bias is not None:
                lin = lin + self.bias
            i, f, g, o = jnp.split(lin, 4)
            c = jnn.sigmoid(f) * c + jnn.sigmoid(i) * jnn.tanh(g)
            h = jnn.sigmoid(o) * jnn.tanh(c)
            return h, c
