"""GPIO reject pulse: timing and ordering against a recording stand-in for Jetson.GPIO (which has
no simulation mode and cannot import without /dev/gpiochip0), release on signals in a real
subprocess, one-line errors, and the real module where a Jetson is present (probe-skipped)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, default_sigint, python_env_without
from test_runtime_models import ort_engine

from edgealex.camera import open_sink
from edgealex.camera.sink import SinkItem
from edgealex.camera.source import Frame
from edgealex.errors import EdgeAlexError
from edgealex.station.gpio import GpioSink

# A stand-in for the Jetson.GPIO module: the constants and calls the sink uses; ``output`` records
# (time, thread, pin, value). Written to a file as well, for the subprocess tests.
FAKE_GPIO = '''
import os, threading, time
BOARD, BCM, OUT, HIGH, LOW = "BOARD", "BCM", "OUT", 1, 0
calls = []
_log = os.environ.get("FAKE_GPIO_LOG")
gate = None  # a threading.Event a test may set: output(pin, active) waits for it

def _record(*call):
    calls.append(call)
    if _log:
        with open(_log, "a") as handle:
            handle.write(" ".join(str(x) for x in call) + "\\n")

def setwarnings(flag):
    _record("setwarnings", flag)

def setmode(mode):
    _record("setmode", mode)

def setup(pin, direction, initial=None):
    _record("setup", pin, direction, initial)

def output(pin, value):
    if gate is not None and value == _active[0]:
        gate.wait(30)
    _record("output", pin, value, time.monotonic(), threading.current_thread().name)

def cleanup(pin=None):
    _record("cleanup", pin)

_active = [HIGH]
'''


@pytest.fixture
def fake_gpio(tmp_path):
    folder = tmp_path / "fakegpio"
    (folder / "Jetson" / "GPIO").mkdir(parents=True)
    (folder / "Jetson" / "__init__.py").write_text("")
    (folder / "Jetson" / "GPIO" / "__init__.py").write_text(FAKE_GPIO)
    module = type(sys)("fake_gpio")
    exec(compile(FAKE_GPIO, "fake_gpio", "exec"), module.__dict__)  # its functions see the module's globals
    module.folder = str(folder)
    return module


class _Result:
    def __init__(self, index, defect):
        self.index, self.defect, self.defect_class = index, defect, defect
        self.top_class, self.confidence, self.timestamp = ("hole" if defect else "ok"), 0.9, time.time()
        self.latency_ms = {}


def _item(index, defect):
    frame = Frame(image=None, index=index, timestamp=time.time(), source="test", capture_ms=1.0,
                  captured_at=time.perf_counter())
    return SinkItem(frame, _Result(index, defect), None)


def _outputs(gpio):
    return [c for c in gpio.calls if c[0] == "output"]


def test_pulse_order_length_and_thread(fake_gpio):
    sink = GpioSink(12, pulse_ms=40, gpio=fake_gpio)
    sink.open({})
    try:
        assert fake_gpio.calls[:3] == [("setwarnings", False), ("setmode", "BOARD"), ("setup", 12, "OUT", 0)]
        sink.write(_item(0, False))
        sink.write(_item(1, True))
        counts = sink.finish()  # waits for the pulse to end
        sink.write(_item(2, False))
        sink.write(_item(3, True))
        counts = sink.finish()
    finally:
        sink.close()
    outs = _outputs(fake_gpio)
    assert [(c[1], c[2]) for c in outs[:4]] == [(12, 1), (12, 0), (12, 1), (12, 0)]
    assert all(c[4] == "edgealex-gpio" for c in outs[:4])  # never on the loop's thread
    assert outs[1][3] - outs[0][3] >= 0.040 and outs[3][3] - outs[2][3] >= 0.040
    assert counts["pulses"] == 2 and counts["retriggered"] == 0 and counts["defects"] == 2
    assert len(sink.deliveries_ms) == 2 and min(sink.deliveries_ms) > 0
    assert fake_gpio.calls[-1] == ("cleanup", 12) and fake_gpio.calls[-2][:3] == ("output", 12, 0)


def test_defect_during_a_pulse_extends_it(fake_gpio):
    """The stand-in holds output(pin, HIGH) until the test has queued a second defect, so the second
    defect reaches the worker while the pin is active, whatever the thread timing."""
    fake_gpio.gate = threading.Event()
    sink = GpioSink(12, pulse_ms=30, gpio=fake_gpio)
    sink.open({})
    try:
        sink.write(_item(0, True))
        sink.write(_item(1, True))  # queued while the first output call is held
        fake_gpio.gate.set()
        counts = sink.finish()
    finally:
        sink.close()
    outs = [(c[1], c[2]) for c in _outputs(fake_gpio)]
    assert outs[:2] == [(12, 1), (12, 0)]  # one longer pulse, not two
    assert counts["pulses"] == 1 and counts["retriggered"] == 1 and len(sink.deliveries_ms) == 2


def test_active_low(fake_gpio):
    fake_gpio._active[0] = fake_gpio.LOW
    sink = open_sink("gpio://12?pulse_ms=5&active=low")
    sink._gpio = fake_gpio
    sink.open({})
    sink.write(_item(0, True))
    sink.finish()
    sink.close()
    assert ("setup", 12, "OUT", 1) in fake_gpio.calls
    assert [(c[1], c[2]) for c in _outputs(fake_gpio)] == [(12, 0), (12, 1), (12, 1)]  # pulse, then release
    assert fake_gpio.calls[-1] == ("cleanup", 12)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_pin_released_when_the_run_is_stopped_by_a_signal(tmp_path, fake_gpio, sig):
    pytest.importorskip("onnxruntime")
    engine = ort_engine(tmp_path)
    log = tmp_path / "gpio.log"
    env = dict(os.environ, PYTHONPATH=fake_gpio.folder + os.pathsep + REPO, FAKE_GPIO_LOG=str(log))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgealex", "run", engine, "--source", "synthetic://?fps=30&pool=1", "--threshold", "0",
         "--defect-classes", "ok,scratch,stain,crack,hole", "--sink", "gpio://12?pulse_ms=20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and "output 12 0" in log.read_text():  # a pulse went out and ended
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    calls = log.read_text().splitlines()
    assert calls[-1] == "cleanup 12" and calls[-2].startswith("output 12 0 ")
    assert "stopped: interrupted" in out


def test_missing_module_is_one_line_with_the_pip_command(tmp_path):
    pytest.importorskip("onnxruntime")
    engine = ort_engine(tmp_path)
    code, env = python_env_without({"Jetson"})
    code += f"from edgealex.cli.main import main\nimport sys\nsys.argv = ['edgealex', 'run', {engine!r}, '--max-frames', '2', " \
            "'--sink', 'gpio://12']\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Jetson.GPIO" in proc.stderr and "pip install 'edgealex[gpio]'" in proc.stderr


def _real_gpio_state():
    try:
        import Jetson.GPIO  # noqa: F401
    except ImportError:
        return "missing"
    except Exception:
        return "unusable"
    return "usable"


@pytest.mark.skipif(_real_gpio_state() != "unusable", reason="needs Jetson.GPIO installed on a machine without "
                                                             "usable /dev/gpiochip0 (the real import-time failure)")
def test_real_module_without_gpiochip_is_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    proc = subprocess.run([sys.executable, "-m", "edgealex", "run", ort_engine(tmp_path), "--max-frames", "2",
                           "--sink", "gpio://12"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Jetson.GPIO cannot drive pins here (RuntimeError" in proc.stderr
    assert "usermod -a -G gpio" in proc.stderr


@pytest.mark.jetson
@pytest.mark.skipif(_real_gpio_state() != "usable" or not os.environ.get("EDGEALEX_TEST_GPIO_PIN"),
                    reason="needs a Jetson with Jetson.GPIO usable and EDGEALEX_TEST_GPIO_PIN (a free header pin)")
def test_real_jetson_gpio_pulse():
    sink = open_sink("gpio://{}?pulse_ms=20".format(os.environ["EDGEALEX_TEST_GPIO_PIN"]))
    sink.open({})
    sink.write(_item(0, True))
    counts = sink.finish()
    sink.close()
    assert counts["pulses"] == 1 and len(sink.deliveries_ms) == 1


@pytest.mark.parametrize("uri, what", [
    ("gpio://", "not a pin number"),
    ("gpio://3", "not a GPIO"),
    ("gpio://12?pulse_ms=0", "out of range"),
    ("gpio://12?active=up", "active=up"),
    ("gpio://12?pulse=5", "unknown option 'pulse'"),
])
def test_bad_uris(uri, what):
    with pytest.raises(EdgeAlexError) as err:
        open_sink(uri)
    assert what in str(err.value)


def test_a_failing_output_stops_the_run_and_still_releases_the_pin(tmp_path, fake_gpio):
    """If the pin cannot be driven, rejects are not happening: the run stops with one user error."""
    pytest.importorskip("onnxruntime")
    from edgealex.camera import open_source
    from edgealex.pipeline.loop import run_loop
    from edgealex.runtime.registry import load_runner

    real_output = fake_gpio.output

    def output(pin, value):
        if value == fake_gpio.HIGH:
            raise OSError(5, "Input/output error")
        real_output(pin, value)

    fake_gpio.output = output
    sink = GpioSink(12, pulse_ms=5, gpio=fake_gpio)
    with pytest.raises(EdgeAlexError) as err:
        run_loop(load_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=100000"), [sink],
                 defect_classes="ok,scratch,stain,crack,hole", threshold=0.0)
    assert "driving pin 12 failed (OSError" in str(err.value)
    assert fake_gpio.calls[-1] == ("cleanup", 12) and fake_gpio.calls[-2][:3] == ("output", 12, 0)
