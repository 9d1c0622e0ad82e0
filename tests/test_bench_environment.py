"""The environment a result records, read from a fake Jetson tree (the real file names and units)."""

import os

import pytest

from edgealex.bench.environment import collect, cpu_clocks, devfreq_clocks, jetson_clocks_state, nvpmodel, temperatures


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(str(text) + "\n")


def jetson_tree(root, locked=True):
    write(os.path.join(root, "var/lib/nvpmodel/status"), "pmode:0002 fmode:quiet")
    for cpu in range(2):
        base = os.path.join(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq")
        write(os.path.join(base, "scaling_cur_freq"), 2265600)
        write(os.path.join(base, "scaling_max_freq"), 2265600)
        write(os.path.join(base, "scaling_min_freq"), 2265600 if locked else 115200)
        write(os.path.join(base, "scaling_governor"), "schedutil")
    gpu = os.path.join(root, "sys/class/devfreq/17000000.gv11b")
    write(os.path.join(gpu, "cur_freq"), 1377000000)
    write(os.path.join(gpu, "max_freq"), 1377000000)
    write(os.path.join(gpu, "min_freq"), 1377000000 if locked else 114750000)
    for i, (name, milli) in enumerate([("CPU-therm", 41500), ("GPU-therm", 39000)]):
        zone = os.path.join(root, f"sys/devices/virtual/thermal/thermal_zone{i}")
        write(os.path.join(zone, "type"), name)
        write(os.path.join(zone, "temp"), milli)


def test_jetson_tree(tmp_path):
    from edgealex.target import load_target

    root = str(tmp_path)
    jetson_tree(root)
    target = load_target("agx-xavier")
    assert nvpmodel(root, target) == {"id": 2, "name": "MODE_15W", "source": "/var/lib/nvpmodel/status"}
    cpus, gpus = cpu_clocks(root), devfreq_clocks(root)
    assert cpus["cpu0"] == {"cur_khz": 2265600, "min_khz": 2265600, "max_khz": 2265600, "governor": "schedutil"}
    assert gpus["17000000.gv11b"]["cur_hz"] == 1377000000
    assert jetson_clocks_state(cpus, gpus).startswith("likely on")
    assert temperatures(root) == {"CPU-therm": 41.5, "GPU-therm": 39.0}
    env = collect(target, root=root, run_commands=False)
    assert env["target"] == "agx-xavier" and env["nvpmodel"]["name"] == "MODE_15W"
    assert env["versions"]["edgealex"] and env["versions"]["python"] and env["command_line"]


def test_clocks_not_locked_and_nothing_readable(tmp_path):
    root = str(tmp_path / "a")
    jetson_tree(root, locked=False)
    assert jetson_clocks_state(cpu_clocks(root), devfreq_clocks(root)).startswith("likely off")
    empty = str(tmp_path / "b")
    os.makedirs(empty)
    assert nvpmodel(empty, None, run_commands=False) is None
    assert jetson_clocks_state(cpu_clocks(empty), devfreq_clocks(empty)) is None
    assert temperatures(empty) == {}


@pytest.mark.parametrize("flags, isa", [
    ("fpu sse2 avx avx2 fma", "AVX2, no AVX-512"),
    ("fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16", "AVX-512 (VNNI, bf16)"),
    ("fpu avx2 avx512f avx512bw", "AVX-512"),
    ("fpu sse2", "no AVX2"),
])
def test_cpu_isa_names_what_the_flags_say(tmp_path, flags, isa):
    from edgealex.bench.environment import cpu_isa

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: " + flags + "\n")
    assert cpu_isa(str(tmp_path)) == isa
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 38.40\n")  # an arm64 board
    assert cpu_isa(str(tmp_path)) is None
