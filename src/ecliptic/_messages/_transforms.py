"""Messages of the filtered transformations: `filter_grad` and friends, custom
derivatives and closure conversion, `filter_pure_callback`, `filter_vmap` /
`filter_pmap`, and `filter_jit` with its dispatch (guards and output builders).

A function being transformed is passed in already described (its `fun_repr`), since
that helper lives on a floor above this one.
"""

from __future__ import annotations

from typing import Any


# ---------------------------------------------------------------------------------
# Automatic differentiation.
# ---------------------------------------------------------------------------------


def grad_removed_kwargs_fix() -> str:
    """The fix shown for the keyword arguments of `filter_grad` /
    `filter_value_and_grad` that Equinox 0.10 removed (`arg`, `filter_spec`)."""
    return (
        "The inexact arrays of the first positional argument are differentiated. To "
        "differentiate only part of a model, split it with `ecliptic.partition` and "
        "pass the part to differentiate first: `f(diff_model, static_model, ...)`, "
        "joining them with `ecliptic.combine` inside."
    )


def grad_keywords_only_error(where: str, fun: str, got: str) -> TypeError:
    """A function made by `filter_grad` & co. was called with keyword arguments only.

    **Arguments:** `where` the transformation, `fun` the function (its `fun_repr`),
    `got` the keyword arguments as shown (`"x=..., y=..."`).
    """
    return TypeError(
        f"ecliptic.{where} differentiates the first positional argument of "
        f"{fun}, but it was called with keyword arguments only "
        f"({got}). Pass the object to differentiate by position, for example "
        f"`f(model, x)` instead of `f(model=model, x=x)`."
    )


def grad_no_arguments_error(where: str, fun: str) -> TypeError:
    """A function made by `filter_grad` & co. was called with no arguments (`fun` is
    its `fun_repr`)."""
    return TypeError(
        f"ecliptic.{where} differentiates the first positional argument of "
        f"{fun}, but it was called with no arguments. Pass the object to "
        "differentiate as the first positional argument."
    )


def grad_argnums_error(argnums: Any) -> ValueError:
    """`filter_grad` / `filter_value_and_grad` were given `argnums`."""
    return ValueError(
        "ecliptic.filter_grad and ecliptic.filter_value_and_grad always "
        "differentiate the first positional argument, so they do not take "
        f"`argnums` (got argnums={argnums!r}). To differentiate "
        "several objects, pack them into a tuple and pass that as the first "
        "argument: `f((x, y), ...)`, unpacking with `x, y = xy` inside."
    )


def jvp_tangents_structure_error(primals: Any, tangents: Any) -> ValueError:
    """`filter_jvp`'s `tangents` do not have the PyTree structure of `primals` (both
    given as treedefs)."""
    return ValueError(
        "ecliptic.filter_jvp expected `tangents` to have the same PyTree "
        f"structure as `primals`, {primals}, but got {tangents}. "
        "Pass one tangent per leaf of `primals`, with `None` for leaves that are "
        "not differentiated (required for every leaf that is not an inexact "
        "array)."
    )


# ---------------------------------------------------------------------------------
# Custom derivatives, closure conversion and callbacks.
# ---------------------------------------------------------------------------------


def custom_jvp_kwargs_tangent_error(names: list, fun: str) -> ValueError:
    """A keyword argument of a `filter_custom_jvp` function (`fun`, its `fun_repr`)
    received a non-zero tangent."""
    return ValueError(
        "ecliptic.filter_custom_jvp does not differentiate keyword "
        f"arguments, but the keyword argument(s) {names} of "
        f"{fun} received a non-zero tangent. Pass values "
        "that should be differentiated by position."
    )


def custom_jvp_defjvps_error() -> NotImplementedError:
    """`filter_custom_jvp.defjvps` was called."""
    return NotImplementedError(
        "ecliptic.filter_custom_jvp does not implement `defjvps`. Declare one "
        "rule for all arguments with `.def_jvp(fn_jvp)`, where "
        "`fn_jvp(primals, tangents, **kwargs)` returns `(out, tangent_out)`."
    )


def custom_vjp_undeclared_error(fun: str, missing: str) -> RuntimeError:
    """A `filter_custom_vjp` function (`fun`, its `fun_repr`) was called before its
    rule `missing` (`"def_fwd"` or `"def_bwd"`) was declared."""
    return RuntimeError(
        f"{fun} (an ecliptic.filter_custom_vjp) was called "
        f"before its rules were declared: `.{missing}` has not been called "
        "yet. Declare both `.def_fwd` and `.def_bwd` before calling it."
    )


def custom_vjp_rest_message() -> str:
    """The error raised when a `filter_custom_vjp` function is differentiated with
    respect to an argument other than `vjp_arg`."""
    return (
        "ecliptic.filter_custom_vjp only differentiates its first argument "
        "(`vjp_arg`), but a value passed in `*args` or `**kwargs` is being "
        "differentiated. Move it into `vjp_arg` (pack several objects into a tuple) "
        "so that `fn_bwd` returns its gradient."
    )


def custom_vjp_grad_structure_error(want: Any, got: Any) -> RuntimeError:
    """`fn_bwd` of a `filter_custom_vjp` returned a gradient whose structure (`got`)
    is not that of `vjp_arg` (`want`)."""
    return RuntimeError(
        "ecliptic.filter_custom_vjp expected `fn_bwd` to return a gradient with "
        "the structure of `vjp_arg` (`None` allowed for any leaf, and required "
        f"for leaves that are not inexact arrays), {want}, but got {got}. Return "
        "one gradient per leaf of `vjp_arg`."
    )


def closure_convert_shapes_error(want: Any, got: Any) -> ValueError:
    """A function made by `filter_closure_convert` got array arguments of other
    shapes/dtypes than its example arguments."""
    return ValueError(
        "A function made by ecliptic.filter_closure_convert expected array "
        f"arguments of shapes/dtypes {want}, as in the example arguments, but "
        f"got {got}. Convert the function again with example arguments of the "
        "new shapes."
    )


def closure_convert_static_error(want: Any, got: Any) -> ValueError:
    """A function made by `filter_closure_convert` got other non-array arguments
    than its example arguments."""
    return ValueError(
        "A function made by ecliptic.filter_closure_convert expected the "
        f"non-array arguments {want!r}, as in the example "
        f"arguments, but got {got!r}. Non-array arguments are baked in at "
        "conversion time: convert the function again with the new values."
    )


def pure_callback_static_error(expected: Any, got: Any) -> ValueError:
    """The callback of `filter_pure_callback` returned other non-array values than
    those given in `result_shape_dtypes`."""
    return ValueError(
        "ecliptic.filter_pure_callback expected the callback to return the "
        f"non-array values given in `result_shape_dtypes`, {expected!r}, "
        f"but it returned {got!r}. Non-array outputs are not traced, "
        "so they must be known in advance: put the exact values (and a "
        "`jax.ShapeDtypeStruct` for each array) in `result_shape_dtypes`."
    )


# ---------------------------------------------------------------------------------
# `filter_vmap` and `filter_pmap`.
# ---------------------------------------------------------------------------------


def map_removed_kwargs_fix() -> str:
    """The fix shown for the keyword arguments of `filter_vmap` / `filter_pmap` that
    Equinox removed."""
    return (
        "Pass the function as the first argument, and choose what is mapped with "
        "`in_axes=` and `out_axes=` (array leaves are mapped over axis 0 by default; "
        "every other leaf is broadcast)."
    )


def axis_spec_error(spec: Any, where: str) -> ValueError:
    """A leaf of `in_axes` / `out_axes` is not an int, `None` or a callable."""
    return ValueError(
        f"ecliptic.{where} expected the leaves of `in_axes`/`out_axes` to be ints, "
        f"None or callables `leaf -> int | None`, but got {spec!r} of type "
        f"{type(spec).__name__}. Use e.g. `in_axes=(0, None)` or "
        "`in_axes=ecliptic.if_array(0)`."
    )


def axis_callable_error(where: str, what: str, spec: Any, axis: Any) -> ValueError:
    """A callable in `what` (`"in_axes"` or `"out_axes"`) returned neither an int nor
    `None`."""
    return ValueError(
        f"ecliptic.{where} expected each callable in `{what}` to return an int or "
        f"None, but {spec!r} returned {axis!r}."
    )


def axes_prefix_error(where: str, what: str, structure: Any, spec: Any) -> ValueError:
    """`what` (`"in_axes"` or `"out_axes"`) is not a PyTree prefix of the arguments
    or outputs, whose treedef is `structure`."""
    return ValueError(
        f"ecliptic.{where} expected `{what}` to be a PyTree prefix of the "
        f"{'arguments' if what == 'in_axes' else 'outputs'}, whose structure is "
        f"{structure}, but got {what}={spec!r}. Give one spec per "
        "argument, e.g. `in_axes=(0, None)`, or one spec for all of them."
    )


def named_in_axes_error(
    where: str, names: tuple, count: int, fun: str, params: tuple
) -> ValueError:
    """A dict `in_axes` has keys (`names`) that name none of the `count` positional
    arguments of `fun` (its `fun_repr`; `params`: the names of those arguments)."""
    return ValueError(
        f"ecliptic.{where} got `in_axes` for {names}, which do not "
        f"name any of the {count} positional argument(s) passed to "
        f"{fun} (parameters: {params}). Named "
        "arguments must be passed by position; check the spelling."
    )


def map_non_array_error(where: str, axis: int, leaf: Any) -> ValueError:
    """`in_axes` asked to map over an axis of a leaf that is not an array."""
    return ValueError(
        f"ecliptic.{where} was asked to map over axis {axis} of a leaf that is not "
        f"an array: {leaf!r} of type {type(leaf).__name__}. Only arrays can be "
        "mapped: use `in_axes=None` (or `ecliptic.if_array(0)`) for it, or pass "
        "`jnp.asarray(...)`."
    )


def map_call_kwargs_error(where: str, fun: str, names: tuple) -> RuntimeError:
    """A `filter_vmap` / `filter_pmap` function (`fun`, its `fun_repr`) was called
    with keyword arguments (`names`)."""
    return RuntimeError(
        f"ecliptic.{where} does not accept keyword arguments at call time, but "
        f"{fun} was called with {names}. Pass them by position "
        "(and set their axes with `in_axes`), or bind them first with "
        "`functools.partial`."
    )


def vmap_axis_size_error(fun: str, mapped: int) -> ValueError:
    """`filter_vmap` maps no argument, has `mapped` outputs with an axis, and was
    given no `axis_size`."""
    return ValueError(
        "ecliptic.filter_vmap cannot tell the size of the mapped axis of "
        f"{fun}: no argument is mapped (every `in_axes` "
        "resolved to None, e.g. because no argument is an array), but "
        f"{mapped} output(s) have a non-None `out_axes`. Pass "
        "`axis_size=...`, map an array argument, or set `out_axes=None`."
    )


def pmap_axis_size_error(fun: str) -> ValueError:
    """`filter_pmap` maps no argument and was given no `axis_size`."""
    return ValueError(
        "ecliptic.filter_pmap cannot tell how many devices to map over: "
        f"no argument of {fun} is mapped (every "
        "`in_axes` resolved to None). Pass `axis_size=...` or map an "
        "array argument."
    )


def pmap_forbidden_kwarg_error(name: str) -> ValueError:
    """`filter_pmap` was given `static_broadcasted_argnums` or `donate_argnums`."""
    return ValueError(
        f"ecliptic.filter_pmap does not take `{name}`: non-array arguments "
        "are already static, and donation is set with "
        "`donate='all' | 'warn' | 'none'`."
    )


def pmap_donate_error(donate: Any) -> ValueError:
    """`filter_pmap`'s `donate` is not one of its modes."""
    return ValueError(
        "ecliptic.filter_pmap expected `donate` to be 'all', 'warn' or 'none', "
        f"but got {donate!r}."
    )


# ---------------------------------------------------------------------------------
# `filter_jit`.
# ---------------------------------------------------------------------------------


def jit_removed_kwargs_fix() -> str:
    """The fix shown for the keyword arguments of `filter_jit` that Equinox
    removed."""
    return (
        "Array leaves are traced and all other leaves are static; to hold an array "
        "static, close over it or wrap it in a non-array object."
    )


def jit_forbidden_kwarg_error(name: str) -> ValueError:
    """`filter_jit` was given a `jax.jit` option that it sets itself."""
    return ValueError(
        f"filter_jit does not accept `{name}=`: it decides what is static "
        "(non-arrays) and traced (arrays) itself, and donation is set with "
        "`donate=`. Fix: remove it; pass static values as non-array "
        "arguments, or shard arrays with `ecliptic.filter_shard`."
    )


def jit_donate_error(donate: Any) -> ValueError:
    """`filter_jit`'s `donate` is not one of its modes."""
    return ValueError(
        "filter_jit expected `donate` to be one of 'all', 'all-except-first', "
        f"'warn', 'warn-except-first' or 'none', but got {donate!r}. Fix: pass "
        "one of those, e.g. donate='all'."
    )


def jit_not_callable_error(fun: Any) -> TypeError:
    """`filter_jit` was given something that is not callable."""
    return TypeError(
        f"filter_jit expected a callable, but got {type(fun).__name__} {fun!r}. "
        "Fix: pass the function itself: `filter_jit(f)`, not `filter_jit(f())`."
    )


def jit_lowered_mismatch_error(name: str) -> TypeError:
    """A compiled `filter_jit` function (`name`) was called with other static
    arguments or another structure than it was lowered for."""
    return TypeError(
        f"This compiled `{name}` was lowered for other static arguments "
        "or another argument structure than the ones given now. Fix: call "
        "`.lower(...)` again with these arguments, or call the `filter_jit` "
        "function directly."
    )


def dispatch_info_type_error(fn: Any) -> TypeError:
    """`dispatch_info` was given something other than a `filter_jit` function."""
    return TypeError(f"dispatch_info expected a filter_jit function, got {fn!r}.")


# Why no guard (or no output builder) is made: internal, shown only in the
# `ValueError` that `make_guard` raises (and that `filter_jit` catches).


def unguardable_error(reason: Any) -> ValueError:
    """`make_guard` cannot guard a structure, for `reason` (an exception or text)."""
    return ValueError(f"unguardable: {reason}")


def guard_leaf_count_error() -> ValueError:
    """`make_guard` met another number of leaves than the flatten it was given."""
    return unguardable_error("leaf count")


def guard_arguments_message() -> str:
    """The arguments given to `make_guard` are not a plain tuple."""
    return "arguments must be a tuple"


def guard_leaf_order_message() -> str:
    """A leaf met by `make_guard` is not the next leaf of the flatten."""
    return "leaf order"


def guard_array_leaf_message() -> str:
    """A leaf is an array of a type a guard does not accept."""
    return "tracer or NumPy scalar leaf"


def guard_type_mismatch_message() -> str:
    """A node's type is not the type its treedef records."""
    return "type mismatch"


def guard_initialising_message() -> str:
    """A Module argument is still running its `__init__`."""
    return "a Module whose __init__ is running"


def builder_node_type_message(typ: Any) -> str:
    """An output node of type `typ` that the output builder does not write."""
    return f"node type {typ!r}"


def builder_module_fields_message() -> str:
    """An output Module that the output builder does not write."""
    return "Module with unset fields or wrapper attributes"


def builder_array_types_message() -> str:
    """An output array whose type the output builder does not accept."""
    return "array types"


def builder_too_long_message() -> str:
    """An output builder that would pass `MAX_BUILDER_LINES` lines."""
    return "too long"
