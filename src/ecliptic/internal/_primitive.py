"""Filtered primitives: custom JAX primitives whose inputs and outputs are any PyTree.

A JAX primitive sees only a flat list of arrays. `filter_primitive_bind(prim, *args)`
flattens `args`; the array leaves become the primitive's operands and everything else
(the tree structure and the non-array leaves) travels in its parameters. The rules,
wrapped by `filter_primitive_def` / `_jvp` / `_transpose` / `_batching`, are then
written against the original PyTrees, with `None` standing for "no tangent",
"no cotangent" or "not batched".

The output's structure is found the first time a rule runs (usually abstract
evaluation) and kept in an `_Output` record passed along as a parameter; every later
rule must return the same structure with the same non-array leaves.

`create_vprim` makes a primitive whose batching rule comes for free: under `vmap` it
binds the helper primitive `vprim`, whose rules are the original rules under
`jax.vmap`.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.extend.core
import jax.interpreters.ad as ad
import jax.tree_util as jtu
from jaxtyping import PyTree

from .. import _messages
from .._filters import is_array, is_array_like


class _Operand:
    """Marks, in the `static` parameter, where an operand (array) leaf goes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<operand>"


_OPERAND = _Operand()


class _Undefined:
    """Not a PyTree: carries an `ad.UndefinedPrimal` (itself a PyTree with no leaves)
    through flattening, so that it keeps its place in the tree."""

    __slots__ = ("primal",)

    def __init__(self, primal: ad.UndefinedPrimal):
        self.primal = primal


def _is_dynamic_out(x: Any) -> bool:
    # Arrays (tracers included), avals during abstract evaluation, or undefined primals.
    return is_array(x) or isinstance(x, (jax.core.ShapedArray, _Undefined))


def _is_none(x: Any) -> bool:
    return x is None


def _zero_like(x: Any) -> ad.Zero:
    """A symbolic zero tangent for the primal (or aval) `x`."""
    aval = x if isinstance(x, jax.core.AbstractValue) else jax.typeof(x)
    if hasattr(aval, "to_tangent_aval"):
        aval = aval.to_tangent_aval()
    return ad.Zero(aval)


def _merge(dynamic: Any, static: tuple) -> list:
    """The flat leaves: `static`, with each `_OPERAND` replaced by the next dynamic."""
    it = iter(dynamic)
    return [next(it) if s is _OPERAND else s for s in static]


def _operand_slots(static: tuple, values: Any) -> list:
    """`values` at the operand places, `None` at the static ones."""
    it = iter(values)
    return [next(it) if s is _OPERAND else None for s in static]


def _same_leaf(a: Any, b: Any) -> bool:
    if a is _OPERAND or b is _OPERAND:
        return a is b
    try:
        return a is b or bool(a == b)
    except Exception:  # an `==` that does not give a bool: compare by identity
        return False


class _Output:
    """The structure of a filtered primitive's output (not a PyTree; passed as the
    `out` parameter). Filled by the first rule that runs; checked by the others."""

    __slots__ = ("treedef", "static", "__weakref__")

    def known(self) -> bool:
        return hasattr(self, "treedef")

    def _remember(self, treedef: Any, static: tuple, kind: str) -> None:
        if not self.known():
            self.treedef, self.static = treedef, static
            return
        same = treedef == self.treedef and len(static) == len(self.static)
        same = same and all(_same_leaf(a, b) for a, b in zip(static, self.static))
        if not same:
            raise _messages.primitive_output_error(kind)

    def record(self, tree: PyTree, kind: str = "impl") -> list:
        """The operand leaves of `tree`, remembering its structure."""
        leaves, treedef = jtu.tree_flatten(tree)
        static = tuple(_OPERAND if _is_dynamic_out(x) else x for x in leaves)
        self._remember(treedef, static, kind)
        return [x for x in leaves if _is_dynamic_out(x)]

    def record_like(self, tree: PyTree, like: PyTree, kind: str) -> tuple[list, list]:
        """As `record`; also the leaves of `like` (tangents or batch axes: a PyTree
        like `tree`, with `None` for "none") at the operand places."""
        leaves, treedef = jtu.tree_flatten(tree)
        like_leaves = treedef.flatten_up_to(like)
        static = tuple(
            _OPERAND if (_is_dynamic_out(x) or y is not None) else x
            for x, y in zip(leaves, like_leaves)
        )
        self._remember(treedef, static, kind)
        pairs = [
            (x, y) for x, y, s in zip(leaves, like_leaves, static) if s is _OPERAND
        ]
        return [x for x, _ in pairs], [y for _, y in pairs]

    def rebuild(self, dynamic: Any, static_as_none: bool = False) -> PyTree:
        """The output PyTree from its operand leaves."""
        static = self.static
        if static_as_none:
            static = tuple(s if s is _OPERAND else None for s in static)
        return jtu.tree_unflatten(self.treedef, _merge(dynamic, static))


def filter_primitive_def(rule: Callable) -> Callable:
    """Wraps an `impl` or `abstract_eval` rule written against PyTrees.

    **Arguments:**

    - `rule`: `rule(*args) -> out`, called with the arguments given to
        `filter_primitive_bind` (arrays replaced by `ShapedArray`s during abstract
        evaluation); `out` is any PyTree.

    **Returns:** the rule to give to `prim.def_impl` / `prim.def_abstract_eval`.
    """

    def _rule(*dynamic, treedef, static, out):
        args = jtu.tree_unflatten(treedef, _merge(dynamic, static))
        return out.record(rule(*args))

    return _rule


def filter_primitive_jvp(rule: Callable) -> Callable:
    """Wraps a JVP rule written against PyTrees.

    **Arguments:**

    - `rule`: `rule(primals, tangents) -> (primals_out, tangents_out)`. `primals` is
        the tuple of arguments; `tangents` is like it, with `None` for symbolic zero
        tangents and for every non-array leaf. `tangents_out` is like `primals_out`,
        with `None` for zero tangents (and necessarily for non-array outputs).

    **Returns:** the rule to store in `jax.interpreters.ad.primitive_jvps[prim]`.
    """

    def _rule(primals, tangents, *, treedef, static, out):
        tangents = [None if type(t) is ad.Zero else t for t in tangents]
        p_tree = jtu.tree_unflatten(treedef, _merge(primals, static))
        t_tree = jtu.tree_unflatten(treedef, _operand_slots(static, tangents))
        p_out, t_out = rule(p_tree, t_tree)
        flat_p, flat_t = out.record_like(p_out, t_out, "jvp")
        flat_t = [_zero_like(p) if t is None else t for p, t in zip(flat_p, flat_t)]
        return flat_p, flat_t

    return _rule


_NOT_GIVEN: Any = object()


def filter_primitive_transpose(
    rule: Callable = _NOT_GIVEN, *, materialise_zeros: bool = False
) -> Callable:
    """Wraps a transpose rule written against PyTrees. Use as `@filter_primitive_
    transpose` or `@filter_primitive_transpose(materialise_zeros=True)`.

    **Arguments:**

    - `rule`: `rule(inputs, cts_out) -> cts_in`. `inputs` is the tuple of arguments,
        with `jax.interpreters.ad.UndefinedPrimal` for the linear inputs; `cts_out` is
        like the primal output, with `None` for zero cotangents (and non-array
        leaves). `cts_in` is like `inputs`, with `None` wherever there is no cotangent.
    - `materialise_zeros`: if `True`, zero cotangents reach `rule` as arrays of zeros
        instead of `None`.

    **Returns:** the rule to store in `jax.interpreters.ad.primitive_transposes[prim]`.
    """
    if rule is _NOT_GIVEN:
        return ft.partial(
            filter_primitive_transpose, materialise_zeros=materialise_zeros
        )

    def _rule(cts, *dynamic, treedef, static, out):
        if materialise_zeros:
            cts = [ad.instantiate_zeros(ct) for ct in cts]
        else:
            cts = [None if type(ct) is ad.Zero else ct for ct in cts]
        cts_tree = out.rebuild(cts, static_as_none=True)
        wrapped = [_Undefined(x) if ad.is_undefined_primal(x) else x for x in dynamic]
        wrapped_tree = jtu.tree_unflatten(treedef, _merge(wrapped, static))
        inputs = jtu.tree_map(
            lambda x: x.primal if isinstance(x, _Undefined) else x, wrapped_tree
        )
        flat_cts = treedef.flatten_up_to(rule(inputs, cts_tree))
        results = []
        for x, ct in zip(dynamic, _pick_operands(static, flat_cts)):
            if ct is None and ad.is_undefined_primal(x):
                ct = _zero_like(x.aval)
            results.append(ct)
        return results

    return _rule


def rebuild_inputs(dynamic: Any, treedef: Any, static: tuple) -> PyTree:
    """The arguments of a filtered primitive from its operands and parameters (for
    rules, such as lowerings, that receive the raw `treedef`/`static` parameters)."""
    return jtu.tree_unflatten(treedef, _merge(dynamic, static))


def _pick_operands(static: tuple, flat: list) -> list:
    return [y for s, y in zip(static, flat) if s is _OPERAND]


def filter_primitive_batching(rule: Callable) -> Callable:
    """Wraps a batching rule written against PyTrees.

    **Arguments:**

    - `rule`: `rule(inputs, batch_axes) -> (out, out_axes)`. `batch_axes` is like
        `inputs`, with an `int` (the batched axis) or `None` (not batched; always for
        non-array leaves). `out_axes` is like `out` in the same way.

    **Returns:** the rule to store in
    `jax.interpreters.batching.primitive_batchers[prim]`.
    """

    def _rule(dynamic, batch_axes, *, treedef, static, out):
        inputs = jtu.tree_unflatten(treedef, _merge(dynamic, static))
        axes = jtu.tree_unflatten(treedef, _operand_slots(static, batch_axes))
        out_tree, out_axes = rule(inputs, axes)
        return out.record_like(out_tree, out_axes, "batching")

    return _rule


def filter_primitive_bind(prim: jax.extend.core.Primitive, *args: Any) -> PyTree:
    """Calls a primitive whose rules were wrapped by the `filter_primitive_*`
    functions.

    **Arguments:**

    - `prim`: the primitive; it must have `multiple_results = True`.
    - `*args`: any PyTrees. Array leaves become the operands; everything else
        (including any `Jaxpr` or `ClosedJaxpr`, so that jaxpr-rewriting passes find
        it) is kept in the primitive's `static` parameter.

    **Returns:** the PyTree returned by the rules.
    """
    if not prim.multiple_results:
        raise _messages.single_result_primitive_error(prim)
    flat, treedef = jtu.tree_flatten(args)
    dynamic = [x for x in flat if is_array(x)]
    static = tuple(_OPERAND if is_array(x) else x for x in flat)
    out = _Output()
    flat_out = prim.bind(*dynamic, treedef=treedef, static=static, out=out)
    return out.rebuild(flat_out)


def materialise_zeros(primal: Any, tangent: Any, allow_struct: bool = False) -> Any:
    """Turns a `None` (symbolic zero) tangent into an array of zeros. Useful in the
    JVP rules of higher-order primitives.

    **Arguments:**

    - `primal`: the primal leaf.
    - `tangent`: its tangent, or `None`.
    - `allow_struct`: also materialise zeros for a `jax.ShapeDtypeStruct` primal.

    **Returns:** `tangent`, or zeros of the primal's tangent type (`float0` for
    integer primals) where `tangent` is `None` and `primal` is array-like.
    """
    arraylike = is_array_like(primal) or (
        allow_struct and isinstance(primal, jax.ShapeDtypeStruct)
    )
    if tangent is None and arraylike:
        if isinstance(primal, jax.ShapeDtypeStruct):
            primal = jax.core.ShapedArray(primal.shape, primal.dtype)
        return ad.instantiate_zeros(_zero_like(primal))
    return tangent
