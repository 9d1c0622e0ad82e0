"""INA3221 on fake sysfs trees with the real file names and units (JetPack 4 iio, JetPack 5+ hwmon)."""

import os

import pytest

from edgealex.bench.power import RailChoice, open_meter
from edgealex.bench.power.ina3221 import Ina3221Meter, discover


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(str(text) + "\n")


def iio_sensor(root, bus_addr, iio, rails):
    """JetPack 4 downstream driver: name 'ina3221x', rail_name_K and in_powerK_input (mW)."""
    dev = os.path.join(root, "sys/bus/i2c/devices", bus_addr)
    write(os.path.join(dev, "name"), "ina3221x")
    for k, (label, mv, ma) in enumerate(rails):
        d = os.path.join(dev, iio)
        write(os.path.join(d, f"rail_name_{k}"), label)
        write(os.path.join(d, f"in_voltage{k}_input"), mv)
        write(os.path.join(d, f"in_current{k}_input"), ma)
        write(os.path.join(d, f"in_power{k}_input"), mv * ma // 1000)
        write(os.path.join(d, f"warn_current_limit_{k}"), 32760)
        write(os.path.join(d, f"crit_current_limit_{k}"), 32760)
    # the driver folder links to the same device; discovery must not count it twice
    drv = os.path.join(root, "sys/bus/i2c/drivers/ina3221x")
    os.makedirs(drv, exist_ok=True)
    os.symlink(dev, os.path.join(drv, bus_addr))
    return os.path.join(dev, iio)


def hwmon_sensor(root, bus_addr, hwmon, rails, update_interval_ms=8):
    """JetPack 5+ upstream driver: name 'ina3221', inN_label, inN_input (mV), currN_input (mA)."""
    dev = os.path.join(root, "sys/bus/i2c/devices", bus_addr)
    write(os.path.join(dev, "name"), "ina3221")
    hw = os.path.join(dev, "hwmon", hwmon)
    write(os.path.join(hw, "name"), "ina3221")
    write(os.path.join(hw, "update_interval"), update_interval_ms)
    write(os.path.join(hw, "samples"), 512)
    for i, (label, mv, ma) in enumerate(rails, start=1):
        write(os.path.join(hw, f"in{i}_label"), label)
        write(os.path.join(hw, f"in{i}_input"), mv)
        write(os.path.join(hw, f"curr{i}_input"), ma)
        write(os.path.join(hw, f"curr{i}_max"), 5000)
        write(os.path.join(hw, f"curr{i}_crit"), 8000)
        write(os.path.join(hw, f"in{i + 3}_input"), 12000)  # shunt voltage, uV: not a rail
    write(os.path.join(hw, "in7_input"), 30000)  # sum of shunts: not a rail
    return hw


NANO_RAILS = [("POM_5V_IN", 5000, 700), ("POM_5V_GPU", 5000, 80), ("POM_5V_CPU", 5000, 200)]
XAVIER_40 = [("GPU", 19000, 100), ("CPU", 19000, 200), ("SOC", 19000, 300)]
XAVIER_41 = [("CV", 19000, 10), ("VDDRQ", 19000, 50), ("SYS5V", 5000, 400)]
ORIN_NX = [("VDD_IN", 5040, 1480), ("VDD_CPU_GPU_CV", 5040, 380), ("VDD_SOC", 5040, 300)]

NANO_CHOICE = RailChoice(total_rail="POM_5V_IN", source="target nano")
XAVIER_CHOICE = RailChoice(rails=("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"), is_sum=True, source="target agx-xavier")
ORIN_NX_CHOICE = RailChoice(total_rail="VDD_IN", source="target orin-nx-16gb")


def test_nano_jetpack4_iio(tmp_path):
    root = str(tmp_path)
    iio_sensor(root, "6-0040", "iio:device0", NANO_RAILS)
    channels = discover(root)
    assert [c.label for c in channels] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert {c.layout for c in channels} == {"iio"}
    meter = Ina3221Meter(NANO_CHOICE, root=root).open()
    total, rails = meter.read()
    assert total == pytest.approx(3.5)  # in_power0_input = 3500 mW
    assert rails["POM_5V_GPU"] == pytest.approx(0.4)
    d = meter.describe()
    assert d["total_rails"] == ["POM_5V_IN"] and not d["total_is_sum"]
    assert "POM_5V_IN" in d["total"] and "iio" in d["source"]
    assert meter.interval_s == pytest.approx(0.01)  # iio does not expose its update interval
    meter.close_impl()


@pytest.mark.parametrize("layout", ["hwmon", "iio"])
def test_agx_xavier_two_sensors_summed(tmp_path, layout):
    root = str(tmp_path)
    if layout == "hwmon":  # JetPack 5.1
        hwmon_sensor(root, "1-0040", "hwmon2", XAVIER_40)
        hwmon_sensor(root, "1-0041", "hwmon3", XAVIER_41)
    else:  # JetPack 4
        iio_sensor(root, "1-0040", "iio:device0", XAVIER_40)
        iio_sensor(root, "1-0041", "iio:device1", XAVIER_41)
    meter = Ina3221Meter(XAVIER_CHOICE, root=root).open()
    total, rails = meter.read()
    expected = sum(mv * ma for _, mv, ma in XAVIER_40 + XAVIER_41) / 1e6
    assert total == pytest.approx(expected, rel=1e-3)
    assert sorted(rails) == sorted(r[0] for r in XAVIER_40 + XAVIER_41)
    d = meter.describe()
    assert d["total_is_sum"] and d["total"].startswith("SUM of rails GPU+CPU+SOC+CV+VDDRQ+SYS5V")
    meter.close_impl()


def test_orin_nx_hwmon_vdd_in_and_update_interval(tmp_path):
    root = str(tmp_path)
    hwmon_sensor(root, "1-0040", "hwmon1", ORIN_NX, update_interval_ms=4)
    meter = Ina3221Meter(ORIN_NX_CHOICE, root=root).open()
    total, rails = meter.read()
    assert total == pytest.approx(5.04 * 1.48)  # V[mV] x I[mA] / 1e6
    assert len(rails) == 3  # shunt channels in4..in7 are not rails
    assert meter.interval_s == pytest.approx(0.004)
    assert meter.describe()["total_rails"] == ["VDD_IN"]
    meter.close_impl()


def test_readings_follow_the_files_and_not_connected_channels_are_skipped(tmp_path):
    root = str(tmp_path)
    hw = hwmon_sensor(root, "1-0040", "hwmon0", [("VDD_GPU_SOC", 5000, 1000), ("NC", 0, 0),
                                                ("VIN_SYS_5V0", 5000, 500)])
    meter = Ina3221Meter(RailChoice(), root=root).open()
    assert [c.label for c in meter.channels] == ["VDD_GPU_SOC", "VIN_SYS_5V0"]
    assert meter.read()[0] == pytest.approx(7.5)  # no input rail, no target: sum of all, stated
    assert "SUM of all rails" in meter.total
    write(os.path.join(hw, "curr1_input"), 2000)  # the next read sees the new value (pread, no reopen)
    meter.sample_now()
    assert meter.trace().value[-1] == pytest.approx(12.5)
    meter.close_impl()


def test_target_rail_missing_falls_back_and_says_so(tmp_path):
    root = str(tmp_path)
    hwmon_sensor(root, "1-0040", "hwmon1", ORIN_NX)
    meter = Ina3221Meter(NANO_CHOICE, root=root).open()
    assert meter.total_rails == ["VDD_IN"]
    assert "POM_5V_IN not found" in meter.total
    meter.close_impl()


def test_background_thread_collects_timestamped_samples(tmp_path):
    root = str(tmp_path)
    hwmon_sensor(root, "1-0040", "hwmon1", ORIN_NX, update_interval_ms=1)
    meter = open_meter("ina3221", root=root)
    meter.start()
    import time
    deadline = time.perf_counter() + 5.0
    while meter.trace().t_s.size < 5 and time.perf_counter() < deadline:
        time.sleep(0.01)
    meter.stop()
    tr = meter.trace()
    assert tr.t_s.size >= 5 and (tr.t_s[1:] >= tr.t_s[:-1]).all()
    assert set(tr.rails) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    assert meter.describe()["achieved_rate_hz"] > 0


def test_no_sensor_is_na_with_reason(tmp_path):
    meter = open_meter("ina3221", root=str(tmp_path))
    assert not meter.available
    assert meter.reason.startswith("ina3221: no INA3221 sensor under")


@pytest.mark.parametrize("target_name, build, expected_rails, is_sum", [
    ("nano", lambda root: iio_sensor(root, "6-0040", "iio:device0", NANO_RAILS), ["POM_5V_IN"], False),
    ("agx-xavier", lambda root: (hwmon_sensor(root, "1-0040", "hwmon2", XAVIER_40),
                                 hwmon_sensor(root, "1-0041", "hwmon3", XAVIER_41)),
     ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"], True),
    ("orin-nx-16gb", lambda root: hwmon_sensor(root, "1-0040", "hwmon1", ORIN_NX), ["VDD_IN"], False),
    ("orin-nano", lambda root: hwmon_sensor(root, "1-0040", "hwmon1", ORIN_NX), ["VDD_IN"], False),
])
def test_rail_choice_from_the_target_profiles(tmp_path, target_name, build, expected_rails, is_sum):
    from edgealex.target import load_target

    root = str(tmp_path)
    build(root)
    target = load_target(target_name)
    meter = open_meter("ina3221", target=target, root=root)
    assert meter.available, getattr(meter, "reason", "")
    d = meter.describe()
    assert d["total_rails"] == expected_rails and d["total_is_sum"] == is_sum
    assert ("SUM of rails" in d["total"]) == is_sum
    assert "target " + target_name in d["total"]
    assert target.power_note in d["notes"]
    total, rails = meter.read()
    assert total == pytest.approx(sum(rails[r] for r in expected_rails))
    meter.close_impl()
