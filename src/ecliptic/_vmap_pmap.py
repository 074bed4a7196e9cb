"""Filtered vectorisation and parallelisation: `filter_vmap`, `filter_pmap`, `if_array`.

Axis specifications (`in_axes`, `out_axes`) are PyTrees whose leaves are an `int` (map
over that axis), `None` (broadcast) or a callable `leaf -> int | None` applied to every
leaf of its subtree. The default, `if_array(0)`, maps every array over its leading
axis and broadcasts everything else. `in_axes` may also be a dict keyed by parameter
name. Only the mapped array leaves are handed to JAX; every other leaf is closed over.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import inspect
import warnings
from collections.abc import Callable, Hashable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._caches import BoundedCache
from ._checks import warn_deprecated
from ._filters import is_array
from ._messages import (
    axes_prefix_error,
    axis_callable_error,
    axis_spec_error,
    map_call_kwargs_error,
    map_non_array_error,
    map_removed_kwargs_fix,
    mapped_axis_error,
    named_in_axes_error,
    pmap_axis_size_error,
    pmap_donate_error,
    pmap_forbidden_kwarg_error,
    vmap_axis_size_error,
)
from ._module import module_update_wrapper, Static
from ._prefix import PrefixSpec
from ._wrap import (
    api_boundary,
    check_removed_kwargs,
    fun_repr,
    hashable_static,
    is_none,
    Lowered,
    MethodWrapper,
    name_like,
    REMOVED_FILTER_KWARGS,
    static_leaves,
)


AxisSpec = int | None | Callable[[Any], int | None]


@dataclasses.dataclass(frozen=True)  # deliberately not a PyTree
class if_array:
    """An axis specification that maps arrays over `axis` and broadcasts everything
    else: `if_array(axis)(x)` is `axis` if `x` is an array, else `None`.

    **Arguments:**

    - `axis`: the axis to map arrays over.
    """

    axis: int

    def __call__(self, x: Any) -> int | None:
        return self.axis if is_array(x) else None


def _axis_of(leaf_spec: Any, leaf: Any, what: str, where: str) -> int | None:
    """The axis a spec leaf gives one data leaf."""
    if leaf_spec is None or (
        isinstance(leaf_spec, int) and not isinstance(leaf_spec, bool)
    ):
        return leaf_spec
    if not callable(leaf_spec):
        raise axis_spec_error(leaf_spec, where)
    axis = leaf_spec(leaf)
    if axis is not None and not isinstance(axis, int):
        raise axis_callable_error(where, what, leaf_spec, axis)
    return axis


def _flatten_axes(tree: Any, spec: Any, what: str, where: str) -> tuple:
    """Flattens `tree` and resolves `spec` (a prefix of it) to one axis (int or
    None) per leaf, in one pass. Returns `(leaves, axes, structure)`, where
    `structure.unflatten(leaves)` rebuilds the tree."""
    try:
        match = PrefixSpec(spec, is_none).match(tree)
    except (ValueError, TypeError) as e:
        structure = jtu.tree_structure(tree)
        raise axes_prefix_error(where, what, structure, spec) from e
    leaves, axes = match.leaves, []
    for leaf_spec, start, stop in match.runs():
        if callable(leaf_spec):
            axes.extend(_axis_of(leaf_spec, x, what, where) for x in leaves[start:stop])
        else:
            axis = _axis_of(leaf_spec, None, what, where)
            axes.extend([axis] * (stop - start))
    return leaves, axes, match.structure


def _named_in_axes(fun: Callable, in_axes: Any, args: tuple, where: str) -> Any:
    """A dict `in_axes` (by parameter name) becomes a tuple with one entry per
    positional argument; unnamed arguments default to `if_array(0)`."""
    if not isinstance(in_axes, dict):
        return in_axes
    remaining = dict(in_axes)
    params = inspect.signature(fun).parameters
    out = tuple(
        remaining.pop(name, if_array(0)) for _, name in zip(args, params, strict=False)
    )
    if remaining:
        names, shown = tuple(remaining), tuple(params)[: len(args)]
        raise named_in_axes_error(where, names, len(args), fun_repr(fun), shown)
    return out


def _check_mapped_leaf(leaf: Any, axis: int, where: str, args: tuple, i: int) -> None:
    """Checks that `leaf`, the `i`-th leaf of `args`, can be mapped over `axis`."""
    if not is_array(leaf):
        raise map_non_array_error(where, axis, leaf)
    ndim = len(leaf.shape)
    if not -ndim <= axis < ndim:
        path = jtu.keystr(jtu.tree_flatten_with_path(args)[0][i][0])
        raise mapped_axis_error(where, path, leaf.shape, axis)


class _Mapped:
    """The inputs of one call, split into mapped array leaves and the rest."""

    def __init__(self, args: tuple, in_axes: Any, where: str):
        self.leaves, self.axes, self.struct = _flatten_axes(
            args, in_axes, "in_axes", where
        )
        self.index = [i for i, a in enumerate(self.axes) if a is not None]
        for i in self.index:
            _check_mapped_leaf(self.leaves[i], self.axes[i], where, args, i)
        self.dynamic = [self.leaves[i] for i in self.index]
        self.dynamic_axes = [self.axes[i] for i in self.index]

    def rebuild(self, dynamic: list) -> tuple:
        leaves = list(self.leaves)
        for i, x in zip(self.index, dynamic, strict=True):
            leaves[i] = x
        return self.struct.unflatten(leaves)


def _split_outputs(out: Any, out_axes: Any, where: str) -> tuple[list, list, Static]:
    """Mapped outputs, unmapped array outputs, and everything else (static)."""
    leaves, axes, struct = _flatten_axes(out, out_axes, "out_axes", where)
    mapped, unmapped, static = [], [], []
    for leaf, axis in zip(leaves, axes, strict=True):
        if axis is not None:
            mapped.append(leaf)
            static.append(None)
        elif is_array(leaf):
            unmapped.append(leaf)
            static.append(None)
        else:
            static.append(leaf)
    return mapped, unmapped, Static((struct, static, axes))


def _join_outputs(mapped: list, unmapped: list, static: Static) -> Any:
    struct, static_leaves, axes = static.value
    mapped_iter, unmapped_iter = iter(mapped), iter(unmapped)
    leaves = []
    for leaf, axis in zip(static_leaves, axes, strict=True):
        if axis is not None:
            x = next(mapped_iter)
            leaves.append(x if axis == 0 else jnp.moveaxis(x, 0, axis))
        elif leaf is None:
            leaves.append(next(unmapped_iter))
        else:
            leaves.append(leaf)
    return struct.unflatten(leaves)


def _no_kwargs(kwargs: dict, where: str, fun: Callable) -> None:
    if kwargs:
        raise map_call_kwargs_error(where, fun_repr(fun), tuple(kwargs))


class _VmapWrapper(MethodWrapper):
    _fun: Callable
    _in_axes: PyTree[AxisSpec]
    _out_axes: PyTree[AxisSpec]
    _axis_name: Hashable | None
    _axis_size: int | None
    _vmapkwargs: dict[str, Any]

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        _no_kwargs(kwargs, "filter_vmap", self._fun)
        in_axes = _named_in_axes(self._fun, self._in_axes, args, "filter_vmap")
        inputs = _Mapped(args, in_axes, "filter_vmap")

        def _inner(dynamic):
            out = self._fun(*inputs.rebuild(dynamic))
            return _split_outputs(out, self._out_axes, "filter_vmap")

        if not inputs.dynamic and self._axis_size is None:
            mapped, unmapped, static = _inner([])
            if mapped:
                raise vmap_axis_size_error(fun_repr(self._fun), len(mapped))
        else:
            mapped, unmapped, static = jax.vmap(
                _inner,
                in_axes=(inputs.dynamic_axes,),
                out_axes=(0, None, None),
                axis_name=self._axis_name,
                axis_size=self._axis_size,
                **self._vmapkwargs,
            )(inputs.dynamic)
        return _join_outputs(mapped, unmapped, static)


def filter_vmap(
    fun: Callable | None = None,
    *,
    in_axes: PyTree[AxisSpec] = if_array(0),
    out_axes: PyTree[AxisSpec] = if_array(0),
    axis_name: Hashable = None,
    axis_size: int | None = None,
    **vmapkwargs: Any,
) -> Callable:
    """Vectorises `fun`. By default every JAX/NumPy array is mapped over its leading
    axis and everything else (Python scalars, functions, ...) is broadcast.

    Usable as `@filter_vmap` or `@filter_vmap(in_axes=...)`. Ensembles are one line:
    `models = filter_vmap(make_model)(jax.random.split(key, 8))`.

    **Arguments:**

    - `fun`: the function, called as `fun(*args)` (no keyword arguments).
    - `in_axes`: a PyTree prefix of `args` whose leaves are ints, `None` or callables
        `leaf -> int | None`; or a dict from parameter name to such a spec (other
        arguments get `if_array(0)`).
    - `out_axes`: the same, as a prefix of the output; where the mapped axis goes.
        Non-array outputs are returned unbatched.
    - `axis_name`: a name for the mapped axis, for collectives such as `lax.psum`.
    - `axis_size`: the size of the mapped axis; only needed when nothing is mapped.
    - `**vmapkwargs`: passed on to `jax.vmap` (e.g. `spmd_axis_name`).

    **Returns:** the vectorised function, a Module (so itself a PyTree).
    """
    if fun is None:
        return ft.partial(
            filter_vmap,
            in_axes=in_axes,
            out_axes=out_axes,
            axis_name=axis_name,
            axis_size=axis_size,
            **vmapkwargs,
        )
    check_removed_kwargs(
        vmapkwargs,
        REMOVED_FILTER_KWARGS,
        "ecliptic.filter_vmap",
        map_removed_kwargs_fix(),
    )
    wrapper = _VmapWrapper(fun, in_axes, out_axes, axis_name, axis_size, vmapkwargs)
    return module_update_wrapper(wrapper)


# -- filter_pmap -------------------------------------------------------------------

# Compiled `jax.pmap`s by (static parts of the function and arguments, axes,
# options), shared by every wrapper of the same function. A miss retraces and
# recompiles the function (seconds for a large model).
_PMAP_CACHE_SIZE = 256
_PMAP_CACHE: BoundedCache = BoundedCache(_PMAP_CACHE_SIZE)


def _static_key(tree: Any) -> tuple:
    """A hashable key for a tree of static options (its structure and leaves)."""
    leaves, treedef = jtu.tree_flatten(tree)
    return treedef, tuple(leaves)


def _pmap_compiled(key: tuple, build: Callable[[], Any]) -> Any:
    try:
        compiled = _PMAP_CACHE.get(key)
    except TypeError:  # unhashable `out_axes` or jax.pmap options: not cached
        return build()
    if compiled is None:
        _PMAP_CACHE[key] = compiled = build()
    return compiled


class _PmapCall:
    """The inputs of one `filter_pmap` call: every array leaf (of `fun` and of the
    arguments) is traced; the rest, and the axes, form the compilation key."""

    def __init__(self, wrapper: _PmapWrapper, args: tuple, kwargs: dict):
        where = "filter_pmap"
        _no_kwargs(kwargs, where, wrapper._fun)
        in_axes = _named_in_axes(wrapper._fun, wrapper._in_axes, args, where)
        fun_leaves, self.fun_def = jtu.tree_flatten(wrapper._fun)
        arg_leaves, axes, self.args_def = _flatten_axes(args, in_axes, "in_axes", where)
        for i, axis in enumerate(axes):
            if axis is not None:
                _check_mapped_leaf(arg_leaves[i], axis, where, args, i)
        self.fun_leaves, self.arg_leaves = fun_leaves, arg_leaves
        self.fun_dynamic = [x for x in fun_leaves if is_array(x)]
        self.arg_dynamic = [x for x in arg_leaves if is_array(x)]
        arg_axes = tuple(
            a for x, a in zip(arg_leaves, axes, strict=True) if is_array(x)
        )
        if all(a is None for a in arg_axes):
            if wrapper._axis_size is None:
                raise pmap_axis_size_error(fun_repr(wrapper._fun))
            self.dummy = np.zeros(wrapper._axis_size, np.int32)
        else:
            self.dummy = None
        static = hashable_static(
            "ecliptic.filter_pmap",
            (static_leaves(fun_leaves), static_leaves(arg_leaves)),
            {"fun": wrapper._fun, "args": args},
        )
        self.key = (
            self.fun_def,
            self.args_def,
            static,
            arg_axes,
            _static_key(wrapper._out_axes),
            wrapper._axis_name,
            wrapper._axis_size,
            _static_key(wrapper._pmapkwargs),
        )
        self.arg_axes = arg_axes

    def inputs(self) -> tuple:
        return self.fun_dynamic, self.arg_dynamic, self.dummy

    def build(self, wrapper: _PmapWrapper) -> Callable:
        fun_def, fun_leaves = self.fun_def, self.fun_leaves
        args_def, arg_leaves = self.args_def, self.arg_leaves
        out_axes = wrapper._out_axes

        def _fill(leaves: list, dynamic: list) -> list:
            it = iter(dynamic)
            return [next(it) if is_array(x) else x for x in leaves]

        def _pmapped(fun_dynamic, arg_dynamic, dummy):
            del dummy
            fun = jtu.tree_unflatten(fun_def, _fill(fun_leaves, fun_dynamic))
            args = args_def.unflatten(_fill(arg_leaves, arg_dynamic))
            return _split_outputs(fun(*args), out_axes, "filter_pmap")

        return jax.pmap(
            name_like(_pmapped, wrapper._fun),
            in_axes=(None, list(self.arg_axes), None if self.dummy is None else 0),
            out_axes=(0, None, None),
            axis_name=wrapper._axis_name,
            axis_size=wrapper._axis_size,
            **wrapper._pmapkwargs,
        )


def _call_compiled(wrapper: _PmapWrapper, compiled: Any, args: tuple, kwargs: dict):
    """Runs a compiled `filter_pmap` stage (see `_wrap.Compiled`) on these arguments."""
    call = _PmapCall(wrapper, args, kwargs)
    return _join_outputs(*compiled(*call.inputs()))


class _PmapWrapper(MethodWrapper):
    _fun: Callable
    _in_axes: PyTree[AxisSpec]
    _out_axes: PyTree[AxisSpec]
    _axis_name: Hashable | None
    _axis_size: int | None
    _filter_warning: bool
    _pmapkwargs: dict[str, Any]

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    def _pmapped(self, args: tuple, kwargs: dict) -> tuple[_PmapCall, Any]:
        call = _PmapCall(self, args, kwargs)
        return call, _pmap_compiled(call.key, lambda: call.build(self))

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        call, pmapped = self._pmapped(args, kwargs)
        with warnings.catch_warnings():
            if self._filter_warning:
                warnings.filterwarnings(
                    "ignore", message="Some donated buffers were not usable"
                )
            out = pmapped(*call.inputs())
        return _join_outputs(*out)

    @api_boundary
    def lower(self, /, *args: Any, **kwargs: Any) -> Lowered:
        """Lowers the function for these arguments (ahead-of-time compilation).

        **Arguments:**

        - `*args`: example arguments, as for a call.

        **Returns:** an object with `.as_text()` and `.compile()`; the compiled object
        is called with arguments of the same shapes and static values.
        """
        call, pmapped = self._pmapped(args, kwargs)
        lowered = pmapped.lower(*call.inputs())
        return Lowered(lowered, ft.partial(_call_compiled, self))


def _check_pmap_options(donate: str, pmapkwargs: dict[str, Any]) -> str:
    """Validates `filter_pmap`'s options; sets `donate_argnums` in `pmapkwargs`."""
    check_removed_kwargs(
        pmapkwargs,
        REMOVED_FILTER_KWARGS,
        "ecliptic.filter_pmap",
        map_removed_kwargs_fix(),
    )
    for name in ("static_broadcasted_argnums", "donate_argnums"):
        if name in pmapkwargs:
            raise pmap_forbidden_kwarg_error(name)
    if donate == "arrays":
        warn_deprecated(
            "ecliptic.filter_pmap(..., donate='arrays')",
            "`donate='all'`",
            stacklevel=3,
            detail="It was renamed to `donate='all'`.",
        )
        donate = "all"
    if donate not in ("all", "warn", "none"):
        raise pmap_donate_error(donate)
    if donate != "none":
        pmapkwargs["donate_argnums"] = (0, 1)
    return donate


def filter_pmap(
    fun: Callable | None = None,
    *,
    in_axes: PyTree[AxisSpec] = if_array(0),
    out_axes: PyTree[AxisSpec] = if_array(0),
    axis_name: Hashable = None,
    axis_size: int | None = None,
    donate: Literal["all", "warn", "none"] = "none",
    **pmapkwargs: Any,
) -> Callable:
    """Parallelises `fun` over devices, like `jax.pmap`; arrays are mapped over their
    leading axis (one slice per device) and traced, everything else is static.

    Superseded by [`ecliptic.filter_jit`][] with sharded inputs (see
    [`ecliptic.filter_shard`][]), which is recommended for new code.

    **Arguments:**

    - `fun`: the function, called as `fun(*args)` (no keyword arguments).
    - `in_axes`, `out_axes`: as for [`ecliptic.filter_vmap`][].
    - `axis_name`: a name for the mapped axis, for collectives such as `lax.psum`.
    - `axis_size`: the number of devices; only needed when nothing is mapped.
    - `donate`: `"all"` donates the input buffers and hides the warning about unused
        donations, `"warn"` donates and keeps that warning, `"none"` donates nothing.
    - `**pmapkwargs`: passed on to `jax.pmap` (e.g. `devices`).

    **Returns:** the parallelised function (a Module), which also has `.lower(*args)`.
    """
    if fun is None:
        return ft.partial(
            filter_pmap,
            in_axes=in_axes,
            out_axes=out_axes,
            axis_name=axis_name,
            axis_size=axis_size,
            donate=donate,
            **pmapkwargs,
        )
    donate_mode = _check_pmap_options(donate, pmapkwargs)
    wrapper = _PmapWrapper(
        fun, in_axes, out_axes, axis_name, axis_size, donate_mode == "all", pmapkwargs
    )
    return module_update_wrapper(wrapper)
