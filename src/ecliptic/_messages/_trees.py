"""Messages of filter specs, tree surgery and `ecliptic.nn.State`."""

from __future__ import annotations

import linecache
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


# ---------------------------------------------------------------------------------
# Caches, filters and tree utilities.
# ---------------------------------------------------------------------------------


def cache_maxsize_error(maxsize: int) -> ValueError:
    """The error for a `BoundedCache` made with a bound below 1."""
    return ValueError(f"BoundedCache needs maxsize >= 1, but got {maxsize}.")


def cache_clear_type_error(clear: Any) -> TypeError:
    """The error for `register_cache_clear` given something that is not callable."""
    return TypeError(
        "register_cache_clear expected a callable of no arguments, but got "
        f"{type(clear).__name__} {clear!r}. Pass e.g. `my_cache.clear`."
    )


def combine_no_trees_error() -> TypeError:
    """The error for `ecliptic.combine()` called with no PyTree."""
    return TypeError(
        "ecliptic.combine expected at least one PyTree, but got none. Fix: pass "
        "the pieces to merge, e.g. `ecliptic.combine(params, static)`."
    )


def tree_equal_no_trees_error() -> TypeError:
    """The error for `ecliptic.tree_equal()` called with no PyTree."""
    return TypeError(
        "ecliptic.tree_equal expected at least one PyTree, but got none. Fix: "
        "pass the trees to compare, e.g. `ecliptic.tree_equal(tree1, tree2)`."
    )


def own_child_error(pytree: Any) -> ValueError:
    """The `tree_flatten_one_level` error for a node that is its own child."""
    return ValueError(
        f"ecliptic.tree_flatten_one_level expected a node that is not its own "
        f"child, but got a node of type `{type(pytree).__name__}` that "
        "contains itself (as in `x = []; x.append(x)`). Fix: store a copy or "
        "an index instead of the node itself."
    )


def shared_node_error(node: Any, path: str, first: str) -> ValueError:
    """The `tree_check` error for a non-leaf node that appears twice in a PyTree.

    **Arguments:**

    - `node`: the node.
    - `path`, `first`: the key path where it appears again and where it appeared
        first.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"ecliptic.tree_check expected each non-leaf node to appear once, but the "
        f"node of type `{type(node).__name__}` at `{path}` also appears at "
        f"`{first}`. After flattening (e.g. crossing a `jax.jit` boundary) "
        "these become two separate copies. Fix: use two distinct objects (e.g. "
        "`copy.copy(node)` or build it twice), or share the weights explicitly "
        "with `ecliptic.nn.Shared`."
    )


def tree_check_unreachable_error() -> AssertionError:
    """The internal error for `tree_check`'s second pass not raising (it always does:
    it finds the node that the first pass rejected)."""
    return AssertionError("unreachable: the second pass raises")


# ---------------------------------------------------------------------------------
# `tree_at`: the messages show the failing call and a corrected one.
# ---------------------------------------------------------------------------------


def _source_of(fn: Any) -> str:
    """A one-line lambda as written (`lambda m: m.weight`), else the name."""
    name = getattr(fn, "__name__", None)
    if name != "<lambda>":
        return name if isinstance(name, str) else "where"
    try:
        code = fn.__code__
        spans = [
            (line, col, end_col)
            for line, end_line, col, end_col in code.co_positions()
            if line is not None and line == end_line and col is not None
            if end_col is not None and end_col > col
        ]
        (lineno,) = {line for line, _, _ in spans}
        text = linecache.getline(code.co_filename, lineno)
        body_start = min(col for _, col, _ in spans)
        body_end = max(end_col for _, _, end_col in spans)
        start = text.rfind("lambda", 0, body_start)
    except (AttributeError, ValueError, TypeError):
        return "where"
    if start < 0 or body_end - start > 100:
        return "where"
    return text[start:body_end]


def tree_at_call(where: Any, use_fn: bool, is_leaf: str | None = None) -> str:
    """The `tree_at` call as the messages show it, with `where`'s source.

    **Arguments:**

    - `where`: the user's `where` function (a one-line lambda is shown as written,
        anything else by its name).
    - `use_fn`: whether `replace_fn` (rather than `replace`) was given.
    - `is_leaf`: the source of an `is_leaf` argument to show, if any.

    **Returns:** the text, in backticks.
    """
    arg = "replace_fn=..." if use_fn else "replace=..."
    extra = "" if is_leaf is None else f", is_leaf={is_leaf}"
    return f"`ecliptic.tree_at({_source_of(where)}, pytree, {arg}{extra})`"


def tree_at_replace_args_error(replace_given: bool) -> ValueError:
    """The `tree_at` error for giving both or neither of `replace` and `replace_fn`
    (`replace_given`: whether `replace` was given)."""
    got = "both" if replace_given else "neither"
    return ValueError(
        "ecliptic.tree_at expected exactly one of `replace` and `replace_fn`, but "
        f"got {got}. Fix: `ecliptic.tree_at(where, pytree, replace=new_value)` or "
        "`ecliptic.tree_at(where, pytree, replace_fn=lambda old: ...)`."
    )


def tree_at_foreign_value_error(x: Any, where: Any, use_fn: bool) -> TypeError:
    """The `tree_at` error for `where` returning a value `x` that it built, not a
    node of `pytree` (`where`, `use_fn`: as for `tree_at_call`)."""
    return TypeError(
        f"ecliptic.tree_at expected `where` to return nodes of `pytree`, but "
        f"it returned {x!r} of type `{type(x).__name__}`, which is not part "
        f"of `pytree`: {tree_at_call(where, use_fn)}. Fix: return the node itself, "
        "e.g. `where=lambda m: m.linear.weight`, not a new object."
    )


def tree_at_structure_only_error(where: Any, use_fn: bool) -> ValueError:
    """The `tree_at` error for a `where` that selects by the leaves' types or values,
    not by the structure (`where`, `use_fn`: as for `tree_at_call`)."""
    return ValueError(
        "ecliptic.tree_at expected `where` to select nodes by the structure of "
        "`pytree` only, but it selected different nodes when the leaves were "
        f"replaced by placeholders: {tree_at_call(where, use_fn)} depends on the "
        "types or values of the leaves (as in `where=lambda t: [x for x in t if "
        "isinstance(x, int)]`). Fix: look the leaves up in the original tree and "
        "return positions only, e.g. `where=lambda t: [x for x, y in zip(t, "
        "pytree) if isinstance(y, int)]`."
    )


def tree_at_selection_type_error(selected: Any, where: Any, use_fn: bool) -> TypeError:
    """The `tree_at` error for `where` returning neither a node of `pytree` nor a
    sequence of nodes (`where`, `use_fn`: as for `tree_at_call`)."""
    return TypeError(
        "ecliptic.tree_at expected `where` to return a node of `pytree` or a "
        f"sequence of nodes, but got {describe_node(selected)}, which is neither: "
        f"{tree_at_call(where, use_fn)}. Fix: return the node itself, e.g. "
        "`where=lambda m: m.linear.weight`, or a tuple such as "
        "`where=lambda m: (m.linear.weight, m.linear.bias)`."
    )


def tree_at_replace_type_error(
    num_nodes: int, replace: Any, where: Any, use_fn: bool
) -> TypeError:
    """The `tree_at` error for a `replace` that is not a sequence when `where`
    selected a sequence of `num_nodes` nodes."""
    return TypeError(
        f"ecliptic.tree_at expected `replace` to be a sequence of {num_nodes} "
        f"values, one per node that `where` selected, but got `{type(replace)}`: "
        f"{tree_at_call(where, use_fn)}. Fix: pass one value per node, e.g. "
        f"`replace=({', '.join(['...'] * num_nodes)})`."
    )


def tree_at_replace_length_error(
    num_nodes: int, num_values: int, where: Any, use_fn: bool
) -> ValueError:
    """The `tree_at` error for a `replace` of `num_values` values when `where`
    selected `num_nodes` nodes."""
    return ValueError(
        f"ecliptic.tree_at expected `replace` to hold one value per node that "
        f"`where` selected, but `where` selected {num_nodes} nodes and `replace` "
        f"has {num_values} values: {tree_at_call(where, use_fn)}. Fix: make their "
        "lengths match, e.g. `ecliptic.tree_at(lambda m: (m.weight, m.bias), m, "
        "replace=(new_weight, new_bias))`."
    )


def tree_at_unknown_node_error(
    k: int, node: Any, where: Any, use_fn: bool
) -> ValueError:
    """The `tree_at` error for selected node number `k`, which is not in `pytree`."""
    return ValueError(
        f"ecliptic.tree_at expected `where` to return nodes of `pytree`, but "
        f"selected node {k} ({describe_node(node)}) is not part of `pytree`: "
        f"{tree_at_call(where, use_fn)}. Fix: return the node itself, e.g. "
        "`where=lambda m: m.linear`, not a new object built from it."
    )


def tree_at_ambiguous_node_error(
    node: Any, count: int, where: Any, use_fn: bool
) -> ValueError:
    """The `tree_at` error for a selected node that occurs `count` (> 1) times in
    `pytree` (such as `None`), so the place to replace is ambiguous."""
    fix_leaf = "lambda x: x is None" if node is None else "..."
    return ValueError(
        "ecliptic.tree_at expected `where` to select nodes that occur once in "
        f"`pytree`, but it selected {describe_node(node)}, which occurs "
        f"{count} times, so the place to replace is ambiguous: "
        f"{tree_at_call(where, use_fn)}. "
        "`None` is an empty subtree and every `None` is the same object. "
        f"Fix: treat it as a leaf: {tree_at_call(where, use_fn, fix_leaf)}."
    )
