"""`backward_nan`: print the primal and cotangent of every leaf of a PyTree on the
backward pass, by key path, and stop on a NaN cotangent."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import PyTree

from .._errors import branched_error_if
from .._filters import is_array
from .._messages import backward_nan_nan_message, backward_nan_report


class _Leaf(NamedTuple):
    """What is known of one leaf while tracing: its key path (`.layers[0].weight`),
    its description (`float32[2, 3]`, or the `repr` of a non-array leaf), and its
    kind: `"float"` (traced, has a cotangent), `"array"` (traced, no cotangent:
    integer or boolean), `"opaque"` (an array whose values cannot be printed, such
    as PRNG keys) or `"static"` (not an array); the last two are not traced."""

    path: str
    description: str
    kind: str


def _describe(path: Any, leaf: Any) -> _Leaf:
    where = jtu.keystr(path)
    if not is_array(leaf):
        return _Leaf(where, repr(leaf), "static")
    dtype = leaf.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):  # e.g. PRNG keys
        return _Leaf(where, f"{dtype}{list(leaf.shape)}", "opaque")
    text = f"{jnp.dtype(dtype).name}{list(leaf.shape)}"
    kind = "float" if jnp.issubdtype(dtype, jnp.inexact) else "array"
    return _Leaf(where, text, kind)


def _format_value(value: Any) -> str:
    """An array's values as numpy prints them (summarised when large); dtypes
    numpy has no number format for (bfloat16, float8, int4) as float32."""
    value = np.asarray(value)
    if value.dtype.kind not in "biufc":
        value = value.astype(np.float32)
    return np.array2string(value, separator=", ")


class _Report:
    """The printed report, a PyTree (so `jax.debug.print` hands it the concrete
    values): the traced leaves' primals and cotangents (`None` where nothing flowed
    back), laid out by the static `leaves` when formatted."""

    def __init__(self, name: str | None, leaves: tuple, primals: list, cts: list):
        self.name, self.leaves, self.primals, self.cts = name, leaves, primals, cts

    def __format__(self, spec: str) -> str:
        traced = iter(zip(self.primals, self.cts, strict=True))
        rows = []
        for leaf in self.leaves:
            if leaf.kind in ("static", "opaque"):
                rows.append((*leaf, None, None, False))
                continue
            primal, ct = next(traced)
            has_nan = ct is not None and bool(np.isnan(np.asarray(ct)).any())
            shown = None if ct is None else _format_value(ct)
            rows.append((*leaf, _format_value(primal), shown, has_nan))
        return backward_nan_report(self.name, rows)


jtu.register_pytree_node(
    _Report,
    lambda r: ((r.primals, r.cts), (r.name, r.leaves)),
    lambda aux, children: _Report(*aux, *children),
)


def _make_identity(name: str | None, terminate: bool, leaves: tuple[_Leaf, ...]):
    """The identity on the traced leaves, whose backward pass prints and checks."""
    traced = [leaf for leaf in leaves if leaf.kind in ("float", "array")]
    is_float = [leaf.kind == "float" for leaf in traced]
    messages = [backward_nan_nan_message(name, leaf.path) for leaf in traced]

    def identity_fn(arrays):
        return arrays

    identity = jax.custom_vjp(identity_fn)

    def fwd(arrays):
        values = [a.value for a in arrays]  # `CustomVJPPrimal`s (symbolic zeros)
        return values, values

    def bwd(values, cts):
        cts = [
            None if not f or isinstance(c, SymbolicZero) else c
            for c, f in zip(cts, is_float, strict=True)
        ]
        report = _Report(name, leaves, values, cts)
        jax.debug.print("{report}", report=report, ordered=True)
        present = [(i, c) for i, c in enumerate(cts) if c is not None]
        if terminate and present:
            indices, checked = zip(*present, strict=True)
            nans = jnp.stack([jnp.isnan(c).any() for c in checked])
            first = jnp.asarray(indices)[jnp.argmax(nans)]  # index into `messages`
            checked = branched_error_if(list(checked), nans.any(), first, messages)
            for i, c in zip(indices, checked, strict=True):
                cts[i] = c
        return (cts,)

    identity.defvjp(fwd, bwd, symbolic_zeros=True)
    return identity


def backward_nan(x: PyTree, name: str | None = None, terminate: bool = True) -> PyTree:
    """Identity on the forward pass. On the backward pass, prints every leaf of `x`
    by its key path (`.layers[0].weight`) with its dtype and shape, the primal
    values of its arrays and the cotangent of its floating-point arrays, flagging
    each cotangent that holds a NaN; and (if `terminate`) raises through
    [`ecliptic.branched_error_if`][] when one does, naming the first such leaf.

    **Arguments:**

    - `x`: any PyTree.
    - `name`: optional label for the printed output and the error.
    - `terminate`: whether a NaN cotangent raises; the `ECLIPTIC_ON_ERROR` /
        `EQX_ON_ERROR` mode applies.

    **Returns:** `x`, unchanged.

    A cotangent printed as `zero` is one that nothing flowed back to (for example
    a parameter the loss does not use).
    """
    with_paths, treedef = jtu.tree_flatten_with_path(x)
    leaves = tuple(_describe(path, leaf) for path, leaf in with_paths)
    positions = [i for i, leaf in enumerate(leaves) if leaf.kind in ("float", "array")]
    if not positions:
        return x
    values = [with_paths[i][1] for i in positions]
    out = _make_identity(name, terminate, leaves)(values)
    new = [leaf for _, leaf in with_paths]
    for i, value in zip(positions, out, strict=True):
        new[i] = value
    return jtu.tree_unflatten(treedef, new)
