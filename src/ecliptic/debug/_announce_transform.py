"""`announce_transform`: an identity function that reports each JAX transformation
applied to its input (jvp, transpose, vmap, abstract evaluation, lowering)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.extend.core
import jax.interpreters.ad as ad
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.tree_util as jtu
from jaxtyping import PyTree

from .._filters import is_array
from .._wrap import api_boundary


announce_jaxpr_p = jax.extend.core.Primitive("ecliptic_announce_transform")
announce_jaxpr_p.multiple_results = True


def _say(params: dict, stack: tuple[str, ...]) -> None:
    params["announce"](params["name"] + ":".join(stack))


def _bind(xs, params: dict, stack: tuple[str, ...]):
    return announce_jaxpr_p.bind(*xs, **{**params, "stack": stack})


def _impl(*xs, **params):
    _say(params, params["stack"] + ("impl",))
    return xs


def _abstract_eval(*xs, **params):
    _say(params, params["stack"] + ("abstract",))
    return xs


def _lowering(*xs, **params):
    _say(params, params["stack"] + ("mlir",))
    return xs


def _jvp(primals, tangents, **params):
    stack = params["stack"]
    if params["intermediates"]:
        _say(params, stack + ("jvp",))
    primals_out = _bind(primals, params, stack + ("jvp_p",))
    live = [t for t in tangents if type(t) is not ad.Zero]
    live_out = iter(_bind(live, params, stack + ("jvp_t",)) if live else [])
    tangents_out = [t if type(t) is ad.Zero else next(live_out) for t in tangents]
    return primals_out, tangents_out


def _transpose(cts, *primals, **params):
    del primals
    stack = params["stack"] + ("transpose",)
    if params["intermediates"]:
        _say(params, stack)
    return _bind(cts, params, stack)


def _batch(xs, dims, **params):
    stack = params["stack"] + ("vmap",)
    if params["intermediates"]:
        _say(params, stack)
    return _bind(xs, params, stack), dims


announce_jaxpr_p.def_impl(_impl)
announce_jaxpr_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[announce_jaxpr_p] = _jvp
ad.primitive_transposes[announce_jaxpr_p] = _transpose
batching.primitive_batchers[announce_jaxpr_p] = _batch
mlir.register_lowering(
    announce_jaxpr_p, mlir.lower_fun(_lowering, multiple_results=True)
)


@api_boundary
def announce_transform(
    x: PyTree,
    name: str | None = None,
    intermediates: bool = False,
    announce: Callable[[str], Any] = print,
) -> PyTree:
    """Identity on any PyTree that announces each JAX transformation applied to its
    arrays, e.g. `vmap:abstract`, `jvp_t:transpose:mlir`. For one-off debugging; the
    exact strings are not a stable API.

    **Arguments:**

    - `x`: any PyTree; its arrays are intercepted, other leaves pass through.
    - `name`: optional label, printed as `(name) ` before each announcement.
    - `intermediates`: also announce transformations that are still in progress (e.g.
        `vmap` before `vmap:abstract`).
    - `announce`: the function called with each announcement (default `print`).

    **Returns:** `x`, unchanged.
    """
    prefix = "" if name is None else f"({name}) "
    leaves, treedef = jtu.tree_flatten(x)
    positions = [i for i, leaf in enumerate(leaves) if is_array(leaf)]
    params = dict(stack=(), name=prefix, intermediates=intermediates, announce=announce)
    out = _bind([leaves[i] for i in positions], params, ())
    for i, new in zip(positions, out, strict=True):
        leaves[i] = new
    return jtu.tree_unflatten(treedef, leaves)
