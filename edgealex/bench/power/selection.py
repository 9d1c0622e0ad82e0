"""``--power`` spec -> meter, including ``auto`` and the reasons for what is not readable."""

import os

from edgealex.bench.power.base import MeterUnavailable, NullMeter, RailChoice
from edgealex.errors import EdgeAlexError

METERS = ("auto", "ina3221", "jtop", "nvml", "rapl", "csv:FILE", "none")
# Board sensors first (whole module), then jtop (same sensors through a service), then the GPU
# only, then the CPU package only.
AUTO_ORDER = ("ina3221", "jtop", "nvml", "rapl")


def _make(name, choice, root, interval_s, offset_s=0.0):
    if name == "ina3221":
        from edgealex.bench.power.ina3221 import Ina3221Meter
        return Ina3221Meter(choice, root=root, interval_s=interval_s)
    if name == "jtop":
        from edgealex.bench.power.jtop import JtopMeter
        return JtopMeter(choice, interval_s=interval_s)
    if name == "nvml":
        from edgealex.bench.power.nvml import NvmlMeter
        return NvmlMeter(interval_s=interval_s)
    if name == "rapl":
        from edgealex.bench.power.rapl import RaplMeter
        return RaplMeter(root=root, interval_s=interval_s)
    if name.startswith("csv:"):
        from edgealex.bench.power.csvmeter import CsvMeter
        return CsvMeter(name[4:], offset_s=offset_s)
    raise EdgeAlexError("--power", f"unknown power meter '{name}'", "use one of " + ", ".join(METERS))


def open_meter(spec="auto", target=None, root="/", interval_s=None, offset_s=0.0):
    """Open the meter named by ``spec``.

    Args:
        spec (str): ``auto``, ``ina3221``, ``jtop``, ``nvml``, ``rapl``, ``csv:FILE`` or ``none``.
        target: target profile (``edgealex.target.Target``) for the board-total rail, or None.
        root (str): filesystem root for sysfs meters (tests use fake trees). Defaults to "/".
        interval_s (float): polling interval override.
        offset_s (float): clock offset for ``csv:`` logs.

    Returns:
        PowerMeter: an opened meter, or a :class:`NullMeter` whose ``reason`` says why nothing is
        measured (``auto`` lists every meter's reason). An explicitly named meter that cannot
        read also yields a NullMeter (the benchmark still runs; power is "n/a (reason)").

    Raises:
        EdgeAlexError: an unknown spec, or a ``csv:`` file that does not exist (a typo, not a
            machine limitation).
    """
    spec = (spec or "none").strip()
    choice = RailChoice.from_target(target)
    if spec == "none":
        return NullMeter("power measurement disabled (--power none)")
    if spec.startswith("csv:"):
        path = spec[4:]
        if not path or not os.path.isfile(path):
            raise EdgeAlexError("--power " + spec, "the meter log does not exist",
                                "pass the CSV your meter writes (header: timestamp,watts)")
    if spec != "auto":
        meter = _make(spec, choice, root, interval_s, offset_s)
        try:
            return meter.open()
        except MeterUnavailable as exc:
            return NullMeter(f"{spec}: {exc.reason}")
    reasons = []
    for name in AUTO_ORDER:
        meter = _make(name, choice, root, interval_s)
        try:
            meter.open()
        except MeterUnavailable as exc:
            reasons.append(f"{name}: {exc.reason}")
            continue
        meter.notes.extend("auto: {} not used ({})".format(*r.split(": ", 1)) for r in reasons)
        return meter
    return NullMeter("no sensor readable: " + "; ".join(reasons))
