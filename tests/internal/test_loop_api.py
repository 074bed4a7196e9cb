"""`ecliptic.internal` loops: `scan`, nesting, forward mode, the primitives, and the
errors (same exception types as `equinox.internal`, run side by side)."""

from __future__ import annotations

import equinox.internal as eqxi
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic.internal as loops


LIBS = [loops, eqxi]


def _close(a, b, rtol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-6)


# ---------------------------------------------------------------------------------
# scan
# ---------------------------------------------------------------------------------


def _scan_f(carry, x):
    new = carry * jnp.cos(x) + x
    return new, (new**2, jnp.sin(carry))


@pytest.mark.parametrize(
    "kw",
    [
        {"kind": "lax"},
        {"kind": "checkpointed"},
        {"kind": "checkpointed", "checkpoints": 3},
    ]
    + [{"kind": "checkpointed", "checkpoints": "all"}],
)
def test_scan_matches_lax_scan_forward_and_grad(kw):
    xs = jnp.linspace(0.0, 1.0, 17)

    def loss(c0, xs, scan):
        carry, (ys, zs) = scan(c0, xs)
        return carry + jnp.sum(ys * jnp.arange(17.0)) + jnp.sum(zs)

    mine = jax.jit(
        lambda c0, xs: loss(c0, xs, lambda c, x: loops.scan(_scan_f, c, x, **kw))
    )
    ref = lambda c0, xs: loss(c0, xs, lambda c, x: jax.lax.scan(_scan_f, c, x))  # noqa: E731
    _close(mine(0.3, xs), ref(0.3, xs))
    got = jax.jit(jax.grad(lambda c, x: mine(c, x), argnums=(0, 1)))(0.3, xs)
    _close(got, jax.grad(ref, argnums=(0, 1))(0.3, xs))


def test_scan_length_without_xs_and_carry_buffers():
    def f(carry, _):
        i, hist = carry
        return (i + 1, hist.at[i].set(i * 2.0)), None

    (i, hist), ys = loops.scan(
        f,
        (0, jnp.zeros(5)),
        None,
        length=5,
        kind="checkpointed",
        buffers=lambda carry: carry[1],
    )
    assert int(i) == 5 and ys is None
    np.testing.assert_allclose(hist, 2.0 * np.arange(5))


# ---------------------------------------------------------------------------------
# Nesting, forward mode, jit.
# ---------------------------------------------------------------------------------


def test_nested_checkpointed_loops_grad():
    def inner_loss(y, w):
        def inner(val):
            j, z = val
            return j + 1, z + 0.1 * jnp.sin(w * z)

        def outer(val):
            i, y = val
            _, y = loops.while_loop(
                lambda v: v[0] < 3, inner, (0, y), kind="checkpointed", checkpoints=2
            )
            return i + 1, y * 0.9

        return loops.while_loop(
            lambda v: v[0] < 4, outer, (0, y), kind="checkpointed", checkpoints=2
        )[1]

    def ref(y, w):
        for _ in range(4):
            for _ in range(3):
                y = y + 0.1 * jnp.sin(w * y)
            y = y * 0.9
        return y

    y, w = jnp.array([0.5, -1.0]), jnp.array(1.7)
    got = jax.jit(jax.grad(lambda y, w: jnp.sum(inner_loss(y, w)), argnums=(0, 1)))(
        y, w
    )
    _close(got, jax.grad(lambda y, w: jnp.sum(ref(y, w)), argnums=(0, 1))(y, w))


def test_nested_buffer_written_by_inner_loop():
    def outer(val):
        i, buf = val

        def inner(v):
            j, b = v
            return j + 1, b.at[3 * i + j].set((i * 10 + j) * 1.0)

        _, buf = loops.while_loop(
            lambda v: v[0] < 3, inner, (0, buf), buffers=lambda v: v[1], kind="lax"
        )
        return i + 1, buf

    _, buf = loops.while_loop(
        lambda v: v[0] < 2,
        outer,
        (0, jnp.zeros(6)),
        buffers=lambda v: v[1],
        kind="checkpointed",
        checkpoints=2,
    )
    np.testing.assert_allclose(buf, [0.0, 1.0, 2.0, 10.0, 11.0, 12.0])


@pytest.mark.parametrize("kind", ["lax", "bounded"])
def test_forward_mode(kind):
    def f(w):
        return loops.while_loop(
            lambda v: v[0] < 9,
            lambda v: (v[0] + 1, v[1] * w + 1.0),
            (0, jnp.array(0.5)),
            kind=kind,
            max_steps=16,
        )[1]

    def ref(w):
        y = 0.5
        for _ in range(9):
            y = y * w + 1.0
        return y

    _, got = jax.jvp(f, (jnp.array(1.1),), (jnp.array(1.0),))
    _, want = jax.jvp(ref, (jnp.array(1.1),), (jnp.array(1.0),))
    _close(got, want)


@pytest.mark.parametrize("lib", LIBS)
def test_checkpointed_has_no_forward_mode(lib):
    def f(y):
        return lib.while_loop(
            lambda v: v < 3.0, lambda v: v + 1.0, y, kind="checkpointed", max_steps=4
        )

    with pytest.raises(TypeError):
        jax.jvp(f, (jnp.array(1.0),), (jnp.array(1.0),))


@pytest.mark.parametrize("kind", ["checkpointed", "bounded"])
def test_zero_max_steps_returns_the_initial_value(kind):
    out = loops.while_loop(lambda v: True, lambda v: v + 1, 5, kind=kind, max_steps=0)
    assert isinstance(out, jax.Array) and int(out) == 5


def test_max_steps_cuts_the_loop():
    for kind in ("lax", "checkpointed", "bounded"):
        out = loops.while_loop(
            lambda v: True, lambda v: v + 1, 0, kind=kind, max_steps=7
        )
        assert int(out) == 7


def test_primitives_are_exported():
    assert isinstance(loops.maybe_set_p, jax.extend.core.Primitive)
    assert isinstance(loops.select_if_vmap_p, jax.extend.core.Primitive)
    # A buffer write inside a loop is one `maybe_set`, under `vmap` too.

    def run(y):
        return loops.while_loop(
            lambda v: v[0] < 3,
            lambda v: (v[0] + 1, v[1].at[v[0]].set(y)),
            (0, jnp.zeros(3)),
            buffers=lambda v: v[1],
            kind="lax",
        )[1]

    for fn in (run, jax.vmap(run)):
        jaxpr = str(jax.make_jaxpr(fn)(jnp.ones(2) if fn is not run else 1.0))
        assert "maybe_set" in jaxpr


# ---------------------------------------------------------------------------------
# Errors: the exception types of `equinox.internal`.
# ---------------------------------------------------------------------------------


def _cond(v):
    return v < 5.0


def _body(v):
    return v + 1.0


ERRORS = [
    ("no kind", TypeError, lambda lib: lib.while_loop(_cond, _body, 0.0)),
    (
        "unknown kind",
        ValueError,
        lambda lib: lib.while_loop(_cond, _body, 0.0, kind="fast"),
    ),
    (
        "bounded without max_steps",
        ValueError,
        lambda lib: lib.while_loop(_cond, _body, 0.0, kind="bounded"),
    ),
    (
        "max_steps not an int",
        ValueError,
        lambda lib: lib.while_loop(
            _cond, _body, 0.0, kind="lax", max_steps=np.int64(3)
        ),
    ),
    (
        "checkpointed without a size",
        ValueError,
        lambda lib: lib.while_loop(_cond, _body, 0.0, kind="checkpointed"),
    ),
    (
        "zero checkpoints",
        ValueError,
        lambda lib: lib.while_loop(
            _cond, _body, 0.0, kind="checkpointed", max_steps=4, checkpoints=0
        ),
    ),
    (
        "body changes structure",
        ValueError,
        lambda lib: lib.while_loop(_cond, lambda v: (v, v), 0.0, kind="lax"),
    ),
    (
        "body changes dtype",
        ValueError,
        lambda lib: lib.while_loop(
            _cond, lambda v: v.astype(jnp.int32), 0.0, kind="lax"
        ),
    ),
    (
        "buffer dtype",
        ValueError,
        lambda lib: lib.while_loop(
            lambda v: v[0] < 3,
            lambda v: (v[0] + 1, v[1].at[v[0]].set(1.5)),
            (0, jnp.zeros(3, jnp.int32)),
            buffers=lambda v: v[1],
            kind="lax",
        ),
    ),
    (
        "buffer pred not a scalar",
        ValueError,
        lambda lib: lib.while_loop(
            lambda v: v[0] < 3,
            lambda v: (v[0] + 1, v[1].at[v[0]].set(1.0, pred=jnp.array([True]))),
            (0, jnp.zeros(3)),
            buffers=lambda v: v[1],
            kind="lax",
        ),
    ),
    (
        "scan lengths",
        ValueError,
        lambda lib: lib.scan(
            lambda c, x: (c, x), 0.0, (jnp.zeros(3), jnp.zeros(4)), kind="checkpointed"
        ),
    ),
    (
        "scan without kind",
        TypeError,
        lambda lib: lib.scan(lambda c, x: (c, x), 0.0, jnp.zeros(3)),
    ),
]


@pytest.mark.parametrize("name, error, call", ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("lib", LIBS, ids=["ecliptic", "equinox"])
def test_errors_match_equinox(lib, name, error, call):
    with pytest.raises(error):
        call(lib)


def test_error_messages_say_what_to_do():
    with pytest.raises(ValueError, match="kind='checkpointed' needs `checkpoints`"):
        loops.while_loop(_cond, _body, 0.0, kind="checkpointed")
    with pytest.raises(ValueError, match=r"- f32\[\]\n\+ \(f32\[\], f32\[\]\)"):
        loops.while_loop(_cond, lambda v: (v, v), 0.0, kind="lax")
    with pytest.raises(TypeError, match="boolean scalar"):
        loops.while_loop(lambda v: v < 5.0, _body, jnp.zeros(2), kind="lax")
    with pytest.raises(ValueError, match="`base` must be an integer of at least 2"):
        loops.while_loop(_cond, _body, 0.0, kind="bounded", max_steps=4, base=1)
