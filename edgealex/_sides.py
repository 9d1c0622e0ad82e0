"""Which code runs where: the one place that declares edgealex's device side and workstation side.

- **Device side** (Python >= 3.6: the Jetson Nano's JetPack 4.6.x ships Python 3.6.9 and TensorRT's
  Python bindings exist only for it, `python3-libnvinfer`): every module under ``edgealex/`` that is
  not listed in :data:`WORKSTATION_MODULES` — the CLI (every command module must import on 3.6 to
  register), targets/detection, doctor, selftest, build (TensorRT's Python API and trtexec), the
  runtimes, camera sources and sinks, the loop, bench and power readers, report, dla-check,
  artifacts, preprocessing, the synthetic renderer and dataset writer (``edgealex.synth``: numpy and
  OpenCV only), and ``edgealex.calib`` (``build --calib`` reads its caches and manifests on the device).
- **Workstation side** (Python >= 3.8): what needs PyTorch — export, train, the models, the demo.
  The workstation *commands* (:data:`WORKSTATION_COMMANDS`) refuse an older Python in one line
  before importing anything of that side; ``calibrate`` is one of them (ONNX Runtime's quantizer:
  the last cp36 aarch64 onnxruntime is 1.10) although its modules stay 3.6-clean for ``build``.

Device-side code may import workstation code only lazily (inside a function) and only along the
edges in :data:`LAZY_CROSSINGS`. ``tests/test_sides.py`` checks the edges and ``tests/test_py38.py``
runs vermin with a 3.6 target over the device side and a 3.8 target over the workstation side.
"""

import os
import sys

from edgealex.errors import EdgeAlexError

DEVICE_PYTHON = (3, 6)
WORKSTATION_PYTHON = (3, 8)

# Packages (with everything under them) and modules that may use Python 3.8.
WORKSTATION_MODULES = (
    "edgealex.export",
    "edgealex.train",
    "edgealex.models",
    "edgealex.demo",
    "edgealex.demo_compact",
)

# Command name -> why it needs the workstation's Python.
WORKSTATION_COMMANDS = {
    "export": "PyTorch -> ONNX export needs torch",
    "calibrate": "ONNX Runtime's INT8 quantizer",
    "train": "training needs torch",
    "prune": "pruning and fine-tuning need torch",
    "distill": "distillation trains with torch",
    "demo": "the demo trains and exports with torch",
}

# (device-side module, workstation module or package) -> the only path on which it is imported.
LAZY_CROSSINGS = {
    ("edgealex.bench.baselines", "edgealex.models"): "bench --mode compare, the PyTorch baselines only",
    ("edgealex.cli.export", "edgealex.export"): "edgealex export, after the Python check",
    ("edgealex.cli.train", "edgealex.train"): "edgealex train, after the Python check",
    ("edgealex.cli.prune", "edgealex.models"): "edgealex prune, after the Python check",
    ("edgealex.cli.prune", "edgealex.train"): "edgealex prune (fine-tuning progress), after the Python check",
    ("edgealex.cli.distill", "edgealex.train"): "edgealex distill, after the Python check",
    ("edgealex.cli.demo", "edgealex.demo"): "edgealex demo, after the Python check",
    ("edgealex.cli.demo", "edgealex.demo_compact"): "edgealex demo --compact, after the Python check",
}

# Backports the device side relies on below Python 3.7/3.8 (declared with markers in pyproject.toml);
# vermin is told about them with --backport.
DEVICE_BACKPORTS = ("dataclasses", "typing_extensions==4.0")
WORKSTATION_BACKPORTS = ("typing_extensions",)

# (Python of a JetPack, extras a board installs): the core and these extras must resolve from aarch64
# wheels (.ci/resolve.py runs on every CI run). JetPack 4.6 / Nano: Python 3.6 (no matplotlib or
# jetson-stats wheel for cp36 aarch64: report plots run on the workstation, `sudo -H pip3 install
# jetson-stats` builds jtop from its sdist; paho-mqtt 1.6.1, the last for 3.6, is an sdist too:
# `pip3 install --user paho-mqtt==1.6.1`); JetPack 5.1 / Xavier: 3.8; JetPack 6 / Orin: 3.10.
RESOLVE_TARGETS = (
    ("3.6", ("ort", "gpio")),
    ("3.8", ("ort", "report", "jetson", "cuda", "mqtt", "gpio")),
    ("3.10", ("ort", "report", "jetson", "cuda", "mqtt", "gpio")),
)

# Pins the README's Jetson quickstart adds on each JetPack's Python (no environment marker can tell a board's
# CUDA): cuda-python's major must match JetPack's CUDA - 11.4 on JetPack 5, 12.2/12.6 on JetPack 6; a newer
# major needs a newer driver (pip on JetPack 6's Ubuntu 22.04 otherwise picks cuda-python 13, whose runtime is
# CUDA 13.0 linked statically and needs driver 580.65+: nvidia.github.io/cuda-python cuda-core install page,
# cuda-bindings 13.0.3 release notes). numpy<2 on
# JetPack 6: onnxruntime 1.23 requires numpy>=1.21.6, above Ubuntu 22.04's 1.21.5, so pip would install
# numpy 2 into the --system-site-packages venv, and JetPack's OpenCV, built against numpy 1.x, stops
# importing. .ci/resolve.py resolves them with the extras; tests/test_resolve.py checks the README has them.
BOARD_PINS = {
    "3.8": ("cuda-python>=11.4,<12",),
    "3.10": ("cuda-python>=12,<13", "numpy<2"),
}


def side_of(module):
    """``"workstation"`` or ``"device"`` for a dotted module name under ``edgealex``."""
    for name in WORKSTATION_MODULES:
        if module == name or module.startswith(name + "."):
            return "workstation"
    return "device"


def module_files(side, root=None):
    """The ``.py`` files of one side, sorted.

    Args:
        side (str): "device" or "workstation".
        root (str): the ``edgealex`` package folder. Defaults to this package's folder.

    Returns:
        list[str]: absolute paths.
    """
    root = os.path.abspath(root or os.path.dirname(__file__))
    base = os.path.dirname(root)
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
            if module.endswith(".__init__"):
                module = module[:-len(".__init__")]
            if side_of(module) == side:
                files.append(path)
    return files


def python_version():
    """``sys.version_info[:3]`` as a tuple (tests replace this to simulate another Python)."""
    return tuple(sys.version_info[:3])


def _dotted(version):
    return ".".join(str(part) for part in version)


def workstation_python_problem(version=None):
    """None when this Python runs the workstation side, else a sentence saying which Python it needs."""
    version = tuple(version or python_version())
    if version[:2] >= WORKSTATION_PYTHON:
        return None
    return f"needs Python {_dotted(WORKSTATION_PYTHON)} or newer; this is Python {_dotted(version)}"


def check_workstation_python(command, version=None):
    """Refuse a workstation command on a Python older than :data:`WORKSTATION_PYTHON`.

    Args:
        command (str): the command name, e.g. "export".
        version (tuple): (major, minor, micro); defaults to :func:`python_version`.

    Raises:
        EdgeAlexError: "edgealex export | needs Python 3.8 or newer; this is Python 3.6.9 (...)".
    """
    problem = workstation_python_problem(version)
    if problem is None:
        return
    why = WORKSTATION_COMMANDS.get(command, "workstation side")
    raise EdgeAlexError(
        f"edgealex {command}", f"{problem} ({why})",
        "run it on a workstation with Python >= 3.8 and copy the results here; on this Python the device "
        "side runs: doctor, selftest, build, run, bench, report, dla-check, deploy, targets, data",
    )
