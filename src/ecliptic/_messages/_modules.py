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


def bare_abstract_annotation_error(name: str) -> TypeError:
    """The error for `AbstractVar` or `AbstractClassVar` (`name`) used without the
    attribute's type."""
    return TypeError(
        f"`{name}` must be subscripted with the attribute's type, as in "
        f"`x: {name}[int]`; got a bare `{name}`."
    )


def abstract_annotation_arity_error(name: str, annotation: Any) -> TypeError:
    """The error for `AbstractVar[...]` or `AbstractClassVar[...]` (`name`) given
    other than one type argument (`annotation`: the whole annotation)."""
    return TypeError(
        f"`{name}` takes exactly one type argument, as in "
        f"`{name}[int]`; got {annotation}."
    )


def abstract_with_value_error(qualname: str, name: str, is_class: bool) -> TypeError:
    """The error for an attribute annotated as abstract that the same class gives a
    value (`is_class`: whether it is an `AbstractClassVar`)."""
    kind = "class attribute" if is_class else "attribute"
    return TypeError(
        f"{qualname}.{name} is declared as an abstract {kind} "
        "and so cannot also be given a value in the same class; "
        "remove the value, or drop the `Abstract...` annotation."
    )


def field_metadata_clash_error(name: str) -> ValueError:
    """The error for `ecliptic.field(metadata=...)` whose metadata sets `name`
    (`"converter"` or `"static"`), an argument of `field` itself."""
    return ValueError(
        f"ecliptic.field got `metadata` that already sets {name!r}; pass "
        f"`{name}=...` to `field` directly instead of through `metadata`."
    )


def undeclared_field_error(qualname: str, name: str) -> dataclasses.FrozenInstanceError:
    """The error for `__init__` assigning `self.{name}`, which the Module class
    (`qualname`) does not declare as a field."""
    return dataclasses.FrozenInstanceError(
        f"cannot assign to field {name!r}: {qualname} declares no "
        f"field {name!r}. Declare it in the class body (`{name}: <type>`) "
        "before assigning it in `__init__`."
    )


def init_false_array_message(qualname: str, name: str) -> str:
    """The warning for a `field(init=False)` that holds floating-point arrays.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"{qualname}.{name} is declared with `field(init=False)` and "
        "holds floating-point arrays. It is a PyTree leaf like any other "
        "field: "
        "`jax.grad` differentiates it directly, not the fields it was "
        "computed from. Compute it in a method or property instead, so that "
        "gradients flow to its inputs."
    )


def uninitialised_field_error(qualname: str, name: str) -> TypeError:
    """The error for a field that the Module's `__init__` did not assign."""
    return TypeError(
        f"Field {name!r} was not initialized. {qualname}.__init__ "
        f"must assign every field; add `self.{name} = ...` to it, or give "
        f"the field a default in the class body."
    )


def transformed_callable_message(cls: type, name: str) -> str:
    """The warning for a field assigned a JAX-transformed callable (such as
    `jax.vmap(layer)`) that holds parameters, which are then never trained.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"{cls.__module__}.{cls.__qualname__}.{name} is assigned a "
        "JAX-transformed callable (e.g. `jax.vmap(layer)`) that holds "
        "parameters. Such callables are not PyTrees, so those parameters "
        "will never be trained. Store the layer itself and apply the "
        "transformation in `__call__`, or use the filtered transformation "
        "(e.g. `ecliptic.filter_vmap(layer)`), which is a PyTree."
    )


def init_returned_error(result: Any) -> TypeError:
    """The error for an `__init__` that returned something other than `None` (the
    words of Python's own `type.__call__`)."""
    return TypeError(f"__init__() should return None, not '{type(result).__name__}'")


def post_init_never_runs_message(cls: type) -> str:
    """The warning for a Module class with both a custom `__init__` and
    `__post_init__`, which then never runs.

    **Returns:** the message of the `UserWarning`.
    """
    return (
        f"{cls.__module__}.{cls.__qualname__} defines (or inherits) both a "
        "custom `__init__` and `__post_init__`: `__post_init__` only runs "
        "after a generated dataclass `__init__`, so it will never run here. "
        "Move the checks into `__check_init__`, which always runs."
    )


def virtual_subclass_error(cls: type, subclass: Any) -> ValueError:
    """The error for `SomeModule.register(subclass)`: Modules have no virtual
    subclasses."""
    return ValueError(
        f"{cls.__qualname__}.register({subclass!r}) is not supported: Modules are "
        "dataclasses, so virtual subclasses cannot be registered. Subclass "
        f"{cls.__qualname__} instead."
    )


def delete_field_error(obj: Any, name: str) -> dataclasses.FrozenInstanceError:
    """The error for deleting an attribute of a Module after its `__init__`."""
    return dataclasses.FrozenInstanceError(
        f"cannot delete field {name!r}: {type(obj).__qualname__} is immutable."
    )


def not_a_module_class_error(cls: Any) -> TypeError:
    """The error for `is_abstract_module` given something other than a Module
    subclass."""
    return TypeError(f"{cls!r} is not a subclass of ecliptic.Module.")


def static_leaves_array_message() -> str:
    """The warning for an array among the leaves given to `Static` (as
    `static_array_message`, for its `_leaves` field)."""
    return static_array_message("Static", "_leaves")


def wrapped_property_error(cls: type) -> ValueError:
    """The error for `module_update_wrapper` on a wrapper class whose `__wrapped__`
    is not a property."""
    return ValueError(
        f"module_update_wrapper needs {cls.__qualname__} to define `__wrapped__` "
        "as a property returning the wrapped callable; got "
        f"{type(getattr(cls, '__wrapped__', None)).__name__}. Add "
        "`@property\\ndef __wrapped__(self): return self.fn`."
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


def removed_kwarg_error(where: str, name: str, instead: str) -> ValueError:
    """The error for a keyword argument `name` of a transformation (`where`, e.g.
    `"ecliptic.filter_vmap"`) that was removed in Equinox 0.10; `instead` says what to
    do instead."""
    return ValueError(
        f"{where} no longer accepts `{name}=`, which was removed in Equinox "
        f"0.10. {instead}"
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


def enumeration_compare_error(qualname: str, got: str) -> ValueError:
    """The error for comparing an item of the enumeration `qualname` with `got` (the
    name of another enumeration, or of another type)."""
    return ValueError(
        "Can only compare equality between enumerations of the same type: "
        f"an item of {qualname} was compared with {got}. "
        f"Use `{qualname}.promote(item)` to convert an "
        "item of a parent enumeration first."
    )


def enumeration_message_type_error(name: str, key: str, value: Any) -> TypeError:
    """The error for an item `key` of the enumeration `name` whose message is not a
    string."""
    return TypeError(
        f"Enumeration {name}.{key} must be a message string, as in "
        f'`{key} = "what went wrong"`; got {type(value).__name__} '
        f"{value!r}."
    )


def enumeration_no_item_error(qualname: str, name: str, items: Any) -> AttributeError:
    """The error for looking up an item `name` that the enumeration does not have
    (`items`: its item names)."""
    return AttributeError(
        f"Enumeration {qualname} has no item {name!r}; its items are {list(items)}."
    )


def enumeration_index_error(qualname: str, names: Any, item: Any) -> ValueError:
    """The error for `Enumeration[item]` with an `item` of another enumeration (or
    no item at all; `names`: the enumeration's item names)."""
    example = names[0] if names else "x"
    return ValueError(
        f"{qualname}[...] takes an item of {qualname}, as in "
        f"`{qualname}[{qualname}.{example}]`; got {item!r}."
    )


def enumeration_where_error(qualname: str, item: Any) -> ValueError:
    """The error for `Enumeration.where(pred, a, b)` with an `a` or `b` (`item`)
    that is not an item of that enumeration."""
    return ValueError(
        f"{qualname}.where(pred, a, b) needs `a` and `b` to be "
        f"items of {qualname}; got {item!r}."
    )


def enumeration_where_pred_error(qualname: str, shape: Any, dtype: Any) -> ValueError:
    """The error for `Enumeration.where(pred, a, b)` with a `pred` that is not a
    boolean scalar."""
    return ValueError(
        f"{qualname}.where(pred, a, b) needs `pred` to be a boolean scalar, but got "
        f"shape {tuple(shape)} and dtype {dtype}. Compare to get one (`x > 0`), and "
        "reduce a batch first (`jnp.any(...)`) or map `where` with `jax.vmap`."
    )


def enumeration_reserved_name_error(name: str, key: str) -> ValueError:
    """The error for an enumeration item named like one of the class's methods."""
    return ValueError(
        f"Enumeration {name} cannot have an item named `{key}`: the name belongs to "
        f"the method `{name}.{key}`. Rename the item, e.g. `{key}_`."
    )


def enumeration_promote_error(qualname: str, item: Any) -> ValueError:
    """The error for `Enumeration.promote(item)` with an `item` that is not an item
    of a parent enumeration."""
    return ValueError(
        f"{qualname}.promote(item) converts items of a parent "
        f"enumeration of {qualname}; got {item!r}."
    )


# --- module-debug-rope ---
