"""`inference_mode` (alias `tree_inference`): flip every `inference` flag in a model."""

from __future__ import annotations

from typing import Any

import jax.tree_util as jtu

from ._misc import children


PyTree = Any


def _is_leaf_node(node: Any, pairs: list[tuple[Any, Any]]) -> bool:
    return len(pairs) == 1 and pairs[0][0] is None and pairs[0][1] is node


def _set_inference(node: Any, value: bool) -> Any:
    pairs, treedef = children(node)
    if _is_leaf_node(node, pairs):
        return node
    has_flag = hasattr(node, "inference")
    new = []
    for key, child in pairs:
        if has_flag and isinstance(key, jtu.GetAttrKey) and key.name == "inference":
            new.append(value)
        else:
            new.append(_set_inference(child, value))
    return jtu.tree_unflatten(treedef, new)


def inference_mode(pytree: PyTree, value: bool = True) -> PyTree:
    """Sets every `inference` attribute in `pytree` (recursively) to `value`.

    Layers such as [`ecliptic.nn.Dropout`][] and [`ecliptic.nn.BatchNorm`][] behave
    differently in training and inference; this switches a whole model at once:
    `model = ecliptic.nn.inference_mode(model)`, and back with `value=False`.

    **Arguments:**

    - `pytree`: any pytree, usually a model.
    - `value`: the new value of every `inference` flag. Defaults to `True`.

    **Returns:** a copy of `pytree` with the same structure and every `inference`
    field set to `value`.
    """
    return _set_inference(pytree, value)
