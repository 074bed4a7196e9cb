"""`backward_nan`: print the primal and cotangent of a value on the backward pass,
and stop on a NaN cotangent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import PyTree

from .._errors import error_if
from .._filters import is_array


class _Shown:
    """Prints a PyTree with full array values inside `jax.debug.print`."""

    def __init__(self, tree: Any):
        self.tree = tree

    def __format__(self, spec: str) -> str:
        return str(jtu.tree_map(lambda a: a.tolist() if is_array(a) else a, self.tree))


jtu.register_pytree_node(_Shown, lambda s: ((s.tree,), None), lambda _, c: _Shown(*c))


def _make_identity(name: str | None, terminate: bool):
    def identity_fn(arrays):
        return arrays

    identity = jax.custom_vjp(identity_fn)

    def fwd(arrays):
        return arrays, arrays

    def bwd(arrays, cts):
        msg = "   primals={x}\ncotangents={ct}"
        if name is not None:
            msg = f"{name}:\n" + msg
        jax.debug.print(msg, x=_Shown(arrays), ct=_Shown(cts), ordered=True)
        if terminate and len(cts) > 0:
            has_nan = jnp.stack([jnp.isnan(c).any() for c in cts]).any()
            cts = error_if(cts, has_nan, "Encountered NaN")
        return (cts,)

    identity.defvjp(fwd, bwd)
    return identity


def backward_nan(x: PyTree, name: str | None = None, terminate: bool = True) -> PyTree:
    """Identity on the forward pass; on the backward pass prints the primal and the
    cotangent of `x`'s floating-point arrays, and (if `terminate`) raises through
    [`ecliptic.error_if`][] when a cotangent contains NaN.

    **Arguments:**

    - `x`: any PyTree.
    - `name`: optional label for the printed output.
    - `terminate`: whether a NaN cotangent raises (`"Encountered NaN"`); the
        `ECLIPTIC_ON_ERROR` / `EQX_ON_ERROR` mode applies.

    **Returns:** `x`, unchanged.
    """
    leaves, treedef = jtu.tree_flatten(x)
    positions = [
        i
        for i, leaf in enumerate(leaves)
        if is_array(leaf) and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    out = _make_identity(name, terminate)([leaves[i] for i in positions])
    for i, new in zip(positions, out, strict=True):
        leaves[i] = new
    return jtu.tree_unflatten(treedef, leaves)
