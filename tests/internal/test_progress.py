"""Progress meters print (or show a bar) without breaking `jit` or `vmap`."""

import jax
import jax.lax as lax
import jax.numpy as jnp
import pytest

import ecliptic as eqx
import ecliptic.internal as eqxi


def _solve(meter, x, steps=10):
    """A fake iterative solve of `steps` steps reporting its progress."""
    state = meter.init()

    def body(i, carry):
        y, s = carry
        return y + 1, meter.step(s, i / steps)

    y, state = lax.fori_loop(1, steps + 1, body, (x, state))
    meter.close(state)
    return y


def _percentages(text):
    return [float(line.rstrip("%")) for line in text.split()]


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit, eqx.filter_jit])
def test_text_meter_prints_under_jit(wrap, capfd):
    meter = eqxi.TextProgressMeter(minimum_increase=0.25)
    out = wrap(lambda x: _solve(meter, x))(jnp.array(0.0))
    jax.effects_barrier()
    assert out == 10
    printed = _percentages(capfd.readouterr().out)
    assert printed[0] == 0.0 and printed[-1] == 100.0
    assert printed == sorted(printed)
    # Not a line per step: only when the progress grew by more than 25%.
    assert 3 <= len(printed) <= 6


def test_text_meter_under_vmap_prints_one_meter(capfd):
    meter = eqxi.TextProgressMeter(minimum_increase=0.25)
    out = jax.jit(jax.vmap(lambda x: _solve(meter, x)))(jnp.arange(3.0))
    jax.effects_barrier()
    assert jnp.array_equal(out, jnp.arange(3.0) + 10)
    printed = _percentages(capfd.readouterr().out)
    assert printed.count(0.0) == 1 and printed.count(100.0) == 1


def test_text_meter_closes_at_100_percent(capfd):
    meter = eqxi.TextProgressMeter()
    state = meter.init()
    state = meter.step(state, 0.5)
    meter.close(state)
    jax.effects_barrier()
    assert _percentages(capfd.readouterr().out) == [0.0, 50.0, 100.0]


def test_no_progress_meter_prints_nothing(capfd):
    out = jax.jit(lambda x: _solve(eqxi.NoProgressMeter(), x))(jnp.array(0.0))
    jax.effects_barrier()
    assert out == 10
    assert capfd.readouterr().out == ""


def test_tqdm_meter_under_jit(capfd):
    pytest.importorskip("tqdm")
    meter = eqxi.TqdmProgressMeter(refresh_steps=2)
    out = jax.jit(lambda x: _solve(meter, x))(jnp.array(0.0))
    jax.effects_barrier()
    assert out == 10
    assert "100.00%" in capfd.readouterr().err


def test_meters_are_modules_with_the_interface():
    for meter in (eqxi.NoProgressMeter(), eqxi.TextProgressMeter()):
        assert isinstance(meter, eqxi.AbstractProgressMeter)
        assert isinstance(meter, eqx.Module)
