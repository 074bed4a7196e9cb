"""The tensor-parallel presets (`ecliptic.tensor_parallel`,
`ecliptic.fsdp_tensor_parallel`): the spec each layer's arrays get, checked on an
abstract mesh (no devices needed). Training with them on eight simulated devices is
checked in `test_sharding.py`."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jax.sharding import AbstractMesh, NamedSharding, PartitionSpec as P

import ecliptic as eqx


MESH = AbstractMesh((2, 4), ("data", "model"))


class Net(eqx.Module):
    attn: eqx.nn.MultiheadAttention
    mlp: eqx.nn.MLP
    norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, key, *, heads=4, kv_heads=None, depth=3, scan=False):
        k1, k2, k3 = jr.split(key, 3)
        self.attn = eqx.nn.MultiheadAttention(
            heads, 32, use_query_bias=True, use_output_bias=True,
            num_kv_heads=kv_heads, key=k1,
        )  # fmt: skip
        self.mlp = eqx.nn.MLP(32, 32, 64, depth, scan=scan, key=k2)
        self.norm = eqx.nn.LayerNorm(32)
        self.head = eqx.nn.Linear(32, 10, key=k3)


def _net(**kwargs):
    """An abstract `Net` (`jax.ShapeDtypeStruct` leaves): nothing is computed."""
    return eqx.filter_eval_shape(lambda: Net(jr.PRNGKey(0), **kwargs))


def _specs(model, rules, mesh=MESH):
    plan = eqx.sharding_plan(model, mesh, rules)
    out = {}
    for keys, sharding in jax.tree_util.tree_flatten_with_path(plan)[0]:
        assert isinstance(sharding, NamedSharding)
        out[jax.tree_util.keystr(keys, simple=True, separator=".")] = sharding.spec
    return out


def test_megatron_specs():
    net = _net()
    specs = _specs(net, eqx.tensor_parallel("model"))
    column, row = P("model", None), P(None, "model")
    # Attention: q/k/v split by heads (column), output projection row-parallel.
    for proj in ("query_proj", "key_proj", "value_proj"):
        assert specs[f"attn.{proj}.weight"] == column
    assert specs["attn.query_proj.bias"] == P("model")
    assert specs["attn.output_proj.weight"] == row
    assert specs["attn.output_proj.bias"] == P()
    # MLP: column, row, column, row.
    for i in range(4):
        weight, bias = specs[f"mlp.layers.{i}.weight"], specs[f"mlp.layers.{i}.bias"]
        assert (weight, bias) == ((column, P("model")) if i % 2 == 0 else (row, P()))
    # A bare Linear is column-parallel, but 10 outputs do not split 4 ways.
    assert specs["head.weight"] == specs["head.bias"] == P()
    # Everything else is replicated, and so are the inputs.
    assert specs["norm.weight"] == specs["norm.bias"] == P()
    assert eqx.tensor_parallel().batch == P()
    wide = eqx.nn.Linear(3, 8, key=jr.PRNGKey(1))
    assert _specs(wide, eqx.tensor_parallel())["weight"] == column


def test_stacked_layers_keep_their_leading_axis():
    net = _net(depth=3, scan=True)
    specs = _specs(net, eqx.tensor_parallel())
    assert net.mlp.layers[1].weight.shape == (2, 64, 64)
    assert specs["mlp.layers.1.weight"] == P(None, None, "model")
    assert specs["mlp.layers.2.weight"] == P("model", None)


def test_fsdp_tensor_parallel_specs():
    net = _net()
    rules = eqx.fsdp_tensor_parallel("data", "model", min_size=256)
    specs = _specs(net, rules)
    assert rules.batch == P("data")
    # (32, 32) query weight: heads on "model", FSDP on the other dimension.
    assert specs["attn.query_proj.weight"] == P("model", "data")
    assert specs["attn.output_proj.weight"] == P("data", "model")
    # (64, 32) first MLP layer: out on "model", so "data" takes `in`.
    assert specs["mlp.layers.0.weight"] == P("model", "data")
    # Small arrays keep the tensor-parallel spec alone (or are replicated).
    assert specs["mlp.layers.0.bias"] == P("model")
    assert specs["norm.weight"] == P()
    # (10, 32) head: not split by "model" (10 % 4), so FSDP on its largest dim.
    assert specs["head.weight"] == P(None, "data")
    everything = _specs(net, eqx.fsdp_tensor_parallel(min_size=0))
    assert everything["norm.weight"] == P("data")
    assert everything["mlp.layers.0.bias"] == P(
        "model"
    )  # its one dimension is taken by "model"


def test_heads_must_divide():
    with pytest.raises(
        ValueError,
        match=r"`attn\.query_proj\.weight` is split by heads over mesh axis 'model' "
        r"of size 4, so `num_heads` must be divisible by 4, but the layer has "
        r"num_heads=2",
    ):
        eqx.sharding_plan(_net(heads=2), MESH, eqx.tensor_parallel())
    with pytest.raises(ValueError, match=r"`num_kv_heads`.*num_kv_heads=2"):
        net = _net(heads=8, kv_heads=2)
        eqx.sharding_plan(net, MESH, eqx.fsdp_tensor_parallel())
    # Eight heads, two key/value heads: fine on a 2-way model axis.
    small = AbstractMesh((4, 2), ("data", "model"))
    specs = _specs(_net(heads=8, kv_heads=2), eqx.tensor_parallel(), small)
    assert specs["attn.key_proj.weight"] == P("model", None)


def test_argument_errors():
    with pytest.raises(ValueError, match=r"two different mesh axes.*'data' for both"):
        eqx.fsdp_tensor_parallel("data", "data")
    with pytest.raises(TypeError, match="expected `model_axis` to be a str"):
        eqx.fsdp_tensor_parallel("data", None)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="expected `axis` to be a str"):
        eqx.tensor_parallel(1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`min_size`"):
        eqx.fsdp_tensor_parallel(min_size=1.5)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"names mesh axis 'tp'"):
        eqx.sharding_plan(_net(), MESH, eqx.tensor_parallel("tp"))


def test_model_without_attention_is_fine():
    mlp = eqx.nn.MLP(4, 4, 8, 1, key=jr.PRNGKey(0))
    specs = _specs({"mlp": mlp, "x": jnp.zeros(3)}, eqx.tensor_parallel())
    assert specs["mlp.layers.0.weight"] == P("model", None)
    assert specs["x"] == P()
