"""`Sequential` (a chain of layers) and `Lambda` (a callable as a layer)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import jax
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._messages import sequential_index_error
from .._module import Module
from ._stateful import missing_state, State, StatefulLayer


class Sequential(StatefulLayer):
    """Layers applied one after the other.

    Each layer is called with `key=` (a subkey, or `None`), so every layer must accept
    a `key` keyword; wrap plain functions in [`ecliptic.nn.Lambda`][]. Layers that are
    [`ecliptic.nn.StatefulLayer`][]s with `is_stateful()` are called as
    `x, state = layer(x, state=state, key=key)`.
    """

    layers: tuple

    def __init__(self, layers: Sequence[Callable]):
        """**Arguments:**

        - `layers`: a sequence of callables (usually `ecliptic.Module`s).
        """
        self.layers = tuple(layers)

    def is_stateful(self) -> bool:
        """`True` iff any layer is a stateful [`ecliptic.nn.StatefulLayer`][]."""
        return any(
            isinstance(layer, StatefulLayer) and layer.is_stateful()
            for layer in self.layers
        )

    def __call__(
        self,
        x: Any,
        state: State = missing_state,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Array | tuple[Array, State]:
        """**Arguments:**

        - `x`: the input of the first layer (any shape it accepts).
        - `state`: optional [`ecliptic.nn.State`][], passed to and updated by the
            stateful layers.
        - `key`: optional PRNG key, split into one subkey per layer.

        **Returns:** the last layer's output; `(output, state)` if `state` was given.
        """
        with jax.named_scope("ecliptic.nn.Sequential"):
            keys: Any = (
                [None] * len(self.layers)
                if key is None
                else jr.split(key, len(self.layers))
            )
            for layer, subkey in zip(self.layers, keys, strict=True):
                call = cast(Any, layer)
                if isinstance(layer, StatefulLayer) and layer.is_stateful():
                    x, state = call(x, state=state, key=subkey)
                else:
                    x = call(x, key=subkey)
        if state is missing_state:
            return x
        return x, state

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return Sequential(self.layers[i])
        try:
            index = operator.index(i)
        except TypeError:
            raise sequential_index_error(i) from None
        return self.layers[index]

    def __iter__(self) -> Iterator[Any]:
        yield from self.layers

    def __len__(self) -> int:
        return len(self.layers)


class Lambda(Module):
    """Wraps a callable (e.g. `jax.nn.relu`) as a layer that accepts and ignores
    `key=`, for use in [`ecliptic.nn.Sequential`][]. `fn` is a pytree node, so it may
    itself be a Module."""

    fn: Callable[..., Any]

    def __call__(self, x: Any, *, key: PRNGKeyArray | None = None) -> Any:
        """**Arguments:**

        - `x`: the input of `fn` (any shape).
        - `key`: ignored.

        **Returns:** `fn(x)`.
        """
        return self.fn(x)
