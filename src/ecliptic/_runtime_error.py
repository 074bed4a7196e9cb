"""The translation of a failed `error_if` check into `EquinoxRuntimeError`.

How a failed check reaches the user:

1. `error_if` puts a host callback into the program that calls `raise_failed_check`
   with the user's message and the user's frames captured when the check was traced
   (a `Stack`); that records both and raises `EquinoxRuntimeError(msg)` on the host.
2. JAX turns the callback's exception into a `JaxRuntimeError` (or a `ValueError` on
   CPU) whose text contains `ecliptic.EquinoxRuntimeError: <msg>`.
3. Where `filter_jit` sees such an exception, `runtime_error_from` gives it the clean
   `EquinoxRuntimeError` to raise instead: the user's message, the user's frames
   where the check was made (as a traceback shows them), and how to debug it.

This module is on the ground floor of the transforms: it imports only `_checks` (where
the error classes live) and `_messages`, so both `filter_jit` and `error_if` can use
it. `EquinoxRuntimeError` and `EquinoxTracetimeError` stay importable from here.
"""

from __future__ import annotations

import logging
import re
from typing import NoReturn

from ._checks import EquinoxRuntimeError, EquinoxTracetimeError
from ._messages import failed_check_stack_message
from ._tracebacks import mark_wholly_ours


__all__ = [
    "EquinoxRuntimeError",
    "EquinoxTracetimeError",
    "raise_failed_check",
    "runtime_error_from",
    "Stack",
]


# The user's frames where a check was made, as `(filename, line, function name)`,
# outermost first (the `error_if` call last).
Stack = tuple[tuple[str, int, str], ...]

# The last failed check, as `(message, stack)`: JAX's wrapped exception keeps only the
# message text, so the stack is looked up here when the message matches.
_last_failure: tuple[str, Stack] | None = None
_MARKER = "EquinoxRuntimeError: "


def raise_failed_check(msg: str, where: Stack) -> NoReturn:
    """Records a failed check and raises `EquinoxRuntimeError(msg)` (called on the
    host, from inside the JAX program).

    **Arguments:**

    - `msg`: the user's message.
    - `where`: the user's frames where the check was made (a `Stack`).

    **Returns:** never; always raises.
    """
    global _last_failure
    _last_failure = (msg, where)
    raise EquinoxRuntimeError(msg)


def runtime_error_from(exc: BaseException) -> EquinoxRuntimeError | None:
    """Translates JAX's wrapping of a failed `error_if` check.

    **Arguments:**

    - `exc`: an exception raised while a JAX program ran.

    **Returns:** the clean `EquinoxRuntimeError` to raise instead (the message, the
    user's frames where the check was made, and how to debug), or `None` if `exc` is
    not a failed check.
    """
    text = str(exc)
    if _MARKER not in text:
        return None
    if _last_failure is not None and _last_failure[0] in text:
        msg, where = _last_failure
    else:
        match = re.search(r"EquinoxRuntimeError: (.*)", text)
        msg, where = (match.group(1) if match else text), ()
    return mark_wholly_ours(EquinoxRuntimeError(failed_check_stack_message(msg, where)))


class _QuietCallbackFailures(logging.Filter):
    """JAX logs every failed callback with a traceback; a failed `error_if` is an
    expected outcome that is reported by the exception, so drop those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, EquinoxRuntimeError)


logging.getLogger("jax._src.callback").addFilter(_QuietCallbackFailures())
