"""An error raised by the user's function under a filtered transformation shows the
user's frames and hides ecliptic's own (unless JAX's traceback filtering is off)."""

import os
import traceback
from collections.abc import Callable

import jax
import jax.numpy as jnp
import pytest

import ecliptic as eqx


_PACKAGE_DIR = os.path.dirname(os.path.abspath(eqx.__file__)) + os.sep
_THIS_FILE = os.path.abspath(__file__)
_MESSAGE = "boom from the user's helper 7f3a"


class _UserError(ValueError):
    pass


def _boom(*_):
    raise _UserError(_MESSAGE)


# Each case is a call site: it calls a transformation on a user function (named
# `user_*`) that raises through `_boom`. Returns the name of that user function.


def _jit():
    def user_jit(x):
        return _boom(x)

    eqx.filter_jit(user_jit)(jnp.ones(2))
    return "user_jit"


def _grad():
    def user_grad(x, flag):
        return _boom(x, flag)

    eqx.filter_grad(user_grad)(jnp.ones(2), True)
    return "user_grad"


def _value_and_grad():
    def user_value_and_grad(x):
        return _boom(x)

    eqx.filter_value_and_grad(user_value_and_grad, has_aux=True)(jnp.ones(2))
    return "user_value_and_grad"


def _jvp():
    def user_jvp(x):
        return _boom(x)

    eqx.filter_jvp(user_jvp, (jnp.ones(2),), (jnp.ones(2),))
    return "user_jvp"


def _vjp():
    def user_vjp(x):
        return _boom(x)

    eqx.filter_vjp(user_vjp, jnp.ones(2))
    return "user_vjp"


def _custom_vjp_with_bwd(fn_bwd: Callable) -> Callable:
    @eqx.filter_custom_vjp
    def f(x):
        return 2 * x

    @f.def_fwd
    def f_fwd(perturbed, x):
        del perturbed
        return 2 * x, None

    f.def_bwd(fn_bwd)
    return f


def _vjp_fn():
    def user_bwd(residuals, grad_obj, perturbed, x):
        return _boom(residuals, grad_obj, perturbed, x)

    f = _custom_vjp_with_bwd(user_bwd)
    _, vjp_fn = eqx.filter_vjp(f, jnp.ones(2))
    vjp_fn(jnp.ones(2))
    return "user_bwd"


def _jacfwd():
    def user_jacfwd(x):
        return _boom(x)

    eqx.filter_jacfwd(user_jacfwd)(jnp.ones(2))
    return "user_jacfwd"


def _jacrev():
    def user_jacrev(x):
        return _boom(x)

    eqx.filter_jacrev(user_jacrev, has_aux=True)(jnp.ones(2))
    return "user_jacrev"


def _hessian():
    def user_hessian(x):
        return _boom(x)

    eqx.filter_hessian(user_hessian)(jnp.ones(2))
    return "user_hessian"


def _checkpoint():
    def user_checkpoint(x, name):
        return _boom(x, name)

    eqx.filter_checkpoint(user_checkpoint)(jnp.ones(2), "name")
    return "user_checkpoint"


def _custom_jvp():
    @eqx.filter_custom_jvp
    def user_custom_jvp(x, *, scale):
        return _boom(x, scale)

    @user_custom_jvp.def_jvp
    def rule(primals, tangents, *, scale):
        return primals[0], tangents[0]

    user_custom_jvp(jnp.ones(2), scale=2.0)
    return "user_custom_jvp"


def _custom_jvp_rule():
    @eqx.filter_custom_jvp
    def f(x):
        return 2 * x

    @f.def_jvp
    def user_jvp_rule(primals, tangents):
        return _boom(primals, tangents)

    eqx.filter_jvp(f, (jnp.ones(2),), (jnp.ones(2),))
    return "user_jvp_rule"


def _custom_vjp():
    @eqx.filter_custom_vjp
    def user_custom_vjp(x, name):
        return _boom(x, name)

    @user_custom_vjp.def_fwd
    def fwd(perturbed, x, name):
        return x, None

    @user_custom_vjp.def_bwd
    def bwd(residuals, grad_obj, perturbed, x, name):
        return grad_obj

    user_custom_vjp(jnp.ones(2), "name")
    return "user_custom_vjp"


def _custom_vjp_fwd():
    @eqx.filter_custom_vjp
    def f(x):
        return jnp.sum(x)

    @f.def_fwd
    def user_fwd(perturbed, x):
        return _boom(perturbed, x)

    @f.def_bwd
    def bwd(residuals, grad_obj, perturbed, x):
        return grad_obj

    eqx.filter_grad(f)(jnp.ones(2))
    return "user_fwd"


def _closure_convert():
    scale = jnp.ones(2)

    def user_closure_convert(x):
        return _boom(scale * x)

    eqx.filter_closure_convert(user_closure_convert, jnp.ones(2))
    return "user_closure_convert"


def _closure_converted_call():
    def user_converted(x):  # closes over nothing: converting it does not call it
        return _boom(x)

    eqx.filter_closure_convert(user_converted, jnp.ones(2))(jnp.ones(2))
    return "user_converted"


def _vmap():
    def user_vmap(x, name):
        return _boom(x, name)

    eqx.filter_vmap(user_vmap)(jnp.ones((3, 2)), "name")
    return "user_vmap"


def _pmap():
    def user_pmap(x):
        return _boom(x)

    eqx.filter_pmap(user_pmap)(jnp.ones((1, 2)))
    return "user_pmap"


def _eval_shape():
    def user_eval_shape(x, name):
        return _boom(x, name)

    eqx.filter_eval_shape(user_eval_shape, jnp.ones(2), "name")
    return "user_eval_shape"


def _make_jaxpr():
    def user_make_jaxpr(x, name):
        return _boom(x, name)

    eqx.filter_make_jaxpr(user_make_jaxpr)(jnp.ones(2), "name")
    return "user_make_jaxpr"


def _assert_max_traces():
    @eqx.debug.assert_max_traces(max_traces=1)
    def user_traced(x):
        return _boom(x)

    user_traced(jnp.ones(2))
    return "user_traced"


def _announce_transform():
    def user_announce(text):
        return _boom(text)

    eqx.debug.announce_transform(jnp.ones(2), announce=user_announce)
    return "user_announce"


def _nested():
    def user_nested(x):
        return _boom(x)

    eqx.filter_vmap(eqx.filter_grad(user_nested))(jnp.ones((3, 2)))
    return "user_nested"


# A transformation used as a method is read through `MethodWrapper.__get__`, which
# returns a `Partial` of the wrapper and the instance: its frame is hidden too.


def _jit_method():
    class M(eqx.Module):
        w: jax.Array

        @eqx.filter_jit
        def user_jit_method(self, x):
            return _boom(self.w, x)

    M(jnp.ones(2)).user_jit_method(jnp.ones(2))
    return "user_jit_method"


def _grad_method():
    class M(eqx.Module):
        w: jax.Array

        @eqx.filter_grad
        def user_grad_method(self, x):
            return _boom(self.w, x)

    M(jnp.ones(2)).user_grad_method(jnp.ones(2))
    return "user_grad_method"


def _plain_method():
    # No transformation: the frame of the bound method (a Module) is hidden.
    class M(eqx.Module):
        w: jax.Array

        def user_method(self, x):
            return _boom(self.w, x)

    M(jnp.ones(2)).user_method(jnp.ones(2))
    return "user_method"


_CASES = {
    "filter_jit": (_jit, "user_jit"),
    "filter_grad": (_grad, "user_grad"),
    "filter_value_and_grad": (_value_and_grad, "user_value_and_grad"),
    "filter_jvp": (_jvp, "user_jvp"),
    "filter_vjp": (_vjp, "user_vjp"),
    "filter_vjp_fn": (_vjp_fn, "user_bwd"),
    "filter_jacfwd": (_jacfwd, "user_jacfwd"),
    "filter_jacrev": (_jacrev, "user_jacrev"),
    "filter_hessian": (_hessian, "user_hessian"),
    "filter_checkpoint": (_checkpoint, "user_checkpoint"),
    "filter_custom_jvp": (_custom_jvp, "user_custom_jvp"),
    "filter_custom_jvp_rule": (_custom_jvp_rule, "user_jvp_rule"),
    "filter_custom_vjp": (_custom_vjp, "user_custom_vjp"),
    "filter_custom_vjp_fwd": (_custom_vjp_fwd, "user_fwd"),
    "filter_closure_convert": (_closure_convert, "user_closure_convert"),
    "filter_closure_convert_call": (_closure_converted_call, "user_converted"),
    "filter_vmap": (_vmap, "user_vmap"),
    "filter_pmap": (_pmap, "user_pmap"),
    "filter_eval_shape": (_eval_shape, "user_eval_shape"),
    "filter_make_jaxpr": (_make_jaxpr, "user_make_jaxpr"),
    "assert_max_traces": (_assert_max_traces, "user_traced"),
    "announce_transform": (_announce_transform, "user_announce"),
    "nested": (_nested, "user_nested"),
    "filter_jit_method": (_jit_method, "user_jit_method"),
    "filter_grad_method": (_grad_method, "user_grad_method"),
    "method": (_plain_method, "user_method"),
}


def _raise(case: Callable) -> list[traceback.FrameSummary]:
    with pytest.raises(_UserError) as excinfo:
        case()
    e = excinfo.value
    assert type(e) is _UserError
    assert str(e) == _MESSAGE
    return traceback.extract_tb(e.__traceback__)


def _ours(frames: list[traceback.FrameSummary]) -> list[str]:
    return [
        f"{f.filename}:{f.lineno} {f.name}"
        for f in frames
        if os.path.abspath(f.filename).startswith(_PACKAGE_DIR)
    ]


@pytest.fixture
def filtering_off():
    old = jax.config.values["jax_traceback_filtering"]
    jax.config.update("jax_traceback_filtering", "off")
    try:
        yield
    finally:
        jax.config.update("jax_traceback_filtering", old)


@pytest.mark.parametrize("name", list(_CASES))
def test_user_frames_shown_ecliptic_frames_hidden(name):
    case, user_fn = _CASES[name]
    frames = _raise(case)
    assert _ours(frames) == []
    here = [f.name for f in frames if os.path.abspath(f.filename) == _THIS_FILE]
    assert case.__name__ in here  # the call site
    assert user_fn in here  # the user's function
    assert frames[-1].name == "_boom"  # its helper, where the error was raised
    assert here.index(case.__name__) < here.index(user_fn) < here.index("_boom")


@pytest.mark.parametrize("name", list(_CASES))
def test_filtering_off_keeps_ecliptic_frames(name, filtering_off):
    case, user_fn = _CASES[name]
    frames = _raise(case)
    assert _ours(frames) != []
    names = [f.name for f in frames]
    assert case.__name__ in names and user_fn in names and names[-1] == "_boom"


def test_pure_callback():
    # JAX reports a failed callback as its own runtime error, whose message holds
    # the user's error and its traceback as text; the error's own traceback is the
    # user's.
    def user_callback(x, name):
        return _boom(x, name)

    struct = jax.ShapeDtypeStruct((2,), jnp.float32)
    with pytest.raises(Exception, match=_MESSAGE) as excinfo:
        eqx.filter_pure_callback(
            user_callback, jnp.ones(2), "name", result_shape_dtypes=struct
        )
    frames = traceback.extract_tb(excinfo.value.__traceback__)
    assert _ours(frames) == []
    assert frames[0].name == "test_pure_callback"


def test_error_of_ecliptic_keeps_a_frame():
    # An error raised by ecliptic itself (here a bad call) keeps the frame that
    # raised it, so the traceback is never empty below the call site.
    def user_fn(x):
        return x

    with pytest.raises(TypeError, match="keyword arguments only") as excinfo:
        eqx.filter_grad(user_fn)(x=jnp.ones(2))
    frames = traceback.extract_tb(excinfo.value.__traceback__)
    assert frames[0].name == "test_error_of_ecliptic_keeps_a_frame"
    assert len(_ours(frames)) == 1


def test_failed_check_shows_no_ecliptic_frame():
    # A failed `error_if` check is reported by an error that ecliptic builds; its
    # message says where the check was made, so no frame of ecliptic's is kept.
    @eqx.filter_jit
    def user_checked(x):
        return eqx.error_if(x, x > 0, "positive 41c2")

    with pytest.raises(eqx.EquinoxRuntimeError, match="positive 41c2") as excinfo:
        jax.block_until_ready(user_checked(jnp.ones(())))
    frames = traceback.extract_tb(excinfo.value.__traceback__)
    assert _ours(frames) == []
    assert frames[0].name == "test_failed_check_shows_no_ecliptic_frame"
    assert "user_checked" in str(excinfo.value)  # where the check was traced


def test_vjp_fn_is_still_a_pytree():
    out, vjp_fn = eqx.filter_vjp(lambda x: 2 * x, jnp.ones(2))

    @jax.jit
    def apply(fn, ct):
        return fn(ct)

    (ct,) = apply(vjp_fn, jnp.ones(2))
    assert jnp.array_equal(ct, 2 * jnp.ones(2))
    assert jnp.array_equal(out, 2 * jnp.ones(2))
