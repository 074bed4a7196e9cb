"""Every public name of `ecliptic`, `ecliptic.nn` and `ecliptic.debug` has an entry
(`::: ecliptic.name`) on an API page under `docs/api/`, and every entry names
something that exists (otherwise `mkdocs build --strict` fails)."""

import pathlib
import re
import types

import pytest

import ecliptic


API_DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api"
ENTRY = re.compile(r"^::: (ecliptic(?:\.nn|\.debug)?)\.(\w+)\s*$", re.MULTILINE)
NAMESPACES = {
    "ecliptic": ecliptic,
    "ecliptic.nn": ecliptic.nn,
    "ecliptic.debug": ecliptic.debug,
}


def public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
    }


def documented() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {ns: set() for ns in NAMESPACES}
    for page in sorted(API_DOCS.rglob("*.md")):
        for namespace, name in ENTRY.findall(page.read_text()):
            found[namespace].add(name)
    return found


def test_api_pages_exist():
    pages = list(API_DOCS.rglob("*.md"))
    assert pages, f"no API pages under {API_DOCS}"
    assert sum(len(names) for names in documented().values()) > 0


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_every_public_name_is_documented(namespace):
    missing = sorted(public_names(NAMESPACES[namespace]) - documented()[namespace])
    assert not missing, (
        f"public names of {namespace} without an API entry: {missing}. Add a line "
        f"`::: {namespace}.<name>` to the right page under docs/api/."
    )


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_every_entry_exists(namespace):
    stale = sorted(documented()[namespace] - public_names(NAMESPACES[namespace]))
    assert not stale, (
        f"docs/api/ documents {namespace} names that do not exist: {stale}. Remove the "
        "entries (or comment them out as `<!-- ::: name -->` until the name lands)."
    )


def test_submodules_are_public():
    assert isinstance(ecliptic.nn, types.ModuleType)
    assert isinstance(ecliptic.debug, types.ModuleType)
