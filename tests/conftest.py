"""Shared fixtures and capability probes.

Hardware tests are skipped by probing the machine (module importable, CUDA device present, DLA
cores > 0), never by version strings or hope.
"""

import functools
import os
import signal
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFECT_LABELS = ["ok", "scratch", "stain", "crack", "hole"]


@functools.lru_cache(maxsize=None)
def probe_tensorrt():
    """(ok, reason): tensorrt imports."""
    try:
        import tensorrt  # noqa: F401
        return True, ""
    except Exception as exc:  # ImportError, or OSError for a missing libnvinfer
        return False, "tensorrt not importable ({}: {})".format(type(exc).__name__, exc)


@functools.lru_cache(maxsize=None)
def probe_cuda_device():
    """(ok, reason): a CUDA device is visible through cuda-python or pycuda."""
    try:
        from cuda.bindings import runtime as cudart
    except Exception:
        try:
            from cuda import cudart
        except Exception:
            cudart = None
    if cudart is not None:
        try:
            err, count = cudart.cudaGetDeviceCount()
            if int(err) == 0 and count > 0:
                return True, ""
            return False, "cudaGetDeviceCount returned {} (count {})".format(err, count)
        except Exception as exc:
            return False, "cuda-python probe failed: {}".format(exc)
    try:
        import pycuda.driver as drv
        drv.init()
        if drv.Device.count() > 0:
            return True, ""
        return False, "pycuda sees no CUDA device"
    except Exception as exc:
        return False, "no cuda-python or pycuda with a device ({})".format(exc)


@functools.lru_cache(maxsize=None)
def probe_dla():
    ok, reason = probe_tensorrt()
    if not ok:
        return False, reason
    import tensorrt as trt
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        cores = builder.num_DLA_cores
    except Exception as exc:
        return False, "cannot create a TensorRT builder ({})".format(exc)
    return (cores > 0, "builder.num_DLA_cores == {}".format(cores))


def pytest_collection_modifyitems(config, items):
    probes = {"trt": probe_tensorrt, "gpu": probe_cuda_device, "dla": probe_dla}
    for item in items:
        for marker, probe in probes.items():
            if item.get_closest_marker(marker):
                ok, reason = probe()
                if not ok:
                    item.add_marker(pytest.mark.skip(reason="requires {}: {}".format(marker, reason)))


@pytest.fixture(scope="session")
def alexnet_onnx(tmp_path_factory):
    """A random-init torchvision-layout AlexNet exported for 5 defect classes (path)."""
    pytest.importorskip("torch")
    from edgealex.export.onnx import export_onnx

    path = str(tmp_path_factory.mktemp("alexnet") / "alexnet.onnx")
    export_onnx(path, arch="alexnet", labels=list(DEFECT_LABELS), seed=0, parity_samples=1)
    return path


def python_env_without(blocked):
    """Environment + code prefix that makes `import X` fail for every module in ``blocked``."""
    code = (
        "import sys\n"
        "BLOCKED = {!r}\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError('No module named %r (blocked by test)' % name, name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    ).format(sorted(blocked))
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return code, env


PYTHON = sys.executable


def default_sigint():
    """``preexec_fn`` for children the tests interrupt: SIGINT and SIGHUP back to their default
    dispositions.

    A shell that starts a job in the background without job control (as CI may) makes SIGINT
    ignored for it, and Python then installs no KeyboardInterrupt handler in the child; under
    ``nohup`` SIGHUP is ignored, and edgealex rightly leaves an ignored SIGHUP alone.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class _SeparateResult:
    """click >= 8.2's Result semantics on an older click: ``output`` is stdout and stderr together,
    ``stdout`` and ``stderr`` apart."""

    def __init__(self, result):
        self._result = result

    @property
    def output(self):
        return self._result.stdout + self._result.stderr

    def __getattr__(self, name):
        return getattr(self._result, name)


class _Runner:
    def __init__(self, runner, wrap):
        self._runner = runner
        self._wrap = wrap

    def invoke(self, *args, **kwargs):
        result = self._runner.invoke(*args, **kwargs)
        return _SeparateResult(result) if self._wrap else result


def cli_runner():
    """typer's CliRunner with click >= 8.2's streams on every click: click < 8.2 (the floor in
    .ci/floors.txt, and the last for Python 3.6) mixes stderr into ``result.stdout`` unless told not to."""
    from typer.testing import CliRunner

    try:
        return _Runner(CliRunner(mix_stderr=False), wrap=True)
    except TypeError:  # click >= 8.2 always separates them and dropped the argument
        return _Runner(CliRunner(), wrap=False)


def require_calibrate():
    """Skip where this onnxruntime cannot run `edgealex calibrate` (the floors run: 1.15)."""
    import pytest

    from edgealex.calib.ort import check_ort_support
    from edgealex.errors import EdgeAlexError

    pytest.importorskip("onnxruntime")
    try:
        check_ort_support()
    except EdgeAlexError as exc:
        pytest.skip(exc.what)
