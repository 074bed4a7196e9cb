"""`field`: a dataclass field with two extra options, `converter` and `static`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from .._checks import warn_deprecated
from .._messages import field_metadata_clash_error


def field(
    *,
    converter: Callable[[Any], Any] | None = None,
    static: bool = False,
    **kwargs: Any,
) -> Any:
    """Declares a field of a [`ecliptic.Module`][], like `dataclasses.field`.

    **Arguments:**

    - `converter`: a function applied to the field's value after `__init__` (or after
        `__post_init__`) has run, for example `converter=jnp.asarray`. It is not run
        when a Module is rebuilt from its leaves (`jax.tree.unflatten`, `tree_at`).
    - `static`: if `True`, the value is part of the PyTree *structure* instead of a
        leaf: JAX transformations hash and compare it and never trace it. Arrays
        should not be static.
    - `**kwargs`: every other `dataclasses.field` option (`default`,
        `default_factory`, `init`, `repr`, `hash`, `compare`, `metadata`, `kw_only`).

    **Returns:** a `dataclasses.Field` to assign in the class body.
    """
    metadata = dict(kwargs.pop("metadata", None) or {})
    for name in ("converter", "static"):
        if name in metadata:
            raise field_metadata_clash_error(name)
    if converter is not None:
        metadata["converter"] = converter
    if static:
        metadata["static"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def static_field(**kwargs: Any) -> Any:
    """Deprecated: use `ecliptic.field(static=True)`.

    **Arguments:** as [`ecliptic.field`][].

    **Returns:** a `dataclasses.Field`.
    """
    # Equinox warns with `UserWarning` here; programs that filter it keep working.
    warn_deprecated(
        "`ecliptic.static_field(...)`",
        "`ecliptic.field(..., static=True)`",
        category=UserWarning,
    )
    return field(static=True, **kwargs)


def StrictConfig(force_abstact: bool = False, **kwargs: Any) -> Literal[False] | None:
    """Legacy: the value of the `strict=` class keyword. Accepted and ignored, except
    that `strict=StrictConfig(force_abstact=True)` makes the class abstract.

    **Arguments:**

    - `force_abstact`: make the class abstract (spelling kept for compatibility).
    - `**kwargs`: ignored.

    **Returns:** a value understood by the `strict=` class keyword.
    """
    del kwargs
    return None if force_abstact else False
