"""Low-rank adapters: `LoRA`, `add_lora`, `merge_lora`, `lora_filter`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
from jaxtyping import Array, Inexact, PRNGKeyArray, PyTree

from .._filters import is_inexact_array
from .._messages import (
    lora_no_match_error,
    lora_rank_error,
    lora_rule_error,
    lora_weight_error,
)
from .._module import field, Module
from .._tracebacks import api_boundary
from .._tree import tree_at
from ._linear import Linear
from ._misc import children, default_init, path_rule


_Layer = TypeVar("_Layer")

# What `add_lora` accepts as `where`.
Rule = type | tuple[type, ...] | str | Callable[[str, Any], bool]


def _adaptable_weight(layer: Any, path: str | None) -> Array:
    """`layer.weight`, checked to be a 2-d floating-point (or complex) array."""
    weight: Any = getattr(layer, "weight", None)
    if not is_inexact_array(weight) or weight.ndim != 2:
        raise lora_weight_error(layer, path)
    return weight


def _check_rank(rank: Any, shape: tuple[int, ...], path: str | None) -> None:
    if (
        isinstance(rank, bool)
        or not isinstance(rank, int)
        or not 1 <= rank <= min(shape)
    ):
        raise lora_rank_error(rank, shape, path)


class LoRA(Module, Generic[_Layer]):
    r"""Wraps a layer with a 2-d `weight` of shape `(out, in)` (such as
    [`ecliptic.nn.Linear`][] or [`ecliptic.nn.Embedding`][]) in a low-rank adapter
    (Hu et al., 2021): the layer runs with the weight

    $W + \frac{\alpha}{r} B A$,

    where `A = lora_a` has shape `(rank, in)` and `B = lora_b` has shape
    `(out, rank)`. The wrapped layer is otherwise untouched, so it keeps its own
    shape checks and errors. Train only `lora_a` and `lora_b` by partitioning the
    model with [`ecliptic.nn.lora_filter`][], and fold the update into the weight
    with [`ecliptic.nn.merge_lora`][].
    """

    layer: _Layer
    lora_a: Inexact[Array, "rank in_features"]
    lora_b: Inexact[Array, "out_features rank"]
    alpha: float = field(static=True)
    rank: int = field(static=True)

    def __init__(
        self,
        layer: _Layer,
        rank: int,
        *,
        alpha: float | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `layer`: the layer to adapt: any Module whose behaviour is defined by a
            2-d floating-point array `layer.weight` of shape `(out, in)`.
        - `rank`: the rank `r` of the update, from 1 to `min(out, in)`.
        - `alpha`: the update is scaled by `alpha / rank`. Defaults to `rank`
            (a scale of 1). (Keyword only.)
        - `key`: a `jax.random.PRNGKey` for the initialisation of `lora_a`.
            (Keyword only.)

        As in PyTorch's `peft`, `lora_a` is drawn from
        `torch.nn.init.kaiming_uniform_(a=sqrt(5))`, i.e. `U(-1/sqrt(in),
        1/sqrt(in))`, and `lora_b` is zero, so a new adapter leaves the layer's
        outputs unchanged. Both have the dtype of `layer.weight`.
        """
        weight = _adaptable_weight(layer, None)
        _check_rank(rank, weight.shape, None)
        n_out, n_in = weight.shape
        self.layer = layer
        self.lora_a = default_init(key, (rank, n_in), weight.dtype, 1 / math.sqrt(n_in))
        self.lora_b = jnp.zeros((n_out, rank), weight.dtype)
        self.alpha = float(rank if alpha is None else alpha)
        self.rank = rank

    @property
    def scale(self) -> float:
        """`alpha / rank`, the factor applied to `lora_b @ lora_a`."""
        return self.alpha / self.rank

    def merged(self) -> _Layer:
        """**Returns:** the wrapped layer with its `weight` replaced by
        `weight + (alpha / rank) * lora_b @ lora_a`. Adapters nested inside the
        layer stay as they are (use [`ecliptic.nn.merge_lora`][] for a whole model).
        """
        weight = self.layer.weight  # pyright: ignore
        delta = self.scale * (self.lora_b @ self.lora_a)
        return tree_at(lambda layer: layer.weight, self.layer, weight + delta)

    def __call__(self, x: Any, *, key: PRNGKeyArray | None = None) -> Any:
        """**Arguments:**

        - `x`: the wrapped layer's input (one example, of whatever shape it takes).
        - `key`: passed on to the wrapped layer when given. (Keyword only.)

        **Returns:** the wrapped layer's output, computed with the adapted weight.
        """
        with jax.named_scope("ecliptic.nn.LoRA"):
            layer: Any = self.merged()
            return layer(x) if key is None else layer(x, key=key)


def _is_lora(node: Any) -> bool:
    return isinstance(node, LoRA)


def merge_lora(model: PyTree) -> PyTree:
    """Folds every adapter of a model into the weight it adapts.

    **Arguments:**

    - `model`: any PyTree, e.g. a model returned by [`ecliptic.nn.add_lora`][].

    **Returns:** `model` with every [`ecliptic.nn.LoRA`][] replaced by its wrapped
    layer, whose `weight` is now `weight + (alpha / rank) * lora_b @ lora_a`. The
    outputs are the same (to floating-point rounding) and cost nothing extra.
    """

    def merge_one(node: Any) -> Any:
        if not _is_lora(node):
            return node
        inner = tree_at(lambda n: n.layer, node, merge_lora(node.layer))
        return inner.merged()

    return jtu.tree_map(merge_one, model, is_leaf=_is_lora)


def lora_filter(model: PyTree) -> PyTree[bool]:
    """A filter spec that selects the adapters' parameters.

    **Arguments:**

    - `model`: any PyTree holding [`ecliptic.nn.LoRA`][] layers.

    **Returns:** a PyTree of bools with the structure of `model`: `True` exactly at
    the `lora_a` and `lora_b` arrays, `False` everywhere else (the wrapped layers'
    weights and biases included). Use it to train only the adapters:
    `adapters, frozen = ecliptic.partition(model, lora_filter(model))`, or
    `ecliptic.filter(model, lora_filter(model))` for an optax optimiser's state.
    """

    def spec_one(node: Any) -> Any:
        if not _is_lora(node):
            return jtu.tree_map(lambda _: False, node)
        return tree_at(
            lambda n: (n.layer, n.lora_a, n.lora_b),
            node,
            (lora_filter(node.layer), True, True),
        )

    return jtu.tree_map(spec_one, model, is_leaf=_is_lora)


def _matcher(where: Rule | None) -> Callable[[str, Any], bool]:
    """The rule as a predicate `(path, node) -> bool` on the model's nodes."""
    if where is None:
        where = Linear
    if isinstance(where, type) or (
        isinstance(where, tuple) and all(isinstance(t, type) for t in where)
    ):
        types = where
        return lambda path, node: isinstance(node, types)
    rule = path_rule(where)
    if rule is None:
        raise lora_rule_error(where)
    return lambda path, node: isinstance(node, Module) and rule(path, node)


def _walk(
    node: Any,
    path: tuple[Any, ...],
    match: Callable[[str, Any], bool],
    visit: Callable[[str, Any], Any],
) -> Any:
    """Rebuilds `node`, replacing each node selected by `match` (top-down; a selected
    node is not descended into, nor is an existing adapter) with `visit(path, node)`.
    """
    if _is_lora(node):
        return node
    keystr = jtu.keystr(path)
    if match(keystr, node):
        return visit(keystr, node)
    pairs, treedef = children(node)
    if len(pairs) == 1 and pairs[0][0] is None:  # a leaf
        return node
    return jtu.tree_unflatten(
        treedef, [_walk(child, (*path, k), match, visit) for k, child in pairs]
    )


def _modules(model: Any) -> list[tuple[str, Any]]:
    """Every Module of `model` (other than adapters) with its key path, top-down."""
    found: list[tuple[str, Any]] = []

    def record(path: str, node: Any) -> bool:
        if isinstance(node, Module):
            found.append((path, node))
        return False  # select nothing: visit every node

    _walk(model, (), record, lambda path, node: node)
    return found


@api_boundary
def add_lora(
    model: PyTree,
    rank: int,
    *,
    alpha: float | None = None,
    where: Rule | None = None,
    key: PRNGKeyArray,
) -> PyTree:
    """Wraps every layer of a model that `where` selects in an [`ecliptic.nn.LoRA`][].

    **Arguments:**

    - `model`: any PyTree of layers, e.g. an [`ecliptic.nn.MLP`][].
    - `rank`: the rank of every adapter; from 1 to `min(out, in)` of each selected
        weight.
    - `alpha`: the adapters scale their update by `alpha / rank`. Defaults to `rank`
        (a scale of 1). (Keyword only.)
    - `where`: which layers to wrap (keyword only), one of:
        - a layer type, or a tuple of types: every instance of it;
        - a regex string, searched (`re.search`) in each Module's key path as
            `jax.tree_util.keystr` prints it, e.g. `r"\\.layers\\[0\\]$"` for
            `model.layers[0]`;
        - a callable `(path, layer) -> bool`, called on each Module with that key
            path.

        The model is walked from the root down: a selected layer is wrapped and not
        looked into, and layers already inside a `LoRA` are left alone. Defaults to
        every [`ecliptic.nn.Linear`][].
    - `key`: a `jax.random.PRNGKey`, split into one key per wrapped layer in tree
        order. (Keyword only.)

    **Returns:** `model` with the selected layers wrapped; each new adapter leaves
    the outputs unchanged.

    Raises `ValueError` if a selected layer has no 2-d floating-point `weight`, if
    `rank` does not fit a selected weight, or if `where` selects nothing.
    """
    match = _matcher(where)
    selected: list[tuple[str, Any]] = []

    def check(path: str, layer: Any) -> Any:
        _check_rank(rank, _adaptable_weight(layer, path).shape, path)
        selected.append((path, layer))
        return layer

    _walk(model, (), match, check)
    if not selected:
        raise lora_no_match_error(where, _modules(model))
    keys = iter(jr.split(key, len(selected)))

    def wrap(path: str, layer: Any) -> Any:
        return LoRA(layer, rank, alpha=alpha, key=next(keys))

    return _walk(model, (), match, wrap)
