"""``--sink gpio://PIN?pulse_ms=50``: a reject pulse on a Jetson header pin per defect verdict.

Jetson.GPIO (extra ``gpio``; also JetPack's ``python3-jetson-gpio``) drives the pin. It has no
simulation mode and raises ``RuntimeError`` at import where ``/dev/gpiochip0`` is missing or not
writable (NVIDIA/jetson-gpio 2.1.x ``gpio.py``), so it is imported only when the sink opens, and
either failure is one user error naming the fix.

URI options: ``pulse_ms`` (pulse length, default 50), ``active`` (``high`` or ``low``: the level
that means "reject", default high; the pin rests at the other level), ``mode`` (``board``, the
40-pin header's numbers, default; or ``bcm``). Example: ``gpio://12?pulse_ms=80&active=low``.

Behaviour:

- ``write`` only queues the defect (with its capture time) for a worker thread, which calls
  ``GPIO.output``: a pulse never delays the loop.
- The pulse is retriggerable, like a monostable: a defect that arrives while the pin is active
  extends the pulse to ``pulse_ms`` after that defect (counted as ``retriggered``), so defects in
  consecutive frames give one longer reject rather than pulses the actuator cannot resolve.
- Delivery latency (capture start -> ``GPIO.output`` returned with the pin active, or the pulse
  extended) is recorded per defect.
- Pins are released (driven to the resting level, then ``GPIO.cleanup(pin)``) when the run ends,
  on Ctrl-C and SIGTERM (the loop handles both), on SIGHUP (handled like SIGTERM while the sink is
  open), and at interpreter exit as a last resort. Only SIGKILL or power loss skip it: wire the
  reject actuator fail-safe (facts: header pins are 3.3 V and may float when unconfigured).

Pins Jetson.GPIO drives in BOARD numbering on Nano, Xavier and Orin: 7, 11, 12, 13, 15, 16, 18, 19,
21, 22, 23, 24, 26, 29, 31, 32, 33, 35, 36, 37, 38, 40 (NVIDIA/jetson-gpio ``gpio_pin_data.py``);
its samples use 12 as an output. Orin on JetPack 6 cannot switch a pin to GPIO at run time: the
pinmux must be set first (NVIDIA/jetson-gpio #114, #120).
"""

import atexit
import collections
import signal
import threading
import time

from edgealex._optional import require
from edgealex.camera.sink import FrameSink
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger
from edgealex.station import DeliveryLog, capture_start, option, split_uri

OPTIONS = ("pulse_ms", "active", "mode")
EXAMPLE = "gpio://12?pulse_ms=50&active=high"
BOARD_PINS = (7, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 29, 31, 32, 33, 35, 36, 37, 38, 40)
PERMISSION_FIX = ("on a Jetson, let this user drive the pins: sudo groupadd -f -r gpio && sudo usermod -a -G gpio $USER, "
                  "copy Jetson/GPIO/99-gpio.rules to /etc/udev/rules.d/, then sudo udevadm control --reload-rules && "
                  "sudo udevadm trigger and log in again; elsewhere there are no Jetson GPIO pins")


def import_gpio(subject="gpio://"):
    """``Jetson.GPIO``, or one :class:`EdgeAlexError` saying why not (missing, or unusable here)."""
    try:
        return require("Jetson.GPIO", subject)
    except EdgeAlexError:
        raise
    except Exception as exc:  # RuntimeError at import: no /dev/gpiochip0, or no permission on it
        first = str(exc).split(". ")[0].strip().rstrip(".")
        raise EdgeAlexError(subject, f"Jetson.GPIO cannot drive pins here ({type(exc).__name__}: {first[:160]})",
                            PERMISSION_FIX)


class GpioSink(FrameSink):
    """Reject pulses on one pin (see the module docstring).

    Args:
        pin (int): pin number in ``mode`` numbering.
        pulse_ms (float): pulse length, milliseconds. Defaults to 50.
        active (str): "high" or "low", the reject level. Defaults to "high".
        mode (str): "board" or "bcm". Defaults to "board".
        gpio (module): the GPIO module to drive; None imports Jetson.GPIO when the sink opens.
            Tests pass a stand-in that records ``output`` calls.
    """

    delivery_name = "gpio"

    def __init__(self, pin, pulse_ms=50.0, active="high", mode="board", gpio=None, uri=None):
        self.pin = int(pin)
        self.pulse_ms = check_float("gpio sink pulse_ms", pulse_ms, low=0, low_open=True, example="50")
        self.active = active
        self.mode = mode
        self.uri = uri or f"gpio://{self.pin}?pulse_ms={self.pulse_ms:g}"
        self._gpio = gpio
        self._module = None
        self._on = self._off = None
        self._delivery = DeliveryLog()
        self.deliveries_ms = self._delivery.deliveries_ms
        self._requests = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._worker = None
        self._released = True
        self._previous_sighup = None
        self._error = None  # what broke the worker: the next write stops the run with it
        self.counters = {"pulses": 0, "retriggered": 0, "defects": 0}

    @classmethod
    def from_uri(cls, uri):
        """Parse ``gpio://PIN[?pulse_ms=50&active=high&mode=board]``.

        Raises:
            EdgeAlexError: no pin, an unknown option or a value out of range.
        """
        parts, opts = split_uri(uri, OPTIONS, EXAMPLE)
        text = (parts.netloc + parts.path).strip("/")
        try:
            pin = int(text)
        except ValueError:
            raise EdgeAlexError(uri, f"'{text}' is not a pin number", "e.g. " + EXAMPLE)
        active = opts.get("active", "high").lower()
        mode = opts.get("mode", "board").lower()
        if active not in ("high", "low"):
            raise EdgeAlexError(uri, f"active={active} is not 'high' or 'low'", "e.g. ?active=low for an active-low input")
        if mode not in ("board", "bcm"):
            raise EdgeAlexError(uri, f"mode={mode} is not 'board' or 'bcm'", "use the 40-pin header numbers: ?mode=board")
        if mode == "board" and pin not in BOARD_PINS:
            raise EdgeAlexError(uri, f"header pin {pin} is not a GPIO Jetson.GPIO drives",
                                "use one of " + ", ".join(str(p) for p in BOARD_PINS) + " (e.g. 12)")
        return cls(pin, pulse_ms=option(uri, opts, "pulse_ms", float, 50.0, 1.0, 60000.0), active=active,
                   mode=mode, uri=str(uri).strip())

    # -- FrameSink ------------------------------------------------------------------------------
    def open(self, context):
        gpio = self._gpio if self._gpio is not None else import_gpio(self.uri)
        self._on = gpio.HIGH if self.active == "high" else gpio.LOW
        self._off = gpio.LOW if self.active == "high" else gpio.HIGH
        try:
            gpio.setwarnings(False)
            gpio.setmode(gpio.BOARD if self.mode == "board" else gpio.BCM)
            gpio.setup(self.pin, gpio.OUT, initial=self._off)
        except (ValueError, RuntimeError) as exc:
            raise EdgeAlexError(self.uri, f"cannot set up pin {self.pin} as an output ({exc})",
                                "check the pin number (BOARD numbering: the 40-pin header) and the pinmux "
                                "(jetson-io; on Orin JetPack 6 the pinmux must be set before)")
        self._module = gpio
        self._released = False
        atexit.register(self._release)
        self._hook_sighup()
        self._stop = False
        self._worker = threading.Thread(target=self._pulse_worker, name="edgealex-gpio", daemon=True)
        self._worker.start()
        logger.info("GPIO: %s pulses of %g ms on %s pin %d per defect", self.active, self.pulse_ms,
                    self.mode.upper(), self.pin)

    def write(self, item):
        if self._error is not None:  # rejects are not happening: stop the line's run loudly
            raise EdgeAlexError(self.uri, f"driving pin {self.pin} failed ({type(self._error).__name__}: "
                                f"{self._error})", "check the wiring, the pin's pinmux and the gpio group; the run "
                                "stopped so that no defect passes without a reject signal")
        if not item.result.defect:
            return
        with self._cond:
            self._requests.append(capture_start(item.frame))
            self.counters["defects"] += 1
            self._cond.notify()

    def finish(self):
        """Let the pulse in progress end (bounded), then the counters."""
        deadline = time.monotonic() + self.pulse_ms / 1e3 + 2.0
        try:
            with self._cond:
                while (self._requests or self._busy) and time.monotonic() < deadline:
                    self._cond.wait(0.05)
        except KeyboardInterrupt:  # a second Ctrl-C: close() still releases the pin
            pass
        counts = dict(self.counters)
        counts.update({"pin": self.pin, "active": self.active, "pulse_ms": self.pulse_ms})
        return counts

    def close(self, summary=None):
        if self._module is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(self.pulse_ms / 1e3 + 5.0)
        self._release()
        self._unhook_sighup()
        try:
            atexit.unregister(self._release)
        except Exception:
            pass
        self._module = None

    # -- worker ---------------------------------------------------------------------------------
    def _pulse_worker(self):
        try:
            self._pulses()
        except Exception as exc:  # handed to the loop by the next write()
            logger.error("GPIO: pin %d: %s", self.pin, exc)
            with self._cond:
                self._error = exc
                self._busy = False
                self._cond.notify_all()

    def _pulses(self):
        gpio = self._module
        pulse_s = self.pulse_ms / 1e3
        with self._cond:
            while True:
                while not self._requests and not self._stop:
                    self._cond.wait()
                if not self._requests:  # stopping and idle
                    return
                started = self._requests.popleft()
                self._busy = True
                self._cond.release()
                try:
                    gpio.output(self.pin, self._on)  # outside the lock: never holds up write()
                    self._delivery.record(started)
                finally:
                    self._cond.acquire()
                self.counters["pulses"] += 1
                end = time.monotonic() + pulse_s
                while True:  # hold the pin; a defect meanwhile extends the pulse
                    if self._requests:
                        started = self._requests.popleft()
                        end = time.monotonic() + pulse_s
                        self._delivery.record(started)
                        self.counters["retriggered"] += 1
                        continue
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._cond.release()
                try:
                    gpio.output(self.pin, self._off)
                finally:
                    self._cond.acquire()
                self._busy = False
                self._cond.notify_all()

    def _release(self):
        """Pin to its resting level and handed back to the system (idempotent)."""
        if self._released:
            return
        self._released = True
        gpio = self._module
        try:
            gpio.output(self.pin, self._off)
            gpio.cleanup(self.pin)
        except Exception as exc:  # at exit: report, never raise
            logger.warning("GPIO: releasing pin %d failed (%s)", self.pin, exc)

    def _hook_sighup(self):
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
            return
        try:
            if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
                self._previous_sighup = signal.signal(signal.SIGHUP, _sighup_as_interrupt)
        except (ValueError, OSError):
            self._previous_sighup = None

    def _unhook_sighup(self):
        if self._previous_sighup is not None:
            try:
                signal.signal(signal.SIGHUP, self._previous_sighup)
            except (ValueError, OSError):
                pass
            self._previous_sighup = None


def _sighup_as_interrupt(signum, frame):
    raise KeyboardInterrupt()
