"""Filtered custom derivatives and closure conversion: `filter_custom_jvp`,
`filter_custom_vjp`, `filter_closure_convert`.

The user writes rules in terms of arbitrary PyTrees; internally the array leaves go to
`jax.custom_jvp` / `jax.custom_vjp` as differentiable arguments and everything else
travels as a static (non-differentiable) argument. Symbolic zero tangents and
cotangents are shown to the user as `None`.
"""

from __future__ import annotations

import functools as ft
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.custom_derivatives as jcd
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checks import warn_deprecated
from ._filters import combine, is_array, is_inexact_array, partition
from ._make_jaxpr import filter_make_jaxpr
from ._messages import (
    closure_convert_shapes_error,
    closure_convert_static_error,
    custom_jvp_defjvps_error,
    custom_jvp_kwargs_tangent_error,
    custom_vjp_grad_structure_error,
    custom_vjp_rest_message,
    custom_vjp_undeclared_error,
)
from ._module import field, Module, Static
from ._tree import same_shapes
from ._wrap import api_boundary, fun_repr, is_none, is_struct, static_equal


def _none_to_symbolic_zero(ct: Any, x: Any) -> Any:
    if ct is not None or x is None:
        return ct
    aval = jax.typeof(x)
    if hasattr(aval, "to_tangent_aval"):
        aval = aval.to_tangent_aval()
    return jcd.SymbolicZero(aval)


def _symbolic_zero_to_none(ct: Any) -> Any:
    return None if isinstance(ct, jcd.SymbolicZero) else ct


def _zeros_if_none(x: Any, t: Any) -> Any:
    if t is None and is_inexact_array(x):
        return jnp.zeros_like(x)
    return t


@ft.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _nondifferentiable(msg: str, x: Any) -> Any:
    return x


@_nondifferentiable.defjvp
def _nondifferentiable_jvp(msg: str, primals: Any, tangents: Any) -> Any:
    raise RuntimeError(msg)


def _copy_names(obj: Any, fn: Callable) -> None:
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(obj, name, getattr(fn, name))
        except AttributeError:
            pass


class filter_custom_jvp:
    """Filtered `jax.custom_jvp`: no `nondiff_argnums` needed.

    Array leaves of the arguments are differentiable; everything else (and every
    keyword argument) is not. Declare the rule with `.def_jvp`:

    ```python
    @ecliptic.filter_custom_jvp
    def call(x, y, *, fn):
        return fn(x, y)

    @call.def_jvp
    def call_jvp(primals, tangents, *, fn):
        x, y = primals
        tx, ty = tangents  # `None` where the tangent is symbolically zero
        return call(x, y, fn=fn), 2 * tx
    ```

    The outputs of the function must be JAX arrays. The rule may return `None` as a
    tangent for a symbolic zero.

    **Arguments:**

    - `fn`: the function, `fn(*args, **kwargs)`.
    """

    def __init__(self, fn: Callable):
        _copy_names(self, fn)
        self.fn = fn

        def _primal(static, dynamic):
            args, kwargs = combine(dynamic, static.value)
            return fn(*args, **kwargs)

        self._custom = jax.custom_jvp(_primal, nondiff_argnums=(0,))

    def def_jvp(self, fn_jvp: Callable) -> Callable:
        """Declares the JVP rule `fn_jvp(primals, tangents, **kwargs) ->
        (out, tangent_out)`, where `primals` is the tuple of positional arguments and
        `tangents` matches it, with `None` for non-differentiable leaves and symbolic
        zeros.

        **Arguments:**

        - `fn_jvp`: the rule.

        **Returns:** `fn_jvp`, so this can be used as a decorator.
        """

        def _jvp(static, primals, tangents):
            (dynamic,) = primals
            (t_dynamic,) = tangents
            t_args, t_kwargs = jtu.tree_map(_drop_nondiff, t_dynamic, dynamic)
            if jtu.tree_leaves(t_kwargs):
                names = sorted(k for k, v in t_kwargs.items() if jtu.tree_leaves(v))
                raise custom_jvp_kwargs_tangent_error(names, fun_repr(self.fn))
            args, kwargs = combine(dynamic, static.value)
            out, t_out = fn_jvp(args, t_args, **kwargs)
            t_out = jtu.tree_map(_none_to_symbolic_zero, t_out, out, is_leaf=is_none)
            return out, t_out

        self._custom.defjvp(_jvp, symbolic_zeros=True)
        return fn_jvp

    def defjvp(self, fn_jvp: Callable) -> Callable:
        """Deprecated: use `.def_jvp`. The rule receives materialised zero tangents
        (instead of `None`) for every inexact array.

        **Arguments:**

        - `fn_jvp`: the rule, `fn_jvp(primals, tangents, **kwargs)`.

        **Returns:** `fn_jvp`.
        """
        warn_deprecated(
            "`ecliptic.filter_custom_jvp.defjvp`",
            "`.def_jvp`",
            category=UserWarning,  # as Equinox
            detail="Its rule receives `None` for symbolic zero tangents instead of "
            "arrays of zeros.",
        )

        def _rule(primals, tangents, **kwargs):
            tangents = jtu.tree_map(_zeros_if_none, primals, tangents)
            return fn_jvp(primals, tangents, **kwargs)

        self.def_jvp(_rule)
        return fn_jvp

    def defjvps(self, *args: Any, **kwargs: Any) -> None:
        """Not implemented: use `.def_jvp`.

        **Arguments:**

        - `*args`, `**kwargs`: ignored.
        """
        raise custom_jvp_defjvps_error()

    @api_boundary
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dynamic, static = partition((args, kwargs), is_array)
        return self._custom(Static(static), dynamic)


def _drop_nondiff(tangent: Any, primal: Any) -> Any:
    if isinstance(tangent, jcd.SymbolicZero):
        return None
    if jnp.issubdtype(jnp.result_type(primal), jnp.inexact):
        return tangent
    return None


def _perturbed(x: Any) -> bool:
    return x.perturbed


def _value(x: Any) -> Any:
    return x.value


def _false(_: Any) -> bool:
    return False


class filter_custom_vjp:
    """Filtered `jax.custom_vjp`: gradients flow to the first argument only.

    ```python
    @ecliptic.filter_custom_vjp
    def fn(vjp_arg, *args, **kwargs):
        ...  # any Python objects in and out
        return out

    @fn.def_fwd
    def fn_fwd(perturbed, vjp_arg, *args, **kwargs):
        # `perturbed`: the structure of `vjp_arg`, True where a leaf is differentiated
        return out, residuals

    @fn.def_bwd
    def fn_bwd(residuals, grad_obj, perturbed, vjp_arg, *args, **kwargs):
        # `grad_obj`: cotangent of `out`, `None` where symbolically zero
        return grad_vjp_arg  # structure of `vjp_arg`; `None` allowed for zero
    ```

    Array leaves of `args`/`kwargs` get no gradient; differentiating through them
    raises. To differentiate several objects, pack them into `vjp_arg`.

    **Arguments:**

    - `fn`: the function, `fn(vjp_arg, *args, **kwargs)`.
    """

    def __init__(self, fn: Callable):
        _copy_names(self, fn)
        self.fn = fn
        self.fn_fwd: Callable | None = None
        self.fn_bwd: Callable | None = None
        self._custom: Any = None

    def def_fwd(self, fn_fwd: Callable) -> Callable:
        """Declares the forward pass `fn_fwd(perturbed, vjp_arg, *args, **kwargs) ->
        (out, residuals)`.

        **Arguments:**

        - `fn_fwd`: the forward rule.

        **Returns:** `fn_fwd`.
        """
        self.fn_fwd = fn_fwd
        if self.fn_bwd is not None:
            self._build()
        return fn_fwd

    def def_bwd(self, fn_bwd: Callable) -> Callable:
        """Declares the backward pass
        `fn_bwd(residuals, grad_obj, perturbed, vjp_arg, *args, **kwargs) -> grad`.

        **Arguments:**

        - `fn_bwd`: the backward rule.

        **Returns:** `fn_bwd`.
        """
        self.fn_bwd = fn_bwd
        if self.fn_fwd is not None:
            self._build()
        return fn_bwd

    def defvjp(self, fn_fwd: Callable, fn_bwd: Callable) -> None:
        """Deprecated: use `.def_fwd` and `.def_bwd`. Here `fn_fwd(vjp_arg, *args,
        **kwargs)` and `fn_bwd(residuals, grad_obj, vjp_arg, *args, **kwargs)` take no
        `perturbed`, and `grad_obj` has arrays of zeros instead of `None`.

        **Arguments:**

        - `fn_fwd`: the forward rule.
        - `fn_bwd`: the backward rule.
        """
        warn_deprecated(
            "`ecliptic.filter_custom_vjp.defvjp`",
            "`.def_fwd` and `.def_bwd`",
            category=UserWarning,  # as Equinox
            detail="Their rules also take `perturbed` and see `None` for symbolic "
            "zero cotangents.",
        )

        def _fwd(perturbed, vjp_arg, *args, **kwargs):
            out, residuals = fn_fwd(vjp_arg, *args, **kwargs)
            return out, (out, residuals)

        def _bwd(residuals, grad_obj, perturbed, vjp_arg, *args, **kwargs):
            out, residuals = residuals
            grad_obj = jtu.tree_map(_zeros_if_none, out, grad_obj)
            return fn_bwd(residuals, grad_obj, vjp_arg, *args, **kwargs)

        self.def_fwd(_fwd)
        self.def_bwd(_bwd)

    def _build(self) -> None:
        fn, fn_fwd, fn_bwd = self.fn, self.fn_fwd, self.fn_bwd
        assert fn_fwd is not None and fn_bwd is not None

        def _split_out(out):
            array_out, nonarray_out = partition(out, is_array)
            diff_out, nondiff_out = partition(array_out, is_inexact_array)
            return diff_out, nondiff_out, Static(nonarray_out)

        def _primal(static_vjp, static_rest, diff, nondiff, array_rest):
            vjp_arg = combine(static_vjp.value, diff, nondiff)
            args, kwargs = combine(static_rest.value, array_rest)
            return _split_out(fn(vjp_arg, *args, **kwargs))

        def _fwd(static_vjp, static_rest, diff, nondiff, array_rest):
            perturbed = combine(
                jtu.tree_map(_perturbed, diff),
                jtu.tree_map(_false, nondiff),
                jtu.tree_map(_false, static_vjp.value),
            )
            diff = jtu.tree_map(_value, diff)
            nondiff = jtu.tree_map(_value, nondiff)
            array_rest = jtu.tree_map(_value, array_rest)
            vjp_arg = combine(static_vjp.value, diff, nondiff)
            args, kwargs = combine(static_rest.value, array_rest)
            out, residuals = fn_fwd(perturbed, vjp_arg, *args, **kwargs)
            array_res, static_res = partition(residuals, is_array)
            saved = (array_res, Static(static_res), diff, nondiff, array_rest)
            return _split_out(out), (saved, Static(perturbed))

        def _bwd(static_vjp, static_rest, saved_perturbed, grad_out):
            saved, perturbed = saved_perturbed
            array_res, static_res, diff, nondiff, array_rest = saved
            residuals = combine(array_res, static_res.value)
            vjp_arg = combine(static_vjp.value, diff, nondiff)
            args, kwargs = combine(static_rest.value, array_rest)
            grad_obj = jtu.tree_map(_symbolic_zero_to_none, grad_out[0])
            grad = fn_bwd(
                residuals, grad_obj, perturbed.value, vjp_arg, *args, **kwargs
            )
            _check_grad_structure(grad, diff, vjp_arg)
            grad = jtu.tree_map(_none_to_symbolic_zero, grad, diff, is_leaf=is_none)
            return grad, None, None

        custom = jax.custom_vjp(_primal, nondiff_argnums=(0, 1))
        custom.defvjp(_fwd, _bwd, symbolic_zeros=True)
        self._custom = custom

    @api_boundary
    def __call__(self, vjp_arg: Any, /, *args: Any, **kwargs: Any) -> Any:
        if self._custom is None:
            missing = "def_fwd" if self.fn_fwd is None else "def_bwd"
            raise custom_vjp_undeclared_error(fun_repr(self.fn), missing)
        array_vjp, static_vjp = partition(vjp_arg, is_array)
        diff, nondiff = partition(array_vjp, is_inexact_array)
        array_rest, static_rest = partition((args, kwargs), is_array)
        if jtu.tree_leaves(array_rest):
            array_rest = _nondifferentiable(_REST_MSG, array_rest)
        out = self._custom(
            Static(static_vjp), Static(static_rest), diff, nondiff, array_rest
        )
        diff_out, nondiff_out, static_out = out
        return combine(diff_out, nondiff_out, static_out.value)


_REST_MSG = custom_vjp_rest_message()


def _check_grad_structure(grad: Any, diff: Any, vjp_arg: Any) -> None:
    got = jtu.tree_structure(grad, is_leaf=is_none)
    want = jtu.tree_structure(diff, is_leaf=is_none)
    if got != want:
        raise custom_vjp_grad_structure_error(want, got)


def _struct(x: Any) -> jax.ShapeDtypeStruct:
    # Weak types are dropped: an example `jnp.array(1)` accepts a strong int32 later.
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype)


def _flat(tree: Any) -> tuple[tuple, Any]:
    leaves, treedef = jtu.tree_flatten(tree)
    return tuple(leaves), treedef


def _unflat(flat: tuple[tuple, Any]) -> Any:
    leaves, treedef = flat
    return jtu.tree_unflatten(treedef, leaves)


class _ClosureConverted(Module):
    in_dynamic_struct: tuple = field(static=True)
    in_static: tuple = field(static=True)

    @property
    def in_struct(self) -> Any:
        return combine(_unflat(self.in_dynamic_struct), _unflat(self.in_static))

    def _check_inputs(self, args: tuple, kwargs: dict) -> list:
        dynamic, static = partition((args, kwargs), is_array)
        want = _unflat(self.in_dynamic_struct)
        got = jtu.tree_map(_struct, dynamic)
        if not same_shapes(got, want):
            raise closure_convert_shapes_error(want, got)
        if not static_equal(static, _unflat(self.in_static)):
            raise closure_convert_static_error(_unflat(self.in_static), static)
        return jtu.tree_leaves(dynamic)


class _TrivialClosureConvert(_ClosureConverted):
    fn: types.FunctionType = field(default=None)

    @property
    def out_struct(self) -> Any:
        from ._eval_shape import filter_eval_shape

        args, kwargs = self.in_struct
        return filter_eval_shape(self.fn, *args, **kwargs)

    @api_boundary
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._check_inputs(args, kwargs)
        return self.fn(*args, **kwargs)


class _ClosureConvert(_ClosureConverted):
    # The jaxpr is a leaf (not static) so that JAX finds it as a sub-jaxpr.
    jaxpr: Any = field(default=None)
    consts: list = field(default_factory=list)
    out_dynamic_struct: tuple = field(static=True, default=None)
    out_static: tuple = field(static=True, default=None)

    @property
    def out_struct(self) -> Any:
        return combine(_unflat(self.out_dynamic_struct), _unflat(self.out_static))

    @api_boundary
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat_in = self._check_inputs(args, kwargs)
        flat_out = jax.core.eval_jaxpr(self.jaxpr, self.consts, *flat_in)
        _, out_treedef = self.out_dynamic_struct
        out = jtu.tree_unflatten(out_treedef, flat_out)
        return combine(out, _unflat(self.out_static))


@api_boundary
def filter_closure_convert(fn: Callable, *args: Any, **kwargs: Any) -> Callable:
    """As `jax.closure_convert`, for functions of any PyTrees: traces `fn` at example
    arguments and hoists every closed-over JAX array (not only floating-point ones)
    into the returned object's PyTree leaves.

    Useful before crossing an API boundary such as `jax.custom_vjp`, where closed-over
    tracers are not allowed.

    **Arguments:**

    - `fn`: the function, called as `fn(*args, **kwargs)`.
    - `*args`, `**kwargs`: example arguments. Arrays (and `jax.ShapeDtypeStruct`s) are
        replaced by tracers; everything else, Python scalars included, is fixed.

    **Returns:** a callable Module taking arguments of the same shapes, dtypes and
    non-array values (checked on each call; weak types are ignored), whose leaves
    include the closed-over arrays.
    """
    in_dynamic, in_static = partition((args, kwargs), is_struct)
    in_dynamic_struct = _flat(jtu.tree_map(_struct, in_dynamic))
    in_static_flat = _flat(in_static)
    if isinstance(fn, types.FunctionType) and fn.__closure__ is None:
        # No closure, so nothing to hoist: skip tracing.
        return _TrivialClosureConvert(in_dynamic_struct, in_static_flat, fn)
    closed_jaxpr, out_struct, out_static = filter_make_jaxpr(fn)(*args, **kwargs)
    return _ClosureConvert(
        in_dynamic_struct,
        in_static_flat,
        closed_jaxpr.jaxpr,
        list(closed_jaxpr.consts),
        _flat(out_struct),
        _flat(out_static),
    )
