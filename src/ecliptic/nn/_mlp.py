"""`MLP`: a multi-layer perceptron, optionally scanned over its hidden layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.nn as jnn
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
from jax import lax
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe
from .._filters import is_array
from .._messages import initialiser_type_error, mlp_size_error
from .._module import field, Module
from .._vmap_pmap import filter_vmap
from ._linear import Linear
from ._misc import check_features, Initialiser, owner_name, param_dtype


def _identity(x: Any) -> Any:
    return x


def _per_neuron(fn: Callable, sizes: tuple[int, ...]) -> Callable:
    """Gives every array leaf of `fn` leading axes `sizes`: one copy per neuron.

    A plain function is returned unchanged; a learnt activation (e.g. `PReLU`)
    gets one set of parameters per neuron.
    """
    return jtu.tree_map(
        lambda x: jnp.broadcast_to(x, sizes + jnp.shape(x)) if is_array(x) else x, fn
    )


def _select(fn: Callable, index: int | Array) -> Callable:
    """The `index`-th slice along the first axis of every array leaf of `fn`."""
    return jtu.tree_map(lambda x: x[index] if is_array(x) else x, fn)


# `fn(x)` for each entry of `x`, the i-th with the i-th parameters of `fn`: array
# leaves of `fn` and `x` are mapped over their first axis, anything else is static.
_map_neurons = filter_vmap(lambda fn, x: fn(x))


class MLP(Module):
    """A multi-layer perceptron (feed-forward network) acting on one vector."""

    layers: tuple[Linear, ...]
    activation: Callable
    final_activation: Callable
    use_bias: bool = field(static=True)
    use_final_bias: bool = field(static=True)
    in_size: int | Literal["scalar"] = field(static=True)
    out_size: int | Literal["scalar"] = field(static=True)
    width_size: int = field(static=True)
    depth: int = field(static=True)
    scan: bool = field(static=True, default=False)

    def __init__(
        self,
        in_size: int | Literal["scalar"],
        out_size: int | Literal["scalar"],
        width_size: int,
        depth: int,
        activation: Callable = jnn.relu,
        final_activation: Callable = _identity,
        use_bias: bool = True,
        use_final_bias: bool = True,
        dtype: Any = None,
        *,
        scan: bool = False,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `in_size`: the input size: input shape `(in_size,)`, or `()` if
            `"scalar"`.
        - `out_size`: the output size: output shape `(out_size,)`, or `()` if
            `"scalar"`.
        - `width_size`: the size of each hidden layer.
        - `depth`: the number of linear layers after the first, i.e. hidden layers
            including the output layer. `depth=0` is one `Linear(in_size,
            out_size)`; `depth=2` is `in -> width -> width -> out`.
        - `activation`: applied after each hidden layer (default ReLU). It is
            applied per neuron, so a learnt activation such as `PReLU` gets its own
            parameters for every neuron of every hidden layer.
        - `final_activation`: applied after the output layer (default identity),
            also per neuron.
        - `use_bias`: whether the hidden layers have a bias.
        - `use_final_bias`: whether the output layer has a bias.
        - `dtype`: the parameters' dtype. Defaults to `float32`, or `float64` when
            JAX runs in 64-bit mode.
        - `scan`: if `True`, the `depth - 1` width-to-width layers are stored
            stacked (weight `(depth - 1, width_size, width_size)`) and run with
            `jax.lax.scan`, which compiles faster for deep networks. (Keyword only.)
        - `weight_init`, `bias_init`: initialisers `init(key, shape, dtype) ->
            array` (such as those of `jax.nn.initializers`) passed to every
            [`ecliptic.nn.Linear`][], which calls them with its own key and its
            weight's shape `(out, in)`, resp. bias shape `(out,)`. Name the fan axes
            of that layout, e.g. `jax.nn.initializers.lecun_normal(in_axis=-1,
            out_axis=-2)`: the defaults would swap the fans. With `scan=True` each
            hidden layer is still drawn on its own `(width_size, width_size)`
            weight. Unset, the layers draw as by default. (Keyword only.)
        - `key`: a `jax.random.PRNGKey` for the initialisation. (Keyword only.)
        """
        check_features("ecliptic.nn.MLP", "in_size", in_size)
        check_features("ecliptic.nn.MLP", "out_size", out_size)
        for name, n in (("width_size", width_size), ("depth", depth)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise mlp_size_error(name, n)
        inits = [("weight_init", weight_init, True)]
        inits.append(("bias_init", bias_init, use_bias or use_final_bias))
        for name, init, used in inits:
            if used and init is not None and not callable(init):
                raise initialiser_type_error(owner_name(self), name, init)
        dtype = param_dtype(dtype)
        keys = jr.split(key, depth + 1)

        def linear(n_in: Any, n_out: Any, bias: bool, k: PRNGKeyArray) -> Linear:
            return Linear(
                n_in, n_out, bias, dtype, weight_init=weight_init,
                bias_init=bias_init, key=k,
            )  # fmt: skip

        if depth == 0:
            layers = [linear(in_size, out_size, use_final_bias, keys[0])]
        else:
            hidden = lambda k: linear(width_size, width_size, use_bias, k)
            layers = [linear(in_size, width_size, use_bias, keys[0])]
            if scan:
                layers.append(jax.vmap(hidden)(keys[1:depth]))
            else:
                layers.extend(hidden(keys[i]) for i in range(1, depth))
            layers.append(linear(width_size, out_size, use_final_bias, keys[depth]))
        self.layers = tuple(layers)
        self.activation = _per_neuron(activation, (depth, width_size))
        if out_size == "scalar":
            self.final_activation = final_activation
        else:
            self.final_activation = _per_neuron(final_activation, (out_size,))
        self.use_bias = use_bias
        self.use_final_bias = use_final_bias
        self.in_size = in_size
        self.out_size = out_size
        self.width_size = width_size
        self.depth = depth
        self.scan = scan

    @jax.named_scope("ecliptic.nn.MLP")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(in_size,)` (or `()` if `in_size="scalar"`).
            Batch with `jax.vmap(mlp)(x)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(out_size,)` (or `()` if
        `out_size="scalar"`).
        """
        del key
        if not isinstance(x, jax.Array):
            x = jnp.asarray(x)
        self._check_input(x)
        if self.depth == 0:
            x = self.layers[0](x)
        elif self.scan:
            first, hidden, last = self.layers
            x = _map_neurons(_select(self.activation, 0), first(x))

            def step(h: Array, layer_and_index: tuple[Linear, Array]) -> tuple:
                layer, i = layer_and_index
                return _map_neurons(_select(self.activation, i), layer(h)), None

            steps = (hidden, jnp.arange(1, self.depth))
            x, _ = lax.scan(step, x, steps)
            x = last(x)
        else:
            for i, layer in enumerate(self.layers[:-1]):
                x = _map_neurons(_select(self.activation, i), layer(x))
            x = self.layers[-1](x)
        if self.out_size == "scalar":
            return self.final_activation(x)
        return _map_neurons(self.final_activation, x)

    def _check_input(self, x: Array) -> None:
        def subject() -> str:
            return describe(
                self,
                in_size=self.in_size,
                out_size=self.out_size,
                width_size=self.width_size,
                depth=self.depth,
            )

        if self.in_size == "scalar":
            check_shape(subject, x, ())
        else:
            names = (f"in_size={self.in_size}",)
            check_shape(subject, x, (self.in_size,), axis_names=names)
