"""Intel RAPL package energy from ``/sys/class/powercap/intel-rapl:*/energy_uj``.

``energy_uj`` is a microjoule counter that wraps at ``max_energy_range_uj``. The total is the sum
of the package domains (``intel-rapl:N`` whose ``name`` is ``package-N``): CPU packages only, not
DRAM (a sub-domain) and not ``psys`` (which overlaps the packages). Since Linux 5.10 the files are
readable by root only (CVE-2020-8694, "PLATYPUS").
"""

import glob
import os
import re

from edgealex.bench.power.base import MeterUnavailable, PowerMeter, SysfsReader

DEFAULT_INTERVAL_S = 0.05
PERMISSION_FIX = ("energy_uj is readable by root only since Linux 5.10; grant read access with "
                  "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or a udev rule "
                  "`SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"`, or run as root")


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


class RaplMeter(PowerMeter):
    """CPU package energy from RAPL counters.

    Args:
        root (str): filesystem root (tests pass a fake tree). Defaults to "/".
        interval_s (float): polling interval. Defaults to 50 ms.
    """

    name = "rapl"
    kind = "energy"

    def __init__(self, root="/", interval_s=None):
        super().__init__(interval_s or DEFAULT_INTERVAL_S)
        self.root = root
        self.domains = []  # (name, folder, max_range_uj)
        self._readers = []

    def open_impl(self):
        base = os.path.join(self.root, "sys/class/powercap")
        folders = [d for d in sorted(glob.glob(os.path.join(base, "intel-rapl:*")))
                   if re.search(r"intel-rapl:\d+$", d)]
        if not folders:
            raise MeterUnavailable(f"no RAPL domains under {base} (not an Intel CPU, or a VM without RAPL)")
        domains = []
        for folder in folders:
            try:
                name = _read(os.path.join(folder, "name"))
            except OSError:
                name = os.path.basename(folder)
            if not name.startswith("package"):
                continue
            try:
                max_range = int(_read(os.path.join(folder, "max_energy_range_uj")))
                _read(os.path.join(folder, "energy_uj"))
            except PermissionError:
                raise MeterUnavailable("{} is not readable: {}".format(os.path.join(folder, "energy_uj"), PERMISSION_FIX))
            except (OSError, ValueError) as exc:
                raise MeterUnavailable(f"cannot read {folder} ({exc})")
            domains.append((name, folder, max_range))
        if not domains:
            raise MeterUnavailable(f"no RAPL package domain under {base}")
        self.domains = domains
        # Each counter is unwrapped in read(), sample by sample (at max_energy_range_uj), so the
        # series handed to the integrator is already monotonic: no range to apply there.
        self.max_range_j = None
        self._readers = [SysfsReader(os.path.join(folder, "energy_uj")) for _, folder, _ in domains]
        self._last = [None] * len(domains)
        self._acc = [0.0] * len(domains)
        self.total = "SUM of CPU package domains {} (RAPL; DRAM and the rest of the system not included)".format(
            "+".join(d[0] for d in domains))
        self.source = "RAPL energy_uj counters: " + ", ".join(d[1] for d in domains)

    def read(self):
        # Each domain is unwrapped here, sample by sample, so the summed value never decreases.
        rails = {}
        for i, ((name, _, max_range), reader) in enumerate(zip(self.domains, self._readers)):
            raw = reader.read()
            if self._last[i] is not None:
                step = raw - self._last[i]
                if step < 0:
                    step += max_range
                self._acc[i] += step
            self._last[i] = raw
            rails[name] = self._acc[i] / 1e6
        return sum(rails.values()), rails

    def close_impl(self):
        for r in self._readers:
            r.close()
        self._readers = []


__all__ = ["RaplMeter", "PERMISSION_FIX"]
