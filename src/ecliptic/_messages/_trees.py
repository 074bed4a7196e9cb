"""Messages of filter specs, tree surgery and `ecliptic.nn.State`."""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.tree_util as jtu

from ._checkpoints import describe_node


# ---------------------------------------------------------------------------------
# Filters, trees and state.
# ---------------------------------------------------------------------------------


def filter_spec_error(name: str, filter_spec: Any, index: int, bad: Any) -> ValueError:
    """The error for a `filter_spec` leaf that is neither a Python bool nor a callable.

    **Arguments:**

    - `name`: the public function, e.g. `"partition"`.
    - `filter_spec`: the whole spec (to name where the bad leaf is).
    - `index`: the bad leaf's position among the spec's leaves.
    - `bad`: the bad leaf.

    **Returns:** the `ValueError` (the caller raises it).
    """
    paths = [jtu.keystr(p) for p, _ in jtu.tree_flatten_with_path(filter_spec)[0]]
    where = f"filter_spec{paths[index]}" if index < len(paths) else "filter_spec"
    if isinstance(bad, jax.core.Tracer):
        got = f"a traced array (shape {bad.shape}, dtype {bad.dtype})"
        fix = (
            "A filter decides which leaves are kept, which must be known before "
            "tracing. Fix: build the spec from Python bools outside the "
            "transformation, or keep every leaf and use `jnp.where` on the arrays."
        )
    else:
        got = f"{type(bad).__name__} {bad!r}"
        fix = (
            "Fix: use a Python bool, e.g. `bool(x)`, or a callable such as "
            f"`ecliptic.is_array`: `ecliptic.{name}(pytree, ecliptic.is_array)`."
        )
    return ValueError(
        f"ecliptic.{name} expected each leaf of `filter_spec` to be a Python bool or "
        f"a callable `leaf -> bool`, but got {got} at `{where}`. {fix}"
    )


def self_reference_error(node: Any, where: str, again: str) -> ValueError:
    """The `tree_check` error for a node that contains itself.

    **Arguments:**

    - `node`: the node.
    - `where`, `again`: its key path and the key path where it appears inside itself.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"ecliptic.tree_check expected a PyTree without cycles, but the node of type "
        f"`{type(node).__name__}` at `{where}` contains itself, at `{again}` (as in "
        "`x = []; x.append(x)`). Fix: store a copy or an index instead of the node "
        "itself."
    )


def nested_selection_error(k: int, node: Any, call: str) -> ValueError:
    """The `tree_at` error for a selected node that lies inside another one.

    **Arguments:**

    - `k`: the node's position among the nodes that `where` selected.
    - `node`: the node.
    - `call`: the `tree_at` call as the message shows it (with `where`'s source).

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"ecliptic.tree_at expected the nodes that `where` selects to be disjoint, "
        f"but node {k} ({describe_node(node)}) lies inside another selected node: "
        f"{call}. Fix: select only the outer node, and build its "
        "replacement with the inner change already made."
    )


def missing_state_index_message(marker: Any, num_keys: int) -> str:
    """The message for a `StateIndex` that an `ecliptic.nn.State` does not hold.

    **Arguments:**

    - `marker`: the index's marker.
    - `num_keys`: how many indices the State holds.

    **Returns:** the message.
    """
    return (
        f"ecliptic.nn.State expected one of its {num_keys} StateIndex keys, but got "
        f"a StateIndex with marker {marker!r} that it does not hold. The State "
        "must come from the same model instance: build both with "
        "`model, state = ecliptic.nn.make_with_state(Model)(...)`."
    )
