"""Cross-cutting checks over every row of the layer table (`descriptors.ROWS`).

For every layer: eager call, `jax.jit`, `jax.vmap`, `jax.grad`, `filter_eval_shape`,
bfloat16, a leaf-by-leaf save/load round trip, and the single-example shape error.
float64 runs once, in one subprocess with x64 enabled, looping over all rows.

Calling convention for a row: `row.call(layer, *args, **kw)` if `row.call` is set,
else `layer(*args, **kw)`; `kw` is `{"key": key}` when `row.needs_key`. A stateful
row is built with `make_with_state(row.make)(key, dtype)` and gets `state` as an
extra last positional argument, returning `(out, state)`. A row with `axis_name`
is always called under `jax.vmap(..., axis_name=row.axis_name)` over a batch of 2.
"""

import io
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic

from .descriptors import ROWS
from .helpers import split


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOAT = ("float32", "float64", "bfloat16")


def build(row, key, dtype):
    """`(layer, state)`; `state` is `None` for stateless rows."""
    if row.stateful:
        return ecliptic.nn.make_with_state(row.make)(key, dtype)
    return row.make(key, dtype), None


def apply(row, layer, state, args, key):
    """One call of the layer on one example (or a named-axis batch)."""
    fn = row.call or (lambda layer, *a, **kw: layer(*a, **kw))
    kw = {"key": key} if row.needs_key else {}

    def one(args):
        if row.stateful:
            # A State is invalidated once used: call with a fresh clone each time.
            fresh = jax.tree.map(lambda x: x, state)
            out, _ = fn(layer, *args, fresh, **kw)
            return out
        return fn(layer, *args, **kw)

    if row.axis_name is None:
        return one(args)
    batched = jax.tree.map(lambda a: jnp.stack([a, a]), args)
    return jax.vmap(one, axis_name=row.axis_name)(batched)


def setup(row, dtype="float32", seed=0):
    k1, k2, k3 = jr.split(jr.PRNGKey(seed), 3)
    layer, state = build(row, k1, jnp.dtype(dtype))
    args = row.inputs(k2, jnp.dtype(dtype))
    return layer, state, args, k3


def jitted(row, layer, state, args, key):
    leaves, rebuild = split((layer, state, args, key))
    return jax.jit(lambda leaves: apply(row, *rebuild(leaves)))(leaves)


def float_leaves(tree):
    return [x for x in jax.tree.leaves(tree) if ecliptic.is_inexact_array(x)]


@pytest.fixture(params=ROWS, ids=[row.name for row in ROWS])
def row(request):
    return request.param


def test_eager_call_is_finite(row):
    out = apply(row, *setup(row))
    for x in jax.tree.leaves(out):
        assert bool(jnp.all(jnp.isfinite(x))), row.name


def test_jit_matches_eager(row):
    parts = setup(row)
    eager, compiled = apply(row, *parts), jitted(row, *parts)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(compiled), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_vmap_matches_a_loop(row):
    layer, state, _, key = setup(row)
    keys = jr.split(jr.PRNGKey(1), 3)
    examples = [row.inputs(k, jnp.dtype("float32")) for k in keys]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *examples)
    mapped = jax.vmap(lambda args: apply(row, layer, state, args, key))(batch)
    for i, args in enumerate(examples):
        want = apply(row, layer, state, args, key)
        got = jax.tree.map(lambda x, i=i: x[i], mapped)
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_grad_is_finite_and_shaped_like_the_parameters(row):
    layer, state, args, key = setup(row)
    params, rebuild = split((layer, args), lambda x: ecliptic.is_inexact_array(x))

    def loss(params):
        layer, args = rebuild(params)
        out = apply(row, layer, state, args, key)
        return sum(jnp.sum(jnp.real(x)) for x in float_leaves(out))

    grads = jax.grad(loss)(params)
    assert len(grads) == len(params) > 0
    for g, p in zip(grads, params, strict=True):
        assert g.shape == p.shape and g.dtype == p.dtype
        assert bool(jnp.all(jnp.isfinite(g)))


def test_eval_shape_matches_the_call(row):
    parts = setup(row)
    out = apply(row, *parts)
    eval_shape = getattr(ecliptic, "filter_eval_shape", None)
    if eval_shape is not None:
        shapes = eval_shape(lambda p: apply(row, *p), parts)
    else:
        leaves, rebuild = split(parts)
        shapes = jax.eval_shape(lambda leaves: apply(row, *rebuild(leaves)), leaves)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(shapes), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


def test_bfloat16(row):
    if "bfloat16" not in row.dtypes:
        pytest.skip(f"{row.name} does not support bfloat16")
    layer, state, args, key = setup(row, "bfloat16")
    # Weakly typed leaves (e.g. PReLU's default slope) adopt the input's dtype.
    strong = [x for x in float_leaves((layer, args)) if not x.weak_type]
    assert all(x.dtype == jnp.bfloat16 for x in strong), row.name
    for x in float_leaves(apply(row, layer, state, args, key)):
        assert x.dtype == jnp.bfloat16, row.name


def test_serialise_roundtrip(row):
    """Save with `tree_serialise_leaves`, load into a layer built from another key:
    the loaded layer computes exactly what the saved one did."""
    layer, state, args, key = setup(row)
    other, other_state, _, _ = setup(row, seed=7)
    buffer = io.BytesIO()
    ecliptic.tree_serialise_leaves(buffer, (layer, state))
    buffer.seek(0)
    loaded, loaded_state = ecliptic.tree_deserialise_leaves(
        buffer, (other, other_state)
    )
    want = apply(row, layer, state, args, key)
    got = apply(row, loaded, loaded_state, args, key)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(loaded) == jax.tree.structure(other)


def test_wrong_rank_raises_value_error(row):
    if row.wrong_input is None:
        pytest.skip(f"{row.name} accepts inputs of any shape")
    layer, state, _, key = setup(row)
    wrong = row.wrong_input(jr.PRNGKey(3), jnp.dtype("float32"))
    with pytest.raises(ValueError, match=row.wrong_match):
        apply(row, layer, state, wrong, key)
    with pytest.raises(ValueError, match=row.wrong_match):
        jitted(row, layer, state, wrong, key)


def test_every_core_layer_has_a_row():
    made = {type(build(row, jr.PRNGKey(0), jnp.float32)[0]).__name__ for row in ROWS}
    core = {
        "Linear", "Identity", "MLP", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
        "ConvTranspose2d", "ConvTranspose3d", "AvgPool1d", "MaxPool2d", "AvgPool3d",
        "AdaptiveMaxPool1d", "AdaptiveAvgPool2d", "Embedding",
        "RotaryPositionalEmbedding", "Dropout", "PReLU",
    }  # fmt: skip
    assert core <= made, core - made


_FLOAT64_SCRIPT = """
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
import jax.numpy as jnp
import ecliptic as eqx
from tests.nn.test_all_layers import ROWS, apply, build, float_leaves, setup


def dtypes(row):
    layer, state, args, key = setup(row, "float64")
    default, _ = build(row, jax.random.PRNGKey(0), None)
    out = apply(row, layer, state, args, key)
    made = [str(x.dtype) for x in float_leaves((layer, default, args))]
    return made, [str(x.dtype) for x in float_leaves(out)]


checked = []
for row in ROWS:
    if "float64" not in row.dtypes:
        continue
    # Traced, not run (the dtypes are the same, in a fraction of the time).
    made, out = eqx.filter_eval_shape(dtypes, row)
    assert made and out, row.name
    assert set(made) == set(out) == {"float64"}, (row.name, made, out)
    checked.append(row.name)
print("checked", len(checked))
"""


def test_float64_in_one_subprocess():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "src"), ROOT])
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FLOAT64_SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    n = sum("float64" in row.dtypes for row in ROWS)
    assert f"checked {n}" in result.stdout
