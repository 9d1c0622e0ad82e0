"""The device/workstation split declared in edgealex/_sides.py holds, and workstation commands refuse
an old Python in one line (the version is simulated through ``edgealex._sides.python_version``)."""

import ast
import os
import subprocess

import pytest

import edgealex
from conftest import PYTHON, REPO, python_env_without
from edgealex import _sides
from edgealex.errors import EdgeAlexError

PACKAGE = os.path.join(REPO, "edgealex")


def _module_name(path):
    module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return module[:-len(".__init__")] if module.endswith(".__init__") else module


def _resolve(module, node):
    """The absolute module names an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        is_package = os.path.basename(module) == "__init__"
        parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
        base = ".".join(parts + ([base] if base else []))
    return [base] + [base + "." + alias.name for alias in node.names]


def _imports(path):
    """(imported module, at module level?) for every import in a file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    module = _module_name(path)
    found = []

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((name, top) for name in _resolve(module, child))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, True)
    return found


def test_sides_partition_the_package():
    device = _sides.module_files("device")
    workstation = _sides.module_files("workstation")
    assert set(device).isdisjoint(workstation)
    every = sorted(os.path.join(folder, name) for folder, _, names in os.walk(PACKAGE)
                   for name in names if name.endswith(".py"))
    assert sorted(device + workstation) == every
    names = {_module_name(p) for p in device}
    for expected in ("edgealex.cli.main", "edgealex.camera.synthetic", "edgealex.synth.render", "edgealex.doctor",
                     "edgealex.bench.baselines", "edgealex.build.trt", "edgealex.selftest", "edgealex.cli.selftest"):
        assert expected in names
    assert {_module_name(p) for p in workstation} >= {"edgealex.export.onnx", "edgealex.models.alexnet",
                                                       "edgealex.train.trainer", "edgealex.demo"}


def test_device_side_imports_workstation_code_only_lazily_on_declared_paths():
    bad = []
    for path in _sides.module_files("device"):
        module = _module_name(path)
        for name, top in _imports(path):
            if not name.startswith("edgealex") or _sides.side_of(name) != "workstation":
                continue
            allowed = any(device == module and (name == target or name.startswith(target + "."))
                          for device, target in _sides.LAZY_CROSSINGS)
            if top or not allowed:
                bad.append("{} imports {} ({})".format(module, name, "module level" if top else "undeclared"))
    assert bad == []


def test_synthetic_source_renders_without_workstation_code():
    """The default camera (synthetic://) and the renderer import and run with every workstation module and
    torch blocked: the renderer needs only numpy and OpenCV."""
    prefix, env = python_env_without(["torch", "onnx", "onnxruntime", "tensorrt"])
    body = (
        "WS = {ws!r}\n"
        "class _BlockWS:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if any(name == w or name.startswith(w + '.') for w in WS):\n"
        "            raise ModuleNotFoundError('blocked ' + name, name=name)\n"
        "sys.meta_path.insert(0, _BlockWS())\n"
        "from edgealex.camera.source import EndOfStream, open_source\n"
        "src = open_source('synthetic://?count=3&pool=1', width=96, height=64, fps=0)\n"
        "shapes = []\n"
        "with src:\n"
        "    while True:\n"
        "        try:\n"
        "            frame = src.capture()\n"
        "        except EndOfStream:\n"
        "            break\n"
        "        shapes.append((frame.image.shape, frame.truth in src.labels))\n"
        "print('FRAMES', len(shapes), shapes[0])\n"
        "print('WSLOADED', sorted(m for m in sys.modules if any(m.startswith(w) for w in WS)))\n"
    ).format(ws=list(_sides.WORKSTATION_MODULES))
    proc = subprocess.run([PYTHON, "-c", prefix + body], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FRAMES 3 ((64, 96, 3), True)" in proc.stdout
    assert "WSLOADED []" in proc.stdout


def test_every_device_module_imports_with_the_workstation_side_blocked():
    modules = sorted(_module_name(p) for p in _sides.module_files("device"))
    prefix, env = python_env_without(["torch"])
    body = (
        "import importlib\n"
        "WS = {ws!r}\n"
        "class _BlockWS:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if any(name == w or name.startswith(w + '.') for w in WS):\n"
        "            raise ModuleNotFoundError('blocked ' + name, name=name)\n"
        "sys.meta_path.insert(0, _BlockWS())\n"
        "for name in {mods!r}:\n"
        "    importlib.import_module(name)\n"
        "print('OK')\n"
    ).format(ws=list(_sides.WORKSTATION_MODULES), mods=modules)
    proc = subprocess.run([PYTHON, "-c", prefix + body], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_check_workstation_python():
    _sides.check_workstation_python("export", (3, 8, 0))
    _sides.check_workstation_python("export", (3, 11, 7))
    with pytest.raises(EdgeAlexError) as info:
        _sides.check_workstation_python("export", (3, 7, 12))
    assert info.value.format().splitlines()[0] == (
        "edgealex export | needs Python 3.8 or newer; this is Python 3.7.12 (PyTorch -> ONNX export needs torch).")
    assert _sides.workstation_python_problem((3, 6, 9)) == "needs Python 3.8 or newer; this is Python 3.6.9"
    assert _sides.workstation_python_problem((3, 10, 0)) is None


def test_the_refusal_names_every_device_command():
    # the note listed 7 of the 10 commands that run on the older Python (deploy, targets, data were missing)
    from edgealex.cli.main import COMMANDS

    with pytest.raises(EdgeAlexError) as info:
        _sides.check_workstation_python("train", (3, 6, 9))
    listed = info.value.format().splitlines()[1].split("the device side runs: ", 1)[1].split(", ")
    assert sorted(listed) == sorted(name for name, *_ in COMMANDS if name not in _sides.WORKSTATION_COMMANDS)


ARGS = {"calibrate": ["model.onnx", "--images", "calib"], "train": ["--data", "data"],  # required arguments,
        "prune": ["model.pt", "--keep", "0.5"], "distill": ["--teacher", "t.pt", "--data", "data"]}  # so parsing succeeds


@pytest.mark.parametrize("command", sorted(_sides.WORKSTATION_COMMANDS))
def test_workstation_command_refuses_python_3_6_in_one_line(command, tmp_path):
    """Each workstation command, started on a (simulated) Python 3.6.9, prints one error line naming the
    Python it needs, exits 1, and imports nothing of the workstation side."""
    body = (
        "import sys\n"
        "import edgealex._sides as sides\n"
        "sides.python_version = lambda: (3, 6, 9)\n"
        "from edgealex.cli.main import app\n"
        "try:\n"
        "    app({args!r}, prog_name='edgealex')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "ws = sorted(m for m in sys.modules if any(m == w or m.startswith(w + '.') for w in {ws!r}))\n"
        "print('WSLOADED', ws)\n"
        "sys.exit(code)\n"
    ).format(args=[command] + ARGS.get(command, []), ws=list(_sides.WORKSTATION_MODULES))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([PYTHON, "-c", body], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("edgealex {} | needs Python 3.8 or newer; this is Python 3.6.9".format(command))
    assert len(lines) == 2 and lines[1].startswith("Note: ")
    assert "Traceback" not in proc.stderr
    assert "WSLOADED []" in proc.stdout


def test_device_command_is_not_refused_on_python_3_6(tmp_path):
    body = (
        "import edgealex._sides as sides\n"
        "sides.python_version = lambda: (3, 6, 9)\n"
        "from edgealex.cli.main import app\n"
        "app(['targets'], prog_name='edgealex')\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([PYTHON, "-c", body], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "nano" in proc.stdout.lower()


def test_compare_mode_skips_the_pytorch_baselines_on_python_3_6(monkeypatch):
    from edgealex.bench.harness import BenchOptions, baseline_subjects

    monkeypatch.setattr(_sides, "python_version", lambda: (3, 6, 9))
    subjects, skipped = baseline_subjects(BenchOptions(baselines=("torch", "torch-int8")), [], None)
    assert subjects == []
    assert [name for name, _ in skipped] == ["torch", "torch-int8"]
    assert all("needs Python 3.8 or newer; this is Python 3.6.9" in reason for _, reason in skipped)


def test_package_version_floor_is_the_device_python():
    text = open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8").read()
    assert 'requires-python = ">={}.{}"'.format(*_sides.DEVICE_PYTHON) in text
    assert edgealex.__version__
