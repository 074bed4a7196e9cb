"""Property tests: generated PyTrees round trip exactly; truncated or corrupted files
only ever raise `CheckpointError` (or, for a cut exactly at the checksum trailer, load
the intact leaves)."""

import io

import hypothesis.strategies as st
import pytest
from hypothesis import given, HealthCheck, settings

from ecliptic import CheckpointError, tree_deserialise_leaves, tree_serialise_leaves

from .helpers import abstract, assert_trees_identical, trees


_TRAILER_RECORD = 128 + 32  # header + uint8[32]
_settings = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _save(tree) -> bytes:
    f = io.BytesIO()
    tree_serialise_leaves(f, tree)
    return f.getvalue()


def _load(data: bytes, like):
    return tree_deserialise_leaves(io.BytesIO(data), like)


@_settings
@given(tree=trees, use_abstract=st.booleans())
def test_round_trip_is_exact(tree, use_abstract):
    like = abstract(tree) if use_abstract else tree
    assert_trees_identical(_load(_save(tree), like), tree)


def _damage(data: bytes, op: str, pos: int, byte: int) -> bytes:
    pos = pos % len(data)
    if op == "truncate":
        return data[:pos]
    if op == "flip":
        return data[:pos] + bytes([data[pos] ^ byte]) + data[pos + 1 :]
    if op == "insert":
        return data[:pos] + bytes([byte]) + data[pos:]
    return data[:pos] + data[pos + 1 + byte % 16 :]  # delete 1..16 bytes


@_settings
@given(
    tree=trees,
    op=st.sampled_from(["truncate", "flip", "insert", "delete"]),
    pos=st.integers(0, 10**6),
    byte=st.integers(1, 255),
)
def test_damaged_files_raise_or_load_intact(tree, op, pos, byte):
    data = _save(tree)
    damaged = _damage(data, op, pos, byte)
    try:
        out = _load(damaged, tree)
    except CheckpointError:
        return
    # Only cutting off exactly the whole trailer leaves a valid (Equinox-style) file.
    assert op in ("truncate", "delete"), f"{op} at {pos % len(data)} went unnoticed"
    assert len(damaged) == len(data) - _TRAILER_RECORD
    assert_trees_identical(out, tree)


@_settings
@given(tree=trees, pos=st.integers(0, 10**6), byte=st.integers(1, 255))
def test_every_single_byte_flip_is_detected(tree, pos, byte):
    damaged = _damage(_save(tree), "flip", pos, byte)
    with pytest.raises(CheckpointError):
        _load(damaged, abstract(tree))
