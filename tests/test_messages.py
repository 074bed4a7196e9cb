"""Every user-facing message is written once, in `ecliptic._messages` (or, for shapes,
dtypes and the exception classes, in `ecliptic._checks`): no `raise` elsewhere in the
package spells out its own text, and no warning does either."""

import ast
import pathlib

import pytest

import ecliptic


PACKAGE = pathlib.Path(ecliptic.__file__).resolve().parent
# The rooms where messages are written.
ROOMS = {PACKAGE / "_messages", PACKAGE / "_checks.py"}


def _spells_text(node: ast.AST) -> bool:
    """Whether an expression holds a string literal or an f-string."""
    return any(
        isinstance(n, ast.JoinedStr)
        or (isinstance(n, ast.Constant) and isinstance(n.value, str))
        for n in ast.walk(node)
    )


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def inline_messages(source: str) -> list[int]:
    """Line numbers of the `raise`s and `warn`s in `source` that write their text."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            if any(
                _spells_text(a) for a in [*call.args, *(k.value for k in call.keywords)]
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and _callee(node) == "warn" and node.args:
            if _spells_text(node.args[0]):
                lines.append(node.lineno)
    return sorted(lines)


def _modules() -> list[pathlib.Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    return [f for f in files if not any(f == r or r in f.parents for r in ROOMS)]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_message_written_outside_its_room(path):
    lines = inline_messages(path.read_text())
    assert not lines, (
        f"{path.relative_to(PACKAGE)} writes user-facing text at lines {lines}: move "
        "it into a builder in `ecliptic/_messages/` (or `_checks.py` for shapes and "
        "dtypes) and raise what the builder returns."
    )


def test_the_check_can_fail():
    source = (
        "def f(x):\n"
        "    if x:\n"
        "        raise ValueError(f'bad {x}')\n"
        "    raise TypeError(builder(x))\n"
        "import warnings\n"
        "warnings.warn('text', UserWarning)\n"
    )
    assert inline_messages(source) == [3, 6]


def test_every_builder_is_reexported():
    import ecliptic._messages as messages

    missing = []
    for path in sorted((PACKAGE / "_messages").glob("_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            is_def = isinstance(node, (ast.FunctionDef, ast.ClassDef))
            if is_def and not node.name.startswith("_"):
                if not hasattr(messages, node.name):
                    missing.append(f"{path.name}: {node.name}")
    assert not missing, (
        f"not re-exported from ecliptic/_messages/__init__.py: {missing}"
    )
