"""Messages of declared sharding: `ShardingRules`, `sharding_plan` and its faces
(`shard_model`, `describe_sharding`), the presets (`data_parallel`, `fsdp`,
`tensor_parallel`, `fsdp_tensor_parallel`) and `filter_shard_map`."""

from __future__ import annotations

from typing import Any

from jax.sharding import PartitionSpec as P


# How many of a model's array paths a "rule matches nothing" message lists.
_MAX_LISTED = 8


def describe_spec(spec: Any) -> str:
    """A `PartitionSpec` as the user would write it: `P('data', None)`."""
    if spec is None:
        return "None"
    entries = ", ".join(repr(e) for e in tuple(spec))
    return f"P({entries})"


def describe_mesh(mesh: Any) -> str:
    """A mesh by its axes and their sizes: `mesh {'data': 2, 'model': 4}`."""
    return f"mesh {dict(mesh.shape)}"


def describe_rule(index: int, match: Any, spec: Any) -> str:
    """How messages and `describe_sharding` name a rule: `rule 2 ('layers.*.weight'
    -> P('model', None))`. `match` is the rule's match (a glob, a compiled regex or
    a `(type, field)` pair); `spec` its spec (a PartitionSpec or a callable)."""
    if isinstance(match, tuple):
        what = f"({match[0].__name__}, {match[1]!r})"
    elif isinstance(match, str):
        what = repr(match)
    else:
        what = f"re.compile({match.pattern!r})"
    if callable(spec):
        shown = getattr(spec, "__name__", None) or repr(spec)
    else:
        shown = describe_spec(spec)
    return f"rule {index} ({what} -> {shown})"


def describe_no_rule() -> str:
    """What gave the spec of an array that no rule selects."""
    return "no rule (replicated)"


def describe_in_spec(spec: Any) -> str:
    """What gave the spec of an argument of `filter_shard_map`."""
    return f"the `in_specs` entry {describe_spec(spec)}"


def sharding_batch_axis_error(
    where: str, name: str, batch: Any, axis: Any, mesh: Any
) -> ValueError:
    """The error for rules whose `batch` names a mesh axis the mesh lacks."""
    rule = f"the `batch` of the rules {name!r}"
    return sharding_axis_error(where, "<batch>", (), batch, axis, mesh, rule)


def sharding_fsdp_axis_error(
    path: str, shape: tuple, axis: str, mesh: Any
) -> ValueError:
    """The error for an FSDP preset whose mesh axis the mesh lacks."""
    rule = f"the FSDP preset on axis {axis!r}"
    where = "ecliptic.sharding_plan"
    return sharding_axis_error(where, path, shape, P(axis), axis, mesh, rule)


def _param(where: str, path: str, shape: tuple, dtype: Any = None) -> str:
    if path == "<batch>":
        return f"{where}: the batch of inputs"
    name = f"`{path}`" if path else "the root array"
    kind = "" if dtype is None else f", {dtype}"
    return f"{where}: the array {name} (shape {tuple(shape)}{kind})"


def sharding_rule_type_error(i: int, rule: Any) -> TypeError:
    """The error for a rule of `ShardingRules` that is not a `(match, spec)` pair."""
    return TypeError(
        f"ecliptic.ShardingRules expected each rule to be a pair `(match, spec)`, "
        f"but rule {i} is {rule!r} of type {type(rule).__name__}. Write e.g. "
        "`ShardingRules(('layers.*.weight', P(None, 'model')))`."
    )


def sharding_match_type_error(i: int, match: Any) -> TypeError:
    """The error for a rule whose `match` is none of the accepted kinds."""
    return TypeError(
        f"ecliptic.ShardingRules expected the `match` of rule {i} to be a glob "
        "string on the dotted path (`'layers.*.weight'`), a compiled `re.Pattern`, "
        "or a `(type, field_name)` pair such as `(ecliptic.nn.Linear, 'weight')`, "
        f"but got {match!r} of type {type(match).__name__}."
    )


def sharding_spec_type_error(i: int, spec: Any) -> TypeError:
    """The error for a rule whose `spec` is not a PartitionSpec, None or callable."""
    return TypeError(
        f"ecliptic.ShardingRules expected the `spec` of rule {i} to be a "
        "`jax.sharding.PartitionSpec`, `None` (replicate) or a callable "
        f"`(path, shape, mesh) -> PartitionSpec`, but got {spec!r} of type "
        f"{type(spec).__name__}. A plain tuple is not a spec: write "
        "`P('data', None)`."
    )


def sharding_batch_type_error(batch: Any) -> TypeError:
    """The error for a `batch=` that is not a PartitionSpec."""
    return TypeError(
        "ecliptic.ShardingRules expected `batch` to be a "
        f"`jax.sharding.PartitionSpec`, but got {batch!r} of type "
        f"{type(batch).__name__}. Write e.g. `batch=P('data')`."
    )


def sharding_name_type_error(what: str, value: Any) -> TypeError:
    """The error for a name (of the rules, or of a mesh axis) that is not a str."""
    return TypeError(
        f"ecliptic: expected `{what}` to be a str, but got {value!r} of type "
        f"{type(value).__name__}. Mesh axes are named by strings, e.g. 'data'."
    )


def sharding_rules_type_error(where: str, rules: Any) -> TypeError:
    """The error for `rules` that are not a `ShardingRules`."""
    return TypeError(
        f"{where} expected `rules` to be an `ecliptic.ShardingRules` (or a preset "
        f"such as `ecliptic.fsdp()`), but got {type(rules).__name__}. Wrap plain "
        "pairs: `ShardingRules(('**.weight', P(None, 'model')))`."
    )


def sharding_frozen_error(name: str) -> AttributeError:
    """The error for setting an attribute of a (frozen) `ShardingRules`."""
    return AttributeError(
        f"ecliptic.ShardingRules is immutable, but `.{name}` was assigned. Build "
        "new rules instead: `ShardingRules(*rules.rules, batch=...)`, or combine "
        "two sets with `rules_a + rules_b`."
    )


def sharding_mesh_type_error(where: str, mesh: Any) -> TypeError:
    """The error for a `mesh` that is not a `Mesh` or `AbstractMesh`."""
    return TypeError(
        f"{where} expected `mesh` to be a `jax.sharding.Mesh` (or an "
        f"`AbstractMesh` for a dry run), but got {type(mesh).__name__}. Build one "
        "with `jax.make_mesh((8,), ('data',))`."
    )


def sharding_min_size_error(min_size: Any) -> ValueError:
    """The error for a `min_size` that is not a non-negative int."""
    return ValueError(
        "ecliptic.fsdp expected `min_size` (the number of elements from which a "
        f"parameter is sharded) to be a non-negative int, but got {min_size!r}. "
        "Pass e.g. `min_size=2**12`, or `min_size=0` to shard every parameter."
    )


def sharding_same_axes_error(axis: str) -> ValueError:
    """The error for `fsdp_tensor_parallel` given the same axis twice."""
    return ValueError(
        "ecliptic.fsdp_tensor_parallel expected two different mesh axes, one for "
        f"the data (FSDP) and one for the model (tensor parallel), but got "
        f"{axis!r} for both. Use a 2-d mesh, e.g. `jax.make_mesh((2, 4), "
        "('data', 'model'))`, and `fsdp_tensor_parallel('data', 'model')`."
    )


def sharding_result_type_error(
    where: str, rule: str, path: str, shape: tuple, result: Any
) -> TypeError:
    """The error for a callable spec that returned something else than a spec."""
    return TypeError(
        f"{_param(where, path, shape)} matched {rule}, whose callable should "
        f"return a `jax.sharding.PartitionSpec` (or `None` to replicate), but it "
        f"returned {result!r} of type {type(result).__name__}. Return e.g. "
        "`P(None, 'model')`."
    )


def sharding_rank_error(
    where: str, path: str, shape: tuple, dtype: Any, spec: Any, rule: str
) -> ValueError:
    """The error for a spec with more entries than the array has dimensions."""
    n = len(tuple(spec))
    return ValueError(
        f"{_param(where, path, shape, dtype)} has {len(shape)} dimension(s), so its "
        f"spec may have at most {len(shape)} entries, but {rule} gives "
        f"{describe_spec(spec)} with {n}. Drop the extra entries, or narrow the "
        "rule's match so it does not select this array."
    )


def sharding_axis_error(
    where: str, path: str, shape: tuple, spec: Any, axis: Any, mesh: Any, rule: str
) -> ValueError:
    """The error for a spec that names a mesh axis the mesh lacks."""
    return ValueError(
        f"{_param(where, path, shape)} is given {describe_spec(spec)} by {rule}, "
        f"which names mesh axis {axis!r}, but the {describe_mesh(mesh)} has axes "
        f"{tuple(mesh.axis_names)}. Use one of those names, or build the mesh "
        f"with an axis {axis!r}."
    )


def sharding_repeat_axis_error(
    where: str, path: str, shape: tuple, spec: Any, axis: Any, rule: str
) -> ValueError:
    """The error for a spec that uses one mesh axis for two dimensions."""
    return ValueError(
        f"{_param(where, path, shape)} is given {describe_spec(spec)} by {rule}, "
        f"which uses mesh axis {axis!r} more than once, but each mesh axis may "
        "split at most one dimension. Put the axis on one dimension only."
    )


def sharding_divisible_error(
    where: str,
    path: str,
    shape: tuple,
    spec: Any,
    dim: int,
    axes: tuple,
    size: int,
    mesh: Any,
    rule: str,
) -> ValueError:
    """The error for a spec that splits a dimension its mesh axes do not divide."""
    names = axes[0] if len(axes) == 1 else axes
    others = [d for d, n in enumerate(shape) if d != dim and n % size == 0 and n]
    hint = f" (dimension {others[0]}, of size {shape[others[0]]}, is)" if others else ""
    return ValueError(
        f"{_param(where, path, shape)} is given {describe_spec(spec)} by {rule}, "
        f"which splits dimension {dim} (size {shape[dim]}) over mesh axis "
        f"{names!r} of size {size} on the {describe_mesh(mesh)}, but {shape[dim]} "
        f"is not divisible by {size}. Split a dimension divisible by {size}{hint}, "
        "replicate this array (spec `None`), or use a mesh whose axis size "
        f"divides {shape[dim]}."
    )


def sharding_unmatched_error(rule: str, paths: list[str]) -> ValueError:
    """The error for a rule that matched no array of the model (a typo, usually)."""
    shown = ", ".join(f"'{p}'" for p in paths[:_MAX_LISTED])
    more = f", ... ({len(paths)} in all)" if len(paths) > _MAX_LISTED else ""
    return ValueError(
        f"ecliptic.sharding_plan expected every rule to match at least one array "
        f"of the model, but {rule} matched none. The model's arrays are: "
        f"{shown or 'none'}{more}. Fix the pattern (`*` is one dotted segment, "
        "`**` any number), or remove the rule."
    )


def sharding_heads_error(
    path: str, what: str, heads: int, axis: str, size: int
) -> ValueError:
    """The error for tensor-parallel attention whose heads do not split evenly."""
    return ValueError(
        f"ecliptic.tensor_parallel: the attention projection `{path}` is split "
        f"by heads over mesh axis {axis!r} of size {size}, so `{what}` must be "
        f"divisible by {size}, but the layer has {what}={heads}. Use a model axis "
        f"whose size divides {heads}, or a layer with a multiple of {size} heads."
    )


def shard_map_specs_prefix_error(what: str, structure: Any, spec: Any) -> ValueError:
    """The error for `in_specs`/`out_specs` that are not a prefix of the data."""
    return ValueError(
        f"ecliptic.filter_shard_map expected `{what}` to be a PartitionSpec, or a "
        f"PyTree prefix of the {'arguments tuple' if what == 'in_specs' else 'output'}"
        f" with PartitionSpec or None leaves, but got {spec!r} for data of "
        f"structure {structure}. Give one entry per argument, e.g. "
        "`in_specs=(P(), P('data'))` for `f(model, x)`."
    )


def shard_map_spec_leaf_error(what: str, leaf: Any) -> TypeError:
    """The error for a leaf of `in_specs`/`out_specs` that is not a spec or None."""
    return TypeError(
        f"ecliptic.filter_shard_map expected the leaves of `{what}` to be "
        "`jax.sharding.PartitionSpec`s or `None` (static or replicated), but got "
        f"{leaf!r} of type {type(leaf).__name__}. Write `P('data')`, not "
        "`('data',)` or `'data'`."
    )


def shard_map_kwargs_error(fun: str, names: tuple) -> TypeError:
    """The error for calling a `filter_shard_map`-ed function with keywords."""
    return TypeError(
        f"ecliptic.filter_shard_map: {fun} takes positional arguments only (each "
        f"has its entry in `in_specs`), but was called with keyword arguments "
        f"{names}. Pass them positionally, or close over them with "
        "`functools.partial` if they are static."
    )
