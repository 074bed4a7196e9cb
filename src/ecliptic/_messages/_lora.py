"""Messages of the low-rank adapters (`ecliptic.nn.LoRA`, `ecliptic.nn.add_lora`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


# How many of a model's layers a "matches nothing" message lists.
_MAX_LISTED = 8


def _at(path: str | None) -> str:
    """` at `model.layers[0]``, or nothing when the layer was passed directly."""
    return "" if path is None else f" at `model{path}`"


def _subject(path: str | None) -> str:
    """Who complains: `LoRA` itself, or `add_lora` for a layer it selected."""
    return "ecliptic.nn.LoRA" if path is None else "ecliptic.nn.add_lora"


def _describe_weight(weight: Any) -> str:
    if weight is None:
        return "no `weight` array"
    if hasattr(weight, "shape") and hasattr(weight, "dtype"):
        return f"a `weight` of shape {tuple(weight.shape)} and dtype {weight.dtype}"
    return f"a `weight` of type {type(weight).__name__}"


def lora_weight_error(layer: Any, path: str | None = None) -> ValueError:
    """The error for adapting a layer that has no 2-d floating-point `weight`.

    **Arguments:**

    - `layer`: the layer that was to be wrapped.
    - `path`: its key path in the model (as `jax.tree_util.keystr` prints it), or
        `None` when it was passed to `LoRA` directly.

    **Returns:** the `ValueError` (the caller raises it).
    """
    weight = getattr(layer, "weight", None)
    name = type(layer).__name__
    ndim = getattr(weight, "ndim", 2)
    if ndim != 2:
        fix = (
            f"LoRA adapts a matrix `(out, in)`; a weight with {ndim} axes "
            "(a convolution, or the stacked hidden layers of `MLP(scan=True)`) "
            "cannot be adapted. "
        )
    else:
        fix = ""
    if path is None:
        fix += "Wrap a layer such as `ecliptic.nn.Linear` or `ecliptic.nn.Embedding`."
    else:
        fix += (
            "Narrow `where` to the layers to adapt, e.g. `where=ecliptic.nn.Linear`, "
            "or a regex that names them, such as r'\\.layers\\[0\\]$'."
        )
    return ValueError(
        f"{_subject(path)} expected the layer{_at(path)} to have a 2-d floating-point "
        f"`weight` of shape (out, in), but the {name} has {_describe_weight(weight)}. "
        f"{fix}"
    )


def lora_rank_error(
    rank: Any, weight_shape: Sequence[int], path: str | None = None
) -> ValueError:
    """The error for a LoRA rank that is not an int in `[1, min(out, in)]`.

    **Arguments:**

    - `rank`: the rank asked for.
    - `weight_shape`: the shape `(out, in)` of the weight to adapt.
    - `path`: the layer's key path in the model, or `None` when it was passed to
        `LoRA` directly.

    **Returns:** the `ValueError` (the caller raises it).
    """
    out, in_ = weight_shape
    top = min(out, in_)
    got = repr(rank) if isinstance(rank, int) else f"{rank!r} ({type(rank).__name__})"
    return ValueError(
        f"{_subject(path)} expected `rank` to be an int from 1 to min(out, in) = "
        f"{top} for the weight of shape {(out, in_)}{_at(path)}, but got rank={got}. "
        f"A rank of min(out, in) already spans every update; pass e.g. "
        f"rank={max(1, min(8, top))}."
    )


def lora_rule_error(where: Any) -> TypeError:
    """The error for an `add_lora` rule that is not a type, a regex or a callable.

    **Arguments:**

    - `where`: the rule given.

    **Returns:** the `TypeError` (the caller raises it).
    """
    return TypeError(
        "ecliptic.nn.add_lora expected `where` to be a layer type (or a tuple of "
        "types), a regex string matched against each layer's key path, or a callable "
        f"`(path, layer) -> bool`, but got {type(where).__name__} {where!r}. Pass e.g. "
        "`where=ecliptic.nn.Linear` or `where=r'\\.layers\\[0\\]$'`."
    )


def lora_no_match_error(where: Any, layers: Sequence[tuple[str, Any]]) -> ValueError:
    """The error for an `add_lora` rule that selects no layer of the model.

    **Arguments:**

    - `where`: the rule given (a type, a tuple of types, a regex or a callable).
    - `layers`: the model's layers (its Modules) as `(key path, layer)` pairs, to
        show which paths and types the rule could have matched.

    **Returns:** the `ValueError` (the caller raises it).
    """
    if isinstance(where, str):
        rule = f"the regex {where!r}"
    elif isinstance(where, type):
        rule = f"the type {where.__name__}"
    elif isinstance(where, tuple):
        rule = (
            f"the types ({', '.join(getattr(t, '__name__', repr(t)) for t in where)})"
        )
    else:
        rule = f"the callable {getattr(where, '__name__', repr(where))}"
    listed = [
        f"`{path or '(the model itself)'}` ({type(layer).__name__})"
        for path, layer in layers[:_MAX_LISTED]
    ]
    if not listed:
        seen = "The model holds no Module to adapt."
    else:
        more = len(layers) - len(listed)
        seen = "The model's layers are " + ", ".join(listed)
        seen += f" and {more} more." if more else "."
    return ValueError(
        f"ecliptic.nn.add_lora expected `where` to select at least one layer, but "
        f"{rule} matched none. {seen} Layers already inside a LoRA are not selected "
        "again. A regex is searched (`re.search`) in the key "
        "path as `jax.tree_util.keystr` prints it, so escape `.` and `[`: "
        "r'\\.layers\\[0\\]$'."
    )
