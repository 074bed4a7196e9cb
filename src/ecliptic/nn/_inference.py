"""`inference_mode` (alias `tree_inference`): flip every `inference` flag in a model."""

from __future__ import annotations

from typing import Any

import jax.tree_util as jtu


PyTree = Any


def _children(node: Any) -> tuple[list[tuple[Any, Any]], Any]:
    """One level of `node`: its `(key, child)` pairs and the treedef to rebuild it."""
    pairs, treedef = jtu.tree_flatten_with_path(node, is_leaf=lambda y: y is not node)
    return [(path[0] if path else None, child) for path, child in pairs], treedef


def _is_leaf_node(node: Any, pairs: list[tuple[Any, Any]]) -> bool:
    return len(pairs) == 1 and pairs[0][0] is None and pairs[0][1] is node


def _set_inference(node: Any, value: bool) -> Any:
    pairs, treedef = _children(node)
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


def with_attr(node: Any, name: str, value: Any) -> Any:
    """A copy of the pytree node `node` whose child attribute `name` is `value`.

    Private helper for wrappers (`SpectralNorm`, `WeightNorm`) that substitute a
    parameter of the layer they wrap. Raises `ValueError` if `name` is not a child
    of `node` (e.g. a static field).
    """
    pairs, treedef = _children(node)
    new, found = [], False
    for key, child in pairs:
        if isinstance(key, jtu.GetAttrKey) and key.name == name:
            new.append(value)
            found = True
        else:
            new.append(child)
    if not found:
        raise ValueError(
            f"{type(node).__name__} expected `{name}` to be an array field (a pytree "
            f"child), but it is not among its children "
            f"{[k.name for k, _ in pairs if isinstance(k, jtu.GetAttrKey)]}. Pass the "
            "name of an array field, e.g. `weight_name='weight'`."
        )
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
