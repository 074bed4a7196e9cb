"""`ecliptic.internal` has every public name of `equinox.internal`."""

import pytest

import ecliptic.internal as eqxi


def test_every_equinox_internal_name_exists():
    equinox_internal = pytest.importorskip("equinox.internal")
    names = [n for n in dir(equinox_internal) if not n.startswith("_")]
    missing = [n for n in names if not hasattr(eqxi, n)]
    assert missing == []


def test_primitives_are_jax_primitives():
    import jax.extend.core

    for name in dir(eqxi):
        if name.endswith("_p"):
            assert isinstance(getattr(eqxi, name), jax.extend.core.Primitive), name
