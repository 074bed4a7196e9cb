"""`apply_updates`: add a PyTree of updates to a model, skipping `None` updates."""

from __future__ import annotations

from typing import Any

from ._filters import flatten_none_as_leaf


PyTree = Any


def apply_updates(model: PyTree, updates: PyTree) -> PyTree:
    """Returns `model` with every update added to its matching leaf: `p + u` where
    the update `u` is not `None`, and `p` unchanged where it is `None`.

    This is `optax.apply_updates` for models with non-array leaves: the gradient of
    [`ecliptic.filter_grad`][] (and the updates an optimiser makes from it) hold `None`
    where the model has no trainable array.

    ```python
    grads = ecliptic.filter_grad(loss)(model, x, y)
    updates, opt_state = optim.update(grads, opt_state, model)
    model = ecliptic.apply_updates(model, updates)
    ```

    **Arguments:**

    - `model`: any PyTree.
    - `updates`: a PyTree whose structure is a prefix of `model`'s; a `None` update
        leaves the whole matching subtree of `model` unchanged.

    **Returns:** the updated model.
    """
    # One C++ flatten with `None` as a leaf, then the matching subtrees of `model`.
    flat_updates, treedef = flatten_none_as_leaf(updates)
    flat_model = treedef.flatten_up_to(model)
    return treedef.unflatten(
        [
            p if u is None else p + u
            for u, p in zip(flat_updates, flat_model, strict=True)
        ]
    )
