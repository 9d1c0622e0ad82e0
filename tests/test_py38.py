"""The device side runs on the Jetson Nano's Python 3.6, the workstation side on 3.8: static checks with
vermin (and ruff) over the two sides declared in edgealex/_sides.py, with the backports they rely on."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from edgealex import _sides

PACKAGE = os.path.join(REPO, "edgealex")


def _tool(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else shutil.which(name)


def _vermin(target, backports, files):
    vermin = _tool("vermin")
    if vermin is None:
        pytest.skip("vermin not installed (pip install 'edgealex[test]')")
    args = [vermin, "-t={}-".format(target), "--no-tips", "--violations", "--eval-annotations",
            "--no-parse-comments"]
    for name in backports:
        args += ["--backport", name]
    return subprocess.run(args + files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def test_vermin_says_python_3_6_is_enough_for_the_device_side():
    files = _sides.module_files("device", PACKAGE)
    assert len(files) > 50
    proc = _vermin("3.6", _sides.DEVICE_BACKPORTS, files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Minimum required versions: 3.6" in proc.stdout


def test_vermin_says_python_3_8_is_enough_for_the_workstation_side():
    files = _sides.module_files("workstation", PACKAGE)
    assert files
    proc = _vermin("3.8", _sides.WORKSTATION_BACKPORTS, files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_catches_a_python_3_7_call_on_the_device_side(tmp_path):
    """The check can fail: a device-side style file using subprocess.run(capture_output=...) is refused."""
    bad = tmp_path / "bad.py"
    bad.write_text("import subprocess\nsubprocess.run(['true'], capture_output=True)\n")
    proc = _vermin("3.6", _sides.DEVICE_BACKPORTS, [str(bad)])
    assert proc.returncode != 0
    assert "capture_output" in proc.stdout


def _ruff(target, files, *extra):
    ruff = _tool("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install 'edgealex[test]')")
    return subprocess.run([ruff, "check", "--target-version", target] + list(extra) + files,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=REPO)


def test_ruff_device_side_py37():
    """ruff's oldest target is py37 (vermin above covers 3.6)."""
    proc = _ruff("py37", _sides.module_files("device", PACKAGE))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_workstation_side_py38():
    proc = _ruff("py38", _sides.module_files("workstation", PACKAGE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
