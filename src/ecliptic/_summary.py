"""`tree_summary`: a table of a model's parameters, one row per array.

Reads only shapes and dtypes, so it works on a model built for real, on one from
`filter_eval_shape` (whose leaves are `jax.ShapeDtypeStruct`s), and inside `jit`;
nothing is compiled or run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._filters import filter as filter_tree
from ._messages import summary_filter_error
from ._module import Module


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One array of the model.

    - `path`: its key path, as `jax.tree_util.keystr` prints it (`".layers[0].weight"`).
    - `layer`: the class name of the innermost Module that holds it (`"Linear"`), or
        `""` when no Module does.
    - `shape`, `dtype`: the array's shape, and its dtype's name (`"float32"`).
    - `count`: its number of elements; `bytes`: its size in bytes.
    - `trainable`: whether the `trainable` filter spec selects it.
    """

    path: str
    layer: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    bytes: int
    trainable: bool


@dataclasses.dataclass(frozen=True)
class TreeSummary:
    """What `tree_summary` returns: the rows and the totals. `str()` gives the table.

    - `rows`: one [`SummaryRow`][ecliptic.SummaryRow] per array, in flatten order.
    - `count`, `bytes`: totals over every row; `trainable_count`,
        `trainable_bytes`: over the trainable rows; `frozen_count`, `frozen_bytes`:
        over the others.
    """

    rows: tuple[SummaryRow, ...]

    @property
    def count(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    @property
    def trainable_count(self) -> int:
        return sum(r.count for r in self.rows if r.trainable)

    @property
    def trainable_bytes(self) -> int:
        return sum(r.bytes for r in self.rows if r.trainable)

    @property
    def frozen_count(self) -> int:
        return self.count - self.trainable_count

    @property
    def frozen_bytes(self) -> int:
        return self.bytes - self.trainable_bytes

    def __str__(self) -> str:
        return _table(self)


def tree_summary(
    tree: PyTree,
    trainable: PyTree[bool | Callable[[Any], bool]] | None = None,
    *,
    file: TextIO | None = sys.stdout,
) -> TreeSummary:
    """Prints a table of the arrays in `tree` (a model): key path, layer type, shape,
    dtype, number of elements and bytes, with totals and the trainable/frozen split.

    **Arguments:**

    - `tree`: any PyTree, usually a model. Its arrays may be `jax.Array`s, NumPy
        arrays or `jax.ShapeDtypeStruct`s (from `ecliptic.filter_eval_shape`, so a
        model too big to build can be summarised).
    - `trainable`: a filter spec saying which arrays are trained, as given to
        `ecliptic.partition`: a callable such as `ecliptic.is_inexact_array`, or a
        PyTree prefix of `tree` of bools and callables. Default: every floating-point
        array.
    - `file`: where to print the table; `None` prints nothing.

    **Returns:** a [`TreeSummary`][ecliptic.TreeSummary]: its `rows` (one
    [`SummaryRow`][ecliptic.SummaryRow] per array) and totals (`count`, `bytes`,
    `trainable_count`, `frozen_count`, ...). `str(summary)` is the printed table.
    """
    spec = _is_inexact if trainable is None else trainable
    frozen = object()
    try:
        kept = jtu.tree_leaves(filter_tree(tree, spec, replace=frozen))
    except (ValueError, TypeError) as e:
        raise summary_filter_error(trainable, e) from None
    owners = _owners(tree)
    rows = []
    for (path, leaf), flag in zip(jtu.tree_flatten_with_path(tree)[0], kept):
        if not _is_array_or_struct(leaf):
            continue
        dtype = np.dtype(leaf.dtype) if _is_numpy_dtype(leaf.dtype) else leaf.dtype
        count = math.prod(leaf.shape)
        rows.append(
            SummaryRow(
                path=jtu.keystr(path),
                layer=owners.get(path, ""),
                shape=tuple(int(s) for s in leaf.shape),
                dtype=str(getattr(dtype, "name", dtype)),
                count=count,
                bytes=count * int(dtype.itemsize),
                trainable=flag is not frozen,
            )
        )
    summary = TreeSummary(tuple(rows))
    if file is not None:
        print(_table(summary), file=file)
    return summary


def _is_array_or_struct(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def _is_inexact(leaf: Any) -> bool:
    return _is_array_or_struct(leaf) and bool(jnp.issubdtype(leaf.dtype, jnp.inexact))


def _is_numpy_dtype(dtype: Any) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def _owners(tree: PyTree) -> dict[tuple, str]:
    """Key path of every leaf -> class name of the innermost Module above it."""
    out: dict[tuple, str] = {}
    stack: list[tuple[Any, tuple, str]] = [(tree, (), "")]
    while stack:
        node, path, owner = stack.pop()
        if isinstance(node, Module):
            owner = type(node).__name__
        children = _one_level(node)
        if len(children) == 1 and children[0][0] == () and children[0][1] is node:
            out[path] = owner  # a leaf
            continue
        stack.extend((child, path + key, owner) for key, child in children)
    return out


def _one_level(node: Any) -> list[tuple[tuple, Any]]:
    """`node`'s children with their keys; `[((), node)]` for a leaf."""
    return jtu.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    x, unit = float(n), "B"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 (the last unit is kept)
        x /= 1024
        if x < 1024:
            break
    return f"{x:.1f} {unit}"


def _table(summary: TreeSummary) -> str:
    head = ("path", "layer", "shape", "dtype", "params", "bytes", "trainable")
    body = [
        (
            r.path or "(root)",
            r.layer,
            str(r.shape),
            r.dtype,
            f"{r.count:,}",
            _size(r.bytes),
            "yes" if r.trainable else "no",
        )
        for r in summary.rows
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    right = {4, 5}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(head))
    totals = [
        f"total: {summary.count:,} params, {_size(summary.bytes)}",
        f"trainable: {summary.trainable_count:,} params, "
        f"{_size(summary.trainable_bytes)}",
        f"frozen: {summary.frozen_count:,} params, {_size(summary.frozen_bytes)}",
    ]
    return "\n".join([line(head), rule, *map(line, body), rule, *totals])
