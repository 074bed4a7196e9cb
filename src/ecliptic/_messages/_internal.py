"""The messages of `ecliptic.internal`, written once.

Each builder composes a message that reads *subject -> expected -> got -> fix* and
returns the text (or the exception, for the caller to raise, so that tracebacks point
at the caller). The wording is ecliptic's own; the exception types are the ones
Equinox raises in the same situation, so code that catches them keeps working.
"""

from __future__ import annotations

from typing import Any


def default_name(name: str | None) -> str:
    """`name`, or "This operation" when no name was given."""
    return "This operation" if name is None else name


def nontraceable_error(what: str, name: str) -> RuntimeError:
    """`nontraceable` met a JAX transformation (`what`: "differentiation",
    "transposition" or "batching")."""
    return RuntimeError(
        f"Detected {what} of {name}: it was marked with "
        "`ecliptic.internal.nontraceable`, which must never be transformed, but a "
        f"JAX transformation ({what}) reached it. This usually means a tracer was "
        "captured by closure (e.g. in the `impl` rule of a higher-order primitive); "
        "pass the value in as an argument instead."
    )


def nondifferentiable_message(name: str | None) -> str:
    """The default message of `nondifferentiable`."""
    return (
        f"Unexpected tangent. {default_name(name)} cannot be autodifferentiated, but "
        "`jax.jvp`/`jax.grad` (or a filtered version) tried to differentiate it. "
        "Fix: wrap its input in `jax.lax.stop_gradient`, or do not differentiate "
        "through it."
    )


def nondifferentiable_backward_message(name: str | None) -> str:
    """The default message of `nondifferentiable_backward`."""
    return (
        f"Unexpected cotangent. {default_name(name)} cannot be reverse-mode "
        "autodifferentiated (`jax.grad`, `jax.vjp`), but a nonzero cotangent reached "
        "it. Forward mode (`jax.jvp`) is supported; or stop the gradient before it."
    )


def nonbatchable_message(name: str | None, allow_constant: bool) -> str:
    """The default message of `nonbatchable`."""
    if allow_constant:
        return (
            f"Nonconstant batch. {default_name(name)} expected the same value in "
            "every element of a `vmap` batch, but got different values. This is "
            "probably an internal error in the library you are using."
        )
    return (
        f"Unexpected batch tracer. {default_name(name)} cannot be vmap'd, but it "
        "received a batched value. This is probably an internal error in the library "
        "you are using."
    )


def nonbatchable_jvp_error() -> NotImplementedError:
    """`nonbatchable` was differentiated (it has no derivative rule)."""
    return NotImplementedError(
        "Differentiation of `ecliptic.internal.nonbatchable` is not implemented: it "
        "marks a value that must not be vmap'd, and differentiating it is not "
        "supported. Fix: apply it to non-differentiated values (e.g. integers or "
        "booleans), or wrap its input in `jax.lax.stop_gradient`."
    )


def omega_structure_error() -> ValueError:
    """Two `ω`s of different PyTree structure were combined."""
    return ValueError(
        "PyTree structures must match: `ω(a) <op> ω(b)` needs `a` and `b` to have "
        "the same PyTree structure. Fix: check both sides with "
        "`jax.tree_util.tree_structure`."
    )


def omega_is_leaf_error() -> ValueError:
    """Two `ω`s with different `is_leaf` were combined."""
    return ValueError(
        "`is_leaf` must match: both `ω`s in a binary operation need the same "
        "`is_leaf` function (or both none)."
    )


def omega_other_error(other: Any) -> RuntimeError:
    """An `ω` was combined with something that is neither an `ω` nor a scalar/array."""
    return RuntimeError(
        "Type of `other` not understood: `ω` arithmetic accepts another `ω`, a Python "
        f"scalar or an array, but got {type(other).__name__}. Fix: wrap a PyTree "
        "operand as `ω(tree)`."
    )


def missing_dependencies_error(what: str, missing: list[str]) -> ImportError:
    """An optional feature needs packages that are not installed."""
    names = ", ".join(f"`{m}`" for m in missing)
    return ImportError(
        f"{what} needs {names}, which {'is' if len(missing) == 1 else 'are'} not "
        f"installed. Fix: `pip install {' '.join(m.split('.')[0] for m in missing)}`."
    )


def tqdm_missing_error() -> ValueError:
    """`TqdmProgressMeter` was made without `tqdm` installed."""
    return ValueError(
        "ecliptic.internal.TqdmProgressMeter needs the `tqdm` package, which is not "
        "installed. Fix: `pip install tqdm`, or use `TextProgressMeter`."
    )


def noinline_abstract_error(got: Any) -> NotImplementedError:
    """`noinline` was abstractly evaluated on something other than a ShapedArray."""
    return NotImplementedError(
        "ecliptic.internal.noinline can only be abstractly evaluated on arrays with a "
        f"shape and dtype (ShapedArray), but got {type(got).__name__}."
    )


def vprim_zero_error(got: Any) -> NotImplementedError:
    """A vprim rule met a symbolic zero or undefined primal without a ShapedArray."""
    return NotImplementedError(
        "ecliptic.internal.create_vprim supports only ShapedArray values for "
        f"symbolic zeros and undefined primals, but got {type(got).__name__}."
    )


def primitive_output_error(kind: str) -> ValueError:
    """A filtered primitive's rule returned an output of a different structure."""
    return ValueError(
        f"A filtered primitive's {kind} rule returned an output whose PyTree "
        "structure or non-array leaves differ from the `impl`/`abstract_eval` rule's "
        "output. Every rule must return the same structure, with the same non-array "
        "leaves."
    )


def onnx_missing_error(missing: list[str]) -> ImportError:
    """`to_onnx` needs packages (`missing`) that are not installed."""
    return missing_dependencies_error("ecliptic.internal.to_onnx", missing)


def container_reverse_lookup_error(name: str) -> ValueError:
    """A `ContainerMeta` class (`name`) defines `reverse_lookup`, which the metaclass
    sets."""
    return ValueError(
        f"ContainerMeta class {name} must not define `reverse_lookup`: the "
        "metaclass sets it. Fix: rename that attribute."
    )


def single_result_primitive_error(prim: Any) -> ValueError:
    """`filter_primitive_bind` was given a primitive without `multiple_results`."""
    return ValueError(
        f"filter_primitive_bind needs a primitive with `multiple_results = True`, "
        f"but {prim} has `multiple_results = False`. Fix: set it before binding."
    )
