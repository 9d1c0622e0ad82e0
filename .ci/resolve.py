#!/usr/bin/env python3
"""Resolver check: edgealex's core and device extras install from wheels on every JetPack's Python.

For each (Python, extras) in edgealex._sides.RESOLVE_TARGETS this runs
``pip download --only-binary=:all: --python-version X --platform manylinux2014_aarch64`` with
the dependencies of pyproject.toml. pip evaluates environment markers against the Python running it,
not against --python-version (so `dataclasses; python_version < '3.7'` would silently be dropped); this
script therefore evaluates the markers for the target itself and runs pip with its marker environment
set to the target (python_version, python_full_version, platform_machine), so transitive markers
(click's importlib-metadata on 3.6) are resolved as on the board. Exit 1 with pip's output on failure.

Usage: python .ci/resolve.py [--keep DIR]    (needs network access to PyPI)
"""

import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from edgealex._sides import BOARD_PINS, RESOLVE_TARGETS  # noqa: E402

# glibc of each JetPack's Ubuntu (18.04 / 20.04 / 22.04: JetPack 4.6 / 5.1 / 6). pip on the board accepts every
# manylinux_2_N tag up to it, and pip download does not expand a --platform tag to older ones, so all are passed:
# with manylinux2014 alone it resolved other releases than a board gets (onnxruntime 1.23.2 for Python 3.10
# is tagged manylinux_2_27 only; cuda-python 13 needs manylinux_2_28).
GLIBC_MINOR = {"3.6": 27, "3.8": 31, "3.10": 35}


def platforms(version):
    """pip's ``--platform`` values for the board of a JetPack Python, newest glibc first."""
    return [f"manylinux_2_{minor}_aarch64" for minor in range(GLIBC_MINOR[version], 16, -1)] + ["manylinux2014_aarch64"]


def pip_args(version, reqs, dest):
    """The ``pip download`` arguments for one target (wheels only, the board's Python and tags)."""
    args = ["download", "--quiet", "--only-binary=:all:", "--python-version", version]
    for tag in platforms(version):
        args += ["--platform", tag]
    return args + ["--dest", dest] + list(reqs)


def _pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)["project"]


def _target_env(version):
    full = {"3.6": "3.6.9", "3.8": "3.8.10", "3.10": "3.10.12"}.get(version, version + ".0")
    return {"python_version": version, "python_full_version": full, "implementation_version": full,
            "platform_machine": "aarch64", "platform_system": "Linux", "sys_platform": "linux",
            "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def requirements(project, version, extras):
    """The requirement strings (markers evaluated for the target, then dropped) of core + extras."""
    from pip._vendor.packaging.requirements import Requirement

    env = _target_env(version)
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    out = []
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(dict(env, extra="")):
            continue
        req.marker = None
        out.append(str(req))
    return out


def _run_pip(version, reqs, dest):
    """pip download in this process's child, with the marker environment of the target."""
    import subprocess

    code = (
        "import sys\n"
        "import pip._vendor.packaging.markers as m\n"
        "_base = m.default_environment()\n"
        f"_base.update({_target_env(version)!r})\n"
        "m.default_environment = lambda: dict(_base)\n"
        "from pip._internal.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = [sys.executable, "-c", code] + pip_args(version, reqs, dest)
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def main(argv):
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    project = _pyproject()
    from pip._vendor.packaging.specifiers import SpecifierSet

    failed = 0
    start = time.perf_counter()
    for version, extras in RESOLVE_TARGETS:
        if version + ".0" not in SpecifierSet(project["requires-python"]):
            print(f"resolve: Python {version}: edgealex's requires-python {project['requires-python']} excludes it")
            failed += 1
            continue
        reqs = requirements(project, version, extras) + list(BOARD_PINS.get(version, ()))
        dest = os.path.join(keep, "py" + version) if keep else tempfile.mkdtemp(prefix="edgealex-resolve-")
        t0 = time.perf_counter()
        proc = _run_pip(version, reqs, dest)
        got = sorted(n for n in os.listdir(dest) if n.endswith(".whl")) if os.path.isdir(dest) else []
        label = "core" + "".join("+" + e for e in extras) + "".join(" " + p for p in BOARD_PINS.get(version, ()))
        if proc.returncode != 0:
            failed += 1
            print(f"resolve: Python {version} aarch64 {label}: FAILED\n{proc.stdout}")
        else:
            print(f"resolve: Python {version} aarch64 {label}: ok in {time.perf_counter() - t0:.1f} s: "
                  + ", ".join(got))
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)
    print(f"resolve: {len(RESOLVE_TARGETS)} targets in {time.perf_counter() - start:.1f} s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
