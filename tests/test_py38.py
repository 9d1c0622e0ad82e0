"""Device-side code must run on JetPack 5's Python 3.8: static checks with vermin and ruff."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGE = os.path.join(REPO, "edgealex")


def _tool(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else shutil.which(name)


def test_vermin_says_python_3_8_is_enough():
    vermin = _tool("vermin")
    if vermin is None:
        pytest.skip("vermin not installed (pip install 'edgealex[test]')")
    proc = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", "--eval-annotations",
                           "--backport", "typing_extensions", "--no-parse-comments", PACKAGE],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_py38_syntax_and_pyflakes():
    ruff = _tool("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install 'edgealex[test]')")
    proc = subprocess.run([ruff, "check", "--target-version", "py38", PACKAGE], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
