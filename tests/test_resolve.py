""".ci/resolve.py evaluates pyproject's markers for each JetPack's Python (pip's --python-version does not),
without network: the requirement lists it hands to pip download."""

import importlib.util
import os

from conftest import REPO


def _resolve_module():
    spec = importlib.util.spec_from_file_location("ci_resolve", os.path.join(REPO, ".ci", "resolve.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markers_are_evaluated_for_the_target_python():
    resolve = _resolve_module()
    project = resolve._pyproject()
    py36 = resolve.requirements(project, "3.6", ("ort",))
    names36 = [r.split("<")[0].split(">")[0].split("=")[0].split("!")[0] for r in py36]
    assert "dataclasses" in names36 and "tomli" in names36  # markers python_version < '3.7' / < '3.11'
    assert "typer<=0.10.0" in py36 and "onnx<1.12" in py36 and "protobuf<3.20" in py36
    py310 = resolve.requirements(project, "3.10", ("ort",))
    assert not any(r.startswith(("dataclasses", "typer<=", "onnx<", "protobuf")) for r in py310)
    assert any(r.startswith("tomli") for r in py310)
    assert not any(r.startswith("tomli") for r in resolve.requirements(project, "3.11", ()))
    assert all(";" not in r for r in py36 + py310)  # markers resolved, not passed on


def test_every_resolve_target_names_declared_extras():
    resolve = _resolve_module()
    extras = set(resolve._pyproject()["optional-dependencies"])
    for version, wanted in resolve.RESOLVE_TARGETS:
        assert set(wanted) <= extras, (version, wanted)
    assert [v for v, _ in resolve.RESOLVE_TARGETS] == ["3.6", "3.8", "3.10"]
