"""Messages of the sequence layers `ecliptic.nn.RNN` and `ecliptic.nn.Bidirectional`
(the cells' own messages are in `_nn.py`)."""

from __future__ import annotations

from typing import Any

from ._checkpoints import describe_tree


def rnn_batch_hint() -> str:
    """The hint ending the shape errors of `RNN` and `Bidirectional`."""
    return (
        "For padded sequences of different lengths, map over the lengths too: "
        "`jax.vmap(rnn)(xs, length=lengths)` (jax.vmap maps keyword arguments "
        "over their leading axis)."
    )


def rnn_cell_type_error(cell: Any) -> TypeError:
    """The error for an `RNN` built from something that is not callable."""
    return TypeError(
        "ecliptic.nn.RNN expected a cell: a callable `cell(input, hidden) -> "
        f"hidden`, such as `ecliptic.nn.GRUCell`, but got an object of type "
        f"{type(cell).__name__}. Pass e.g. `RNN(GRUCell(input_size, hidden_size, "
        "key=key))`."
    )


def rnn_length_type_error(subject: str, length: Any) -> TypeError:
    """The error for a `length` that is neither an int nor an integer scalar
    array."""
    if hasattr(length, "shape") and hasattr(length, "dtype"):
        got = f"an array of shape {tuple(length.shape)} and dtype {length.dtype}"
    else:
        got = f"{length!r} of type {type(length).__name__}"
    return TypeError(
        f"{subject} expected `length` to be an int or an integer array of shape "
        f"(), but got {got}. `length` is the number of real steps of one "
        "sequence; for a batch, map over the lengths with "
        "`jax.vmap(rnn)(xs, length=lengths)`."
    )


def rnn_length_value_error(subject: str, length: int, steps: int) -> ValueError:
    """The error for a known `length` outside `[0, steps]`."""
    return ValueError(
        f"{subject} expected `length` in [0, {steps}] (the number of real steps "
        f"of a sequence of {steps} steps), but got length={length}. Pad the "
        "sequence to at least `length` steps, or pass the true length."
    )


def rnn_initial_state_error(subject: str, cell: Any) -> ValueError:
    """The error for an `RNN` called without `state` on a cell that has no
    `hidden_size` to build zeros from."""
    return ValueError(
        f"{subject} needs an initial `state`: the cell, of type "
        f"{type(cell).__name__}, has no int attribute `hidden_size` from which "
        "to build a zero state. Pass one with `rnn(xs, state)`, shaped like the "
        "hidden state that the cell takes and returns."
    )


def rnn_state_mismatch_error(subject: str, state: Any, new: Any) -> TypeError:
    """The error for a cell that returns a hidden state unlike the one it was given
    (in structure, shapes or dtypes), so it cannot be carried over the steps."""
    return TypeError(
        f"{subject} expected the cell to return a hidden state with the same "
        "structure, shapes and dtypes as the one it takes, but from the state "
        f"{describe_tree(state)} it returned {describe_tree(new)}. Pass an initial "
        "`state` of the dtype and shape that the cell returns (e.g. cast it with "
        "`state.astype(...)`), or make the cell return what it takes."
    )


def bidirectional_rnn_type_error(name: str, value: Any) -> TypeError:
    """The error for a `Bidirectional` direction that is not an `RNN`."""
    fix = "RNN(cell, reverse=True)" if name == "backward" else "RNN(cell)"
    return TypeError(
        f"ecliptic.nn.Bidirectional expected `{name}` to be an ecliptic.nn.RNN, "
        f"but got an object of type {type(value).__name__}. Wrap a cell with "
        f"`{fix}`."
    )


def bidirectional_reverse_error(name: str, reverse: bool) -> ValueError:
    """The error for a `Bidirectional` whose `forward` runs in reverse or whose
    `backward` does not."""
    fix = "RNN(cell, reverse=True)" if name == "backward" else "RNN(cell)"
    want = not reverse
    return ValueError(
        f"ecliptic.nn.Bidirectional expected `{name}` to be an RNN with "
        f"reverse={want}, but got one with reverse={reverse}. Pass `{fix}` as "
        f"`{name}`."
    )


def bidirectional_state_error(state: Any) -> TypeError:
    """The error for a `Bidirectional` initial state that is not a pair."""
    return TypeError(
        "ecliptic.nn.Bidirectional expected `state` to be None or a pair "
        "`(forward_state, backward_state)`, but got an object of type "
        f"{type(state).__name__}. Pass `(forward_state, backward_state)`, or None "
        "for zeros in both directions."
    )
