"""The presets that need no layer types: `data_parallel` and `fsdp`; and
`FsdpSpec`, the callable spec that FSDP rules (here and in `_tensor_parallel.py`)
are built from."""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.sharding import PartitionSpec as P

from .._messages import (
    sharding_fsdp_axis_error,
    sharding_min_size_error,
    sharding_name_type_error,
)
from ._rules import ShardingRules


def check_axis_name(what: str, axis: Any) -> None:
    """Raises unless a preset's mesh axis name is a str."""
    if not isinstance(axis, str):
        raise sharding_name_type_error(what, axis)


def check_min_size(min_size: Any) -> None:
    """Raises unless `min_size` is a non-negative int."""
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise sharding_min_size_error(min_size)


def fsdp_spec(
    path: str,
    shape: tuple[int, ...],
    mesh: Any,
    axis: str,
    min_size: int,
    base: P = P(),
) -> P:
    """`base` with mesh axis `axis` added on the largest dimension of `shape` that
    `base` leaves unsplit and that the axis size divides (the first such on ties).
    Arrays with fewer than `min_size` elements, arrays with no such dimension, and
    a `base` that already uses `axis` are returned as `base`.

    **Arguments:**

    - `path`, `shape`, `mesh`: the array's dotted path and shape, and the mesh.
    - `axis`: the mesh axis to shard over.
    - `min_size`: the smallest number of elements worth sharding.
    - `base`: a spec to extend (e.g. the tensor-parallel one).

    **Returns:** the extended `PartitionSpec`.
    """
    if axis not in mesh.shape:
        raise sharding_fsdp_axis_error(path, shape, axis, mesh)
    entries = list(tuple(base)) + [None] * (len(shape) - len(tuple(base)))
    taken = {a for e in entries for a in (e if isinstance(e, tuple) else (e,))}
    if axis in taken or int(np.prod(shape, dtype=np.int64)) < min_size:
        return base
    size = mesh.shape[axis]
    best = None
    for dim, n in enumerate(shape):
        if entries[dim] is None and n > 0 and n % size == 0:
            if best is None or n > shape[best]:
                best = dim
    if best is None:
        return base
    entries[best] = axis
    while entries and entries[-1] is None:
        entries.pop()
    return P(*entries)


class FsdpSpec:
    """The callable spec of an FSDP rule: `fsdp_spec` on the array, optionally on top
    of another callable spec (`inner`), whose `owner` it passes on."""

    def __init__(self, axis: str, min_size: int, inner: Any = None):
        self.axis, self.min_size, self.inner = axis, min_size, inner
        name = f"fsdp({axis!r}, min_size={min_size})"
        if inner is not None:
            name = f"{getattr(inner, '__name__', repr(inner))} + {name}"
        self.__name__ = name

    def __call__(
        self, path: str, shape: tuple[int, ...], mesh: Any, *, owner: Any = None
    ) -> P:
        base = None
        if self.inner is not None:
            base = self.inner(path, shape, mesh, owner=owner)
        base = P() if base is None else base
        return fsdp_spec(path, shape, mesh, self.axis, self.min_size, base)

    def __repr__(self) -> str:
        return self.__name__


def data_parallel(axis: str = "data") -> ShardingRules:
    """Data parallelism: every parameter replicated on every device, each batch
    split along its leading axis over mesh axis `axis`.

    **Arguments:**

    - `axis`: the mesh axis the batch is split over.

    **Returns:** an [`ecliptic.ShardingRules`][] with no rules and `batch=P(axis)`.
    """
    check_axis_name("axis", axis)
    return ShardingRules(batch=P(axis), name=f"data_parallel({axis!r})")


def fsdp(axis: str = "data", *, min_size: int = 2**12) -> ShardingRules:
    """Fully sharded data parallelism (ZeRO-3): each parameter with at least
    `min_size` elements is split over mesh axis `axis`, on its largest dimension
    that the axis size divides (the first such on ties); smaller parameters, and
    those with no such dimension, are replicated. The batch is split over `axis`
    too. Under `jit` XLA gathers each parameter where it is used.

    **Arguments:**

    - `axis`: the mesh axis.
    - `min_size`: the number of elements from which a parameter is split.
        (Keyword only.)

    **Returns:** an [`ecliptic.ShardingRules`][] with one rule for every array
    and `batch=P(axis)`.
    """
    check_axis_name("axis", axis)
    check_min_size(min_size)
    rule = ("**", FsdpSpec(axis, min_size))
    name = f"fsdp({axis!r}, min_size={min_size})"
    return ShardingRules(rule, batch=P(axis), name=name, strict=False)
