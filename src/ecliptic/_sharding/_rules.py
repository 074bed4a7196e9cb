"""`ShardingRules`: how each array of a model is laid out on a mesh, declared once
beside the model; and the matching of its rules against the model's arrays.

A rule is `(match, spec)`. The first rule whose `match` selects an array gives its
`PartitionSpec`; arrays that no rule selects are replicated. `resolve(model, mesh,
rules, where)` walks the model once and returns one `Resolved` per array leaf (its
path, shape, dtype, spec and the rule that gave it), after checking every spec
against the array and the mesh. `sharding_plan`, `shard_model` and
`describe_sharding` (in `_plan.py`) are its faces.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.tree_util as jtu
import numpy as np
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec as P

from .._messages import (
    describe_no_rule,
    describe_rule,
    describe_spec,
    sharding_axis_error,
    sharding_batch_axis_error,
    sharding_batch_type_error,
    sharding_divisible_error,
    sharding_frozen_error,
    sharding_match_type_error,
    sharding_mesh_type_error,
    sharding_name_type_error,
    sharding_rank_error,
    sharding_repeat_axis_error,
    sharding_result_type_error,
    sharding_rule_type_error,
    sharding_rules_type_error,
    sharding_spec_type_error,
    sharding_unmatched_error,
)
from .._pytree import dotted_path
from .._wrap import is_struct


PyTree = Any
SpecFn = Callable[..., Any]
_CONTAINERS = (list, tuple, dict, type(None))
_NAME = "name"


# -- globs --------------------------------------------------------------------------


def glob_to_regex(glob: str) -> re.Pattern:
    """A glob on dotted paths as a regex: `*` is one whole segment (inside a
    segment, any characters but a dot), `**` any number of segments, none included.

    `"layers.*.weight"` matches `"layers.0.weight"`; `"**.bias"` matches `"bias"`
    and `"mlp.layers.2.bias"`; `"encoder.**"` matches `"encoder"` and everything
    below it.
    """
    parts: list[str] = []
    segments = glob.split(".")
    for i, seg in enumerate(segments):
        first, last = i == 0, i == len(segments) - 1
        if seg == "**":
            if first and last:
                parts.append(r".*")
            elif first:
                parts.append(r"(?:[^.]+\.)*")
            else:
                parts.append(r"(?:\.[^.]+)*")
            continue
        dot = "" if first or segments[i - 1] == "**" and i == 1 else r"\."
        if seg == "*":
            body = r"[^.]+"
        else:
            body = r"[^.]*".join(re.escape(piece) for piece in seg.split("*"))
        parts.append(dot + body)
    return re.compile("".join(parts))


# -- rules --------------------------------------------------------------------------


def _takes_owner(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return "owner" in params


class _Rule(NamedTuple):
    """One rule, compiled: `kind` is "regex" or "type"; for "type", `cls` and
    `field` (a single name, `"*"`, or a dotted glob when `deep`)."""

    match: Any
    spec: Any
    strict: bool
    kind: str
    regex: re.Pattern | None
    cls: type | None
    field: str | None
    deep: bool
    takes_owner: bool

    def describe(self, index: int) -> str:
        return describe_rule(index, self.match, self.spec)


def _compile(i: int, rule: Any, strict: bool) -> _Rule:
    if isinstance(rule, _Rule):
        return rule
    if not isinstance(rule, tuple) or len(rule) != 2:
        raise sharding_rule_type_error(i, rule)
    match, spec = rule
    if spec is None:
        spec = P()
    elif not isinstance(spec, P) and (isinstance(spec, tuple) or not callable(spec)):
        raise sharding_spec_type_error(i, spec)
    owner = callable(spec) and not isinstance(spec, P) and _takes_owner(spec)
    if isinstance(match, str):
        regex = glob_to_regex(match)
        return _Rule(match, spec, strict, "regex", regex, None, None, False, owner)
    if isinstance(match, re.Pattern):
        return _Rule(match, spec, strict, "regex", match, None, None, False, owner)
    if (
        isinstance(match, tuple)
        and len(match) == 2
        and isinstance(match[0], type)
        and isinstance(match[1], str)
    ):
        cls, field = match
        deep = "." in field
        regex = glob_to_regex(field) if deep else None
        return _Rule(match, spec, strict, "type", regex, cls, field, deep, owner)
    raise sharding_match_type_error(i, match)


class ShardingRules:
    """How the arrays of a model, and a batch of its inputs, are laid out on a
    device mesh: a sequence of rules `(match, spec)`, first match wins. Immutable.

    A `match` selects arrays by where they sit in the model:

    - a glob string on the dotted path (`"layers.*.weight"`; `*` is exactly one
      dotted segment, `**` any number of segments, none included);
    - a compiled `re.Pattern`, full-matched against the dotted path;
    - a `(type, field_name)` pair: the arrays held directly in that field of any
      instance of `type` (subclasses included), such as
      `(ecliptic.nn.Linear, "weight")`; `"*"` selects every array field. A dotted
      field (`(ecliptic.nn.MLP, "layers.*.weight")`) is a glob on the path below
      the instance.

    A `spec` is a `jax.sharding.PartitionSpec`, `None` (replicate: `P()`), or a
    callable `(path, shape, mesh) -> PartitionSpec` computing it per array. A
    callable that also takes a keyword argument `owner` receives the Module that
    holds the array (the instance of `type` for a `(type, field)` rule), to read
    its static fields such as `num_heads`.

    Arrays that no rule selects are replicated. A rule that selects no array at
    all raises in [`ecliptic.sharding_plan`][] (a typo must not pass silently),
    unless the rules were built with `strict=False` (as the presets are).

    **Arguments:**

    - `*rules`: the `(match, spec)` pairs, in order.
    - `batch`: how a batch of inputs is laid out (its leading axis), e.g.
        `P("data")`; see `batch_sharding`.
    - `name`: a name shown by [`ecliptic.describe_sharding`][].
    - `strict`: whether each of these rules must select at least one array.
        (Keyword only.)
    """

    __slots__ = ("rules", "batch", "name", "_compiled")

    rules: tuple[tuple[Any, Any], ...]
    batch: P
    name: str
    _compiled: tuple[_Rule, ...]

    def __init__(
        self,
        *rules: tuple[Any, Any],
        batch: P = P(),
        name: str = "custom",
        strict: bool = True,
    ):
        if batch is None:
            batch = P()
        if not isinstance(batch, P):
            raise sharding_batch_type_error(batch)
        if not isinstance(name, str):
            raise sharding_name_type_error(_NAME, name)
        compiled = tuple(_compile(i, r, strict) for i, r in enumerate(rules))
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "rules", tuple((r.match, r.spec) for r in compiled))
        object.__setattr__(self, "batch", batch)
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise sharding_frozen_error(name)

    def __delattr__(self, name: str) -> None:
        raise sharding_frozen_error(name)

    def batch_sharding(self, mesh: Mesh | AbstractMesh) -> NamedSharding:
        """The sharding of a batch of inputs: `NamedSharding(mesh, self.batch)`.

        **Arguments:**

        - `mesh`: the device mesh.

        **Returns:** a `jax.sharding.NamedSharding`, for `jax.device_put(batch, ...)`
        or [`ecliptic.filter_shard`][].
        """
        check_mesh("ecliptic.ShardingRules.batch_sharding", mesh)
        check_batch("ecliptic.ShardingRules.batch_sharding", self, mesh)
        return NamedSharding(mesh, self.batch)

    def __add__(self, other: Any) -> ShardingRules:
        """`self`'s rules first, then `other`'s. The batch layout is `self.batch`,
        or `other.batch` when `self.batch` is `P()`."""
        if not isinstance(other, ShardingRules):
            return NotImplemented
        batch = self.batch if tuple(self.batch) else other.batch
        new = ShardingRules(batch=batch, name=f"{self.name} + {other.name}")
        object.__setattr__(new, "_compiled", self._compiled + other._compiled)
        object.__setattr__(new, "rules", self.rules + other.rules)
        return new

    def __len__(self) -> int:
        return len(self._compiled)

    def __repr__(self) -> str:
        lines = [f"ShardingRules(name={self.name!r}, batch={describe_spec(self.batch)}"]
        lines += [f"  {r.describe(i)}" for i, r in enumerate(self._compiled)]
        return "\n".join(lines) + ")"


# -- resolving the rules against a model ---------------------------------------------


def check_mesh(where: str, mesh: Any) -> None:
    """Raises unless `mesh` is a `Mesh` or an `AbstractMesh`."""
    if not isinstance(mesh, Mesh | AbstractMesh):
        raise sharding_mesh_type_error(where, mesh)


def check_batch(where: str, rules: ShardingRules, mesh: Any) -> None:
    """Raises if `rules.batch` names an axis that `mesh` lacks."""
    for entry in rules.batch:
        for axis in _axes_of(entry):
            if axis not in mesh.shape:
                raise sharding_batch_axis_error(
                    where, rules.name, rules.batch, axis, mesh
                )


def _axes_of(entry: Any) -> tuple:
    if entry is None or entry is P.UNCONSTRAINED:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


class Resolved(NamedTuple):
    """One array leaf of a model, with the spec the rules give it."""

    path: str
    shape: tuple[int, ...]
    dtype: Any
    spec: P
    rule: str  # which rule gave the spec ("no rule" when replicated by default)
    devices: int  # how many pieces the array is split into


def check_spec(
    where: str, path: str, shape: tuple, dtype: Any, spec: P, mesh: Any, rule: str
) -> int:
    """Checks `spec` for an array of `shape` on `mesh`; returns into how many pieces
    it splits the array."""
    entries = tuple(spec)
    if len(entries) > len(shape):
        raise sharding_rank_error(where, path, shape, dtype, spec, rule)
    used: set = set()
    pieces = 1
    for dim, entry in enumerate(entries):
        axes = _axes_of(entry)
        size = 1
        for axis in axes:
            if axis not in mesh.shape:
                raise sharding_axis_error(where, path, shape, spec, axis, mesh, rule)
            if axis in used:
                raise sharding_repeat_axis_error(where, path, shape, spec, axis, rule)
            used.add(axis)
            size *= mesh.shape[axis]
        if shape[dim] % size:
            raise sharding_divisible_error(
                where, path, shape, spec, dim, axes, size, mesh, rule
            )
        pieces *= size
    return pieces


class _Walk:
    """The nodes above each array leaf, found by following its key path from the
    root (one one-level flatten per node, memoised)."""

    def __init__(self, root: PyTree):
        self._children: dict[int, dict] = {}
        self._nodes: dict[tuple, Any] = {(): root}

    def _child(self, node: Any, key: Any) -> Any:
        table = self._children.get(id(node))
        if table is None:
            pairs = jtu.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
            table = {p[0]: x for p, x in pairs[0] if len(p) == 1}
            self._children[id(node)] = table
        return table[key]

    def ancestors(self, keys: tuple) -> list[Any]:
        """The nodes at `keys[:0]`, `keys[:1]`, ..., `keys[:-1]`."""
        out = []
        for j in range(len(keys)):
            prefix = keys[:j]
            node = self._nodes.get(prefix)
            if node is None:
                node = self._child(self._nodes[keys[: j - 1]], keys[j - 1])
                self._nodes[prefix] = node
            out.append(node)
        return out


def _owner_index(ancestors: list[Any]) -> int | None:
    """The index of the nearest ancestor that is not a plain container."""
    for j in range(len(ancestors) - 1, -1, -1):
        if not isinstance(ancestors[j], _CONTAINERS):
            return j
    return None


def _select(rule: _Rule, path: str, keys: tuple, ancestors: list) -> tuple[bool, Any]:
    """Whether `rule` selects the array at `keys`, and the owner it hands over."""
    j = _owner_index(ancestors)
    if rule.kind == "regex":
        assert rule.regex is not None
        hit = rule.regex.fullmatch(path) is not None
        return hit, (None if j is None else ancestors[j])
    assert rule.cls is not None
    if not rule.deep:
        if j is None or not isinstance(ancestors[j], rule.cls):
            return False, None
        name = dotted_path(keys[j : j + 1])
        return rule.field in ("*", name), ancestors[j]
    assert rule.regex is not None
    for k in range(len(ancestors) - 1, -1, -1):
        if isinstance(ancestors[k], rule.cls):
            if rule.regex.fullmatch(dotted_path(keys[k:])) is not None:
                return True, ancestors[k]
    return False, None


def _call_spec(
    rule: _Rule, path: str, shape: tuple, mesh: Any, owner: Any, where: str, text: str
) -> P:
    spec = rule.spec
    if not callable(spec) or isinstance(spec, P):
        return spec
    if rule.takes_owner:
        out = spec(path, shape, mesh, owner=owner)
    else:
        out = spec(path, shape, mesh)
    if out is None:
        return P()
    if not isinstance(out, P):
        raise sharding_result_type_error(where, text, path, shape, out)
    return out


def resolve(
    model: PyTree, mesh: Any, rules: ShardingRules, where: str
) -> tuple[list[Resolved | None], Any]:
    """The spec of every array leaf of `model` (`None` for other leaves), checked
    against the mesh, and the model's treedef.

    Arrays are `jax.Array`s, NumPy arrays and `jax.ShapeDtypeStruct`s (so an
    abstract model from `filter_eval_shape` can be planned without allocating it).
    """
    check_mesh(where, mesh)
    if not isinstance(rules, ShardingRules):
        raise sharding_rules_type_error(where, rules)
    compiled = rules._compiled
    texts = [r.describe(i) for i, r in enumerate(compiled)]
    used = [False] * len(compiled)
    walk = _Walk(model)
    pairs, treedef = jtu.tree_flatten_with_path(model)
    out: list[Resolved | None] = []
    paths: list[str] = []
    for keys, leaf in pairs:
        if not is_struct(leaf):
            out.append(None)
            continue
        path = dotted_path(keys)
        paths.append(path)
        shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
        ancestors = walk.ancestors(keys)
        spec, text = P(), describe_no_rule()
        for i, rule in enumerate(compiled):
            hit, owner = _select(rule, path, keys, ancestors)
            if hit:
                used[i] = True
                text = texts[i]
                spec = _call_spec(rule, path, shape, mesh, owner, where, text)
                break
        pieces = check_spec(where, path, shape, dtype, spec, mesh, text)
        out.append(Resolved(path, shape, dtype, spec, text, pieces))
    for i, rule in enumerate(compiled):
        if rule.strict and not used[i]:
            raise sharding_unmatched_error(texts[i], paths)
    return out, treedef
