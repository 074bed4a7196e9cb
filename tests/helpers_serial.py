"""Helpers for the serialisation tests: exact (bitwise) tree comparison."""

from __future__ import annotations

from typing import Any

import jax
import jax.tree_util as jtu
import numpy as np


def _leaf_bytes(x: Any) -> tuple:
    arr = np.asarray(x)
    return (arr.shape, arr.dtype, arr.tobytes())


def assert_trees_identical(a: Any, b: Any) -> None:
    """Same structure, same leaf types, and array leaves equal bit for bit (so NaNs
    and signed zeros count), dtypes and shapes included."""
    leaves_a, def_a = jtu.tree_flatten_with_path(a)
    leaves_b, def_b = jtu.tree_flatten_with_path(b)
    assert def_a == def_b, f"structures differ: {def_a} vs {def_b}"
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        where = jtu.keystr(path)
        assert type(x) is type(y), f"{where}: type {type(x)} vs {type(y)}"
        if isinstance(x, (jax.Array, np.ndarray, np.generic)):
            assert _leaf_bytes(x) == _leaf_bytes(y), f"{where}: {x!r} vs {y!r}"
        elif isinstance(x, (float, complex)):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), where
        else:
            assert x == y, f"{where}: {x!r} vs {y!r}"
