"""RAPL (fake powercap tree, wraparound, permissions), CSV meter logs, auto selection."""

import os
import time

import numpy as np
import pytest

from edgealex.bench.energy import integrate_power
from edgealex.bench.power import open_meter
from edgealex.bench.power.csvmeter import CsvMeter, read_meter_csv
from edgealex.bench.power.rapl import RaplMeter
from edgealex.errors import EdgeAlexError


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(str(text) + "\n")


def rapl_tree(root, energy_uj=999_000, max_uj=1_000_000):
    base = os.path.join(root, "sys/class/powercap")
    write(os.path.join(base, "intel-rapl:0/name"), "package-0")
    write(os.path.join(base, "intel-rapl:0/energy_uj"), energy_uj)
    write(os.path.join(base, "intel-rapl:0/max_energy_range_uj"), max_uj)
    write(os.path.join(base, "intel-rapl:0:0/name"), "core")  # sub-domain: inside the package, not added
    write(os.path.join(base, "intel-rapl:0:0/energy_uj"), 5)
    write(os.path.join(base, "intel-rapl:1/name"), "psys")  # overlaps the package: not added
    write(os.path.join(base, "intel-rapl:1/energy_uj"), 7)
    write(os.path.join(base, "intel-rapl:1/max_energy_range_uj"), max_uj)
    return os.path.join(base, "intel-rapl:0/energy_uj")


def test_rapl_wraparound_between_readings(tmp_path):
    counter = rapl_tree(str(tmp_path))
    meter = RaplMeter(root=str(tmp_path)).open()
    assert [d[0] for d in meter.domains] == ["package-0"]
    meter.sample_now()
    write(counter, 400_000)  # wrapped: 999000 -> 1000000 -> 0 -> 400000 = 401000 uJ
    meter.sample_now()
    write(counter, 900_000)
    meter.sample_now()
    tr = meter.trace()
    assert tr.kind == "energy"
    assert np.diff(tr.value).tolist() == pytest.approx([0.401, 0.5])
    meter.close_impl()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; runs in CI as a normal user")
def test_rapl_permission_error_says_how_to_grant_access(tmp_path):
    counter = rapl_tree(str(tmp_path))
    os.chmod(counter, 0)  # like the real energy_uj since Linux 5.10 (root-only)
    meter = open_meter("rapl", root=str(tmp_path))
    assert not meter.available
    assert "is not readable" in meter.reason and "chmod a+r" in meter.reason and "udev" in meter.reason


def test_rapl_without_domains_is_na(tmp_path):
    meter = open_meter("rapl", root=str(tmp_path))
    assert not meter.available and "no RAPL domains" in meter.reason


def test_auto_on_this_kind_of_machine_lists_every_reason(tmp_path):
    meter = open_meter("auto", root=str(tmp_path))
    if meter.available:  # e.g. a workstation with NVML: auto picked it, which is the point
        pytest.skip("a meter is readable here: " + meter.name)
    assert meter.reason.startswith("no sensor readable: ")
    for name in ("ina3221:", "jtop:", "nvml:", "rapl:"):
        assert name in meter.reason


def test_auto_picks_a_readable_sensor(tmp_path):
    rapl_tree(str(tmp_path))
    meter = open_meter("auto", root=str(tmp_path))
    if meter.name in ("jtop", "nvml"):
        pytest.skip("a real meter is readable here")
    assert meter.name == "rapl" and meter.available
    assert any(n.startswith("auto: ina3221 not used (no INA3221 sensor") for n in meter.notes)


def test_unknown_meter_and_missing_csv_are_user_errors(tmp_path):
    with pytest.raises(EdgeAlexError, match="unknown power meter"):
        open_meter("volts")
    with pytest.raises(EdgeAlexError, match="does not exist"):
        open_meter("csv:" + str(tmp_path / "nope.csv"))


def test_csv_formats(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("time,power_mw\n2026-11-02T10:00:01Z,1500\n2026-11-02T10:00:00Z,1000\n")
    t, w = read_meter_csv(str(p))
    assert w.tolist() == [1.0, 1.5] and t[1] - t[0] == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert "needs a header" in open_meter("csv:" + str(bad)).reason


def test_csv_meter_aligns_log_to_the_run_window(tmp_path):
    # The meter logs unix time; 2 W before the run, 6 W during it, 2 W after.
    log = tmp_path / "meter.csv"
    now = time.time()
    rows = ["timestamp,watts"]
    for i in range(-200, 201):  # 10 Hz, +-20 s around now
        ts = now + i * 0.1
        rows.append(f"{ts:.3f},{6.0 if -50 <= i <= 50 else 2.0}")
    log.write_text("\n".join(rows) + "\n")
    meter = CsvMeter(str(log)).open()
    meter.start()
    meter.stop()
    tr = meter.trace()
    perf_now = time.perf_counter() - (time.time() - now)  # 'now' on the perf_counter clock
    w = integrate_power(tr.t_s, tr.value, perf_now - 4.0, perf_now + 4.0)
    assert w["avg_power_w"] == pytest.approx(6.0, abs=0.05)  # clock read jitter only
    idle = integrate_power(tr.t_s, tr.value, perf_now - 15.0, perf_now - 6.0)
    assert idle["avg_power_w"] == pytest.approx(2.0, abs=1e-9)
    assert meter.describe()["achieved_rate_hz"] == pytest.approx(10.0, rel=0.01)
