"""The faces of `ShardingRules` resolved against a model: `sharding_plan` (one
`NamedSharding` per array), `shard_model` (places the arrays) and
`describe_sharding` (the dry run: a table, placing nothing)."""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.sharding import AbstractMesh, Mesh, NamedSharding
from jaxtyping import PyTree

from .._messages import describe_mesh, describe_spec
from .._wrap import api_boundary
from ._rules import check_batch, resolve, Resolved, ShardingRules
from ._shard import filter_shard


@api_boundary
def sharding_plan(
    model: PyTree[Any], mesh: Mesh | AbstractMesh, rules: ShardingRules
) -> PyTree[NamedSharding | None]:
    """The layout of every array of `model` on `mesh`, as `rules` declare it.

    The plan has the structure of `model`: a `jax.sharding.NamedSharding` at every
    array leaf (`jax.Array`, NumPy array or `jax.ShapeDtypeStruct`) and `None` at
    every other leaf. Use it with [`ecliptic.filter_shard`][] (`filter_shard(model,
    plan)` places the arrays), with `jax.device_put(params, plan)` on
    `ecliptic.filter(model, ecliptic.is_array)`, as `out_shardings` of `jax.jit`,
    or to restore an orbax checkpoint straight into this layout.

    An abstract model (from [`ecliptic.filter_eval_shape`][]) and a
    `jax.sharding.AbstractMesh` are accepted too, to plan for devices that are not
    there.

    **Arguments:**

    - `model`: the model (any PyTree).
    - `mesh`: the device mesh.
    - `rules`: an [`ecliptic.ShardingRules`][] (a preset or your own).

    **Returns:** the PyTree of shardings.

    **Raises:** `ValueError`, naming the array's path, its shape, the spec and the
    mesh axis, when a spec splits a dimension that its mesh axes do not divide,
    names a mesh axis the mesh lacks, uses an axis twice or has more entries than
    the array has dimensions; and when a rule (of strict rules) selects no array.
    """
    resolved, treedef = resolve(model, mesh, rules, "ecliptic.sharding_plan")
    check_batch("ecliptic.sharding_plan", rules, mesh)
    leaves = [None if r is None else NamedSharding(mesh, r.spec) for r in resolved]
    return treedef.unflatten(leaves)


@api_boundary
def shard_model(model: PyTree[Any], mesh: Mesh, rules: ShardingRules) -> PyTree[Any]:
    """Places the arrays of `model` on `mesh` as `rules` declare:
    `filter_shard(model, sharding_plan(model, mesh, rules))`.

    **Arguments:**

    - `model`: the model (any PyTree); non-array leaves pass through.
    - `mesh`: the device mesh.
    - `rules`: an [`ecliptic.ShardingRules`][].

    **Returns:** the model, its arrays laid out across the mesh's devices (inside
    `jit`, constrained to that layout).
    """
    return filter_shard(model, sharding_plan(model, mesh, rules))


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def _row_bytes(r: Resolved) -> tuple[int, int]:
    whole = int(np.prod(r.shape, dtype=np.int64)) * np.dtype(r.dtype).itemsize
    return whole, whole // r.devices


@api_boundary
def describe_sharding(
    model: PyTree[Any], mesh: Mesh | AbstractMesh, rules: ShardingRules
) -> str:
    """The dry run of [`ecliptic.shard_model`][]: what each array would become,
    without placing anything.

    One row per array: its dotted path, shape, dtype, `PartitionSpec` and bytes per
    device; then a total line comparing the bytes each device holds with the
    unsharded model. Works with an abstract model and an `AbstractMesh`, so a plan
    for a large mesh can be checked on a laptop. Raises the same errors as
    [`ecliptic.sharding_plan`][].

    **Arguments:**

    - `model`: the model (any PyTree; arrays or `jax.ShapeDtypeStruct`s).
    - `mesh`: the device mesh.
    - `rules`: an [`ecliptic.ShardingRules`][].

    **Returns:** the table, as a string (print it).
    """
    resolved, _ = resolve(model, mesh, rules, "ecliptic.describe_sharding")
    check_batch("ecliptic.describe_sharding", rules, mesh)
    rows = [r for r in resolved if r is not None]
    header = ("path", "shape", "dtype", "spec", "per device")
    table: list[tuple[str, ...]] = [header]
    total = per_device = 0
    for r in rows:
        whole, piece = _row_bytes(r)
        total += whole
        per_device += piece
        shape = str(r.shape) if len(r.shape) != 1 else f"({r.shape[0]},)"
        spec = describe_spec(r.spec)
        table.append((r.path or "<root>", shape, str(r.dtype), spec, _bytes(piece)))
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    lines = [
        f"Sharding {rules.name!r} on {describe_mesh(mesh)}, "
        f"batch {describe_spec(rules.batch)}:"
    ]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1].rjust(widths[-1])]).rstrip())
    share = f"{per_device / total:.1%}" if total else "100%"
    lines.append(
        f"Total: {_bytes(per_device)} per device ({per_device:,} bytes, {share} of "
        f"the {total:,} bytes unsharded), {len(rows)} arrays."
    )
    return "\n".join(lines)
