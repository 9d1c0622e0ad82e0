"""Power meters sampled in a background thread with timestamps.

``open_meter(spec, target=None, root="/")`` turns a ``--power`` value into a meter:

- ``ina3221``: Jetson INA3221 rails straight from sysfs (JetPack 4 iio and JetPack 5+ hwmon).
- ``jtop``: jetson-stats (needs its service).
- ``nvml``: NVIDIA GPUs through nvidia-ml-py (energy counter or power polling).
- ``rapl``: Intel RAPL ``energy_uj`` counters.
- ``csv:FILE``: an external meter's log (timestamp, watts), read after the run.
- ``auto``: the first of ina3221, jtop, nvml, rapl that is readable; the reasons for the others
  are kept.
- ``none``: no measurement.

A meter that cannot measure is a :class:`NullMeter` carrying the reason: the result says
"n/a (reason)", never 0 W.
"""

from edgealex.bench.power.base import MeterUnavailable, NullMeter, PowerMeter, RailChoice
from edgealex.bench.power.selection import AUTO_ORDER, METERS, open_meter

__all__ = ["MeterUnavailable", "NullMeter", "PowerMeter", "RailChoice", "open_meter", "METERS", "AUTO_ORDER"]
