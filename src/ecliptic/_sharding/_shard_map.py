"""`filter_shard_map`: `jax.shard_map` for functions of Modules and other PyTrees.

The array leaves of the arguments (and of `fun` itself, when it is a Module) are
handed to `jax.shard_map`, grouped by the `in_specs` leaf above them: one group per
spec leaf, so a single `PartitionSpec` covers a whole subtree. Everything else is
closed over as static. Outputs are split the same way by `out_specs`, and their
non-array leaves travel back in a `Static`.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable
from typing import Any

import jax
import jax.tree_util as jtu
from jax.sharding import AbstractMesh, Mesh, PartitionSpec as P
from jaxtyping import PyTree

from .._filters import is_array
from .._messages import (
    describe_in_spec,
    shard_map_kwargs_error,
    shard_map_spec_leaf_error,
    shard_map_specs_prefix_error,
)
from .._module import module_update_wrapper, Static
from .._prefix import PrefixMatch, PrefixSpec
from .._wrap import api_boundary, fun_repr, MethodWrapper
from ._rules import check_mesh, check_spec


_WHERE = "ecliptic.filter_shard_map"


def _is_spec_leaf(x: Any) -> bool:
    return x is None or isinstance(x, P)


def _check_spec_leaves(what: str, specs: Any) -> PrefixSpec:
    prefix = PrefixSpec(specs, _is_spec_leaf)
    for leaf in prefix.leaves:
        if not _is_spec_leaf(leaf):
            raise shard_map_spec_leaf_error(what, leaf)
    return prefix


def _match(prefix: PrefixSpec, tree: Any, what: str, paths: bool) -> PrefixMatch:
    try:
        return prefix.match(tree, with_paths=paths)
    except (ValueError, TypeError) as e:
        structure = jtu.tree_structure(tree)
        raise shard_map_specs_prefix_error(what, structure, prefix.spec) from e


class _Inputs:
    """The arguments of one call: array leaves grouped by their `in_specs` leaf."""

    def __init__(self, args: tuple, prefix: PrefixSpec, mesh: Any):
        match = _match(prefix, args, "in_specs", paths=True)
        self.match = match
        self.specs: list[P] = []
        self.index: list[list[int]] = []
        for spec, start, stop in match.runs():
            spec = P() if spec is None else spec
            index = [k for k in range(start, stop) if is_array(match.leaves[k])]
            for k in index:
                leaf = match.leaves[k]
                assert match.paths is not None
                path = "args" + jtu.keystr(match.paths[k])
                rule = describe_in_spec(spec)
                shape, dtype = tuple(leaf.shape), leaf.dtype
                check_spec(_WHERE, path, shape, dtype, spec, mesh, rule)
            self.specs.append(spec)
            self.index.append(index)
        self.groups = tuple([match.leaves[k] for k in idx] for idx in self.index)

    def rebuild(self, groups: tuple) -> tuple:
        leaves = list(self.match.leaves)
        for index, group in zip(self.index, groups, strict=True):
            for k, x in zip(index, group, strict=True):
                leaves[k] = x
        return self.match.unflatten(leaves)


def _split_outputs(out: Any, prefix: PrefixSpec) -> tuple[tuple, Static]:
    """The array outputs grouped by `out_specs` leaf, and the rest as static."""
    match = _match(prefix, out, "out_specs", paths=False)
    groups = []
    static: list[Any] = []
    for _, start, stop in match.runs():
        leaves = match.leaves[start:stop]
        groups.append([x for x in leaves if is_array(x)])
        static.extend((False, None) if is_array(x) else (True, x) for x in leaves)
    return tuple(groups), Static((match.structure, static))


def _join_outputs(groups: tuple, static: Static) -> Any:
    structure, leaves = static.value
    arrays = iter(x for group in groups for x in group)
    out = [x if is_static else next(arrays) for is_static, x in leaves]
    return structure.unflatten(out)


class _ShardMapWrapper(MethodWrapper):
    _fun: Callable
    _mesh: Any
    _in_specs: Any
    _out_specs: Any
    _check_vma: bool

    @property
    def __wrapped__(self) -> Callable:
        return self._fun

    @api_boundary
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise shard_map_kwargs_error(fun_repr(self._fun), tuple(kwargs))
        in_prefix = _check_spec_leaves("in_specs", self._in_specs)
        out_prefix = _check_spec_leaves("out_specs", self._out_specs)
        inputs = _Inputs(args, in_prefix, self._mesh)
        fun_leaves, fun_def = jtu.tree_flatten(self._fun)
        fun_index = [k for k, x in enumerate(fun_leaves) if is_array(x)]

        def _body(fun_dynamic: list, groups: tuple) -> tuple:
            leaves = list(fun_leaves)
            for k, x in zip(fun_index, fun_dynamic, strict=True):
                leaves[k] = x
            fun = fun_def.unflatten(leaves)
            return _split_outputs(fun(*inputs.rebuild(groups)), out_prefix)

        out_specs = tuple(P() if s is None else s for s in out_prefix.leaves)
        mapped = jax.shard_map(
            _body,
            mesh=self._mesh,
            in_specs=(P(), tuple(inputs.specs)),
            out_specs=(out_specs, P()),
            check_vma=self._check_vma,
        )
        groups, static = mapped([fun_leaves[k] for k in fun_index], inputs.groups)
        return _join_outputs(groups, static)


def filter_shard_map(
    fun: Callable | None = None,
    *,
    mesh: Mesh | AbstractMesh,
    in_specs: PyTree[P | None],
    out_specs: PyTree[P | None],
    check_vma: bool = True,
) -> Callable:
    """`jax.shard_map` for functions of Modules and other PyTrees: `fun` runs once
    per device on that device's block of each array.

    Arguments may hold non-array leaves (activation functions, flags, ...): they are
    closed over as static. Array leaves of `fun` itself (a Module's parameters) are
    passed in replicated. Inside `fun`, collectives over the mesh axes work
    (`jax.lax.psum(x, "data")`, `all_gather`, `ppermute`, `axis_index`). Wrap the
    result in [`ecliptic.filter_jit`][] to compile it once.

    **Arguments:**

    - `fun`: the per-device function, called as `fun(*args)` (positional
        arguments only).
    - `mesh`: the device mesh. (Keyword only, as are the rest.)
    - `in_specs`: a `PartitionSpec` for every argument's arrays, or a PyTree
        prefix of the arguments tuple whose leaves are `PartitionSpec`s or `None`
        (replicated arrays; static non-arrays). E.g. `(P(), P("data"))` for
        `f(model, x)`: the model replicated, `x` split on its leading axis.
    - `out_specs`: the same, as a prefix of the output. Non-array outputs are
        returned as they are.
    - `check_vma`: as for `jax.shard_map`: check that outputs declared replicated
        are the same on every device (after a `psum`, for instance).

    **Returns:** the mapped function (a Module, so itself a PyTree), taking the
    global (whole) arrays and returning global arrays.
    """
    if fun is None:
        return ft.partial(
            filter_shard_map,
            mesh=mesh,
            in_specs=in_specs,
            out_specs=out_specs,
            check_vma=check_vma,
        )
    check_mesh("ecliptic.filter_shard_map", mesh)
    _check_spec_leaves("in_specs", in_specs)
    _check_spec_leaves("out_specs", out_specs)
    wrapper = _ShardMapWrapper(fun, mesh, in_specs, out_specs, check_vma)
    return module_update_wrapper(wrapper)
