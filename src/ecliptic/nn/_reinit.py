"""`reinitialise`: new values for the arrays of a model that a rule selects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import jax.random as jr
import jax.tree_util as jtu
from jaxtyping import PRNGKeyArray

from .._filters import is_array
from .._messages import (
    reinitialise_init_type_error,
    reinitialise_no_match_error,
    reinitialise_regex_error,
    reinitialise_where_type_error,
)
from ._misc import initialise, Initialiser, path_rule


_T = TypeVar("_T")


def _rule(where: Any) -> Callable[[str, Any], bool]:
    """`where` as a predicate `(path, leaf) -> bool`."""
    try:
        rule = path_rule(where)
    except re.error as e:
        raise reinitialise_regex_error(where, e) from e
    if rule is None:
        raise reinitialise_where_type_error(where)
    return rule


def reinitialise(
    model: _T,
    where: str | re.Pattern | Callable[[str, Any], bool],
    init: Initialiser,
    *,
    key: PRNGKeyArray,
) -> _T:
    r"""Returns `model` with the chosen array leaves drawn afresh by `init`.

    Each array leaf selected by `where` is replaced by `init(subkey, leaf.shape,
    leaf.dtype)`; every other leaf (array or not) is kept as it is. `model` may be
    any PyTree: a layer, a model, a dict of arrays.

    ```python
    mlp = ecliptic.nn.MLP(4, 2, 8, 2, key=jr.PRNGKey(0))
    init = jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)
    mlp = ecliptic.nn.reinitialise(mlp, r"\.weight$", init, key=jr.PRNGKey(1))
    mlp = ecliptic.nn.reinitialise(
        mlp, r"\.bias$", jax.nn.initializers.zeros, key=jr.PRNGKey(2)
    )
    ```

    **Arguments:**

    - `model`: a PyTree.
    - `where`: which leaves to replace. Either a regular expression, searched for
        (`re.search`) in each array leaf's path as `jax.tree_util.keystr` prints it
        (`.layers[0].weight` for an attribute then an index, `['name']` for a dict
        key), e.g. `r"\.weight$"` for every weight or `r"^\.layers\[0\]\."` for
        the first layer; or a callable `where(path, leaf) -> bool`, called with
        that path string and the leaf for every array leaf. Only array leaves are
        ever selected.
    - `init`: an initialiser, a function `init(key, shape, dtype) -> array` such as
        those of `jax.nn.initializers`. It sees each leaf in its stored layout, so
        mind the fan axes: a `Linear` weight is `(out, in)`
        (`lecun_normal(in_axis=-1, out_axis=-2)`), a `Conv` weight `(out, in //
        groups, *kernel)` (`in_axis=1, out_axis=0`), and the stacked hidden weights
        of an `MLP(scan=True)` `(depth - 1, width, width)` (add `batch_axis=0`).
    - `key`: a `jax.random.PRNGKey`, split into one subkey per selected leaf, in
        the order of `jax.tree_util.tree_leaves(model)`. (Keyword only.)

    **Returns:** a PyTree of the same structure as `model`.

    **Raises:** `TypeError` if `init` is not callable or `where` is neither a string
    nor a callable; `ValueError` if `where` selects no array leaf (the message lists
    the paths there are), is not a valid regular expression, or if `init` returns
    something other than an array of the leaf's shape and dtype.
    """
    owner = "ecliptic.nn.reinitialise"
    if not callable(init):
        raise reinitialise_init_type_error(init)
    select = _rule(where)
    pairs, treedef = jtu.tree_flatten_with_path(model)
    leaves = [leaf for _, leaf in pairs]
    arrays = [(i, jtu.keystr(path)) for i, (path, leaf) in enumerate(pairs)]
    arrays = [(i, path) for i, path in arrays if is_array(leaves[i])]
    chosen = [i for i, path in arrays if select(path, leaves[i])]
    if not chosen:
        raise reinitialise_no_match_error(where, [path for _, path in arrays])
    for i, subkey in zip(chosen, jr.split(key, len(chosen)), strict=True):
        leaf = leaves[i]
        shape, dtype = tuple(leaf.shape), leaf.dtype
        leaves[i] = initialise(owner, "init", init, subkey, shape, dtype, init)
    return jtu.tree_unflatten(treedef, leaves)
