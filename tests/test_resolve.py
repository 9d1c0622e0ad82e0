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


def test_pip_sees_the_wheel_tags_of_each_boards_glibc():
    # with --platform manylinux2014_aarch64 alone pip download resolved other releases than the board gets:
    # onnxruntime 1.23.2 (Python 3.10) is tagged manylinux_2_27 only, cuda-python 13 manylinux_2_28
    resolve = _resolve_module()
    for version, glibc in (("3.6", 27), ("3.8", 31), ("3.10", 35)):
        args = resolve.pip_args(version, ["numpy"], "/tmp/d")
        tags = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
        assert tags[0] == f"manylinux_2_{glibc}_aarch64" and f"manylinux_2_{glibc + 1}_aarch64" not in tags
        assert {"manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64"} & set(tags)
        assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
        assert args[args.index("--python-version") + 1] == version and args[-1] == "numpy"
    assert "manylinux_2_28_aarch64" not in resolve.platforms("3.6")  # Ubuntu 18.04: glibc 2.27


def test_the_readme_jetpack_commands_carry_the_pins_ci_resolves():
    # JetPack 6's command installed the bare `cuda` extra: on Ubuntu 22.04 pip picks cuda-python 13
    # (needs a CUDA 13 driver; JetPack 6 has CUDA 12) and numpy 2 (onnxruntime 1.23 wants numpy>=1.21.6,
    # Ubuntu has 1.21.5), which JetPack's numpy-1.x OpenCV cannot import.
    from edgealex._sides import BOARD_PINS

    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    for version, title in (("3.8", "**JetPack 5.1"), ("3.10", "**JetPack 6")):
        block = readme[readme.index(title):]
        block = block[block.index("```bash"):]
        install = [line for line in block[:block.index("```", 7)].splitlines() if "install" in line and "-e" in line]
        assert len(install) == 1, install
        for pin in BOARD_PINS[version]:
            assert f"'{pin}'" in install[0], (version, pin, install[0])
        assert "cuda]" not in install[0] and ",cuda" not in install[0]  # the extra is unpinned: the pin replaces it
