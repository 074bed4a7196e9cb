import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec as P

import ecliptic as eqx

from .helpers import xla_flags


def test_shard_single_device_outside_jit():
    device = jax.devices()[0]
    x = {"a": jnp.ones(3), "fn": jnp.sin, "n": 3}
    out = eqx.filter_shard(x, device)
    assert out["fn"] is jnp.sin and out["n"] == 3
    assert out["a"].sharding == jax.sharding.SingleDeviceSharding(device)


def _run_multidevice(code: str) -> str:
    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags(8)
    env["JAX_PLATFORMS"] = "cpu"
    src = os.path.join(os.path.dirname(os.path.dirname(__file__)), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    prelude = "import jax\nassert len(jax.devices()) == 8, jax.devices()\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.multidevice
def test_shard_on_mesh_inside_and_outside_jit():
    out = _run_multidevice(
        """
        import jax, jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import ecliptic as eqx

        mesh = Mesh(jax.devices(), ("data",))
        rows = NamedSharding(mesh, P("data"))
        whole = NamedSharding(mesh, P())
        batch = {"x": jnp.ones((16, 4)), "name": "b"}
        placed = eqx.filter_shard(batch, rows)
        assert placed["name"] == "b"
        assert placed["x"].sharding == rows, placed["x"].sharding
        assert len(placed["x"].addressable_shards) == 8
        assert placed["x"].addressable_shards[0].data.shape == (2, 4)

        @jax.jit
        def step(x):
            y = eqx.filter_shard({"y": x * 2, "s": 1}, whole)["y"]
            return eqx.filter_shard(y, rows)

        out = step(placed["x"])
        assert out.sharding == rows, out.sharding
        # Prefix tree of shardings: one per top-level entry.
        both = eqx.filter_shard({"a": jnp.ones(8), "b": jnp.ones(8)},
                                {"a": rows, "b": whole})
        assert both["a"].sharding == rows and both["b"].sharding == whole
        print("ok")
        """
    )
    assert out.strip().endswith("ok")


@pytest.mark.multidevice
def test_pmap_over_eight_devices():
    out = _run_multidevice(
        """
        import warnings
        import jax, jax.numpy as jnp, numpy as np
        import ecliptic as eqx

        @eqx.filter_pmap(axis_name="i")
        def f(x, scale, name):
            return jax.lax.psum(x * scale, "i"), name

        x = jnp.arange(8.0)
        total, name = f(x, 2.0, "n")
        assert name == "n"
        np.testing.assert_allclose(total, np.full(8, 56.0))
        assert len(total.sharding.device_set) == 8, total.sharding

        g = eqx.filter_pmap(lambda x, y: x + y, in_axes=(0, None), donate="all")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = g(jnp.ones((8, 2)), jnp.arange(2.0))
        np.testing.assert_allclose(out, np.ones((8, 2)) + np.arange(2.0))
        assert len(out.sharding.device_set) == 8

        h = eqx.filter_pmap(lambda x: (x, jnp.sum(jnp.ones(3))), out_axes=(1, None))
        a, b = h(jnp.ones((8, 3)))
        assert a.shape == (3, 8) and b.shape == ()
        compiled = eqx.filter_pmap(lambda x: x * 3).lower(jnp.ones((8, 1))).compile()
        np.testing.assert_allclose(compiled(jnp.ones((8, 1))), 3 * np.ones((8, 1)))
        print("ok")
        """
    )
    assert out.strip().endswith("ok")


def test_pmap_and_shard_agree_with_numpy_on_one_device():
    x = jnp.arange(3.0)
    out = eqx.filter_pmap(lambda x: x * 2)(x[None])
    np.testing.assert_allclose(out[0], 2 * np.asarray(x))


# -- declared sharding: rules, plan, presets (single process) -----------------------

MESH = AbstractMesh((2, 4), ("data", "model"))


class Block(eqx.Module):
    proj: eqx.nn.Linear
    layers: tuple
    table: dict
    scale: jax.Array
    act: object

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.proj = eqx.nn.Linear(16, 8, key=k1)
        self.layers = (eqx.nn.Linear(8, 12, key=k2), eqx.nn.Linear(12, 4, key=k3))
        self.table = {"emb": jnp.zeros((6, 8)), "pos": jnp.zeros((3, 8))}
        self.scale = jnp.ones(())
        self.act = jax.nn.relu


def _specs(model, rules, mesh=MESH):
    """`{dotted path: spec}` of the plan, through the public plan only."""
    plan = eqx.sharding_plan(model, mesh, rules)
    pairs = jax.tree_util.tree_flatten_with_path(plan)[0]
    out = {}
    for keys, sharding in pairs:
        assert isinstance(sharding, NamedSharding)
        name = jax.tree_util.keystr(keys, simple=True, separator=".")
        out[name] = sharding.spec
    return out


def test_plan_structure_and_default_replication():
    model = Block(jax.random.PRNGKey(0))
    plan = eqx.sharding_plan(model, MESH, eqx.ShardingRules())
    assert type(plan) is Block and plan.act is None
    arrays = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    shardings = jax.tree.leaves(plan)
    assert len(shardings) == len(arrays) == 9
    assert all(s == NamedSharding(MESH, P()) for s in shardings)
    # An abstract model plans the same.
    abstract = eqx.filter_eval_shape(Block, jax.random.PRNGKey(0))
    assert jax.tree.leaves(eqx.sharding_plan(abstract, MESH, eqx.ShardingRules()))


def test_glob_regex_and_type_rules_first_match_wins():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(
        ("layers.*.weight", P("model", None)),
        (re.compile(r"table\.(emb|pos)"), P(None, "model")),
        ((eqx.nn.Linear, "*"), P("data")),
        ("**.weight", P(None, "data")),  # shadowed by the rules above: never used
        strict=False,
    )
    specs = _specs(model, rules)
    assert specs["layers.0.weight"] == P("model", None)
    assert specs["layers.1.weight"] == P("model", None)
    assert specs["table.emb"] == specs["table.pos"] == P(None, "model")
    assert specs["proj.weight"] == specs["proj.bias"] == P("data")
    assert specs["layers.0.bias"] == P("data")
    assert specs["scale"] == P()


def test_deep_type_field_and_owner_callable():
    model = Block(jax.random.PRNGKey(0))
    seen = []

    def by_owner(path, shape, mesh, *, owner):
        seen.append((path, type(owner).__name__, shape))
        return P("model") if shape[0] % mesh.shape["model"] == 0 else None

    specs = _specs(model, eqx.ShardingRules(((Block, "layers.*.bias"), by_owner)))
    assert seen == [("layers.0.bias", "Block", (12,)), ("layers.1.bias", "Block", (4,))]
    assert specs["layers.0.bias"] == specs["layers.1.bias"] == P("model")
    # A direct field: only arrays held by the instance itself (not by sub-Modules).
    specs = _specs(model, eqx.ShardingRules(((Block, "*"), P())), MESH)
    assert specs["scale"] == P()
    with pytest.raises(ValueError, match=r"rule 0 \(\(Block, 'layers'\) -> P\(\)\)"):
        eqx.sharding_plan(model, MESH, eqx.ShardingRules(((Block, "layers"), P())))


def test_plain_callable_gets_path_shape_mesh():
    model = Block(jax.random.PRNGKey(0))
    calls = []

    def spec(path, shape, mesh):
        calls.append((path, shape, dict(mesh.shape)))
        return P(None, "data")

    specs = _specs(model, eqx.ShardingRules(("table.*", spec)))
    assert calls == [
        ("table.emb", (6, 8), {"data": 2, "model": 4}),
        ("table.pos", (3, 8), {"data": 2, "model": 4}),
    ]
    assert specs["table.emb"] == P(None, "data")


def test_add_and_batch():
    a = eqx.ShardingRules(("proj.weight", P("model")), name="a")
    b = eqx.data_parallel("data")
    both = a + b
    assert both.batch == P("data") and both.name == "a + data_parallel('data')"
    assert both.rules == a.rules + b.rules
    assert (b + a).batch == P("data")
    assert both.batch_sharding(MESH) == NamedSharding(MESH, P("data"))
    assert len(eqx.fsdp() + a) == 2
    with pytest.raises(AttributeError, match="immutable"):
        a.batch = P()  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(AttributeError, match=r"immutable, but `\.rules` was"):
        del a.rules
    with pytest.raises(TypeError):
        a + 1  # pyright: ignore[reportOperatorIssue]


@pytest.mark.parametrize(
    "glob, selected",
    [
        ("enc.*.w", ["enc.a.w", "enc.b.w"]),
        ("**.w", ["w", "enc.a.w", "enc.b.w", "enc.b.c.w"]),
        ("enc.**", ["enc.a.w", "enc.b.w", "enc.b.c.w"]),
        ("enc.**.w", ["enc.a.w", "enc.b.w", "enc.b.c.w"]),
        ("enc.b*.**", ["enc.b.w", "enc.b.c.w"]),
        ("**", ["w", "enc.a.w", "enc.b.w", "enc.b.c.w"]),
    ],
)
def test_glob_segments(glob, selected):
    tree = {
        "w": jnp.zeros(2),
        "enc": {
            "a": {"w": jnp.zeros(2)},
            "b": {"w": jnp.zeros(2), "c": {"w": jnp.zeros(2)}},
        },
    }
    specs = _specs(tree, eqx.ShardingRules((glob, P("data"))))
    assert sorted(k for k, v in specs.items() if v == P("data")) == sorted(selected)


def test_describe_sharding_rows_and_totals():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(("layers.0.weight", P("model", None)), name="mine")
    text = eqx.describe_sharding(model, MESH, rules)
    lines = text.splitlines()
    assert lines[0].startswith("Sharding 'mine' on mesh {'data': 2, 'model': 4}")
    row = next(line for line in lines if line.startswith("layers.0.weight"))
    assert "(12, 8)" in row and "float32" in row and "P('model', None)" in row
    assert row.endswith(f"{12 * 8 * 4 // 4} B")
    arrays = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    whole = sum(x.size * x.dtype.itemsize for x in arrays)
    per_device = whole - 12 * 8 * 4 * 3 // 4
    assert f"per device ({per_device:,} bytes, " in lines[-1]
    assert f"of the {whole:,} bytes unsharded), {len(arrays)} arrays." in lines[-1]
    assert len(lines) == len(arrays) + 3


def test_fsdp_largest_divisible_dimension():
    model = {
        "big": jnp.zeros((6, 16)),  # 16 divisible by 2, 6 too: the larger one
        "tie": jnp.zeros((8, 8)),  # tie: the first
        "odd": jnp.zeros((5, 7)),  # nothing divisible: replicated
        "small": jnp.zeros((2,)),  # below min_size: replicated
        "flag": True,
    }
    specs = _specs(model, eqx.fsdp("data", min_size=16))
    assert specs["big"] == P(None, "data")
    assert specs["tie"] == P("data")
    assert specs["odd"] == specs["small"] == P()
    assert eqx.fsdp().batch == P("data") and eqx.data_parallel().rules == ()


def test_shard_model_on_one_device_and_dry_run():
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    model = Block(jax.random.PRNGKey(0))
    sharded = eqx.shard_model(model, mesh, eqx.fsdp(min_size=0))
    assert sharded.act is jax.nn.relu
    # (8, 16): the larger dimension is split.
    assert sharded.proj.weight.sharding == NamedSharding(mesh, P(None, "data"))
    assert eqx.tree_equal(sharded, model) is True
    # `jax.make_mesh` gives `Explicit` axes: placing works the same.
    explicit = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    placed = eqx.shard_model(model, explicit, eqx.fsdp(min_size=0))
    assert placed.proj.weight.sharding.spec == P(None, "data")


def test_error_spec_does_not_divide():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(("table.pos", P("model", None)))
    with pytest.raises(
        ValueError,
        match=r"`table\.pos` \(shape \(3, 8\)\) is given P\('model', None\) by rule 0 "
        r".*dimension 0 \(size 3\) over mesh axis 'model' of size 4.*3 is not "
        r"divisible by 4.*dimension 1, of size 8",
    ):
        eqx.sharding_plan(model, MESH, rules)
    two = eqx.ShardingRules(("table.pos", P(None, ("data", "model"))))
    with pytest.raises(ValueError, match=r"mesh axis \('data', 'model'\) of size 8"):
        eqx.sharding_plan({"table": {"pos": jnp.zeros((3, 4))}}, MESH, two)


def test_error_unknown_mesh_axis():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(("proj.weight", P("modle")))
    with pytest.raises(
        ValueError,
        match=r"`proj\.weight`.*names mesh axis 'modle'.*\('data', 'model'\)",
    ):
        eqx.describe_sharding(model, MESH, rules)
    with pytest.raises(ValueError, match=r"the batch of inputs .* axis 'batch'"):
        eqx.data_parallel("batch").batch_sharding(MESH)
    with pytest.raises(ValueError, match=r"sharding_plan: the batch of inputs"):
        eqx.sharding_plan(model, MESH, eqx.data_parallel("batch"))
    with pytest.raises(ValueError, match=r"FSDP preset on axis 'batch'"):
        eqx.sharding_plan(model, MESH, eqx.fsdp("batch", min_size=0))


def test_error_too_many_entries_and_repeated_axis():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(("proj.bias", P("data", None)))
    with pytest.raises(
        ValueError, match=r"`proj\.bias` \(shape \(8,\), float32\) has 1 dimension"
    ):
        eqx.sharding_plan(model, MESH, rules)
    rules = eqx.ShardingRules(("table.emb", P("data", "data")))
    with pytest.raises(ValueError, match="uses mesh axis 'data' more than once"):
        eqx.sharding_plan(model, MESH, rules)


def test_error_rule_matches_nothing():
    model = Block(jax.random.PRNGKey(0))
    rules = eqx.ShardingRules(("layers.*.wieght", P("model")))
    with pytest.raises(
        ValueError,
        match=r"rule 0 \('layers\.\*\.wieght' -> P\('model'\)\) matched none.*"
        r"'proj\.weight', 'proj\.bias'",
    ):
        eqx.sharding_plan(model, MESH, rules)
    lenient = eqx.ShardingRules(("layers.*.wieght", P("model")), strict=False)
    assert eqx.sharding_plan(model, MESH, lenient) is not None


def test_error_argument_types():
    with pytest.raises(TypeError, match=r"pair `\(match, spec\)`, but rule 0"):
        eqx.ShardingRules("proj.weight")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="`match` of rule 0 .* got 3"):
        eqx.ShardingRules((3, P()))
    with pytest.raises(TypeError, match=r"`spec` of rule 0 .*A plain tuple"):
        eqx.ShardingRules(("a", ("data",)))
    with pytest.raises(TypeError, match=r"`spec` of rule 0 .*got 'data'"):
        eqx.ShardingRules(("a", "data"))
    with pytest.raises(TypeError, match="expected `batch` to be a"):
        eqx.ShardingRules(batch="data")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="expected `name` to be a str"):
        eqx.ShardingRules(name=3)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="expected `axis` to be a str"):
        eqx.fsdp(0)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`min_size`.*got -1"):
        eqx.fsdp(min_size=-1)
    with pytest.raises(TypeError, match=r"sharding_plan expected `mesh`.*got tuple"):
        eqx.sharding_plan({}, (2, 4), eqx.fsdp())  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"expected `rules` to be an"):
        eqx.sharding_plan({}, MESH, [("a", P())])  # pyright: ignore[reportArgumentType]
    bad = eqx.ShardingRules(("proj.weight", lambda path, shape, mesh: "data"))
    with pytest.raises(TypeError, match=r"`proj\.weight`.*returned 'data'"):
        eqx.sharding_plan(Block(jax.random.PRNGKey(0)), MESH, bad)


# -- filter_shard_map (single process: a one-device mesh) ---------------------------


def _one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), ("data",))


def test_filter_shard_map_module_and_static_outputs():
    mesh = _one_device_mesh()
    model = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.PRNGKey(0))

    def f(model, x, tag):
        y = jax.vmap(model)(x)
        return {"sum": jax.lax.psum(jnp.sum(y), "data")[None], "y": y, "tag": tag * 2}

    mapped = eqx.filter_shard_map(
        f, mesh=mesh, in_specs=(P(), P("data"), None), out_specs=P("data")
    )
    x = jnp.arange(12.0).reshape(4, 3)
    out = mapped(model, x, "ab")
    assert out["tag"] == "abab"
    expected = jax.vmap(model)(x)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["sum"], jnp.sum(expected)[None], rtol=1e-6)
    # A Module as `fun` (its arrays replicated), one spec for every argument.
    total = eqx.filter_shard_map(
        model, mesh=mesh, in_specs=P(), out_specs=P(), check_vma=False
    )(x[0])
    np.testing.assert_allclose(total, model(x[0]), rtol=1e-6)
    jitted = eqx.filter_jit(mapped)(model, x, "c")
    np.testing.assert_allclose(jitted["y"], expected, rtol=1e-6)


def test_filter_shard_map_errors():
    mesh = _one_device_mesh()
    f = eqx.filter_shard_map(
        lambda x, y: x + y, mesh=mesh, in_specs=(P(), P()), out_specs=P()
    )
    with pytest.raises(TypeError, match=r"positional arguments only .*\('y',\)"):
        f(jnp.ones(2), y=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`in_specs` to be a PartitionSpec, or a"):
        f(jnp.ones(2), jnp.ones(2), jnp.ones(2))
    with pytest.raises(TypeError, match=r"leaves of `in_specs`.*got 'data'"):
        eqx.filter_shard_map(lambda x: x, mesh=mesh, in_specs=("data",), out_specs=P())
    with pytest.raises(TypeError, match=r"filter_shard_map expected `mesh`"):
        eqx.filter_shard_map(lambda x: x, mesh=None, in_specs=P(), out_specs=P())  # pyright: ignore[reportArgumentType]
    g = eqx.filter_shard_map(
        lambda x: x, mesh=mesh, in_specs=(P("model"),), out_specs=P()
    )
    with pytest.raises(ValueError, match=r"`args\[0\]` .*names mesh axis 'model'"):
        g(jnp.ones(2))
    h = eqx.filter_shard_map(
        lambda x: (x, x), mesh=mesh, in_specs=P(), out_specs=(P(), P(), P())
    )
    with pytest.raises(ValueError, match=r"`out_specs` to be a PartitionSpec"):
        h(jnp.ones(2))


# -- declared sharding on eight simulated devices (one subprocess) -------------------

_EIGHT_DEVICE_CHECKS = """
import io, os
import jax, jax.numpy as jnp, jax.random as jr, numpy as np, optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ecliptic as eqx

TMP = TMP_PATH


class Net(eqx.Module):
    attn: eqx.nn.MultiheadAttention
    mlp: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jr.split(key, 3)
        self.attn = eqx.nn.MultiheadAttention(4, 16, use_query_bias=True, key=k1)
        self.mlp = eqx.nn.MLP(16, 16, 64, 2, key=k2)
        self.head = eqx.nn.Linear(16, 8, key=k3)

    def __call__(self, x):
        x = x + self.attn(x, x, x)
        x = x + jax.vmap(self.mlp)(x)
        return jax.vmap(self.head)(x)


def arrays(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_array))


def loss_fn(model, x, y, batch):
    out = jax.vmap(model)(x)
    if batch is not None:
        out = eqx.filter_shard(out, batch)
    return jnp.mean((out - y) ** 2), out


def train(model, x, y, plan, batch=None, steps=2):
    opt = optax.sgd(0.05, momentum=0.9)
    params = eqx.filter(model, eqx.is_array)
    state = opt.init(params)
    if plan is not None:  # the optimiser state follows the parameters
        for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(state), strict=True):
            assert m.sharding.is_equivalent_to(p.sharding, p.ndim), m.sharding

    @eqx.filter_jit
    def step(model, state, x, y):
        grad = eqx.filter_value_and_grad(loss_fn, has_aux=True)
        (loss, out), grads = grad(model, x, y, batch)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        model = eqx.apply_updates(model, updates)
        if plan is not None:
            model = eqx.filter_shard(model, plan)
        return model, state, loss, out

    losses = []
    for _ in range(steps):
        model, state, loss, out = step(model, state, x, y)
        losses.append(float(loss))
    return model, out, losses


devices = np.array(jax.devices())
line = Mesh(devices, ("data",))
grid = Mesh(devices.reshape(2, 4), ("data", "model"))
model = Net(jr.PRNGKey(0))
x = jr.normal(jr.PRNGKey(1), (8, 4, 16))
y = jr.normal(jr.PRNGKey(2), (8, 4, 8))
_, _, reference = train(model, x, y, None)

presets = {
    "dp": (line, eqx.data_parallel()),
    "fsdp": (line, eqx.fsdp(min_size=64)),
    "tp": (grid, eqx.tensor_parallel() + eqx.data_parallel()),
    "fsdp_tp": (grid, eqx.fsdp_tensor_parallel(min_size=64)),
}
for name, (mesh, rules) in presets.items():
    plan = eqx.sharding_plan(model, mesh, rules)
    sharded = eqx.shard_model(model, mesh, rules)
    split = 0
    for a, s in zip(arrays(sharded), jax.tree.leaves(plan), strict=True):
        assert a.sharding.is_equivalent_to(s, a.ndim), (name, a.sharding, s)
        local = a.addressable_shards[0].data.shape
        assert local == s.shard_shape(a.shape), (name, local, s)
        split += local != a.shape
    assert (split > 0) == (name != "dp"), (name, split)
    if name in ("fsdp", "fsdp_tp"):
        # Training, here for the presets with sharded parameters on each mesh
        # (every preset trains to the single-device loss in
        # `examples/parallelism.py`, which its smoke test asserts).
        batch = rules.batch_sharding(mesh)
        xs, ys = jax.device_put((x, y), batch)
        trained, out, losses = train(sharded, xs, ys, plan, batch)
        np.testing.assert_allclose(losses, reference, rtol=1e-5)
        for a, s in zip(arrays(trained), jax.tree.leaves(plan), strict=True):
            assert a.sharding.is_equivalent_to(s, a.ndim), (name, a.sharding, s)
        assert out.sharding.is_equivalent_to(batch, out.ndim), (name, out.sharding)
    print("preset", name, split)

# filter_jit's out_shardings: the returned model is laid out by the plan.
plan = eqx.sharding_plan(model, line, eqx.fsdp(min_size=64))
double = eqx.filter_jit(
    lambda m: eqx.apply_updates(m, eqx.filter(m, eqx.is_array)), out_shardings=plan
)
doubled = double(model)
for a, s in zip(arrays(doubled), jax.tree.leaves(plan), strict=True):
    assert a.sharding.is_equivalent_to(s, a.ndim), (a.sharding, s)
twice = eqx.apply_updates(model, eqx.filter(model, eqx.is_array))
assert eqx.tree_equal(doubled, twice)
print("out_shardings")

# Adam's moments are laid out like the parameters (`init` run eagerly).
params = eqx.filter(eqx.shard_model(model, line, eqx.fsdp(min_size=64)), eqx.is_array)
state = optax.adam(1e-3).init(params)
moments = jax.tree.leaves(state[0].mu) + jax.tree.leaves(state[0].nu)
for p, m in zip(jax.tree.leaves(params) * 2, moments, strict=True):
    assert m.sharding.is_equivalent_to(p.sharding, p.ndim), m.sharding
print("optax")


# filter_shard_map: a Module (with non-array leaves) replicated, the batch split.
def per_device(model, x, tag):
    y = jax.vmap(model)(x)
    return jax.lax.psum(jnp.sum(y), "data"), y, tag + "!"


mapped = eqx.filter_shard_map(
    per_device, mesh=line, in_specs=(P(), P("data"), None),
    out_specs=(P(), P("data"), None),
)
xs = jax.device_put(x, NamedSharding(line, P("data")))
total, outs, tag = eqx.filter_jit(mapped)(model, xs, "t")
expected = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, x)
assert tag == "t!"
np.testing.assert_allclose(total, jnp.sum(expected), rtol=1e-5)
np.testing.assert_allclose(outs, expected, rtol=1e-5, atol=1e-6)
assert outs.sharding.is_equivalent_to(NamedSharding(line, P("data")), outs.ndim)
print("shard_map")

# orbax: saved from one layout, restored onto the same mesh and onto another.
params = eqx.filter(eqx.shard_model(model, line, eqx.fsdp(min_size=64)), eqx.is_array)
with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(TMP, "ckpt"), params)
    ckptr.wait_until_finished()
    for mesh, rules in (
        (line, eqx.fsdp(min_size=64)),
        (grid, eqx.fsdp_tensor_parallel(min_size=64)),
    ):
        plan = eqx.sharding_plan(model, mesh, rules)
        like = jax.tree.map(
            lambda p, s: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s),
            params, plan,
        )
        back = ckptr.restore(os.path.join(TMP, "ckpt"), like)
        leaves = zip(jax.tree.leaves(back), jax.tree.leaves(params),
                     jax.tree.leaves(plan), strict=True)
        for a, b, s in leaves:
            assert a.sharding.is_equivalent_to(s, a.ndim), (a.sharding, s)
            np.testing.assert_array_equal(a, b)
        print("orbax", dict(mesh.shape))

# tree_serialise_leaves gathers a sharded model; loading then placing restores it.
rules = eqx.fsdp_tensor_parallel(min_size=64)
buffer = io.BytesIO()
eqx.tree_serialise_leaves(buffer, eqx.shard_model(model, grid, rules))
buffer.seek(0)
loaded = eqx.tree_deserialise_leaves(buffer, model)
assert eqx.tree_equal(loaded, model) is True
plan = eqx.sharding_plan(loaded, grid, rules)
for a, s in zip(arrays(eqx.filter_shard(loaded, plan)), jax.tree.leaves(plan)):
    assert a.sharding.is_equivalent_to(s, a.ndim)
print("serialise")
"""


@pytest.mark.multidevice
def test_declared_sharding_on_eight_devices(tmp_path):
    code = _EIGHT_DEVICE_CHECKS.replace("TMP_PATH", repr(str(tmp_path)))
    out = _run_multidevice(code).split("\n")
    presets = {
        line.split()[1]: int(line.split()[2])
        for line in out
        if line.startswith("preset")
    }
    assert presets.keys() == {"dp", "fsdp", "tp", "fsdp_tp"}
    assert presets["dp"] == 0 and min(presets["fsdp"], presets["tp"]) > 0
    assert "optax" in out and "shard_map" in out and "serialise" in out
    assert "out_shardings" in out
    assert "orbax {'data': 8}" in out and "orbax {'data': 2, 'model': 4}" in out
