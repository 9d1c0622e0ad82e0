"""The Jetson Nano's traps in `edgealex doctor`: a venv hiding JetPack's TensorRT, numpy 1.19.5's
"Illegal instruction", JetPack's too-old numpy (fake trees and real child processes)."""

import os
import signal
import sys

from test_doctor import by_name, nano_root

from edgealex import _openblas_on_jetson
from edgealex.doctor import doctor, numpy_verdict, probe_numpy, venv_info


def make_venv_cfg(tmp_path, system):
    prefix = tmp_path / "venv"
    prefix.mkdir()
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = {}\nversion = 3.6.9\n"
                                       .format("true" if system else "false"))
    return str(prefix)


def test_venv_without_system_site_packages_hides_tensorrt_on_a_nano(tmp_path):
    root = nano_root(tmp_path)
    prefix = make_venv_cfg(tmp_path, system=False)
    checks = by_name(doctor(root, interpreter=venv_info(prefix, "/usr")).checks)
    venv = checks["virtualenv"]
    assert venv.status == "fail"
    assert "without --system-site-packages" in venv.detail and "TensorRT" in venv.detail
    assert "--system-site-packages " + prefix in venv.fix


def test_venv_with_system_site_packages_or_none_is_fine(tmp_path):
    root = nano_root(tmp_path)
    prefix = make_venv_cfg(tmp_path, system=True)
    assert by_name(doctor(root, interpreter=venv_info(prefix, "/usr")).checks)["virtualenv"].status == "ok"
    plain = venv_info("/usr", "/usr")
    assert plain["venv"] is False
    assert by_name(doctor(root, interpreter=plain).checks)["virtualenv"].status == "ok"


def test_venv_info_of_this_interpreter():
    info = venv_info()
    assert info["venv"] == (os.path.realpath(sys.prefix) != os.path.realpath(sys.base_prefix))
    if info["venv"]:
        cfg = open(os.path.join(sys.prefix, "pyvenv.cfg")).read()
        assert info["system_site_packages"] == ("include-system-site-packages = true" in cfg)


def test_numpy_illegal_instruction_is_recognised_from_a_real_sigill():
    code, output = probe_numpy([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"])
    assert code == -signal.SIGILL
    status, detail, fix = numpy_verdict(code, output, True, None)
    assert status == "warn" and "Illegal instruction" in detail
    assert "export OPENBLAS_CORETYPE=ARMV8" in fix


def test_numpy_probe_restores_the_users_openblas_setting():
    code, output = probe_numpy([sys.executable, "-c", "import os; print(os.environ.get('OPENBLAS_CORETYPE'))"],
                               user_openblas=None)
    assert code == 0 and output.strip() == "None"
    code, output = probe_numpy([sys.executable, "-c", "import os; print(os.environ.get('OPENBLAS_CORETYPE'))"],
                               user_openblas="HASWELL")
    assert output.strip() == "HASWELL"


def test_numpy_verdicts():
    assert numpy_verdict(0, "1.13.3\n", True, None)[0] == "fail"  # JetPack 4.6's python3-numpy
    status, detail, _ = numpy_verdict(0, "1.19.5\n", True, None)
    assert status == "ok" and "OPENBLAS_CORETYPE=unset" in detail
    assert numpy_verdict(1, "ModuleNotFoundError: No module named 'numpy'\n", False, None)[0] == "fail"
    assert numpy_verdict(0, "2.4.6\n", False, None) == ("ok", "numpy 2.4.6", "")


def test_numpy_check_on_this_machine():
    checks = by_name(doctor().checks)
    assert checks["numpy"].status == "ok" and checks["numpy"].detail.startswith("numpy ")


def test_openblas_coretype_is_set_on_a_jetson_only_when_the_user_did_not(tmp_path):
    marker = tmp_path / "nv_tegra_release"
    env = {}
    assert _openblas_on_jetson(env, str(marker)) is None and env == {}  # not a Jetson
    marker.write_text("# R32 (release), REVISION: 7.1\n")
    assert _openblas_on_jetson(env, str(marker)) is None and env == {"OPENBLAS_CORETYPE": "ARMV8"}
    env = {"OPENBLAS_CORETYPE": "CORTEXA57"}
    assert _openblas_on_jetson(env, str(marker)) == "CORTEXA57" and env["OPENBLAS_CORETYPE"] == "CORTEXA57"


def test_bench_environment_records_power_mode_and_clocks(tmp_path):
    from edgealex.bench.environment import collect

    env = collect(root=nano_root(tmp_path), run_commands=False)
    assert env["nvpmodel"]["id"] == 1
    assert env["jetson_clocks"].startswith("likely off")
