"""Messages of the Module system and of the transformations' static arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.core
import jax.tree_util as jtu
import numpy as np


# What `unhashable_static_error` skips: array leaves are traced, never hashed (the
# types of `ecliptic.is_array`, which lives on a floor above this one).
_ARRAY_TYPES: tuple[type, ...] = (jax.Array, np.ndarray, np.generic)

# ---------------------------------------------------------------------------------
# Modules.
# ---------------------------------------------------------------------------------


def abstract_message(cls: Any) -> str:
    """Why the abstract Module class `cls` cannot be instantiated, and what to do.

    **Arguments:**

    - `cls`: the class (with `__abstractmethods__`, `__abstractclassvars__` and
        `__abstractvars__`).

    **Returns:** the message of the `TypeError`.
    """
    if cls.__abstractmethods__:
        names = sorted(cls.__abstractmethods__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract methods "
            f"{names}: implement them in a subclass and instantiate that."
        )
    if cls.__abstractclassvars__:
        names = sorted(cls.__abstractclassvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract class "
            f"attributes {names}: declare them on a subclass as "
            f"`{names[0]}: ClassVar[...] = ...`."
        )
    if cls.__abstractvars__:
        names = sorted(cls.__abstractvars__)
        return (
            f"Can't instantiate abstract class {cls.__name__} with abstract "
            f"attributes {names}: declare them on a subclass as a field, a class "
            "attribute or a property."
        )
    return (
        f"Can't instantiate abstract class {cls.__name__}: it was declared abstract "
        "(`strict=StrictConfig(force_abstact=True)` or `is_abstract=True`); "
        "instantiate a concrete subclass."
    )


def method_in_init_error(obj: Any, name: str, method_name: str) -> ValueError:
    """The error for `self.{name} = self.{method_name}` in a Module's `__init__`,
    which would store the Module inside itself.

    **Arguments:**

    - `obj`: the Module being built.
    - `name`: the field assigned.
    - `method_name`: the method assigned to it.

    **Returns:** the `ValueError` (the caller raises it).
    """
    return ValueError(
        f"Cannot assign methods in __init__: `self.{name} = self.{method_name}` would "
        f"store {type(obj).__name__} inside itself, which is not a tree. Use a "
        "property instead:\n"
        "    @property\n"
        f"    def {name}(self):\n"
        f"        return self.{method_name}"
    )


def frozen_error(obj: Any, name: str) -> dataclasses.FrozenInstanceError:
    """The error for assigning to a field of a Module after its `__init__`.

    **Arguments:**

    - `obj`: the Module.
    - `name`: the attribute assigned.

    **Returns:** the `FrozenInstanceError` (the caller raises it).
    """
    return dataclasses.FrozenInstanceError(
        f"cannot assign to field {name!r}: {type(obj).__qualname__} is immutable once "
        f"created. Make a modified copy instead: `ecliptic.tree_at(lambda m: "
        f"m.{name}, model, new_value)`."
    )


def static_array_message(qualname: str, name: str) -> str:
    """The warning for an array given to a static field.

    **Arguments:**

    - `qualname`: the Module class's `__qualname__`.
    - `name`: the static field.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"{qualname}.{name} is a static field but was given a JAX or "
        "NumPy array. Static values are part of the PyTree structure: they "
        "are never traced or differentiated, and a new value recompiles. "
        f"Declare `{name}` without `static=True` if it holds parameters."
    )


# ---------------------------------------------------------------------------------
# Transformations.
# ---------------------------------------------------------------------------------


def unhashable_static_error(
    where: str, trees: Mapping[str, Any], what: str = "arguments"
) -> ValueError:
    """The error for a static (non-array) leaf that cannot be hashed.

    **Arguments:**

    - `where`: the transformation's name as the message shows it.
    - `trees`: the trees whose non-array leaves are static, by the name the message
        gives them: `{"args": args, "kwargs": kwargs}` names a leaf `args[1]['foo']`.
    - `what`: what the trees are, for the message used when no single leaf fails
        to hash (a `__hash__` that fails only sometimes).

    **Returns:** the `ValueError` (to be raised by the caller, `from None`).
    """
    for root, tree in trees.items():
        for path, leaf in jtu.tree_flatten_with_path(tree)[0]:
            if isinstance(leaf, _ARRAY_TYPES):
                continue
            try:
                hash(leaf)
            except TypeError:
                return ValueError(
                    "Non-hashable static arguments are not supported. "
                    f"{where} treats every non-array leaf as static, so it must be "
                    f"hashable, but `{root}{jtu.keystr(path)}` is an unhashable "
                    f"{type(leaf).__name__}: {leaf!r}. Fix: turn it into an array "
                    "(jnp.asarray), make it hashable (e.g. a tuple instead of a list "
                    "inside a custom object), or close over it."
                )
    return ValueError(
        "Non-hashable static arguments are not supported: hashing the static leaves "
        f"of the {what} raised TypeError. Fix: make every non-array leaf hashable."
    )


# --- module-debug-rope ---


def strict_promotion_error(
    subject: str, holds: str, own_dtype: Any, x_dtype: Any, *, name: str = "x"
) -> jax.dtypes.TypePromotionError:
    """The error for an input whose dtype differs from a layer's own arrays when
    the user asked for strict dtype promotion (`jax_numpy_dtype_promotion="strict"`).

    **Arguments:**

    - `subject`: the layer with its configuration.
    - `holds`: what of the layer's is in `own_dtype`, e.g. `"rotation tables"`.
    - `own_dtype`: the dtype of those arrays.
    - `x_dtype`: the dtype of the input.
    - `name`: the argument's name, shown in backticks.

    **Returns:** the `TypePromotionError` (the caller raises it, `from` JAX's).
    """
    own, x = np.dtype(own_dtype).name, np.dtype(x_dtype).name
    return jax.dtypes.TypePromotionError(
        f"{subject} has {holds} in {own}, but got `{name}` of dtype {x}, and strict "
        "dtype promotion (jax_numpy_dtype_promotion='strict') forbids mixing the "
        f"two. Cast the input with `{name}.astype(jnp.{own})`, build the layer with "
        f"`dtype=jnp.{x}`, or allow promotion with "
        "`jax.numpy_dtype_promotion('standard')`."
    )


# --- enum-fidelity ---


def enumeration_item_redefined(
    enumeration: str, item: str, old_message: str, new_message: str
) -> str:
    """The warning for an enumeration item given a second, different message.

    **Arguments:**

    - `enumeration`: the name of the enumeration class being defined.
    - `item`: the name of the item defined twice (by a parent and the subclass, or by
        two parents).
    - `old_message`: the message it had first.
    - `new_message`: the message it has now (the later definition wins).

    **Returns:** the warning text (for `warnings.warn(..., UserWarning)`).
    """
    return (
        f"Enumeration {enumeration} defines item {item!r} again with a different "
        f"message: {old_message!r} is replaced by {new_message!r} (the later "
        "definition wins; the item keeps its value). Give the new item another name "
        "if both messages are needed."
    )


# --- module-debug-rope ---
