"""Tensor-parallel sharding presets (Megatron-style) for the layers of `ecliptic.nn`:
`tensor_parallel` and `fsdp_tensor_parallel`.

They are ordinary [`ecliptic.ShardingRules`][]: `(type, field)` rules on
`nn.MultiheadAttention`, `nn.MLP` and `nn.Linear` whose specs are the callables
below. They live on the top floor because they name the layer types; the rules
machinery itself (`_sharding/`) sits below `nn` and knows no layer.

A weight of `nn.Linear` is `(out, in)` (with leading axes when layers are stacked,
as in `nn.Stacked` or `MLP(scan=True)`): *column-parallel* splits `out` (each
device computes some outputs; the bias is split alike), *row-parallel* splits `in`
(each device holds a partial sum, which XLA reduces; the bias is replicated).
"""

from __future__ import annotations

from typing import Any

from jax.sharding import PartitionSpec as P

from ._messages import sharding_heads_error, sharding_same_axes_error
from ._sharding import (
    check_axis_name,
    check_min_size,
    FsdpSpec,
    ShardingRules,
)
from .nn import Linear, MLP, MultiheadAttention


def _split(shape: tuple[int, ...], dim: int, axis: str) -> P:
    entries: list[Any] = [None] * len(shape)
    entries[dim] = axis
    return P(*entries)


class _Column:
    """Column-parallel: split the output features of a weight `(..., out, in)` or
    bias `(..., out)`. With `heads` (an attention field such as `"num_heads"`),
    the layer's head count must be divisible by the axis size; otherwise a
    dimension that the axis size does not divide is replicated."""

    def __init__(self, axis: str, part: str, heads: str | None = None):
        self.axis, self.part, self.heads = axis, part, heads
        self.__name__ = f"column({axis!r})" if heads is None else f"heads({axis!r})"

    def __call__(
        self, path: str, shape: tuple[int, ...], mesh: Any, *, owner: Any = None
    ) -> P:
        dim = len(shape) - (2 if self.part == "weight" else 1)
        if self.axis not in mesh.shape or dim < 0:
            return _split(shape, max(dim, 0), self.axis) if shape else P()
        size = mesh.shape[self.axis]
        if self.heads is not None and owner is not None:
            heads = getattr(owner, self.heads)
            if heads % size:
                raise sharding_heads_error(path, self.heads, heads, self.axis, size)
        if shape[dim] % size:
            return P()
        return _split(shape, dim, self.axis)

    def __repr__(self) -> str:
        return self.__name__


class _Row:
    """Row-parallel: split the input features of a weight `(..., out, in)`; a
    dimension that the axis size does not divide is replicated."""

    def __init__(self, axis: str):
        self.axis = axis
        self.__name__ = f"row({axis!r})"

    def __call__(
        self, path: str, shape: tuple[int, ...], mesh: Any, *, owner: Any = None
    ) -> P:
        del path, owner
        dim = len(shape) - 1
        if dim < 1:
            return P()
        if self.axis in mesh.shape and shape[dim] % mesh.shape[self.axis]:
            return P()
        return _split(shape, dim, self.axis)

    def __repr__(self) -> str:
        return self.__name__


class _Alternate:
    """The `Linear` layers of an `MLP`: column-parallel, row-parallel, column, ...
    by position (`layers.<i>.weight`), so that each column/row pair needs one
    reduction. Row-parallel biases are replicated."""

    def __init__(self, axis: str, part: str):
        self.column, self.row, self.part = _Column(axis, part), _Row(axis), part
        self.__name__ = f"megatron_mlp({axis!r})"

    def __call__(
        self, path: str, shape: tuple[int, ...], mesh: Any, *, owner: Any = None
    ) -> P:
        position = path.split(".")[-2]
        if not position.isdigit() or int(position) % 2 == 0:
            return self.column(path, shape, mesh, owner=owner)
        if self.part == "bias":
            return P()
        return self.row(path, shape, mesh, owner=owner)

    def __repr__(self) -> str:
        return self.__name__


def _tp_rules(axis: str) -> list[tuple[Any, Any]]:
    mha = MultiheadAttention
    rules: list[tuple[Any, Any]] = []
    for proj, heads in (
        ("query_proj", "num_heads"),
        ("key_proj", "num_kv_heads"),
        ("value_proj", "num_kv_heads"),
    ):
        for part in ("weight", "bias"):
            rules.append(((mha, f"{proj}.{part}"), _Column(axis, part, heads)))
    rules.append(((mha, "output_proj.weight"), _Row(axis)))
    rules.append(((mha, "output_proj.bias"), None))
    rules.append(((MLP, "layers.*.weight"), _Alternate(axis, "weight")))
    rules.append(((MLP, "layers.*.bias"), _Alternate(axis, "bias")))
    rules.append(((Linear, "weight"), _Column(axis, "weight")))
    rules.append(((Linear, "bias"), _Column(axis, "bias")))
    return rules


def tensor_parallel(axis: str = "model") -> ShardingRules:
    """Tensor parallelism in the style of Megatron-LM, over mesh axis `axis`:

    - the `nn.Linear` layers of an `nn.MLP` alternate column-parallel (first
      layer: weight `(out, in)` -> `P(axis, None)`, bias `P(axis)`) and
      row-parallel (next layer: weight -> `P(None, axis)`, bias replicated), so
      each pair needs a single reduction;
    - `nn.MultiheadAttention`: the query, key and value projections are
      column-parallel, which splits the heads (so `num_heads` and
      `num_kv_heads` must be divisible by the axis size: a `ValueError`
      otherwise); the output projection is row-parallel;
    - any other `nn.Linear`: column-parallel;
    - everything else is replicated, and so are the inputs (`batch=P()`).

    A `Linear` dimension that the axis size does not divide (such as an MLP's
    10-way output on 4 devices) is replicated rather than split: see
    [`ecliptic.describe_sharding`][]. Stacked layers (`nn.Stacked`,
    `MLP(scan=True)`) keep their leading axes unsplit. Combine with data
    parallelism as `tensor_parallel("model") + data_parallel("data")`, or use
    [`ecliptic.fsdp_tensor_parallel`][].

    **Arguments:**

    - `axis`: the mesh axis the layers are split over.

    **Returns:** an [`ecliptic.ShardingRules`][] (whose rules may match nothing:
    a model without attention is fine).
    """
    check_axis_name("axis", axis)
    name = f"tensor_parallel({axis!r})"
    return ShardingRules(*_tp_rules(axis), batch=P(), name=name, strict=False)


def fsdp_tensor_parallel(
    data_axis: str = "data", model_axis: str = "model", *, min_size: int = 2**12
) -> ShardingRules:
    """Tensor parallelism and FSDP on a 2-d mesh: the [`ecliptic.tensor_parallel`][]
    specs over `model_axis`, and, for every array with at least `min_size`
    elements, [`ecliptic.fsdp`][] over `data_axis` on the largest remaining
    dimension that its size divides. The batch is split over `data_axis`.

    **Arguments:**

    - `data_axis`: the mesh axis for the batch and the FSDP split.
    - `model_axis`: the mesh axis for the tensor-parallel split.
    - `min_size`: the number of elements from which an array is also split over
        `data_axis`. (Keyword only.)

    **Returns:** an [`ecliptic.ShardingRules`][].
    """
    check_axis_name("data_axis", data_axis)
    check_axis_name("model_axis", model_axis)
    check_min_size(min_size)
    if data_axis == model_axis:
        raise sharding_same_axes_error(data_axis)
    rules = [
        (match, FsdpSpec(data_axis, min_size, spec))
        for match, spec in _tp_rules(model_axis)
    ]
    rules.append(("**", FsdpSpec(data_axis, min_size)))
    name = f"fsdp_tensor_parallel({data_axis!r}, {model_axis!r}, min_size={min_size})"
    return ShardingRules(*rules, batch=P(data_axis), name=name, strict=False)
