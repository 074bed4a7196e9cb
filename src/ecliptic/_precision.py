"""Mixed precision: a `Policy` of dtypes, the `MixedPrecision` wrapper, loss scales.

The master weights are kept in the policy's `param_dtype` (float32) and handed to
optax; every call casts them, and the inputs, to the `compute_dtype` (bfloat16 or
float16) and the result to the `output_dtype`. The casts are differentiated, so the
gradients of the master weights come back in float32. With float16, whose range is
small, a `DynamicLossScale` scales the loss up before differentiating (so small
gradients do not flush to zero) and the step is skipped when the gradients overflow.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, PyTree

from ._filters import is_array
from ._messages import (
    loss_scale_factor_error,
    loss_scale_min_scale_error,
    loss_scale_period_error,
    precision_dtype_error,
    precision_policy_string_error,
    precision_policy_type_error,
)
from ._module import field, Module
from ._tree_at import tree_at


_ALIASES = {
    "f16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "full": "float32",
    "single": "float32",
    "f64": "float64",
    "double": "float64",
}
_KEYS = {
    "params": "param_dtype",
    "param": "param_dtype",
    "p": "param_dtype",
    "compute": "compute_dtype",
    "c": "compute_dtype",
    "output": "output_dtype",
    "o": "output_dtype",
}


def _float_dtype(role: str, dtype: Any) -> np.dtype:
    name = dtype.strip().lower() if isinstance(dtype, str) else None
    try:
        out = jnp.dtype(_ALIASES.get(name, name) if name is not None else dtype)
    except TypeError:
        raise precision_dtype_error(role, dtype) from None
    if not jnp.issubdtype(out, jnp.floating):
        raise precision_dtype_error(role, dtype)
    return out


def _is_float_array(x: Any) -> bool:
    return is_array(x) and bool(jnp.issubdtype(x.dtype, jnp.floating))


def _cast(tree: PyTree, dtype: np.dtype) -> PyTree:
    def cast(x: Any) -> Any:
        return x.astype(dtype) if _is_float_array(x) and x.dtype != dtype else x

    return jtu.tree_map(cast, tree)


class Policy(Module):
    """Which dtype each part of a model uses: the stored parameters, the computation
    and the output.

    ```python
    policy = eqx.Policy(compute_dtype=jnp.bfloat16)  # params and output in float32
    policy = eqx.Policy.from_string("params=float32,compute=float16,output=float32")
    ```

    Only floating-point arrays are cast (float16, bfloat16, float32, float64);
    integer and boolean arrays, PRNG keys and everything that is not an array pass
    through unchanged.
    """

    param_dtype: np.dtype = field(static=True)
    compute_dtype: np.dtype = field(static=True)
    output_dtype: np.dtype = field(static=True)

    def __init__(
        self,
        param_dtype: Any = jnp.float32,
        compute_dtype: Any = jnp.float32,
        output_dtype: Any = jnp.float32,
    ):
        """**Arguments:**

        - `param_dtype`: the dtype the weights are stored, trained and checkpointed in
            (the "master weights"); float32 as a rule.
        - `compute_dtype`: the dtype the model runs in: `jnp.bfloat16` or
            `jnp.float16` for mixed precision.
        - `output_dtype`: the dtype of the model's outputs, in which the loss is then
            computed; float32 as a rule.

        Each may be a dtype, a scalar type such as `jnp.bfloat16`, or its name
        (`"bfloat16"`, or the short `"bf16"`, `"f16"`, `"f32"`).

        **Raises:** `TypeError` if one is not a floating-point dtype.
        """
        self.param_dtype = _float_dtype("param", param_dtype)
        self.compute_dtype = _float_dtype("compute", compute_dtype)
        self.output_dtype = _float_dtype("output", output_dtype)

    @classmethod
    def from_string(cls, text: str) -> Policy:
        """Reads a policy from `"params=float32,compute=bfloat16,output=float32"`.

        Keys are `params`, `compute` and `output` (or `p`, `c`, `o`); a key left out
        takes the `params` dtype (float32 if that is left out too). A single dtype,
        such as `"float32"`, sets all three.

        **Raises:** `ValueError` for a string it cannot read; `TypeError` for a dtype
        that is not floating-point.
        """
        if not isinstance(text, str) or not text.strip():
            raise precision_policy_string_error(text)
        if "=" not in text:
            dtype = _float_dtype("param", text)
            return cls(dtype, dtype, dtype)
        given: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or key.lower() not in _KEYS or not value:
                raise precision_policy_string_error(text, part=part)
            role = _KEYS[key.lower()]
            if role in given:
                raise precision_policy_string_error(text, repeated=key)
            given[role] = value
        params = given.get("param_dtype", "float32")
        return cls(
            params,
            given.get("compute_dtype", params),
            given.get("output_dtype", params),
        )

    def cast_to_param(self, tree: PyTree) -> PyTree:
        """Casts every floating-point array of `tree` to `param_dtype`."""
        return _cast(tree, self.param_dtype)

    def cast_to_compute(self, tree: PyTree) -> PyTree:
        """Casts every floating-point array of `tree` to `compute_dtype`."""
        return _cast(tree, self.compute_dtype)

    def cast_to_output(self, tree: PyTree) -> PyTree:
        """Casts every floating-point array of `tree` to `output_dtype`."""
        return _cast(tree, self.output_dtype)


class MixedPrecision(Module):
    """Wraps a model to run it in a `Policy`'s compute dtype while its weights stay
    in the policy's parameter dtype.

    ```python
    policy = eqx.Policy(compute_dtype=jnp.bfloat16)
    model = eqx.MixedPrecision(eqx.nn.MLP(2, 2, 16, 2, key=key), policy)
    y = model(x)  # the MLP runs in bfloat16; y is float32
    ```

    A call casts the wrapped model's floating-point arrays and those of the arguments
    to `compute_dtype`, calls the model, and casts the floating-point arrays of the
    result to `output_dtype`. The casts are part of the computation, so
    `eqx.filter_grad` of a loss of the wrapper gives gradients in `param_dtype` for
    its weights (`wrapper.model`), and optax updates those master weights. The
    wrapper is a Module like any other: `jax.vmap` it, `filter_jit` it, checkpoint it
    with `eqx.tree_serialise_leaves` (the weights are saved in `param_dtype`).

    Integer arrays and PRNG keys are not cast, so `key=` arguments pass through.
    Every floating-point input is cast, including state (`eqx.nn.State`) passed in.
    """

    model: Any
    policy: Policy

    def __init__(self, model: Any, policy: Policy | str):
        """**Arguments:**

        - `model`: a callable Module (a layer or a whole model). Its floating-point
            arrays are cast to `policy.param_dtype` here, once.
        - `policy`: a [`ecliptic.Policy`][], or a string for
            [`ecliptic.Policy.from_string`][].

        **Raises:** `TypeError` if `policy` is neither.
        """
        if isinstance(policy, str):
            policy = Policy.from_string(policy)
        elif not isinstance(policy, Policy):
            raise precision_policy_type_error(policy)
        self.model = policy.cast_to_param(model)
        self.policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the wrapped model in `compute_dtype`; returns its output cast to
        `output_dtype`. Takes whatever arguments the wrapped model takes."""
        model = self.policy.cast_to_compute(self.model)
        args, kwargs = self.policy.cast_to_compute((args, kwargs))
        return self.policy.cast_to_output(model(*args, **kwargs))


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every floating-point array of `tree` holds only finite numbers (no
    `inf`, no `nan`): a scalar boolean array, usable under `jit`. `True` for a tree
    without such arrays. Other leaves are ignored."""
    checks = [
        jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree) if _is_inexact_array(x)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def _is_inexact_array(x: Any) -> bool:
    return is_array(x) and bool(jnp.issubdtype(x.dtype, jnp.inexact))


def _unscale(tree: PyTree, scale: Array) -> PyTree:
    def unscale(g: Any) -> Any:
        if not _is_float_array(g):
            return g
        dtype = g.dtype if g.dtype.itemsize >= scale.dtype.itemsize else scale.dtype
        return (g.astype(dtype) / scale.astype(dtype)).astype(g.dtype)

    return jtu.tree_map(unscale, tree)


def _check_options(period: Any, factor: Any, min_scale: Any) -> None:
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise loss_scale_period_error(period)
    if not _is_number(factor) or not factor > 1:
        raise loss_scale_factor_error(factor)
    if not _is_number(min_scale) or not min_scale > 0:
        raise loss_scale_min_scale_error(min_scale)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class DynamicLossScale(Module):
    """A loss scale for float16 training that adapts itself: halved whenever the
    gradients overflow, doubled after `period` steps in a row that did not.

    float16 holds numbers between about 6e-8 and 65504, so small gradients flush to
    zero. Multiplying the loss by a large `scale` before differentiating, and the
    gradients by `1 / scale` afterwards, keeps them in range; when the scale is too
    large the gradients overflow to `inf`, and that step is skipped. A training step
    (the loss scale is an argument and a result, like the optimiser state; its
    `scale` and `counter` are arrays, so the step traces once):

    ```python
    @eqx.filter_jit
    def step(model, opt_state, loss_scale, x, y):
        def scaled_loss(model, x, y):
            loss = loss_fn(model, x, y)
            return loss_scale.scale_loss(loss), loss

        grads, loss = eqx.filter_grad(scaled_loss, has_aux=True)(model, x, y)
        grads = loss_scale.unscale(grads)
        finite = eqx.all_finite(grads)
        loss_scale = loss_scale.adjust(finite)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, new_opt_state = optim.update(grads, opt_state, params)
        new_model = eqx.apply_updates(model, updates)

        # On a non-finite step keep the old weights and optimiser state.
        def keep(new, old):
            return jnp.where(finite, new, old) if eqx.is_array(new) else new

        new = (new_model, new_opt_state)
        model, opt_state = jax.tree.map(keep, new, (model, opt_state))
        return model, opt_state, loss_scale, loss
    ```

    (`optax.apply_if_finite(optim, max_consecutive_errors)` is another way to skip:
    it zeroes the updates of a non-finite step and leaves the inner state alone.)
    With bfloat16, whose range is float32's, no loss scale is needed:
    [`ecliptic.NoLossScale`][] has the same methods and does nothing, so one step
    serves both.
    """

    scale: Array
    counter: Array
    period: int = field(static=True)
    factor: int | float = field(static=True)
    min_scale: int | float = field(static=True)

    def __init__(
        self,
        scale: Any = 2.0**15,
        counter: Any = 0,
        *,
        period: int = 2000,
        factor: int | float = 2,
        min_scale: int | float = 1.0,
    ):
        """**Arguments:**

        - `scale`: the initial loss scale (a float32 scalar; default `2**15`).
        - `counter`: how many finite steps in a row have been taken (an int32
            scalar; default 0).
        - `period`: after this many finite steps in a row the scale is multiplied
            by `factor` (default 2000).
        - `factor`: how much the scale grows or shrinks at a time (default 2).
        - `min_scale`: the scale never falls below this (default 1).

        **Raises:** `ValueError` for a `period` below 1, a `factor` of at most 1 or a
        `min_scale` that is not positive.
        """
        _check_options(period, factor, min_scale)
        self.scale = jnp.asarray(scale, jnp.float32)
        self.counter = jnp.asarray(counter, jnp.int32)
        self.period = period
        self.factor = factor
        self.min_scale = min_scale

    def scale_loss(self, loss: Array) -> Array:
        """Returns `loss * scale`, in the loss's dtype. Differentiate this."""
        loss = jnp.asarray(loss)
        return loss * self.scale.astype(loss.dtype)

    def unscale(self, grads: PyTree) -> PyTree:
        """Divides every floating-point array of `grads` by the scale (computed in at
        least float32, returned in each array's own dtype); other leaves (`None` from
        a filter, integers) pass through."""
        return _unscale(grads, self.scale)

    def adjust(self, grads_finite: Bool[Array, ""] | bool) -> DynamicLossScale:
        """Returns the loss scale for the next step.

        **Arguments:** `grads_finite`: whether this step's gradients were all finite
        (`eqx.all_finite(grads)`).

        **Returns:** if they were not, a loss scale with `scale / factor` (but at least
        `min_scale`) and the counter at 0; if they were, the counter plus one, or,
        when that reaches `period`, `scale * factor` (if still finite) and the
        counter at 0.
        """
        finite = jnp.asarray(grads_finite, dtype=bool)
        dtype = self.scale.dtype
        factor = jnp.asarray(self.factor, dtype)
        grown = self.scale * factor
        grown = jnp.where(jnp.isfinite(grown), grown, self.scale)
        at_period = self.counter + 1 >= self.period
        up = jnp.where(at_period, grown, self.scale)
        down = jnp.maximum(self.scale / factor, jnp.asarray(self.min_scale, dtype))
        scale = jnp.where(finite, up, down)
        counter = jnp.where(finite & ~at_period, self.counter + 1, 0)
        counter = counter.astype(self.counter.dtype)
        return tree_at(lambda s: (s.scale, s.counter), self, (scale, counter))


class NoLossScale(Module):
    """The loss scale that does nothing, for float32 and bfloat16: it has the methods
    of [`ecliptic.DynamicLossScale`][], so one training step serves every precision.
    """

    @property
    def scale(self) -> Array:
        """Always 1."""
        return jnp.ones((), jnp.float32)

    def scale_loss(self, loss: Array) -> Array:
        """Returns `loss` unchanged."""
        return loss

    def unscale(self, grads: PyTree) -> PyTree:
        """Returns `grads` unchanged."""
        return grads

    def adjust(self, grads_finite: Bool[Array, ""] | bool) -> NoLossScale:
        """Returns `self`: there is nothing to adjust."""
        del grads_finite
        return self
