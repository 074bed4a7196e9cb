"""`Stacked`: `n` identical layers held as one layer with stacked arrays, applied one
after the other with `jax.lax.scan`, so that tracing and compiling cost the same for
any depth."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax import lax
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._filters import combine, is_array, partition
from .._messages import (
    stack_carry_error,
    stack_class_error,
    stack_empty_error,
    stack_empty_slice_error,
    stack_index_error,
    stack_index_type_error,
    stack_leaf_error,
    stack_size_error,
    stack_stateful_error,
    stack_treedef_error,
    stack_unroll_error,
    stack_value_error,
)
from .._module import field, Module
from .._vmap_pmap import filter_vmap
from ._stateful import StateIndex


def _check_size(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise stack_size_error(n)
    return int(n)


def _check_unroll(unroll: Any) -> int | bool:
    if isinstance(unroll, bool):
        return unroll
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
        raise stack_unroll_error(unroll)
    return int(unroll)


def _check_stateless(layer: Any) -> None:
    """Refuses a layer holding a `StateIndex`: its `State` is not threaded."""
    is_index = lambda x: isinstance(x, StateIndex)
    if any(is_index(x) for x in jtu.tree_leaves(layer, is_leaf=is_index)):
        raise stack_stateful_error(type(layer).__name__)


def _same_value(a: Any, b: Any) -> bool:
    """Whether two non-array leaves are the same (identical, or equal)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (an `==` that does not give a bool)
        return False


def _check_like(i: int, first: Any, other: Any) -> None:
    """Refuses layer `i` of `from_layers` unless it differs from layer 0 only in the
    values of its arrays."""
    if type(other) is not type(first):
        raise stack_class_error(i, type(first), type(other))
    leaves0, treedef0 = jtu.tree_flatten_with_path(first)
    leaves, treedef = jtu.tree_flatten_with_path(other)
    if treedef != treedef0:
        raise stack_treedef_error(i, treedef0, treedef)
    for (path, a), (_, b) in zip(leaves0, leaves, strict=True):
        where = jtu.keystr(path)
        if is_array(a) and is_array(b):
            sa, sb = (tuple(np.shape(a)), a.dtype), (tuple(np.shape(b)), b.dtype)
            if sa != sb:
                raise stack_leaf_error(i, where, sa, sb)
        elif is_array(a) or is_array(b) or not _same_value(a, b):
            raise stack_value_error(i, where, a, b)


def _spec(x: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))


def _same_carry(x: PyTree, out: PyTree) -> bool:
    """Whether `out` has the tree structure, shapes and dtypes of `x`."""
    if jtu.tree_structure(x) != jtu.tree_structure(out):
        return False
    pairs = zip(jtu.tree_leaves(x), jtu.tree_leaves(out), strict=True)
    return all(_spec(a) == _spec(b) for a, b in pairs)


class Stacked(Module):
    """`n` layers of the same structure held as **one** layer whose arrays have a
    leading axis of size `n`, and applied one after the other (layer 0 first) with
    `jax.lax.scan`.

    The layer's code is traced once, whatever `n` is, so tracing and compiling a
    deep stack takes about as long as a shallow one (an `ecliptic.nn.Sequential` of
    the same layers traces and compiles each of them). Each layer must map `x` to an
    output of the same shape and dtype (a residual block, a transformer layer).
    `stacked[i]` gives back layer `i` as an ordinary Module.

    This is Flax's `nn.scan` / `nnx.Scan` over layers and Haiku's `hk.layer_stack`.
    Stateful layers (those holding an [`ecliptic.nn.StateIndex`][], such as
    `BatchNorm`) are refused: use [`ecliptic.nn.Sequential`][] for them.
    """

    layers: Any
    n: int = field(static=True)
    unroll: int | bool = field(static=True, default=1)

    def __init__(
        self,
        make_layer: Callable[[PRNGKeyArray], Any],
        n: int,
        *,
        key: PRNGKeyArray,
        unroll: int | bool = 1,
    ):
        """**Arguments:**

        - `make_layer`: a function `key -> layer` building one layer. It is called
            once, under [`ecliptic.filter_vmap`][] over `n` keys, so the layers get
            the weights of `make_layer(k)` for `k` in `jax.random.split(key, n)`
            and share everything that is not an array (sizes, activations).
        - `n`: the number of layers, a positive int.
        - `key`: a `jax.random.PRNGKey`, split into one key per layer. (Keyword
            only.)
        - `unroll`: how many layers each step of the `jax.lax.scan` runs (as its
            `unroll`): `1` (the default) compiles fastest; `True` inlines every
            layer. (Keyword only.)
        """
        n = _check_size(n)
        self.unroll = _check_unroll(unroll)
        layers = filter_vmap(make_layer)(jr.split(key, n))
        _check_stateless(layers)
        self.layers = layers
        self.n = n

    @classmethod
    def from_layers(cls, layers: Sequence[Any], *, unroll: int | bool = 1) -> Stacked:
        """Stacks existing layers, which must differ only in the values of their
        arrays (same class, structure, static fields, array shapes and dtypes, and
        non-array leaves such as activation functions).

        **Arguments:**

        - `layers`: a non-empty sequence of layers; layer 0 is applied first.
        - `unroll`: as for `Stacked`. (Keyword only.)

        **Returns:** a `Stacked` whose `stacked[i]` equals `layers[i]`.
        """
        layers = list(layers)
        if not layers:
            raise stack_empty_error()
        unroll = _check_unroll(unroll)
        _check_stateless(layers[0])
        for i, layer in enumerate(layers[1:], start=1):
            _check_like(i, layers[0], layer)
        stack = lambda *xs: jnp.stack(xs) if is_array(xs[0]) else xs[0]
        return cls._build(jtu.tree_map(stack, *layers), len(layers), unroll)

    @classmethod
    def _build(cls, layers: Any, n: int, unroll: int | bool) -> Stacked:
        """A `Stacked` from already stacked `layers`, without calling `__init__`
        (as a PyTree unflatten builds it)."""
        new = object.__new__(cls)
        for name, value in (("layers", layers), ("n", n), ("unroll", unroll)):
            object.__setattr__(new, name, value)
        return new

    @jax.named_scope("ecliptic.nn.Stacked")
    def __call__(self, x: PyTree[Array], *, key: PRNGKeyArray | None = None) -> Any:
        """**Arguments:**

        - `x`: the input of the first layer (any shape it accepts; an array or a
            pytree of arrays). Batch with `jax.vmap(stacked)(x)`.
        - `key`: optional PRNG key, split with `jax.random.split(key, n)` into one
            key per layer, as [`ecliptic.nn.Sequential`][] does. (Keyword only.)

        **Returns:** the last layer's output, of the shape and dtype of `x`.
        """
        x = jtu.tree_map(jnp.asarray, x)
        params, static = partition(self.layers, is_array)
        keys = None if key is None else jr.split(key, self.n)
        layer_name = type(static).__name__

        def step(h: Any, params_and_key: tuple[Any, Any]) -> tuple[Any, None]:
            layer_params, layer_key = params_and_key
            out = combine(layer_params, static)(h, key=layer_key)
            if not _same_carry(h, out):
                raise stack_carry_error(layer_name, self.n, h, out)
            return out, None

        out, _ = lax.scan(step, x, (params, keys), length=self.n, unroll=self.unroll)
        return out

    def _take(self, index: int | slice) -> Any:
        params, static = partition(self.layers, is_array)
        return combine(jtu.tree_map(lambda a: a[index], params), static)

    def __getitem__(self, index: int | slice) -> Any:
        """`stacked[i]` is layer `i` (`-n <= i < n`) as an ordinary Module;
        `stacked[a:b]` is a `Stacked` of the layers selected."""
        if isinstance(index, slice):
            count = len(range(self.n)[index])
            if count == 0:
                raise stack_empty_slice_error(index, self.n)
            return type(self)._build(self._take(index), count, self.unroll)
        try:
            i = operator.index(index)
        except TypeError:
            raise stack_index_type_error(index) from None
        if not -self.n <= i < self.n:
            raise stack_index_error(i, self.n)
        return self._take(i % self.n)

    def __iter__(self) -> Iterator[Any]:
        for i in range(self.n):
            yield self[i]

    def __len__(self) -> int:
        return self.n
