"""`ecliptic.internal` loops: `while_loop` (lax, checkpointed, bounded) and `scan`.

References are computed independently: `lax.while_loop` / `lax.scan` for values, and
the same step unrolled in Python for gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecliptic.internal import while_loop


STEPS = 23


def _step(y: jax.Array, w: jax.Array) -> jax.Array:
    return y + 0.1 * jnp.sin(w * y) - 0.05 * y


def _loop_fns(w: jax.Array, steps: int = STEPS):
    def cond(carry):
        return carry[0] < steps

    def body(carry):
        i, y = carry
        return i + 1, _step(y, w)

    return cond, body


def _unrolled_loss(y0: jax.Array, w: jax.Array, steps: int = STEPS) -> jax.Array:
    y = y0
    for _ in range(steps):
        y = _step(y, w)
    return jnp.sum(y**2)


KINDS = [
    ("lax", {"max_steps": 40}),
    ("lax", {}),
    ("checkpointed", {"max_steps": 40, "checkpoints": 4}),
    ("checkpointed", {"checkpoints": 3}),  # no max_steps: online checkpointing
    ("bounded", {"max_steps": 40, "base": 4}),
    ("bounded", {"max_steps": STEPS}),
]
REVERSE_KINDS = [k for k in KINDS if k[0] != "lax"]
# One of each (the checkpointed loop's variants have their own tests below).
REVERSE_KINDS_SHORT = [REVERSE_KINDS[0], REVERSE_KINDS[2]]


def _close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind, kw", KINDS)
def test_forward_matches_lax_while_loop(kind, kw):
    y0, w = jnp.linspace(-1.0, 2.0, 5), jnp.array(1.3)
    cond, body = _loop_fns(w)
    init = (jnp.array(0), y0)
    got = jax.jit(lambda v: while_loop(cond, body, v, kind=kind, **kw))(init)
    want = jax.lax.while_loop(cond, body, init)
    assert int(got[0]) == STEPS
    _close(got, want)


@pytest.mark.parametrize("kind, kw", REVERSE_KINDS[2:])  # checkpointed: below
def test_grad_matches_unrolled(kind, kw):
    y0, w = jnp.linspace(-1.0, 2.0, 5), jnp.array(1.3)

    def loss(y0, w):
        cond, body = _loop_fns(w)
        _, y = while_loop(cond, body, (0, y0), kind=kind, **kw)
        return jnp.sum(y**2)

    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(y0, w)
    _close(got, jax.grad(_unrolled_loss, argnums=(0, 1))(y0, w))


@pytest.mark.parametrize(
    "checkpoints, max_steps",
    [(1, None), (2, None), (7, 64), (STEPS, STEPS)],  # STEPS: one per step
)
def test_checkpointed_grad_any_checkpoints(checkpoints, max_steps):
    y0, w = jnp.linspace(-1.0, 2.0, 4), jnp.array(0.7)

    def loss(y0, w):
        cond, body = _loop_fns(w)
        _, y = while_loop(
            cond,
            body,
            (0, y0),
            kind="checkpointed",
            max_steps=max_steps,
            checkpoints=checkpoints,
        )
        return jnp.sum(y**2)

    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(y0, w)
    _close(got, jax.grad(_unrolled_loss, argnums=(0, 1))(y0, w))


def test_checkpointed_recomputation_is_binomial():
    """Few checkpoints: every step is reversed exactly once, and the forward steps
    rerun stay within binomial checkpointing's bound (t repetitions of each step for
    C(c + t, c) >= steps), far below the quadratic cost of one checkpoint."""
    calls = []
    steps, c = 200, 6

    def loss(y0):
        def body(carry):
            jax.debug.callback(lambda: calls.append(None))
            return carry[0] + 1, _step(carry[1], jnp.array(1.0))

        out = while_loop(
            lambda carry: carry[0] < steps,
            body,
            (0, y0),
            kind="checkpointed",
            checkpoints=c,
        )
        return jnp.sum(out[1])

    jax.block_until_ready(jax.jit(jax.grad(loss))(jnp.ones(2)))
    reruns = len(calls) - 2 * steps  # one forward pass, one VJP per step
    t = 1
    while np.prod([(c + j) / j for j in range(1, t + 1)]) < steps:
        t += 1
    assert 0 < reruns <= t * steps
    assert reruns < steps * (steps - 1) // 2 // 10


def test_checkpointed_memory_grows_with_checkpoints_not_steps():
    def temp_bytes(steps, checkpoints):
        def loss(y0):
            cond, body = _loop_fns(jnp.array(1.0), steps)
            out = while_loop(
                cond,
                body,
                (0, y0),
                kind="checkpointed",
                max_steps=steps,
                checkpoints=checkpoints,
            )
            return jnp.sum(out[1])

        compiled = jax.jit(jax.grad(loss)).lower(jnp.ones(4096)).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    state = 4096 * 4
    few = temp_bytes(3000, 8)
    assert few < 20 * state  # 3000 steps, yet about 8 states
    assert temp_bytes(3000, 64) > few + 40 * state


def test_grad_through_closure_and_structure():
    """Gradients reach closed-over arrays and every float leaf of the carry; int and
    bool leaves ride along."""
    a, b = jnp.array([0.5, -0.2]), jnp.array(0.3)

    def loss(a, b, y0):
        def body(val):
            i, flag, (y, z) = val
            return i + 1, flag, (y * a + b, z + jnp.sum(y))

        _, _, (y, z) = while_loop(
            lambda v: v[0] < 6,
            body,
            (0, jnp.array(True), (y0, jnp.array(0.0))),
            kind="checkpointed",
            checkpoints=2,
        )
        return jnp.sum(y) + z

    def ref(a, b, y0):
        y, z = y0, 0.0
        for _ in range(6):
            y, z = y * a + b, z + jnp.sum(y)
        return jnp.sum(y) + z

    y0 = jnp.array([1.0, 2.0])
    got = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(a, b, y0)
    _close(got, jax.grad(ref, argnums=(0, 1, 2))(a, b, y0))


# ---------------------------------------------------------------------------------
# vmap with a batched predicate.
# ---------------------------------------------------------------------------------


def _until(y0: jax.Array, limit: jax.Array, kind: str, kw: dict):
    """Doubles `y` (and counts) until it exceeds `limit`: a per-member step count."""

    def cond(val):
        return val[1] < limit

    def body(val):
        return val[0] + 1, val[1] * 2.0 + 0.5

    return while_loop(cond, body, (0, y0), kind=kind, **kw)


@pytest.mark.parametrize("kind, kw", KINDS)
def test_vmap_batched_predicate_freezes_finished_members(kind, kw):
    y0 = jnp.array([0.1, 1.0, 3.0, 50.0])
    limits = jnp.array(20.0)
    got = jax.jit(jax.vmap(lambda y: _until(y, limits, kind, kw)))(y0)
    for j in range(4):
        want = jax.lax.while_loop(
            lambda v: v[1] < limits, lambda v: (v[0] + 1, v[1] * 2.0 + 0.5), (0, y0[j])
        )
        assert int(got[0][j]) == int(want[0])
        np.testing.assert_allclose(got[1][j], want[1])
    assert int(got[0][3]) == 0  # never started


@pytest.mark.parametrize("kind, kw", REVERSE_KINDS_SHORT)
def test_vmap_batched_predicate_grad(kind, kw):
    y0 = jnp.array([0.1, 1.0, 3.0])

    def loss(y0):
        return jnp.sum(jax.vmap(lambda y: _until(y, jnp.array(20.0), kind, kw))(y0)[1])

    # y_n = 2**n * (y0 + 0.5) - 0.5, with n the member's step count.
    counts = jax.vmap(lambda y: _until(y, jnp.array(20.0), "lax", {}))(y0)[0]
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(y0), 2.0 ** np.asarray(counts))
    per_member = jax.jit(jax.vmap(jax.grad(lambda y: _until(y, 20.0, kind, kw)[1])))(y0)
    np.testing.assert_allclose(per_member, 2.0 ** np.asarray(counts))


# ---------------------------------------------------------------------------------
# Buffers.
# ---------------------------------------------------------------------------------


def _fill(y0: jax.Array, w: jax.Array, steps: jax.Array, kind: str, kw: dict):
    """Writes y_i**2 into row i of a buffer for `steps` steps (a per-member count)."""

    def cond(val):
        return val[0] < steps

    def body(val):
        i, y, buf = val
        y = _step(y, w)
        return i + 1, y, buf.at[i].set(y**2)

    init = (0, y0, jnp.zeros((12,) + y0.shape))
    return while_loop(cond, body, init, buffers=lambda v: v[2], kind=kind, **kw)


def _fill_ref(y0, w, steps):
    buf, y = np.zeros((12,) + y0.shape, np.float32), y0
    for i in range(steps):
        y = _step(y, w)
        buf[i] = y**2
    return y, jnp.asarray(buf)


BUFFER_KINDS = [
    ("lax", {"max_steps": 12}),
    ("checkpointed", {"max_steps": 12, "checkpoints": 3}),
    ("checkpointed", {"max_steps": 12, "checkpoints": 12}),
    ("bounded", {"max_steps": 12, "base": 3}),
]


@pytest.mark.parametrize("kind, kw", BUFFER_KINDS)
def test_buffers_vmap(kind, kw):
    y0 = jnp.array([[0.1, 0.2], [1.0, -1.0], [2.0, 0.5]])
    steps = jnp.array([3, 12, 7])
    w = jnp.array(1.1)
    i, y, buf = jax.jit(jax.vmap(lambda y, n: _fill(y, w, n, kind, kw)))(y0, steps)
    for j in range(3):
        y_ref, buf_ref = _fill_ref(y0[j], w, int(steps[j]))
        assert int(i[j]) == int(steps[j])
        _close((y[j], buf[j]), (y_ref, buf_ref))


@pytest.mark.parametrize("kind, kw", [k for k in BUFFER_KINDS if k[0] != "lax"])
def test_buffers_grad_and_vmap_grad(kind, kw):
    y0 = jnp.array([[0.1, 0.2], [1.0, -1.0]])
    steps = jnp.array([5, 9])
    weights = jnp.arange(24.0).reshape(12, 2) / 24

    def loss(y0, w, n):
        _, y, buf = _fill(y0, w, n, kind, kw)
        return jnp.sum(buf * weights) + jnp.sum(y)

    def ref(y0, w, n):
        y, total = y0, 0.0
        for i in range(n):
            y = _step(y, w)
            total = total + jnp.sum(y**2 * weights[i])
        return total + jnp.sum(y)

    w = jnp.array(0.9)
    got = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(0, None, 0)))(
        y0, w, steps
    )
    batched = jax.jit(
        jax.grad(
            lambda y0, w: jnp.sum(jax.vmap(loss, in_axes=(0, None, 0))(y0, w, steps)),
            argnums=(0, 1),
        )
    )(y0, w)
    for j in range(2):
        want = jax.grad(ref, argnums=(0, 1))(y0[j], w, int(steps[j]))
        _close((got[0][j], got[1][j]), want)
    _close(batched[1], jnp.sum(got[1]))
    _close(batched[0], got[0])


def test_buffer_reads_in_body_and_cond():
    """The body may read back what it wrote; `cond_fun` sees the buffer too."""

    def cond(val):
        i, buf = val
        return (i < 2) | (buf[jnp.maximum(i - 1, 0)] < 100.0)

    def body(val):
        i, buf = val
        prev = jnp.where(i > 0, buf[jnp.maximum(i - 1, 0)], 1.0)
        return i + 1, buf.at[i].set(prev * 3.0)

    init = (0, jnp.zeros(10))
    for kind, kw in [("lax", {}), ("checkpointed", {"checkpoints": 3})]:
        i, buf = while_loop(cond, body, init, buffers=lambda v: v[1], kind=kind, **kw)
        assert int(i) == 5
        np.testing.assert_allclose(buf[:5], 3.0 ** np.arange(1, 6))


def test_buffer_set_pred_and_buffer_at_set():
    from ecliptic.internal import buffer_at_set, MaybeBuffer

    def body(val):
        i, buf = val
        assert isinstance(buf, MaybeBuffer[jax.Array])
        buf = buffer_at_set(buf, i, 1.0 + i, pred=i % 2 == 0)
        return i + 1, buf

    _, buf = while_loop(
        lambda v: v[0] < 4, body, (0, jnp.zeros(4)), buffers=lambda v: v[1], kind="lax"
    )
    np.testing.assert_allclose(buf, [1.0, 0.0, 3.0, 0.0])
    # Outside a loop, on a plain array.
    out = buffer_at_set(jnp.zeros(3), 1, 5.0, pred=jnp.array(False))
    np.testing.assert_allclose(out, jnp.zeros(3))
    assert isinstance(jnp.zeros(2), MaybeBuffer[jax.Array])
    assert not isinstance(1.0, MaybeBuffer[jax.Array])
