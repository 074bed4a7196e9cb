"""Messages of the initialisers: the `weight_init` / `bias_init` arguments of the
layers and `ecliptic.nn.reinitialise`."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .._checks import format_shape


# How many array paths `reinitialise_no_match_error` lists before "...".
_LISTED_PATHS = 12


def initialiser_type_error(owner: str, name: str, init: Any) -> TypeError:
    """The error for an initialiser argument (e.g. `weight_init`) that is not
    callable."""
    return TypeError(
        f"{owner}: `{name}` must be an initialiser, a function "
        "`init(key, shape, dtype) -> array` such as "
        "`jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)` or "
        f"`jax.nn.initializers.zeros`, but got {init!r} of type "
        f"{type(init).__name__}."
    )


def initialiser_output_error(
    owner: str, name: str, shape: tuple[int, ...], dtype: Any, value: Any
) -> ValueError:
    """The error for an initialiser whose output is not an array of the requested
    shape and dtype (e.g. a factory such as `lecun_normal` passed uncalled)."""
    want = f"an array of shape {format_shape(shape)} and dtype {np.dtype(dtype)}"
    if callable(value):
        return ValueError(
            f"{owner}: `{name}(key, shape, dtype)` should return {want}, but it "
            f"returned a function, {value!r}. `{name}` is probably an initialiser "
            "factory passed uncalled: write "
            "`jax.nn.initializers.lecun_normal(...)`, not "
            "`jax.nn.initializers.lecun_normal`."
        )
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        got = f"shape {format_shape(tuple(value.shape))} and dtype {value.dtype}"
    else:
        got = f"{value!r} of type {type(value).__name__}"
    return ValueError(
        f"{owner}: `{name}(key, shape, dtype)` should return {want}, but it "
        f"returned {got}. An initialiser must honour the `shape` and `dtype` it is "
        "called with."
    )


def embedding_weight_and_init_error() -> ValueError:
    """The error for an `Embedding` given both a `weight` table and a
    `weight_init`."""
    return ValueError(
        "ecliptic.nn.Embedding got both a `weight` table and a `weight_init`: the "
        "initialiser would be ignored. Pass `weight=table` to use a given table, or "
        "`num_embeddings=..., embedding_size=..., weight_init=init, key=key` to "
        "draw one."
    )


def reinitialise_init_type_error(init: Any) -> TypeError:
    """The error for a `reinitialise` `init` that is not callable."""
    return initialiser_type_error("ecliptic.nn.reinitialise", "init", init)


def reinitialise_where_type_error(where: Any) -> TypeError:
    """The error for a `reinitialise` rule `where` that is neither a regex string
    nor a callable."""
    return TypeError(
        "ecliptic.nn.reinitialise: `where` must be a regular expression (a string "
        "searched for in each leaf's path, e.g. r'\\.weight$') or a callable "
        f"`where(path, leaf) -> bool`, but got {where!r} of type "
        f"{type(where).__name__}."
    )


def reinitialise_regex_error(where: str, error: re.error) -> ValueError:
    """The error for a `reinitialise` rule `where` that is not a valid regular
    expression."""
    return ValueError(
        f"ecliptic.nn.reinitialise: `where={where!r}` is not a valid regular "
        f"expression ({error}). Escape the dots and brackets of a path, e.g. "
        "r'\\.layers\\[0\\]\\.weight$'."
    )


def reinitialise_no_match_error(where: Any, paths: list[str]) -> ValueError:
    """The error for a `reinitialise` rule `where` that selects no array leaf.

    **Arguments:**

    - `where`: the rule (a regex string or a callable).
    - `paths`: the paths (as `jax.tree_util.keystr` prints them) of the tree's
        array leaves.
    """
    if not paths:
        return ValueError(
            f"ecliptic.nn.reinitialise: `where={where!r}` selects nothing: the tree "
            "has no array leaves."
        )
    listed = ", ".join(paths[:_LISTED_PATHS])
    if len(paths) > _LISTED_PATHS:
        listed += f", ... ({len(paths)} in all)"
    return ValueError(
        f"ecliptic.nn.reinitialise: `where={where!r}` selects no array leaf. The "
        f"array leaves are at: {listed}. A string is searched for (`re.search`) in "
        "these paths, e.g. r'\\.weight$' selects every weight."
    )
