import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

import ecliptic as eqx


class M(eqx.Module):
    weight: jax.Array
    name: str


def test_arrays_abbreviated():
    m = M(jnp.ones((3, 4)), "lin")
    assert eqx.tree_pformat(m) == "M(weight=f32[3,4], name='lin')"
    assert eqx.tree_pformat(jnp.array(1.0)) == "weak_f32[]"
    assert "f32[3,4]" not in eqx.tree_pformat(m, short_arrays=False)


def test_struct_as_array_and_truncate():
    s = jax.ShapeDtypeStruct((2,), jnp.int32)
    assert eqx.tree_pformat(s, struct_as_array=True) == "i32[2]"
    m = M(jnp.ones(2), "x")
    out = eqx.tree_pformat([m], truncate_leaf=lambda x: isinstance(x, M))
    assert out == "[M(...)]"


def test_width_breaks_lines():
    m = M(jnp.ones(2), "a" * 100)
    assert "\n" in eqx.tree_pformat(m, width=40)
    assert eqx.tree_pformat(m, width=40, indent=4).splitlines()[1].startswith("    ")


def test_numpy_and_partials(capsys):
    out = eqx.tree_pformat(np.ones((2, 2), np.float64))
    assert "f64[2,2]" in out
    p = jtu.Partial(lambda x: x, jnp.ones(3))
    assert eqx.tree_pformat(p).startswith("Partial(")
    eqx.tree_pprint({"a": jnp.zeros(2)})
    assert capsys.readouterr().out.strip() == "{'a': f32[2]}"
