"""The shape-error wording of `ecliptic._checks`, tested fragment by fragment."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ecliptic._checks import check_shape, describe, format_shape, shape_error, vmap_fix


LINEAR = "ecliptic.nn.Linear(in_features=16, out_features=16)"
CONV = "ecliptic.nn.Conv2d(in_channels=3, out_channels=8)"


def _msg(subject, shape, expected, **kwargs):
    err = shape_error(subject, shape, expected, **kwargs)
    assert isinstance(err, ValueError)
    return str(err)


def test_format_shape():
    assert format_shape(()) == "()"
    assert format_shape((16,)) == "(16,)"
    assert format_shape((3, None, "W")) == "(3, ?, W)"


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_vmap_fix_nests_n_times(n):
    fix = vmap_fix(n)
    assert fix.count("jax.vmap(") == n
    assert fix.endswith("(x)")
    assert vmap_fix(n, "mlp", "xs") == fix.replace("layer", "mlp")[:-3] + "(xs)"


def test_subject_expected_got_come_first():
    msg = _msg(LINEAR, (16, 64), (16,))
    assert msg.startswith(
        f"{LINEAR} expected `x` of shape (16,), but got shape (16, 64)."
    )


def test_extra_leading_axes_name_vmaps():
    msg = _msg("L", (3, 16, 64), (64,))
    assert "map over the 2 leading axes with `jax.vmap(jax.vmap(layer))(x)`" in msg
    assert "(sizes 3, 16)" in msg


def test_one_extra_axis_names_the_batch_axis():
    msg = _msg(CONV, (8, 3, 32, 32), (3, None, None))
    assert "map over the leading axis with `jax.vmap(layer)(x)`" in msg
    assert "axis 0, of size 8, is the batch axis" in msg


def test_same_rank_names_wrong_axis_and_size():
    msg = _msg(CONV, (32, 32, 3), (3, None, None), axis_names=("in_channels=3",))
    assert msg.endswith("Axis 0 must be in_channels=3, not 32.")
    msg = _msg("L", (5,), (4,))
    assert msg.endswith("The only axis must be 4, not 5.")
    msg = _msg("L", (2, 5), (2, 4), axis_names=(None, "features=4"))
    assert msg.endswith("The last axis must be features=4, not 5.")


def test_axis_labels_keep_their_case():
    msg = _msg("L", (2, 5), (2, 4), axis_names=(None, "D=4"))
    assert "must be D=4" in msg


def test_extra_axis_with_wrong_trailing_size():
    msg = _msg(LINEAR, (16, 64), (16,), axis_names=("in_features=16",))
    assert "so `x` must have 1 axis, not 2." in msg
    assert "Mapping over the leading axis with `jax.vmap(layer)(x)` would not" in msg
    assert "the last axis must be in_features=16, not 64" in msg
    assert "If axis 1 (size 64) is the batch axis" in msg
    assert "`jax.vmap(layer, in_axes=1)(x)`" in msg


def test_many_extra_axes_with_wrong_trailing_size_uses_input_axis_numbers():
    msg = _msg(CONV, (2, 5, 32, 32, 3), (3, None, None), axis_names=("in_channels=3",))
    assert "must have 3 axes, not 5" in msg
    assert "`jax.vmap(jax.vmap(layer))(x)` would not fix it" in msg
    assert "axis 2 must be in_channels=3, not 32" in msg
    assert "in_axes" not in msg


def test_too_few_axes():
    msg = _msg(CONV, (32, 32), (3, None, None))
    assert msg.endswith(
        "Layers act on a single example, so `x` must have 3 axes, not 2."
    )


def test_name_call_and_hint_are_used():
    msg = _msg("f", (4, 3), (3,), name="y", call="model", hint="See the FAQ.")
    assert "`y` of shape (3,)" in msg
    assert "`jax.vmap(model)(y)`" in msg
    assert msg.endswith(" See the FAQ.")


def test_check_shape_passes_and_raises():
    check_shape("L", jnp.zeros((3, 4)), (3, None))
    check_shape("L", jnp.zeros((3, 4)), ("C", 4))
    with pytest.raises(ValueError, match=re.escape("expected `x` of shape (3, ?)")):
        check_shape("L", jnp.zeros((4, 4)), (3, None))


def test_check_shape_runs_at_trace_time():
    def f(x):
        check_shape("L", x, (4,))
        return x

    with pytest.raises(ValueError, match=r"jax\.vmap\(layer\)\(x\)"):
        jax.jit(f)(jnp.zeros((2, 4)))
    assert jax.vmap(jax.jit(f))(jnp.zeros((2, 4))).shape == (2, 4)


def test_describe():
    class Thing:
        pass

    assert describe(Thing(), a=1, b="scalar") == "Thing(a=1, b='scalar')"


def test_describe_prefixes_ecliptic_nn_layers():
    import ecliptic.nn as enn

    layer = enn.Linear(2, 3, key=jax.random.PRNGKey(0))
    assert describe(layer, x=1) == "ecliptic.nn.Linear(x=1)"


def test_dtype_error_wording():
    from ecliptic._checks import dtype_error

    err = dtype_error("L(a=1)", jnp.float32, jnp.bfloat16)
    assert isinstance(err, TypeError)
    msg = str(err)
    assert msg.startswith(
        "L(a=1) has float32 parameters, but got `x` of dtype bfloat16."
    )
    assert "`x.astype(jnp.float32)`" in msg
    assert "`dtype=jnp.bfloat16`" in msg


@settings(max_examples=30, deadline=None)
@given(
    expected=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    extra=st.lists(st.integers(1, 3), min_size=1, max_size=3),
)
def test_the_suggested_vmaps_work(expected, extra):
    """With k extra leading axes the message names k vmaps, and they work."""
    expected = tuple(expected)

    def layer(x):
        check_shape("f", x, expected)
        return x.sum() if x.ndim else x

    x = jnp.ones(tuple(extra) + expected)
    with pytest.raises(ValueError) as info:
        layer(x)
    k = len(extra)
    msg = str(info.value)
    assert f"`{vmap_fix(k)}`" in msg
    assert f"but got shape {format_shape(x.shape)}" in msg
    fixed = layer
    for _ in range(k):
        fixed = jax.vmap(fixed)
    assert fixed(x).shape == tuple(extra)


@settings(max_examples=30, deadline=None)
@given(
    expected=st.lists(st.one_of(st.none(), st.integers(1, 4)), max_size=3),
    shape=st.lists(st.integers(0, 5), max_size=4),
)
def test_any_mismatch_gets_a_complete_message(expected, shape):
    """Every mismatch is reported with subject, expected and got shapes."""
    expected, shape = tuple(expected), tuple(shape)
    try:
        check_shape("S", np.zeros(shape), expected)
    except ValueError as e:
        msg = str(e)
        assert msg.startswith(
            f"S expected `x` of shape {format_shape(expected)}, but got shape "
            f"{format_shape(shape)}."
        )
        assert len(msg) > len("S expected `x` of shape ...") + 20
    else:
        assert len(shape) == len(expected)
        assert all(e is None or e == s for e, s in zip(expected, shape, strict=True))


# -- exception classes: one room, public names ---------------------------------------


def test_exception_classes_are_public_and_shared():
    import ecliptic
    from ecliptic import _checks
    from ecliptic._runtime_error import EquinoxRuntimeError

    for name in ("CheckpointError", "EquinoxRuntimeError", "EquinoxTracetimeError"):
        cls = getattr(ecliptic, name)
        assert cls is getattr(_checks, name)
        assert cls.__module__ == "ecliptic"
        assert repr(cls) == f"<class 'ecliptic.{name}'>"
    assert EquinoxRuntimeError is ecliptic.EquinoxRuntimeError
    assert issubclass(ecliptic.CheckpointError, (ValueError, RuntimeError))


def test_checkpoint_error_keeps_path_through_pickle():
    import pickle

    import jax.tree_util as jtu

    from ecliptic import CheckpointError

    err = CheckpointError("boom", path=(jtu.SequenceKey(1),))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == "boom" and again.path == err.path


def test_unbound_axis_name_error_is_a_name_and_value_error():
    from ecliptic._checks import UnboundAxisNameError

    assert issubclass(UnboundAxisNameError, NameError)
    assert issubclass(UnboundAxisNameError, ValueError)


# -- deprecations ---------------------------------------------------------------------


def test_deprecation_message_reads_what_then_instead():
    from ecliptic._checks import deprecation_message

    assert deprecation_message("`f(a=...)`", "`f(b=...)`") == (
        "`f(a=...)` is deprecated: use `f(b=...)` instead."
    )
    assert deprecation_message("x", "y", "Same meaning.").endswith(
        "instead. Same meaning."
    )


def test_warn_deprecated_category_and_caller_frame():
    from ecliptic._checks import warn_deprecated

    def old_api():
        warn_deprecated("`old_api`", "`new_api`")

    with pytest.warns(DeprecationWarning, match="`old_api` is deprecated") as record:
        old_api()
    assert record[0].filename == __file__  # points at the caller of `old_api`
    with pytest.warns(UserWarning, match="use `b` instead"):
        warn_deprecated("a", "`b`", category=UserWarning)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda eqx: eqx.nn.Dropout(deterministic=True), "Dropout: `deterministic`"),
        (
            lambda eqx: eqx.nn.LayerNorm(3, elementwise_affine=False),
            r"LayerNorm\(elementwise_affine=...\) is deprecated: use",
        ),
    ],
)
def test_nn_deprecations_keep_equinox_category(build, match):
    import ecliptic

    # Equinox warns with `UserWarning` for these, so ecliptic does too.
    with pytest.warns(UserWarning, match=match) as record:
        build(ecliptic)
    assert not issubclass(record[0].category, DeprecationWarning)


# -- structured shape errors ----------------------------------------------------------


def test_shape_error_from_a_layer_carries_the_shapes():
    import ecliptic

    layer = ecliptic.nn.Linear(3, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ecliptic.ShapeError) as info:
        layer(jnp.ones((5, 4)))
    err = info.value
    assert isinstance(err, ValueError)
    assert err.layer == describe(layer, in_features=3, out_features=2)
    assert (err.argument, err.expected, err.actual) == ("x", (3,), (5, 4))


def test_shape_error_keeps_symbolic_dims_and_argument_names():
    import ecliptic

    conv = ecliptic.nn.Conv2d(3, 2, 3, key=jax.random.PRNGKey(0))
    with pytest.raises(ecliptic.ShapeError) as info:
        ecliptic.filter_jit(conv)(jnp.ones((4, 5, 5)))
    assert info.value.expected == (3, None, None)
    assert info.value.actual == (4, 5, 5)

    cell = ecliptic.nn.GRUCell(2, 3, key=jax.random.PRNGKey(0))
    with pytest.raises(ecliptic.ShapeError) as info:
        cell(jnp.ones(2), jnp.ones(4))
    assert (info.value.argument, info.value.expected) == ("hidden", (3,))


def test_shape_error_attributes_survive_pickling():
    import pickle

    import ecliptic

    with pytest.raises(ecliptic.ShapeError) as info:
        ecliptic.nn.LayerNorm(3)(jnp.ones(4))
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is ecliptic.ShapeError and str(again) == str(info.value)
    for name in ("layer", "argument", "expected", "actual"):
        assert getattr(again, name) == getattr(info.value, name)


def test_new_exception_classes_are_public_subclasses_of_todays_types():
    import ecliptic
    from ecliptic import _checks

    assert ecliptic.ShapeError is _checks.ShapeError
    assert repr(ecliptic.ShapeError) == "<class 'ecliptic.ShapeError'>"
    assert issubclass(ecliptic.ShapeError, ValueError)
    cls = ecliptic.debug.TooManyTracesError
    assert cls is _checks.TooManyTracesError
    assert repr(cls) == "<class 'ecliptic.debug.TooManyTracesError'>"
    assert issubclass(cls, RuntimeError)
