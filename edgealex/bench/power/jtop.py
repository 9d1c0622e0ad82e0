"""Power through jetson-stats (``jtop``), when its service runs.

jtop updates once per ``interval`` (1 s by default; a jtop server already serving another client
keeps its own speed), so short windows get few samples: prefer ``ina3221`` for sub-second runs.
Only the instantaneous ``power`` value is used, never jtop's ``avg``, which is a running
(prev + new) / 2 average and not a time-integrated one (landscape §1.7).
"""

from edgealex.bench.power.base import MeterUnavailable, PowerMeter, RailChoice, choose_total

DEFAULT_INTERVAL_S = 1.0


def _rails_4x(power):
    """jetson-stats 4.x: {'rail': {name: {'power': mW, ...}}, 'tot': {'power': mW}}."""
    rails = {}
    for name, data in (power.get("rail") or {}).items():
        if isinstance(data, dict) and data.get("online", True) and "power" in data:
            rails[name] = float(data["power"]) / 1e3
    total = power.get("tot") or {}
    return rails, (float(total["power"]) / 1e3 if "power" in total else None)


def _rails_3x(power):
    """jetson-stats 3.x: (total {'cur': mW, 'avg': mW}, {rail: {'cur': mW, ...}})."""
    total, rails_raw = power
    rails = {name: float(d["cur"]) / 1e3 for name, d in (rails_raw or {}).items() if "cur" in d}
    return rails, (float(total["cur"]) / 1e3 if total and "cur" in total else None)


class JtopMeter(PowerMeter):
    """Board power from jtop.

    Args:
        choice (RailChoice): board total from the target profile (a rail, or a sum).
        interval_s (float): jtop update interval in seconds. Defaults to 1.0 (jtop's default).
    """

    name = "jtop"

    def __init__(self, choice=None, interval_s=None):
        super().__init__(interval_s or DEFAULT_INTERVAL_S)
        self.choice = choice or RailChoice()
        self._jetson = None
        self._total_rails = None

    def open_impl(self):
        try:
            from jtop import jtop
        except ImportError as exc:
            raise MeterUnavailable(f"jetson-stats is not installed ({exc}); pip install 'edgealex[jetson]'")
        try:
            jetson = jtop(interval=self.interval_s)
            jetson.start()
        except Exception as exc:  # JtopException: service not active, socket permission, ...
            raise MeterUnavailable(f"jtop could not start ({type(exc).__name__}: {exc}); check `sudo systemctl status jtop.service` "
                                   "or `jtop --health`")
        self._jetson = jetson
        self.source = "jetson-stats {} (interval {:g} s; instantaneous power, not jtop's avg)".format(
            getattr(__import__("jtop"), "__version__", "?"), self.interval_s)
        self.notes.append(f"jtop samples once per interval ({self.interval_s:g} s by default 1 s); energy over short windows is "
                          "coarse")
        rails, total = self._parse()
        if not rails and total is None:
            self.close_impl()
            raise MeterUnavailable("jtop reports no power rails on this board")
        if self.choice.total_rail or self.choice.is_sum:
            self._total_rails, self.total = choose_total(sorted(rails), self.choice)
        else:
            self.total = "jtop total (POM_5V_IN or VDD_IN when present, else the sum of rails)"

    def _parse(self):
        power = self._jetson.power
        if isinstance(power, tuple):
            return _rails_3x(power)
        return _rails_4x(power)

    def read(self):
        rails, total = self._parse()
        if self._total_rails:
            return sum(rails[r] for r in self._total_rails if r in rails), rails
        return total, rails

    def _run(self):
        # ok() blocks until jtop has fresh data, so each sample is a new reading.
        while not self._stop.is_set():
            try:
                if not self._jetson.ok():
                    break
            except Exception as exc:
                self._errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                break
            self.sample_now()

    def close_impl(self):
        if self._jetson is not None:
            try:
                self._jetson.close()
            except Exception:  # closing a dead connection is not an error worth reporting
                pass
            self._jetson = None


__all__ = ["JtopMeter", "RailChoice"]
