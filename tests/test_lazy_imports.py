"""`import edgealex`, `edgealex --help` and every command's --help need only the core."""

import pkgutil
import subprocess

import edgealex
from conftest import PYTHON, python_env_without

HEAVY = ["torch", "onnx", "onnxruntime", "onnxscript", "onnxslim", "cv2", "tensorrt", "pycuda", "cuda",
         "jtop", "pynvml", "matplotlib", "PIL", "scipy"]


def run_blocked(body, timeout=120):
    prefix, env = python_env_without(HEAVY)
    return subprocess.run([PYTHON, "-c", prefix + body], capture_output=True, text=True, env=env, timeout=timeout)


def all_submodules():
    return sorted(m.name for m in pkgutil.walk_packages(edgealex.__path__, "edgealex."))


def test_every_submodule_imports_without_heavy_dependencies():
    modules = all_submodules()
    assert "edgealex.export.onnx" in modules and "edgealex.cli.main" in modules
    body = (
        "import importlib\n"
        "for name in {!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)\n"
        "print('LEAKED', leaked)\n"
    ).format(modules)
    proc = run_blocked(body)
    assert proc.returncode == 0, proc.stderr
    assert "LEAKED []" in proc.stdout


def test_help_of_every_command_without_heavy_dependencies():
    from edgealex.cli.main import COMMANDS

    proc = run_blocked("from edgealex.cli.main import app\napp(['--help'], prog_name='edgealex')")
    assert proc.returncode == 0, proc.stderr
    for name, _, _, _ in COMMANDS:
        assert name in proc.stdout, "command {} missing from --help".format(name)
        sub = run_blocked("from edgealex.cli.main import app\napp([{!r}, '--help'], prog_name='edgealex')".format(name))
        assert sub.returncode == 0, (name, sub.stderr)
        assert "Usage" in sub.stdout


def test_missing_extra_names_the_pip_command():
    body = "from edgealex.cli.main import app\napp(['export', '-o', 'x.onnx'], prog_name='edgealex')"
    proc = run_blocked(body)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "PyTorch" in proc.stderr and "pip install" in proc.stderr and "edgealex[export]" in proc.stderr


def test_require_error_format():
    from edgealex._optional import install_hint, require
    from edgealex.errors import EdgeAlexError

    assert install_hint("onnxruntime.quantization") == "pip install 'edgealex[ort]'"
    try:
        require("edgealex_no_such_module_xyz", "unit test")
    except EdgeAlexError as err:
        text = err.format()
        assert text.startswith("unit test | ")
        assert "\nNote: install it: pip install edgealex_no_such_module_xyz" in text
    else:
        raise AssertionError("require() did not raise")
