"""`RNN` and `Bidirectional`: run a recurrent cell over a whole sequence.

A cell (`GRUCell`, `LSTMCell`, or any callable `cell(input, hidden) -> hidden`) takes
one time step; `RNN` scans it over the time axis with `jax.lax.scan`. Like every
layer, both act on one example, a sequence of shape `(length, input_size)`; batch
with `jax.vmap`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray, PyTree

from .._checks import check_shape, describe
from .._messages import (
    bidirectional_reverse_error,
    bidirectional_rnn_type_error,
    bidirectional_state_error,
    rnn_batch_hint,
    rnn_cell_type_error,
    rnn_initial_state_error,
    rnn_length_type_error,
    rnn_length_value_error,
    rnn_state_mismatch_error,
)
from .._module import field, Module
from ._misc import default_floating_dtype
from ._rnn import LSTMCell


_Length = int | Int[ArrayLike, ""] | None  # noqa: F722


def _int_attr(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _step_output(hidden: PyTree) -> PyTree:
    """What one step emits: the hidden state, or its first entry when it is a tuple
    or list (`h` of an LSTM's `(h, c)`)."""
    if isinstance(hidden, (tuple, list)) and len(hidden) > 0:
        return hidden[0]
    return hidden


def _same_avals(a: PyTree, b: PyTree) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y)
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def _cell_text(cell: Any) -> str:
    """A cell in a message: `ecliptic.nn.GRUCell(input_size=3, hidden_size=4)`."""
    if not isinstance(cell, Module):
        return getattr(cell, "__name__", type(cell).__name__)
    sizes = {
        name: value
        for name in ("input_size", "hidden_size")
        if (value := _int_attr(cell, name)) is not None
    }
    return describe(cell, **sizes)


def _check_input(subject: Callable[[], str], cell: Any, xs: Array) -> None:
    """`xs` must be `(length, input_size)`, with the cell's `input_size` if known."""
    n = _int_attr(cell, "input_size")
    expected = ("length", "input_size" if n is None else n)
    names = (None, None if n is None else f"input_size={n}")
    check_shape(
        subject,
        xs,
        expected,
        name="xs",
        call="rnn",
        axis_names=names,
        hint=rnn_batch_hint(),
    )


class RNN(Module):
    """Runs a recurrent cell over a sequence: `(xs, state) -> (outputs, final_state)`.

    The cell is called once per time step as `cell(input, hidden) -> hidden`
    (`cell(input, hidden, key=key)` when the RNN is given a key), with `jax.lax.scan`.
    Each step emits the new hidden state, or its first entry when the hidden state
    is a tuple or list: for an `LSTMCell`, whose hidden state is `(h, c)`, the
    outputs are the `h` of every step. This is Flax's `nn.RNN(cell,
    return_carry=True)` for one sequence.

    ```python
    rnn = RNN(GRUCell(input_size=3, hidden_size=8, key=key))
    outputs, final = rnn(xs)  # xs: (length, 3) -> outputs: (length, 8)
    ```
    """

    cell: Callable[..., Any]
    reverse: bool = field(static=True)

    def __init__(self, cell: Callable[..., Any], *, reverse: bool = False):
        """**Arguments:**

        - `cell`: one step, `cell(input, hidden) -> hidden`: an
            `ecliptic.nn.GRUCell`, an `ecliptic.nn.LSTMCell` (hidden state
            `(h, c)`), or any Module with that signature. It must return a hidden
            state of the same structure, shapes and dtypes as the one it takes.
        - `reverse`: whether to process the sequence from its last step to its
            first. The outputs stay in the inputs' time order: `outputs[t]` is the
            output of the step that read `xs[t]`. (Keyword only.)
        """
        if not callable(cell):
            raise rnn_cell_type_error(cell)
        self.cell = cell
        self.reverse = reverse

    @jax.named_scope("ecliptic.nn.RNN")
    def __call__(
        self,
        xs: Array,
        state: PyTree | None = None,
        *,
        length: _Length = None,
        key: PRNGKeyArray | None = None,
    ) -> tuple[PyTree, PyTree]:
        """**Arguments:**

        - `xs`: one sequence, of shape `(length, input_size)` (time first). Batch
            with `jax.vmap(rnn)(xs)`.
        - `state`: the initial hidden state. Defaults to zeros: `(hidden_size,)`
            for a cell with an int `hidden_size`, the pair `(zeros, zeros)` for an
            `LSTMCell`, in the dtype that the cell returns. A cell without
            `hidden_size` needs it.
        - `length`: the number of real steps, an int or an integer array of shape
            `()` in `[0, xs.shape[0]]`; the steps after it are padding and are
            ignored exactly: the cell never reads them, the final state is the state
            after the real steps (with `reverse=True`: after reading
            `xs[length-1], ..., xs[0]`, the padding at the end skipped), and the
            outputs at padded positions are zeros. `None` (the default): every step
            is real. A known `length` out of range raises; a traced one (e.g. under
            `jax.vmap(rnn)(xs, length=lengths)`) is not checked, and acts as
            clipped to the range. (Keyword only.)
        - `key`: optional PRNG key, split into one key per step and passed to the
            cell as `key=` (for a cell with dropout). (Keyword only.)

        **Returns:** the pair `(outputs, final_state)`: `outputs` stacks the output
        of every step on a leading axis of size `xs.shape[0]` (e.g.
        `(length, hidden_size)`), and `final_state` is the hidden state after the
        last real step. Under `jit`, unused `outputs` are not stored (JAX removes
        them from the scan).
        """
        if not isinstance(xs, jax.Array):
            xs = jnp.asarray(xs)
        _check_input(self._subject, self.cell, xs)
        steps = xs.shape[0]
        length = self._check_length(length, steps)
        keys = None if key is None else jr.split(key, steps)
        if state is None:
            state = self._zero_state(xs, keys)
        else:
            state = jax.tree.map(jnp.asarray, state)
            self._check_carry(xs, state, keys)
        if length is None:
            scanned = (xs, None, keys)
        else:
            scanned = (xs, jnp.arange(steps, dtype=length.dtype), keys)
        final, outputs = jax.lax.scan(
            lambda h, s: self._step(h, s, length), state, scanned, reverse=self.reverse
        )
        return outputs, final

    def _call_cell(self, x: Array, hidden: PyTree, key: Any) -> PyTree:
        if key is None:
            return self.cell(x, hidden)
        return self.cell(x, hidden, key=key)

    def _step(
        self, hidden: PyTree, scanned: tuple, length: Array | None
    ) -> tuple[PyTree, PyTree]:
        """One step of the scan; with `length`, a padded step keeps `hidden`, emits
        zeros and runs the cell on a zero input (so padding never reaches it)."""
        x, t, key = scanned
        if length is None:
            new = self._call_cell(x, hidden, key)
            return new, _step_output(new)
        real = t < length
        x = jnp.where(real, x, jnp.zeros_like(x))
        new = self._call_cell(x, hidden, key)
        new = jax.tree.map(lambda a, b: jnp.where(real, a, b), new, hidden)
        out = jax.tree.map(
            lambda a: jnp.where(real, a, jnp.zeros_like(a)), _step_output(new)
        )
        return new, out

    def _check_length(self, length: _Length, steps: int) -> Array | None:
        """`None`, or `length` as an integer array of shape `()`; a known value must
        be in `[0, steps]`."""
        if length is None:
            return None
        is_int = isinstance(length, (int, np.integer)) and not isinstance(length, bool)
        is_int_array = (
            isinstance(length, (jax.Array, np.ndarray))
            and length.ndim == 0
            and bool(jnp.issubdtype(length.dtype, jnp.integer))
        )
        if not (is_int or is_int_array):
            raise rnn_length_type_error(self._subject(), length)
        if not isinstance(length, jax.core.Tracer):
            value = int(length)  # pyright: ignore[reportArgumentType]
            if not 0 <= value <= steps:
                raise rnn_length_value_error(self._subject(), value, steps)
        return jnp.asarray(length)

    def _zero_state(self, xs: Array, keys: Array | None) -> PyTree:
        """Zeros shaped like the cell's hidden state, in the dtype it returns."""
        size = _int_attr(self.cell, "hidden_size")
        if size is None:
            raise rnn_initial_state_error(self._subject(), self.cell)
        inexact = jnp.issubdtype(xs.dtype, jnp.inexact)
        zeros = jnp.zeros((size,), xs.dtype if inexact else default_floating_dtype())
        guess = (zeros, zeros) if isinstance(self.cell, LSTMCell) else zeros
        new = self._one_step_shape(xs, guess, keys)
        if _same_avals(guess, new):
            return guess
        state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), new)
        self._check_carry(xs, state, keys)
        return state

    def _one_step_shape(self, xs: Array, state: PyTree, keys: Array | None) -> PyTree:
        x = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
        k = None if keys is None else jax.ShapeDtypeStruct(keys.shape[1:], keys.dtype)
        return jax.eval_shape(lambda x, h, k: self._call_cell(x, h, k), x, state, k)

    def _check_carry(self, xs: Array, state: PyTree, keys: Array | None) -> None:
        """The cell must return a hidden state like `state`, to carry it over."""
        new = self._one_step_shape(xs, state, keys)
        if not _same_avals(state, new):
            raise rnn_state_mismatch_error(self._subject(), state, new)

    def _subject(self) -> str:
        return f"ecliptic.nn.RNN({_cell_text(self.cell)}, reverse={self.reverse})"


def _concatenate(forward: PyTree, backward: PyTree) -> PyTree:
    return jax.tree.map(
        lambda f, b: jnp.concatenate([f, b], axis=-1), forward, backward
    )


class Bidirectional(Module):
    """Runs one RNN forwards and another backwards over the same sequence, and
    merges their outputs step by step:
    `(xs, state) -> (outputs, (forward_final, backward_final))`.

    `outputs[t]` merges the forward RNN's output after reading `xs[0..t]` and the
    backward RNN's after reading `xs[t..]` (both in the inputs' time order). As
    Flax's `nn.Bidirectional`, with the backward direction stated explicitly.

    ```python
    forward = RNN(GRUCell(3, 8, key=k1))
    backward = RNN(GRUCell(3, 8, key=k2), reverse=True)
    bi = Bidirectional(forward, backward)
    outputs, (fwd, bwd) = bi(xs)  # xs: (length, 3) -> outputs: (length, 16)
    ```
    """

    forward: RNN
    backward: RNN
    merge: Callable[[PyTree, PyTree], PyTree] | None

    def __init__(
        self,
        forward: RNN,
        backward: RNN,
        *,
        merge: Callable[[PyTree, PyTree], PyTree] | None = None,
    ):
        """**Arguments:**

        - `forward`: an `RNN` with `reverse=False`.
        - `backward`: an `RNN` with `reverse=True`. It is required, not set: the
            layer runs exactly the RNNs it holds, and `Bidirectional(RNN(a),
            RNN(b))` raises, saying to pass `RNN(b, reverse=True)`.
        - `merge`: `merge(forward_outputs, backward_outputs) -> outputs`, applied
            once to the two whole output sequences (each with time on the leading
            axis). `None` (the default): concatenate them on the last (feature)
            axis. (Keyword only.)
        """
        for name, rnn, reverse in (
            ("forward", forward, False),
            ("backward", backward, True),
        ):
            if not isinstance(rnn, RNN):
                raise bidirectional_rnn_type_error(name, rnn)
            if rnn.reverse is not reverse:
                raise bidirectional_reverse_error(name, rnn.reverse)
        self.forward = forward
        self.backward = backward
        self.merge = merge

    @jax.named_scope("ecliptic.nn.Bidirectional")
    def __call__(
        self,
        xs: Array,
        state: tuple[PyTree, PyTree] | None = None,
        *,
        length: _Length = None,
        key: PRNGKeyArray | None = None,
    ) -> tuple[PyTree, tuple[PyTree, PyTree]]:
        """**Arguments:**

        - `xs`: one sequence, of shape `(length, input_size)`. Batch with
            `jax.vmap(bidirectional)(xs)`.
        - `state`: `None` (zeros in both directions, as for `RNN`) or the pair
            `(forward_state, backward_state)` of initial states; either may be
            `None`.
        - `length`: the number of real steps, as for `RNN`, passed to both
            directions: the padding at the end is ignored by both (the backward RNN
            starts at `xs[length-1]`), and both outputs are zeros there (the
            default merge keeps them zero; a custom `merge` sees zeros).
            (Keyword only.)
        - `key`: optional PRNG key, split between the two RNNs. (Keyword only.)

        **Returns:** `(outputs, (forward_final, backward_final))`: the merged
        outputs (by default of shape `(length, forward_size + backward_size)`) and
        each direction's final state (the backward one's is after reading `xs[0]`).
        """
        if not isinstance(xs, jax.Array):
            xs = jnp.asarray(xs)
        _check_input(self._subject, self.forward.cell, xs)
        if state is None:
            state = (None, None)
        elif not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise bidirectional_state_error(state)
        fkey, bkey = (None, None) if key is None else jr.split(key)
        fout, ffinal = self.forward(xs, state[0], length=length, key=fkey)
        bout, bfinal = self.backward(xs, state[1], length=length, key=bkey)
        merge = _concatenate if self.merge is None else self.merge
        return merge(fout, bout), (ffinal, bfinal)

    def _subject(self) -> str:
        forward, backward = (
            _cell_text(self.forward.cell),
            _cell_text(self.backward.cell),
        )
        return f"ecliptic.nn.Bidirectional({forward}, {backward})"
