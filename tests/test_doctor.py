"""edgealex doctor on this CPU machine and on fake Jetson/desktop trees (real sysfs/procfs formats)."""

import json
import os

import pytest
from test_detect import AGX_ORIN, AGX_XAVIER, NANO, make_cpu, make_desktop, make_jetson, write
from typer.testing import CliRunner

from edgealex import doctor as doctor_module
from edgealex.cli.main import app
from edgealex.doctor import (
    STATUSES, doctor, gstreamer_from_build_info, jetson_clocks_state, parse_nvpmodel_conf, run_checks,
)

NANO_NVPMODEL_CONF = """# nvpmodel_t210_jetson-nano.conf (excerpt)
< POWER_MODEL ID=0 NAME=MAXN >
CPU_ONLINE CORE_0 1
CPU_ONLINE CORE_1 1
GPU_POWER_CONTROL_ENABLE GPU_PWR_CNTL_EN on
< POWER_MODEL ID=1 NAME=5W >
CPU_ONLINE CORE_2 0
CPU_ONLINE CORE_3 0
< PM_CONFIG DEFAULT=0 >
"""

ORIN_NVPMODEL_CONF = """< POWER_MODEL ID=0 NAME=MAXN >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=MODE_15W >
< POWER_MODEL ID=2 NAME=MODE_30W >
< POWER_MODEL ID=3 NAME=MODE_50W >
< PM_CONFIG DEFAULT=2 >
"""


def by_name(checks):
    return {c.name: c for c in checks}


def add_cpufreq(root, cores, low, high):
    for core in range(cores):
        write(root, f"/sys/devices/system/cpu/cpu{core}/cpufreq/scaling_min_freq", f"{low}\n")
        write(root, f"/sys/devices/system/cpu/cpu{core}/cpufreq/scaling_max_freq", f"{high}\n")


def nano_root(tmp_path):
    """JetPack 4.6.1 Nano: INA3221 via the iio driver, 5W mode, DVFS on, argus running, one USB camera."""
    root = make_jetson(tmp_path, **NANO, tensorrt_for=("3.6", "8.2.1.8"))
    iio = "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for channel, rail, mw in ((0, "POM_5V_IN", 3960), (1, "POM_5V_GPU", 620), (2, "POM_5V_CPU", 1210)):
        write(root, f"{iio}/rail_name_{channel}", rail + "\n")
        write(root, f"{iio}/in_power{channel}_input", f"{mw}\n")
    write(root, "/etc/nvpmodel.conf", NANO_NVPMODEL_CONF)
    write(root, "/var/lib/nvpmodel/status", "pmode:0001\n")
    add_cpufreq(root, 4, 102000, 1479000)
    write(root, "/proc/812/comm", "nvargus-daemon\n")
    write(root, "/proc/1/comm", "systemd\n")
    write(root, "/dev/video0", "")
    write(root, "/sys/class/video4linux/video0/name", "HD Pro Webcam C920\n")
    return root


def orin_root(tmp_path):
    """JetPack 6 AGX Orin: INA3221 via hwmon, MAXN, clocks pinned, no argus, no camera."""
    root = make_jetson(tmp_path, **AGX_ORIN)
    dev = "/sys/bus/i2c/devices/1-0040"
    write(root, f"{dev}/name", "ina3221\n")
    hwmon = f"{dev}/hwmon/hwmon3"
    for channel, label in ((1, "VDD_GPU_SOC"), (2, "VDD_CPU_CV"), (3, "VIN_SYS_5V0")):
        write(root, f"{hwmon}/in{channel}_label", label + "\n")
        write(root, f"{hwmon}/in{channel}_input", "5000\n")
        write(root, f"{hwmon}/curr{channel}_input", "812\n")
    write(root, "/etc/nvpmodel.conf", ORIN_NVPMODEL_CONF)
    write(root, "/var/lib/nvpmodel/status", "pmode:0000 fmode:quiet\n")
    add_cpufreq(root, 12, 2201600, 2201600)
    write(root, "/sys/class/devfreq/17000000.gpu/min_freq", "1300500000\n")
    write(root, "/sys/class/devfreq/17000000.gpu/max_freq", "1300500000\n")
    write(root, "/proc/1/comm", "systemd\n")
    return root


def test_build_info_parsing():
    assert gstreamer_from_build_info("  Video I/O:\n    FFMPEG:   YES\n    GStreamer:                   NO\n") is False
    assert gstreamer_from_build_info("    GStreamer:                   YES (1.16.3)\n") is True
    assert gstreamer_from_build_info("no video section") is None


def test_nvpmodel_conf_parsing():
    modes, default = parse_nvpmodel_conf(NANO_NVPMODEL_CONF)
    assert modes == {0: "MAXN", 1: "5W"} and default == 0
    assert parse_nvpmodel_conf("") == ({}, None)


def test_this_cpu_machine():
    report = doctor()
    checks = by_name(report.checks)
    assert all(c.status in STATUSES for c in report.checks)
    assert report.target == "cpu" and checks["platform"].status == "ok"
    assert checks["onnxruntime"].status == "ok" and "CPUExecutionProvider" in checks["onnxruntime"].detail
    if report.detection["tensorrt"] is None:
        assert checks["tensorrt"].status == "warn"
        assert "does not import" in checks["tensorrt"].detail and checks["tensorrt"].fix
    cv2 = pytest.importorskip("cv2")
    if gstreamer_from_build_info(cv2.getBuildInformation()) is False:
        assert checks["opencv"].status == "warn" and "GStreamer NO" in checks["opencv"].detail
    for name in ("nvpmodel", "jetson_clocks", "nvargus-daemon"):
        assert checks[name].status == "skip"
    for check in report.checks:
        if check.status in ("warn", "fail"):
            assert check.fix, check.name
    assert report.ok


def test_nano_tree(tmp_path):
    checks = by_name(run_checks(nano_root(tmp_path)))
    assert checks["platform"].status == "ok" and "target nano" in checks["platform"].detail
    # the JetPack 4 trap: bindings only for the system python3.6
    assert checks["python"].status == "fail"
    assert "python3.6 only" in checks["python"].detail and "/usr/bin/python3.6" in checks["python"].fix
    assert checks["power sensors"].status == "ok" and "POM_5V_IN" in checks["power sensors"].detail
    assert checks["nvpmodel"].status == "warn" and "mode 1 = 5W" in checks["nvpmodel"].detail
    assert "nvpmodel -m 0" in checks["nvpmodel"].fix
    assert checks["jetson_clocks"].status == "warn" and "sudo jetson_clocks" in checks["jetson_clocks"].fix
    assert checks["nvargus-daemon"].status == "ok"
    assert checks["video devices"].status == "ok" and "HD Pro Webcam C920" in checks["video devices"].detail
    assert checks["memory / swap"].status == "warn" and "swapon" in checks["memory / swap"].fix
    # interpreter probes are skipped on a fake root
    assert checks["tensorrt"].status == "skip"


def test_orin_tree(tmp_path):
    checks = by_name(run_checks(orin_root(tmp_path)))
    assert checks["platform"].detail.endswith("target agx-orin")
    power = checks["power sensors"]
    assert power.status == "ok"
    assert power.detail.startswith("ina3221:") and "VDD_GPU_SOC" in power.detail and "hwmon3" in power.detail
    assert checks["nvpmodel"].status == "ok" and "mode 0 = MAXN" in checks["nvpmodel"].detail
    assert checks["jetson_clocks"].status == "ok" and "GPU min == max" in checks["jetson_clocks"].detail
    assert checks["nvargus-daemon"].status == "warn" and "restart nvargus-daemon" in checks["nvargus-daemon"].fix
    assert checks["video devices"].status == "warn"
    assert checks["memory / swap"].status == "ok"


def test_jetpack_mismatch_is_a_warning(tmp_path):
    board = dict(NANO, release="# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t210ref, EABI: aarch64\n")
    checks = by_name(run_checks(make_jetson(tmp_path, **board)))
    assert checks["platform"].status == "warn"
    assert "assumes JetPack 4.6.1 (TensorRT 8.2.1)" in checks["platform"].detail
    assert "runs JetPack 4.6 (TensorRT 8.0)" in checks["platform"].detail
    # JetPack 5.1.1 ships the same TensorRT 8.5 as the agx-xavier profile's 5.1: no warning
    other = tmp_path / "xavier"
    board = dict(AGX_XAVIER, release="# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref\n")
    assert by_name(run_checks(make_jetson(other, **board)))["platform"].status == "ok"


def test_desktop_with_rapl(tmp_path):
    root = make_desktop(tmp_path)
    write(root, "/sys/class/powercap/intel-rapl:0/name", "package-0\n")
    write(root, "/sys/class/powercap/intel-rapl:0/energy_uj", "123456789\n")
    write(root, "/sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n")
    checks = by_name(run_checks(root))
    assert checks["platform"].detail.endswith("target desktop-cuda")
    assert checks["power sensors"].status == "ok" and "rapl" in checks["power sensors"].detail


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_rapl_gives_the_chmod_fix(tmp_path):
    root = make_cpu(tmp_path)
    write(root, "/sys/class/powercap/intel-rapl:0/name", "package-0\n")
    write(root, "/sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n")
    path = write(root, "/sys/class/powercap/intel-rapl:0/energy_uj", "1\n")
    os.chmod(path, 0)
    checks = by_name(run_checks(root))
    assert checks["power sensors"].status == "warn" and "chmod" in checks["power sensors"].fix


def test_garbage_files_do_not_crash(tmp_path):
    root = make_jetson(tmp_path, **NANO)
    write(root, "/proc/meminfo", "garbage\n")
    write(root, "/var/lib/nvpmodel/status", "\x00\x01")
    write(root, "/etc/nvpmodel.conf", "< POWER_MODEL ID=x")
    write(root, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq", "")
    checks = run_checks(root)
    assert all(c.status in STATUSES for c in checks)
    assert by_name(checks)["memory / swap"].status == "warn"
    assert jetson_clocks_state(root)[0] is None


def test_a_broken_check_becomes_a_warning(tmp_path, monkeypatch):
    def _check_exploding(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor_module, "_CHECKS", doctor_module._CHECKS + (_check_exploding,))
    checks = run_checks(make_cpu(tmp_path))
    assert checks[-1].name == "exploding" and checks[-1].status == "warn" and "boom" in checks[-1].detail


def test_cli_text_json_and_exit_codes():
    runner = CliRunner()
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "target: cpu" in result.output and "onnxruntime" in result.output and "fix:" in result.output
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True and data["target"] == "cpu"
    assert {c["name"] for c in data["checks"]} >= {"python", "tensorrt", "onnxruntime", "opencv", "power sensors",
                                                   "disk", "memory / swap", "nvpmodel", "jetson_clocks"}
    # checked against a GPU target on a machine without TensorRT: a failure, exit 1
    if data["detection"]["tensorrt"] is None:
        result = runner.invoke(app, ["doctor", "--target", "agx-xavier"])
        assert result.exit_code == 1
        assert "[fail] tensorrt" in result.output
