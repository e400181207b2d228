"""Packaging: the license, the bundled data's note, the type stub of the core and what an install ships."""

import ast
import hashlib
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import mtlx
from mtlx import _core

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mtlx.__file__).resolve().parent
STUB = PACKAGE / "_core.pyi"
DATA_NOTE = PACKAGE / "datasets" / "data" / "README.md"

# The array dtypes a binding can take, as spelled in the stub (np.) and in pybind11's docstrings (numpy.).
_DTYPE = re.compile(r"\b(?:np|numpy)\.(float64|float32|int64|uint8)\b")


def _read_pyproject():
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _parameter(name, annotation):
    """(name, array dtype or None, may be None) of one parameter, from its annotation's text."""
    dtype = _DTYPE.search(annotation)
    return name, dtype.group(1) if dtype else None, bool(re.search(r"\bNone\b|Optional\[", annotation))


def _stub_signatures():
    """{name: [parameters of each overload, in order]} of the stub's top-level functions."""
    signatures = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            params = [_parameter(a.arg, ast.unparse(a.annotation)) for a in node.args.args]
            signatures.setdefault(node.name, []).append(params)
    return signatures


def _stub_public_names():
    names = set()
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def _split_top_level(text):
    """Split ``a: T[x, y], b: U`` at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _runtime_signatures(name):
    """[parameters of each overload] of ``_core.<name>``, read from pybind11's docstring.

    pybind11 writes one line ``name(a: T, ...) -> R`` per overload (numbered when there are
    several, after a generic ``name(*args, **kwargs)`` line).
    """
    signatures = []
    for line in getattr(_core, name).__doc__.splitlines():
        match = re.match(rf"^(?:\d+\. )?{name}\((.*)\) -> ", line)
        if match is None:
            continue
        params = []
        for part in _split_top_level(match.group(1)):
            param, _, annotation = part.partition(":")
            params.append(_parameter(param.strip(), annotation))
        signatures.append(params)
    return signatures


def _core_public_names():
    return {n for n in dir(_core) if not n.startswith("_")}


def test_stub_names_equal_the_module_public_names():
    assert _stub_public_names() == _core_public_names()


def test_stub_enums_list_the_module_members():
    """The codes' enums (LossKind, PenaltyKind): the stub names every member the module has."""
    tree = ast.parse(STUB.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name in sorted(n for n in _core_public_names() if isinstance(getattr(_core, n), type)):
        members = {node.target.id for node in classes[name].body if isinstance(node, ast.AnnAssign)}
        assert members == set(getattr(_core, name).__members__), name


def test_stub_overloads_parameters_and_dtypes_equal_the_module():
    stub = _stub_signatures()
    for name in sorted(n for n in _core_public_names()
                       if callable(getattr(_core, n)) and not isinstance(getattr(_core, n), type)):
        runtime = _runtime_signatures(name)
        assert runtime, f"no signature read from the docstring of _core.{name}"
        assert stub.get(name) == runtime, name


def test_signature_readers_agree_with_a_written_out_reference():
    # An independent reference for one overloaded function, so that both readers returning
    # nothing (or the same wrong thing) cannot pass the comparison above.
    expected = [
        [("kind", None, False), ("V", dtype, False), ("tau", None, False), ("out", dtype, False),
         ("n_threads", None, False)]
        for dtype in ("float64", "float32")
    ]
    assert _runtime_signatures("prox") == expected
    assert _stub_signatures()["prox"] == expected
    optional_b = [p for p in _stub_signatures()["loss_grad_stacked"][1] if p[0] == "b"]
    assert optional_b == [("b", "float32", True)]


def test_license_is_bsd3_and_pyproject_agrees():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Copyright (c) 2026, the mtlx developers" in text
    for clause in ("1. Redistributions of source code must retain", "2. Redistributions in binary form must",
                   "3. Neither the name of the copyright holder"):
        assert clause in text
    project = _read_pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE", "python/mtlx/datasets/data/README.md"]
    for path in project["license-files"]:
        assert (ROOT / path).is_file(), path
    # The installed metadata says the same (License-Expression; "License" in an install older than PEP 639).
    installed = metadata.metadata("mtlx")
    assert installed.get("License-Expression", installed.get("License")) == "BSD-3-Clause"


def test_data_note_describes_the_bundled_file():
    note = DATA_NOTE.read_text()
    for name in ("school.npz", "newsgroups.npz", "computer_survey.npz"):
        digest = hashlib.sha256((DATA_NOTE.parent / name).read_bytes()).hexdigest()
        assert f"sha256 `{digest}`" in note, name
    assert "Goldstein" in note and "MALSAR" in note and "not** covered" in note and "Lang" in note and "Lenk" in note


def _is_editable_install():
    direct_url = metadata.distribution("mtlx").read_text("direct_url.json")
    return bool(direct_url) and json.loads(direct_url).get("dir_info", {}).get("editable", False)


def test_install_ships_the_stub_marker_data_note_and_licenses():
    if _is_editable_install():
        pytest.skip("an editable install serves the source tree; CI's regular install checks the wheel's files")
    dist = metadata.distribution("mtlx")
    installed = {str(f) for f in dist.files}
    for path in ("mtlx/_core.pyi", "mtlx/py.typed", "mtlx/datasets/data/README.md", "mtlx/datasets/data/school.npz",
                 "mtlx/datasets/data/newsgroups.npz", "mtlx/datasets/data/computer_survey.npz"):
        assert path in installed, path
    licenses = Path(dist.locate_file(f"mtlx-{dist.version}.dist-info/licenses"))
    assert (licenses / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    note = licenses / "python" / "mtlx" / "datasets" / "data" / "README.md"
    assert note.read_bytes() == (ROOT / "python" / "mtlx" / "datasets" / "data" / "README.md").read_bytes()
    assert (PACKAGE / "py.typed").read_bytes() == b""
