"""Jetson INA3221 rails read straight from sysfs (no jtop service needed).

Two driver layouts exist (facts §6.3):

- JetPack 4 (downstream ``ina3221x`` IIO driver)::

      /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0        POM_5V_IN
      /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input    mW
      (in_current0_input mA, in_voltage0_input mV)

  The device's ``name`` file reads ``ina3221x``.

- JetPack 5+ (upstream ``ina3221`` hwmon driver)::

      /sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in1_label     VDD_IN
      /sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in1_input     bus voltage, mV
      /sys/bus/i2c/devices/1-0040/hwmon/hwmon3/curr1_input   current, mA
      /sys/bus/i2c/devices/1-0040/hwmon/hwmon3/update_interval   ms

  No power file: P[W] = V[mV] x I[mA] / 1e6. The device's ``name`` file reads ``ina3221``; the
  ``hwmonN`` index changes across boots, so it is globbed.

Sensors are found by scanning ``<root>/sys/bus/i2c/devices/*/name`` (and the JP4 driver folder);
``root`` is a parameter so tests run on fake trees. Channels labelled ``NC`` (not connected) are
skipped. The board total follows the target profile (:class:`RailChoice`).
"""

import glob
import os
from dataclasses import dataclass
from typing import Optional

from edgealex.bench.power.base import MeterUnavailable, PowerMeter, RailChoice, SysfsReader, choose_total

DEVICE_NAMES = ("ina3221", "ina3221x")
MIN_INTERVAL_S = 0.001  # never poll faster than 1 kHz: the reads themselves cost CPU on the board
IIO_DEFAULT_INTERVAL_S = 0.01  # the JP4 iio driver does not expose its conversion time


@dataclass
class Channel:
    """One INA3221 channel."""

    label: str
    layout: str  # "iio" (mW power file) or "hwmon" (mV and mA files)
    device: str  # folder holding the files
    index: int
    update_interval_ms: Optional[float] = None

    def files(self):
        if self.layout == "iio":
            return [os.path.join(self.device, f"in_power{self.index}_input")]
        return [os.path.join(self.device, f"in{self.index}_input"),
                os.path.join(self.device, f"curr{self.index}_input")]


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def sensor_devices(root="/"):
    """Folders of INA3221 I2C devices under ``root`` (deduplicated by real path)."""
    candidates = []
    for name_file in sorted(glob.glob(os.path.join(root, "sys/bus/i2c/devices/*/name"))):
        if _read_text(name_file) in DEVICE_NAMES:
            candidates.append(os.path.dirname(name_file))
    candidates += sorted(glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*-*")))
    seen, out = set(), []
    for dev in candidates:
        real = os.path.realpath(dev)
        if real not in seen and os.path.isdir(dev):
            seen.add(real)
            out.append(dev)
    return out


def discover(root="/"):
    """All labelled INA3221 channels under ``root``, both layouts.

    Returns:
        List[Channel]: in device then channel order.
    """
    channels = []  # type: List[Channel]
    for dev in sensor_devices(root):
        for hw in sorted(glob.glob(os.path.join(dev, "hwmon", "hwmon*"))):
            interval = _read_text(os.path.join(hw, "update_interval"))
            interval_ms = float(interval) if interval not in (None, "") else None
            for i in (1, 2, 3):
                label = _read_text(os.path.join(hw, f"in{i}_label"))
                if not label or label.upper() == "NC":
                    continue
                if not (os.path.exists(os.path.join(hw, f"in{i}_input"))
                        and os.path.exists(os.path.join(hw, f"curr{i}_input"))):
                    continue
                channels.append(Channel(label, "hwmon", hw, i, interval_ms))
        for iio in sorted(glob.glob(os.path.join(dev, "iio:device*"))):
            for k in (0, 1, 2):
                label = _read_text(os.path.join(iio, f"rail_name_{k}"))
                if not label or label.upper() == "NC":
                    continue
                if not os.path.exists(os.path.join(iio, f"in_power{k}_input")):
                    continue
                channels.append(Channel(label, "iio", iio, k))
    return channels


class Ina3221Meter(PowerMeter):
    """Board power from INA3221 rails, polled as fast as the sensor updates.

    Args:
        choice (RailChoice): board total from the target profile.
        root (str): filesystem root (tests pass a fake tree). Defaults to "/".
        interval_s (float): polling interval; default: the sensor's ``update_interval`` (hwmon),
            10 ms for the iio driver, never below 1 ms.
    """

    name = "ina3221"

    def __init__(self, choice=None, root="/", interval_s=None):
        super().__init__(interval_s)
        self.choice = choice or RailChoice()
        self.root = root
        self.channels = []  # type: List[Channel]
        self.total_rails = []  # type: List[str]
        self._readers = []

    def open_impl(self):
        channels = discover(self.root)
        if not channels:
            where = os.path.join(self.root, "sys/bus/i2c/devices/*/name")
            raise MeterUnavailable(f"no INA3221 sensor under {where} (not a Jetson, or a Jetson without one, "
                                   "e.g. Nano 2GB)")
        for ch in channels:
            for path in ch.files():
                if not os.access(path, os.R_OK):
                    raise MeterUnavailable(f"{path} is not readable (permission)")
        self.channels = channels
        labels = [c.label for c in channels]
        self.total_rails, self.total = choose_total(labels, self.choice)
        layouts = sorted({c.layout for c in channels})
        self.source = "INA3221 sysfs ({}): {}".format(
            "/".join("JetPack 4 iio in_powerK_input mW" if lay == "iio" else "JetPack 5+ hwmon inN_input mV x currN_input mA"
                     for lay in layouts),
            ", ".join(sorted({c.device for c in channels})))
        if self.choice.note:
            self.notes.append(self.choice.note)
        if self.interval_s is None:
            intervals = [c.update_interval_ms for c in channels if c.update_interval_ms]
            if intervals:
                self.interval_s = max(MIN_INTERVAL_S, max(intervals) / 1e3)
                self.notes.append(f"polling at the sensor's update_interval {max(intervals):g} ms")
            else:
                self.interval_s = IIO_DEFAULT_INTERVAL_S
                self.notes.append("the driver does not expose its update interval; polling every 10 ms")
        try:
            self._readers = [(ch, [SysfsReader(p) for p in ch.files()]) for ch in channels]
        except OSError as exc:
            raise MeterUnavailable(f"cannot open the INA3221 files ({exc})")

    def read(self):
        rails = {}
        for ch, readers in self._readers:
            if ch.layout == "iio":
                rails[ch.label] = readers[0].read() / 1e3  # mW
            else:
                rails[ch.label] = readers[0].read() * readers[1].read() / 1e6  # mV x mA
        return sum(rails[r] for r in self.total_rails), rails

    def close_impl(self):
        for _, readers in self._readers:
            for r in readers:
                r.close()
        self._readers = []

    def describe(self):
        out = super().describe()
        out["rails"] = [{"label": c.label, "layout": c.layout, "path": c.device, "channel": c.index}
                        for c in self.channels]
        out["total_rails"] = list(self.total_rails)
        out["total_is_sum"] = len(self.total_rails) > 1
        return out


__all__ = ["Ina3221Meter", "Channel", "discover", "sensor_devices"]
