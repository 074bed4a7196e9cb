"""Filtered automatic differentiation: `filter_grad`, `filter_value_and_grad`,
`filter_jvp`, `filter_vjp`, `filter_jacfwd`, `filter_jacrev`, `filter_hessian` and
`filter_checkpoint`.

Each one differentiates the floating-point / complex array leaves of its inputs (see
[`ecliptic.is_inexact_array`][]) and treats every other leaf as a constant, so whole
models (arrays mixed with functions, ints and flags) can be passed straight through.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.interpreters.ad as jad
import jax.tree_util as jtu
from jaxtyping import PyTree

from ._filters import combine, is_array, is_inexact_array, partition
from ._messages import (
    grad_argnums_error,
    grad_keywords_only_error,
    grad_no_arguments_error,
    grad_removed_kwargs_fix,
    jvp_tangents_structure_error,
)
from ._module import field, Module, module_update_wrapper, Static
from ._wrap import (
    api_boundary,
    check_removed_kwargs,
    fun_repr,
    hide_internal_frames,
    is_none,
    MethodWrapper,
)


# Keyword arguments of `filter_grad` / `filter_value_and_grad` removed in Equinox 0.10.
_REMOVED_GRAD_KWARGS = ("arg", "filter_spec")


def _first_positional(where: str, fun: Any, args: tuple, kwargs: dict) -> None:
    if len(args) > 0:
        return
    if kwargs:
        got = ", ".join(f"{k}=..." for k in kwargs)
        raise grad_keywords_only_error(where, fun_repr(fun), got)
    raise grad_no_arguments_error(where, fun_repr(fun))


class _ValueAndGradWrapper(MethodWrapper):
    _fun: Callable
    _has_aux: bool = field(static=True)
    _gradkwargs: tuple[tuple[str, Any], ...] = field(static=True)

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        _first_positional("filter_value_and_grad", self._fun, args, kwargs)
        x, *rest = args
        diff_x, nondiff_x = partition(x, is_inexact_array)

        def _value(_diff_x, _nondiff_x, *_args, **_kwargs):
            return self._fun(combine(_diff_x, _nondiff_x), *_args, **_kwargs)

        value_and_grad = jax.value_and_grad(
            _value, has_aux=self._has_aux, **dict(self._gradkwargs)
        )
        return value_and_grad(diff_x, nondiff_x, *rest, **kwargs)


class _GradWrapper(MethodWrapper):
    _fun_value_and_grad: _ValueAndGradWrapper
    _has_aux: bool = field(static=True)

    @property
    def __wrapped__(self) -> Callable:
        return self._fun_value_and_grad.__wrapped__

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        value, grads = self._fun_value_and_grad(*args, **kwargs)
        if self._has_aux:
            _, aux = value
            return grads, aux
        return grads


def filter_value_and_grad(
    fun: Callable | None = None, *, has_aux: bool = False, **gradkwargs: Any
) -> Callable:
    """Creates a function that evaluates `fun` and its gradient with respect to the
    floating-point arrays of its first positional argument.

    Usable as `@filter_value_and_grad` or `@filter_value_and_grad(has_aux=True)`.

    **Arguments:**

    - `fun`: the function to differentiate, `fun(x, *args, **kwargs)`. `x` may be any
        PyTree (a model, a tuple of models, ...). It must return a scalar (or a pair
        `(scalar, aux)` when `has_aux=True`).
    - `has_aux`: whether `fun` returns `(value, aux)`, with `aux` not differentiated.
    - `**gradkwargs`: passed on to `jax.value_and_grad` (e.g. `holomorphic`).

    **Returns:** a function with the same arguments as `fun`, returning
    `(value, grads)`, or `((value, aux), grads)` when `has_aux=True`. `grads` has the
    structure of `x`, with `None` for every leaf that is not an inexact array (Python
    floats included).
    """
    if fun is None:
        return ft.partial(filter_value_and_grad, has_aux=has_aux, **gradkwargs)
    check_removed_kwargs(
        gradkwargs,
        _REMOVED_GRAD_KWARGS,
        "ecliptic.filter_value_and_grad",
        grad_removed_kwargs_fix(),
    )
    if "argnums" in gradkwargs:
        argnums = gradkwargs["argnums"]
        raise grad_argnums_error(argnums)
    wrapper = _ValueAndGradWrapper(fun, has_aux, tuple(sorted(gradkwargs.items())))
    return module_update_wrapper(wrapper)


def filter_grad(
    fun: Callable | None = None, *, has_aux: bool = False, **gradkwargs: Any
) -> Callable:
    """Creates a function that computes the gradient of `fun` with respect to the
    floating-point arrays of its first positional argument.

    Usable as `@filter_grad` or `@filter_grad(has_aux=True)`. To differentiate
    several objects, pack them into a tuple passed as the first argument.

    **Arguments:**

    - `fun`: the function to differentiate, `fun(x, *args, **kwargs)`, returning a
        scalar (or `(scalar, aux)` when `has_aux=True`). Only `x` is differentiated.
    - `has_aux`: whether `fun` returns `(value, aux)`.
    - `**gradkwargs`: passed on to `jax.grad` (e.g. `holomorphic`). `argnums` is not
        accepted.

    **Returns:** a function with the same arguments as `fun`, returning `grads` (or
    `(grads, aux)`), where `grads` has the structure of `x` and `None` for every leaf
    that is not an inexact array.
    """
    if fun is None:
        return ft.partial(filter_grad, has_aux=has_aux, **gradkwargs)
    check_removed_kwargs(
        gradkwargs,
        _REMOVED_GRAD_KWARGS,
        "ecliptic.filter_grad",
        grad_removed_kwargs_fix(),
    )
    value_and_grad = filter_value_and_grad(fun, has_aux=has_aux, **gradkwargs)
    return module_update_wrapper(_GradWrapper(value_and_grad, has_aux))


def _check_tangents(primals: Sequence, tangents: Sequence) -> None:
    primals_struct = jtu.tree_structure(primals, is_leaf=is_none)
    tangents_struct = jtu.tree_structure(tangents, is_leaf=is_none)
    if primals_struct != tangents_struct:
        raise jvp_tangents_structure_error(primals_struct, tangents_struct)


@api_boundary
def filter_jvp(
    fn: Callable, primals: Sequence, tangents: Sequence, **kwargs: Any
) -> tuple[PyTree, PyTree]:
    """Jacobian-vector product of `fn` at `primals` along `tangents`, like `jax.jvp`,
    but `primals` and the output may contain arbitrary Python objects.

    **Arguments:**

    - `fn`: the function, called as `fn(*primals, **kwargs)`; may return any PyTree.
    - `primals`: a sequence with one entry per positional argument of `fn`.
    - `tangents`: the same structure as `primals`; each leaf is an array (or Python
        float) of the primal's shape, or `None` for a symbolic zero tangent. `None` is
        required for every primal leaf that is not an inexact array.
    - `**kwargs`: keyword arguments for `fn`; not differentiated.

    **Returns:** `(primals_out, tangents_out)`. `tangents_out` has the structure of
    `primals_out`, with `None` wherever the tangent is symbolically zero (non-array
    outputs, and outputs that do not depend on a perturbed input).
    """
    _check_tangents(primals, tangents)
    flat_tangents_all = jtu.tree_leaves(tangents, is_leaf=is_none)
    flat_primals_all, primals_def = jtu.tree_flatten(primals, is_leaf=is_none)
    perturbed = [t is not None for t in flat_tangents_all]
    dynamic = [p for p, t in zip(flat_primals_all, perturbed, strict=True) if t]
    flat_tangents = [t for t in flat_tangents_all if t is not None]

    def _fn(*_dynamic):
        it = iter(_dynamic)
        leaves = [
            next(it) if t else p
            for p, t in zip(flat_primals_all, perturbed, strict=True)
        ]
        trace = _dynamic[0]._trace if _dynamic else None
        out = fn(*jtu.tree_unflatten(primals_def, leaves), **kwargs)

        def _is_ours(x):
            return isinstance(x, jad.JVPTracer) and x._trace is trace

        traced_out, other_out = partition(out, _is_ours)
        const_out, static_out = partition(other_out, is_array)
        return traced_out, const_out, Static(static_out)

    primal_out, tangent_out = jax.jvp(_fn, dynamic, flat_tangents)
    traced_out, const_out, static_out = primal_out
    return combine(traced_out, const_out, static_out.value), tangent_out[0]


@api_boundary
def filter_vjp(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Vector-Jacobian product of `fun` at `primals`, like `jax.vjp`, but the
    primals and the output may contain arbitrary Python objects.

    **Arguments:**

    - `fun`: the function, called as `fun(*primals)`; may return any PyTree (or a pair
        `(out, aux)` when `has_aux=True`).
    - `*primals`: the arguments; their inexact array leaves are differentiated.
    - `has_aux`: whether `fun` returns `(out, aux)`, with `aux` not differentiated.

    **Returns:** `(out, vjp_fn)`, or `(out, vjp_fn, aux)` when `has_aux=True`.
    `vjp_fn(cotangent)` takes a cotangent with the structure of `out` (arrays for its
    inexact array leaves, `None` elsewhere) and returns a tuple with one cotangent per
    primal, with `None` for every leaf that is not an inexact array.
    """
    diff, nondiff = partition(primals, is_inexact_array)

    def _diff_fun(*_diff):
        out = fun(*combine(_diff, nondiff))
        aux = None
        if has_aux:
            out, aux = out
        diff_out, nondiff_out = partition(out, is_inexact_array)
        # The arrays of `aux` go back through JAX (so they come out as values, not
        # as tracers of the linearisation); everything else travels statically.
        array_aux, static_aux = partition(aux, is_array)
        return diff_out, (nondiff_out, array_aux, Static(static_aux))

    diff_out, jax_vjp_fn, rest = jax.vjp(_diff_fun, *diff, has_aux=True)
    nondiff_out, array_aux, static_aux = rest
    out = combine(diff_out, nondiff_out)
    vjp_fn = _VjpFn(jax_vjp_fn)
    if has_aux:
        return out, vjp_fn, combine(array_aux, static_aux.value)
    return out, vjp_fn


class _VjpFn:
    """The `vjp_fn` that `filter_vjp` returns: JAX's, behind an error boundary (a
    custom backward rule of the user's may run when it is called). A PyTree with
    JAX's as its only child; other attributes are read from JAX's."""

    __slots__ = ("_vjp_fn",)

    def __init__(self, vjp_fn: Callable):
        self._vjp_fn = vjp_fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._vjp_fn(*args, **kwargs)
        except Exception as e:
            hide_internal_frames(e)
            raise

    def __getattr__(self, name: str) -> Any:
        if name == "_vjp_fn":  # not yet set (e.g. while copying)
            raise AttributeError(name)
        return getattr(self._vjp_fn, name)


jtu.register_pytree_node(
    _VjpFn, lambda f: ((f._vjp_fn,), None), lambda _, children: _VjpFn(*children)
)


class _Jacobian(Module):
    _fun: Callable
    _has_aux: bool = field(static=True)
    _reverse: bool = field(static=True)

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    @api_boundary
    def __call__(self, x: Any, /, *args: Any, **kwargs: Any) -> Any:
        diff_x, static_x = partition(x, is_inexact_array)

        def _fun(_diff_x):
            out = self._fun(combine(_diff_x, static_x), *args, **kwargs)
            out, aux = out if self._has_aux else (out, None)
            # Non-array aux (e.g. strings) travels statically, so it survives the
            # `vmap` inside `jax.jacfwd`.
            array_aux, static_aux = partition(aux, is_array)
            return out, (array_aux, Static(static_aux))

        jacobian = jax.jacrev if self._reverse else jax.jacfwd
        jac, (array_aux, static_aux) = jacobian(_fun, has_aux=True)(diff_x)
        if self._has_aux:
            return jac, combine(array_aux, static_aux.value)
        return jac


def filter_jacfwd(fun: Callable, has_aux: bool = False) -> Callable:
    """Creates a function that computes the Jacobian of `fun` with respect to the
    floating-point arrays of its first positional argument, using forward-mode AD
    (`jax.jacfwd`).

    **Arguments:**

    - `fun`: the function, `fun(x, *args, **kwargs)`. `x` may be any PyTree; the
        output must be a PyTree of JAX arrays (only the input is filtered).
    - `has_aux`: whether `fun` returns `(out, aux)`, with `aux` not differentiated
        (`aux` may hold any Python objects).

    **Returns:** a function with the same arguments as `fun`, returning the Jacobian
    (or `(jacobian, aux)`): for each output leaf, a tree shaped like `x` with `None`
    for leaves that are not inexact arrays.
    """
    return module_update_wrapper(_Jacobian(fun, has_aux, False))


def filter_jacrev(fun: Callable, has_aux: bool = False) -> Callable:
    """Creates a function that computes the Jacobian of `fun` with respect to the
    floating-point arrays of its first positional argument, using reverse-mode AD
    (`jax.jacrev`).

    **Arguments:**

    - `fun`: the function, `fun(x, *args, **kwargs)`. `x` may be any PyTree; the
        output must be a PyTree of JAX arrays (only the input is filtered).
    - `has_aux`: whether `fun` returns `(out, aux)`, with `aux` not differentiated
        (`aux` may hold any Python objects).

    **Returns:** a function with the same arguments as `fun`, returning the Jacobian
    (or `(jacobian, aux)`): for each output leaf, a tree shaped like `x` with `None`
    for leaves that are not inexact arrays.
    """
    return module_update_wrapper(_Jacobian(fun, has_aux, True))


def filter_hessian(fun: Callable, has_aux: bool = False) -> Callable:
    """Creates a function that computes the Hessian of `fun` with respect to the
    floating-point arrays of its first positional argument (forward-over-reverse).

    **Arguments:**

    - `fun`: the function, `fun(x, *args, **kwargs)`, returning a PyTree of JAX arrays.
    - `has_aux`: whether `fun` returns `(out, aux)`, with `aux` not differentiated.

    **Returns:** a function with the same arguments as `fun`, returning the Hessian
    (or `(hessian, aux)`).
    """
    return filter_jacfwd(filter_jacrev(fun, has_aux=has_aux), has_aux=has_aux)


class _CheckpointWrapper(MethodWrapper):
    _fun: Callable
    _prevent_cse: bool = field(static=True)
    _policy: Callable[..., bool] | None = field(static=True)

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        dynamic, static = partition((args, kwargs), is_array)

        def _fun(_static, _dynamic):
            _args, _kwargs = combine(_dynamic, _static.value)
            out = self._fun(*_args, **_kwargs)
            dynamic_out, static_out = partition(out, is_array)
            return dynamic_out, Static(static_out)

        checkpointed = jax.checkpoint(
            _fun,
            prevent_cse=self._prevent_cse,
            policy=self._policy,
            static_argnums=(0,),
        )
        dynamic_out, static_out = checkpointed(Static(static), dynamic)
        return combine(dynamic_out, static_out.value)


def filter_checkpoint(
    fun: Callable | None = None,
    *,
    prevent_cse: bool = True,
    policy: Callable[..., bool] | None = None,
) -> Callable:
    """Filtered `jax.checkpoint` (rematerialisation): the intermediate values of
    `fun` are recomputed on the backward pass instead of stored.

    Usable as `@filter_checkpoint` or `@filter_checkpoint(policy=...)`. Array leaves of
    the arguments are traced; everything else is static. `fun` may return any PyTree.

    **Arguments:**

    - `fun`: the function to checkpoint, called as `fun(*args, **kwargs)`.
    - `prevent_cse`: as in `jax.checkpoint`: stop XLA from merging the recomputation
        with the forward pass.
    - `policy`: one of `jax.checkpoint_policies`, choosing what may be saved.

    **Returns:** the checkpointed function, with the same arguments as `fun`.
    """
    if fun is None:
        return ft.partial(filter_checkpoint, prevent_cse=prevent_cse, policy=policy)
    return module_update_wrapper(_CheckpointWrapper(fun, prevent_cse, policy))
