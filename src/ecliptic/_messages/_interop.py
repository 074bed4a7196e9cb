"""Messages of the PyTorch interop: state dicts (`ecliptic.load_state_dict`,
`ecliptic.state_dict`) and safetensors files (`ecliptic.save_safetensors`,
`ecliptic.load_safetensors`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import StateDictError


# Why a layer has no PyTorch layout, and what to do instead; keyed by the `kind`
# that `ecliptic._interop._layouts` reports.
_UNSUPPORTED = {
    "lora": (
        "has no counterpart in torch.nn (PyTorch keeps adapters in other libraries, "
        "under their own names)",
        "Fold the adapters into the weights first: "
        "`model = ecliptic.nn.merge_lora(model)`.",
    ),
    "stacked": (
        "holds its layers stacked along a leading axis, which torch.nn has no "
        "layout for",
        "Convert it to separate layers first, e.g. "
        "`ecliptic.nn.Sequential([stacked[i] for i in range(stacked.n)])`, or "
        "rename and reshape the tensors yourself.",
    ),
    "mlp_scan": (
        "stores its hidden layers stacked (`scan=True`), which torch.nn has no "
        "layout for",
        "Build the MLP with `scan=False` (the default): its layers are then named "
        "`layers.0.weight`, `layers.1.weight`, ...",
    ),
    "weight_wrapper": (
        "keeps its weight reparametrised; torch.nn stores such weights under "
        "`parametrizations.weight.original*` with its own conventions",
        "Materialise the weight into the plain layer first (for example build the "
        "plain layer with the wrapper's effective weight) and convert that.",
    ),
    "shared": (
        "ties arrays between two places of the model; a state dict has one entry "
        "per place",
        "Convert the model without the sharing wrapper, and tie the weights again "
        "after loading.",
    ),
    "mha_heads": (
        "uses grouped key/value heads (`num_kv_heads != num_heads`), which "
        "torch.nn.MultiheadAttention does not have",
        "Load the projections yourself, e.g. with `rename` rules into a model "
        "whose `query_proj`/`key_proj`/`value_proj`/`output_proj` are `Linear` "
        "layers.",
    ),
    "mha_sizes": (
        "has sizes torch.nn.MultiheadAttention cannot have: it needs "
        "`qk_size == vo_size`, `num_heads * qk_size == query_size` and "
        "`output_size == query_size`",
        "Build the layer with the default `qk_size`, `vo_size` and `output_size`.",
    ),
    "mha_bias": (
        "has some projection biases but not others; torch.nn.MultiheadAttention "
        "has all four (`bias=True`) or none",
        "Build the layer with `use_query_bias`, `use_key_bias`, `use_value_bias` "
        "and `use_output_bias` all equal.",
    ),
}


def _at(path: str) -> str:
    return "at the top of the model" if path == "" else f"at `{path}`"


def interop_unsupported_layer_error(
    function: str, path: str, layer: Any, kind: str
) -> TypeError:
    """The error for a layer that has no PyTorch layout.

    **Arguments:**

    - `function`: the public function that met it, e.g. `"ecliptic.state_dict"`.
    - `path`: the layer's dotted name in the model (`""` for the model itself).
    - `layer`: the layer.
    - `kind`: one of the keys of `_UNSUPPORTED`, saying why.

    **Returns:** the `TypeError` (the caller raises it).
    """
    why, fix = _UNSUPPORTED[kind]
    name = type(layer).__name__
    return TypeError(
        f"{function} expected every layer to have a PyTorch layout, but the "
        f"{name} {_at(path)} {why}. {fix}"
    )


def interop_state_required_error(function: str, path: str, layer: Any) -> ValueError:
    """The error for converting a stateful layer (`BatchNorm`) without a `State`.

    **Arguments:**

    - `function`: the public function that was called.
    - `path`: the layer's dotted name in the model.
    - `layer`: the layer.

    **Returns:** the `ValueError` (the caller raises it).
    """
    name = type(layer).__name__
    return ValueError(
        f"{function} needs the model's `State` for the {name} {_at(path)} (its "
        "running statistics are `running_mean` and `running_var` in PyTorch's "
        "layout), but got `state=None`. Pass `state=...`, e.g. the one from "
        "`model, state = ecliptic.nn.make_with_state(Model)(...)`."
    )


def interop_rename_error(rename: Any) -> TypeError:
    """The error for a `rename=` that is neither pattern pairs nor a callable.

    **Arguments:**

    - `rename`: what was passed.

    **Returns:** the `TypeError` (the caller raises it).
    """
    return TypeError(
        "`rename` expected a sequence of `(pattern, replacement)` pairs of strings "
        "(regular expressions, applied in order with `re.sub`) or a callable "
        f"`name -> name | None`, but got {rename!r}. For example "
        "`rename=[(r'^encoder\\.', ''), (r'\\.gamma$', '.weight')]`."
    )


def interop_rename_collision_error(new: str, first: str, second: str) -> ValueError:
    """The error for two names that renaming maps to the same name.

    **Arguments:**

    - `new`: the name both map to.
    - `first`, `second`: the two original names.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"`rename` expected to map each name to a distinct name, but both "
        f"{first!r} and {second!r} became {new!r}. Make the rules more specific, "
        "or return `None` from a rename function to drop one of them."
    )


def interop_value_error(name: str, value: Any) -> TypeError:
    """The error for a state-dict value that is not an array.

    **Arguments:**

    - `name`: its name in the state dict.
    - `value`: the value.

    **Returns:** the `TypeError` (the caller raises it).
    """
    return TypeError(
        f"ecliptic.load_state_dict expected every value to be an array (NumPy, "
        f"JAX, a torch tensor, or anything with `__array__`), but {name!r} is a "
        f"{type(value).__name__}. Convert it with `numpy.asarray`, or drop it with "
        "a `rename` function that returns `None` for that name."
    )


def interop_metadata_error(metadata: Any) -> TypeError:
    """The error for safetensors metadata that is not a mapping of strings.

    **Arguments:**

    - `metadata`: what was passed.

    **Returns:** the `TypeError` (the caller raises it).
    """
    return TypeError(
        "ecliptic.save_safetensors expected `metadata` to be a dict of str to str "
        f"(the safetensors header holds only strings), but got {metadata!r}. "
        "Convert the values with `str(...)` or `json.dumps(...)`."
    )


def _spec(shape: Any, dtype: Any) -> str:
    name = dtype.name if isinstance(dtype, np.dtype) else str(dtype)
    return f"shape {tuple(shape)} and dtype {name}"


def _problems(
    missing: Sequence[str],
    unexpected: Sequence[str],
    mismatched: Sequence[tuple[str, Any, Any, Any, Any]],
) -> list[str]:
    lines = [f"  missing: {name!r}" for name in missing]
    lines += [f"  unexpected: {name!r}" for name in unexpected]
    for name, shape, dtype, found_shape, found_dtype in mismatched:
        lines.append(
            f"  mismatched: {name!r} expected {_spec(shape, dtype)}, but found "
            f"{_spec(found_shape, found_dtype)}"
        )
    return lines


def interop_state_dict_error(
    source: str,
    missing: Sequence[str],
    unexpected: Sequence[str],
    mismatched: Sequence[tuple[str, Any, Any, Any, Any]],
) -> StateDictError:
    """The strict-mode error listing every problem of a state dict at once.

    **Arguments:**

    - `source`: the function and its source, e.g. `"ecliptic.load_safetensors
        ('model.safetensors')"`.
    - `missing`: the names the model needs that were not given.
    - `unexpected`: the given names the model has no place for.
    - `mismatched`: `(name, expected_shape, expected_dtype, found_shape,
        found_dtype)` for each tensor whose shape or dtype differs.

    **Returns:** the `StateDictError` (the caller raises it).
    """
    count = len(missing) + len(unexpected) + len(mismatched)
    lines = [
        f"{source} expected the tensors to match the model's names, shapes and "
        f"dtypes exactly, but found {count} problem{'s' if count != 1 else ''} "
        "(nothing was loaded):",
        *_problems(missing, unexpected, mismatched),
        "Map names with `rename=[(pattern, replacement), ...]` (applied to the "
        "incoming names), convert dtypes before loading, or pass `strict=False` to "
        "load what matches and get a report of the rest.",
    ]
    return StateDictError("\n".join(lines), missing, unexpected, mismatched)


def interop_load_report_text(
    loaded: Sequence[str],
    missing: Sequence[str],
    unexpected: Sequence[str],
    mismatched: Sequence[tuple[str, Any, Any, Any, Any]],
) -> str:
    """The text of a `LoadReport` (what a non-strict load did and did not load).

    **Arguments:**

    - `loaded`: the names that were loaded.
    - `missing`, `unexpected`, `mismatched`: as for `interop_state_dict_error`.

    **Returns:** the text.
    """
    skipped = len(missing) + len(unexpected) + len(mismatched)
    head = f"LoadReport: loaded {len(loaded)} tensor{'s' if len(loaded) != 1 else ''}"
    if not skipped:
        return head + "; everything matched."
    lines = [head + f"; {skipped} not loaded:"]
    lines += _problems(missing, unexpected, mismatched)
    return "\n".join(lines)
