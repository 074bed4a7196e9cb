"""State dicts: a model's tensors in PyTorch's names and layouts, both ways.

A model is walked once (`_units`): each layer that has a row in `_layouts.LAYOUTS`
is one unit, converted by its layout under its dotted name (`encoder.0.weight`);
every other array leaf is its own unit, named by its key path; `StateIndex`es
outside a known layer and non-array leaves have no name. Loading compares the
incoming names, shapes and dtypes with what the model's own export would give,
then converts, layer by layer, the model's export overlaid with the incoming
tensors (so a partial, non-strict load converts exactly too).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._filters import is_array
from .._messages import (
    interop_load_report_text,
    interop_rename_collision_error,
    interop_rename_error,
    interop_state_dict_error,
    interop_state_required_error,
    interop_unsupported_layer_error,
    interop_value_error,
)
from .._pytree import dotted_path
from ..nn import State, StateIndex
from ._layouts import Layout, layout_for, refusal


Rename = Sequence[tuple[str, str]] | Callable[[str], str | None] | None
Mismatch = tuple[str, tuple[int, ...], np.dtype, tuple[int, ...], np.dtype]


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a non-strict [`ecliptic.load_state_dict`][] or
    [`ecliptic.load_safetensors`][] loaded, and what it left out.

    **Attributes:**

    - `loaded`: the names that were loaded, a tuple of `str`.
    - `missing`: the names the model needs that were not given (those keep the
        model's values).
    - `unexpected`: the given names (after renaming) the model has no place for.
    - `mismatched`: one tuple `(name, expected_shape, expected_dtype, found_shape,
        found_dtype)` per tensor that was not loaded because its shape or dtype
        differs.

    `str(report)` lists each of them; `bool(report)` is `True` when everything
    matched.
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[Mismatch, ...]

    def __bool__(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        return interop_load_report_text(
            self.loaded, self.missing, self.unexpected, self.mismatched
        )


# ---------------------------------------------------------------------------------
# Walking the model.
# ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Unit:
    """One named piece of the model: a layer with a layout, or a plain array."""

    prefix: str
    node: Any
    layout: Layout | None  # `None`: a plain array, named `prefix`

    def names(self, name: str) -> str:
        return name if not self.prefix else f"{self.prefix}.{name}"

    def export(self, state: Any) -> dict[str, np.ndarray]:
        if self.layout is None:
            return {self.prefix: np.array(self.node)}
        tensors = self.layout.export(self.node, state)
        return {self.names(k): v for k, v in tensors.items()}


def _is_unit(node: Any) -> bool:
    if isinstance(node, StateIndex):
        return True
    return layout_for(node) is not None or refusal(node) is not None


def _units(model: Any, state: Any, function: str) -> tuple[list[Any], Any]:
    """The model's leaves, split at layers, as `_Unit`s (or `None` for leaves with
    no name), and the treedef to rebuild the model from them."""
    pairs, treedef = jtu.tree_flatten_with_path(model, is_leaf=_is_unit)
    units: list[Any] = []
    for path, leaf in pairs:
        name = dotted_path(path)
        kind = refusal(leaf)
        if kind is not None:
            raise interop_unsupported_layer_error(function, name, leaf, kind)
        layout = layout_for(leaf)
        if layout is not None:
            if state is None and layout.needs_state(leaf):
                raise interop_state_required_error(function, name, leaf)
            units.append(_Unit(name, leaf, layout))
        elif is_array(leaf) and not isinstance(leaf, StateIndex):
            units.append(_Unit(name, leaf, None))
        else:
            units.append(None)
    return units, treedef


def _rules(rename: Rename) -> Callable[[str], str | None] | None:
    """`rename` as one function (`None`: keep every name)."""
    if rename is None or callable(rename):
        return rename
    try:
        pairs = list(rename) if not isinstance(rename, (str, bytes)) else None
    except TypeError:
        pairs = None
    if pairs is None or not all(
        isinstance(r, (tuple, list))
        and len(r) == 2
        and all(isinstance(s, str) for s in r)
        for r in pairs
    ):
        raise interop_rename_error(rename)
    compiled = [(re.compile(p), r) for p, r in pairs]

    def rules(name: str) -> str | None:
        for pattern, replacement in compiled:
            name = pattern.sub(replacement, name)
        return name

    return rules


def _apply_rename(names: Iterable[str], rename: Rename) -> dict[str, str]:
    """`{new name: original name}` for the names `rename` keeps."""
    rules = _rules(rename)
    out: dict[str, str] = {}
    for name in names:
        new = name if rules is None else rules(name)
        if new is None:
            continue
        if new in out:
            raise interop_rename_collision_error(new, out[new], name)
        out[new] = name
    return out


# ---------------------------------------------------------------------------------
# Export.
# ---------------------------------------------------------------------------------


def state_dict(
    model: Any, state: State | None = None, *, rename: Rename = None
) -> dict[str, np.ndarray]:
    """The model's tensors in PyTorch's names and layouts, ready for
    `torch_module.load_state_dict({k: torch.from_numpy(v) ...})`.

    Layers of `ecliptic.nn` with a `torch.nn` counterpart are converted to its
    layout (see "Bringing PyTorch weights" in the docs); every other array is named
    by its key path (`layers[0].weight` is `"layers.0.weight"`).

    **Arguments:**

    - `model`: the model, any PyTree.
    - `state`: the model's [`ecliptic.nn.State`][]; required when the model has a
        `BatchNorm` (its running statistics become `running_mean`, `running_var`
        and `num_batches_tracked`).
    - `rename`: optional renaming of the outgoing names: `(pattern, replacement)`
        regex pairs applied in order with `re.sub`, or a function `name -> name |
        None` (`None` drops the tensor). (Keyword only.)

    **Returns:** a `dict` from names to NumPy arrays (copies), in model order.

    **Raises:** `TypeError` for a layer without a PyTorch layout (`LoRA`,
    `Stacked`, ...); `ValueError` for a `BatchNorm` without `state`.
    """
    units, _ = _units(model, state, "ecliptic.state_dict")
    tensors: dict[str, np.ndarray] = {}
    for unit in units:
        if unit is not None:
            tensors.update(unit.export(state))
    renamed = _apply_rename(tensors, rename)
    return {new: tensors[old] for new, old in renamed.items()}


# ---------------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------------


class Source:
    """Where incoming tensors come from: their names, and for each a cheap
    `(shape, dtype)` and the tensor itself (read only when loaded)."""

    def __init__(
        self,
        names: Iterable[str],
        spec: Callable[[str], tuple[tuple[int, ...], Any]],
        get: Callable[[str], np.ndarray],
        description: str,
    ):
        self.names = list(names)
        self.spec = spec
        self.get = get
        self.description = description


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if all(hasattr(value, a) for a in ("detach", "cpu", "numpy")):
        return value.detach().cpu().numpy()  # a torch tensor (torch not imported)
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__"):
        return np.asarray(value)
    raise interop_value_error(name, value)


def mapping_source(mapping: Mapping[str, Any]) -> Source:
    """A `Source` over an in-memory mapping of names to arrays."""
    arrays = {str(k): _to_numpy(str(k), v) for k, v in mapping.items()}

    def spec(name: str) -> tuple[tuple[int, ...], Any]:
        return tuple(arrays[name].shape), arrays[name].dtype

    return Source(arrays, spec, arrays.__getitem__, "ecliptic.load_state_dict")


def _as_dtype(dtype: Any) -> Any:
    """A NumPy dtype, or the dtype's name where NumPy has none (a safetensors dtype
    such as `F8_E8M0`)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return dtype


def _compare(
    expected: dict[str, tuple[tuple[int, ...], np.dtype]],
    incoming: dict[str, str],
    source: Source,
) -> tuple[list[str], list[str], list[Mismatch], list[str]]:
    """`(missing, unexpected, mismatched, loadable)`, in model order."""
    missing, mismatched, loadable = [], [], []
    for name, (shape, dtype) in expected.items():
        if name not in incoming:
            missing.append(name)
            continue
        found_shape, found_dtype = source.spec(incoming[name])
        found_shape, found_dtype = tuple(found_shape), _as_dtype(found_dtype)
        if found_shape != shape or found_dtype != dtype:
            mismatched.append((name, shape, dtype, found_shape, found_dtype))
        else:
            loadable.append(name)
    unexpected = [name for name in incoming if name not in expected]
    return missing, unexpected, mismatched, loadable


def _expected(
    units: list[Any], state: Any
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    out = {}
    for unit in units:
        if unit is not None:
            for name, value in unit.export(state).items():
                out[name] = (tuple(value.shape), value.dtype)
    return out


def _load_units(
    units: list[Any], state: Any, get: Callable[[str], np.ndarray], keep: set[str]
) -> tuple[list[Any], Any]:
    """The new leaves with the `keep` names loaded (`None` where nothing was)."""
    leaves = []
    for unit in units:
        if unit is None:
            leaves.append(None)
        elif unit.layout is None:
            leaves.append(
                jnp.asarray(get(unit.prefix)) if unit.prefix in keep else None
            )
        else:
            tensors = unit.export(state)
            names = [n for n in tensors if n in keep]
            if not names:
                leaves.append(None)
                continue
            for name in names:
                tensors[name] = get(name)
            cut = len(unit.prefix) + 1 if unit.prefix else 0
            local = {k[cut:]: v for k, v in tensors.items()}
            node, state = unit.layout.load(unit.node, state, local)
            leaves.append(node)
    return leaves, state


def _is_abstract(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)


def _placeholders(tree: Any) -> Any:
    """`tree` with zeros for its abstract leaves (`jax.ShapeDtypeStruct`s, as from
    `ecliptic.filter_eval_shape`), so that its layouts can be exported."""
    if not any(map(_is_abstract, jtu.tree_leaves(tree, is_leaf=_is_abstract))):
        return tree
    return jtu.tree_map(
        lambda x: np.zeros(x.shape, x.dtype) if _is_abstract(x) else x,
        tree,
        is_leaf=_is_abstract,
    )


def load_from_source(
    model: Any,
    source: Source,
    *,
    state: State | None,
    rename: Rename,
    strict: bool,
    function: str,
) -> Any:
    """The shared body of `load_state_dict` and `load_safetensors`."""
    concrete = _placeholders(model)
    units, treedef = _units(concrete, state, function)
    state = _placeholders(state)
    expected = _expected(units, state)
    incoming = _apply_rename(source.names, rename)
    missing, unexpected, mismatched, loadable = _compare(expected, incoming, source)
    if strict and (missing or unexpected or mismatched):
        raise interop_state_dict_error(
            source.description, missing, unexpected, mismatched
        )

    def get(name: str) -> np.ndarray:
        return source.get(incoming[name])

    leaves, new_state = _load_units(units, state, get, set(loadable))
    # Unloaded arrays stay as they were (abstract ones too); what has no name
    # (a `StateIndex`'s initial value, ...) takes its placeholder.
    originals = jtu.tree_leaves(model, is_leaf=_is_unit)
    placeholders = jtu.tree_leaves(concrete, is_leaf=_is_unit)
    leaves = [
        (p if unit is None else o) if new is None else new
        for o, p, unit, new in zip(originals, placeholders, units, leaves, strict=True)
    ]
    new_model = jtu.tree_unflatten(treedef, leaves)
    out: tuple[Any, ...] = (new_model,)
    if state is not None:
        out += (new_state,)
    if not strict:
        report = LoadReport(
            tuple(loadable), tuple(missing), tuple(unexpected), tuple(mismatched)
        )
        out += (report,)
    return out[0] if len(out) == 1 else out


def load_state_dict(
    model: Any,
    state_dict: Mapping[str, Any],
    *,
    state: State | None = None,
    rename: Rename = None,
    strict: bool = True,
) -> Any:
    """Returns `model` with the values of a PyTorch-style state dict (a mapping
    from dotted names such as `"layers.0.weight"` to arrays).

    Each layer of `ecliptic.nn` with a `torch.nn` counterpart converts from its
    PyTorch layout exactly (transposed-convolution kernels, recurrent biases, the
    packed attention projection, `BatchNorm`'s running statistics into `state`;
    see "Bringing PyTorch weights" in the docs). Every other array is named by its
    key path (`layers[0].weight` is `"layers.0.weight"`).

    **Arguments:**

    - `model`: the model whose structure, shapes and dtypes the tensors must fit.
        It may be abstract (its arrays `jax.ShapeDtypeStruct`s, as
        `ecliptic.filter_eval_shape(Model, ...)` gives), so that no random
        initialisation runs: every array the tensors fill becomes concrete (a
        partially filled layer gets zeros for the rest).
    - `state_dict`: a mapping from names to arrays: NumPy, JAX, torch tensors, or
        anything with `__array__`.
    - `state`: the model's [`ecliptic.nn.State`][]; required when the model has a
        `BatchNorm`. (Keyword only.)
    - `rename`: how the incoming names map to the model's: `(pattern,
        replacement)` regex pairs applied in order with `re.sub`, or a function
        `name -> name | None` (`None` drops the tensor). (Keyword only.)
    - `strict`: if `True` (default), every name must match with the same shape
        and dtype; otherwise load what matches. (Keyword only.)

    **Returns:** the new model; `(model, state)` when `state` is given; with
    `strict=False`, a [`ecliptic.LoadReport`][] as the last element. The new arrays
    are JAX arrays; the input model and state are not modified.

    **Raises:** [`ecliptic.StateDictError`][] (strict mode) listing every missing,
    unexpected and mismatched tensor at once; `TypeError` for a layer without a
    PyTorch layout or a value that is not an array.
    """
    return load_from_source(
        model,
        mapping_source(state_dict),
        state=state,
        rename=rename,
        strict=strict,
        function="ecliptic.load_state_dict",
    )
