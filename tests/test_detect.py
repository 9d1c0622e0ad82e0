"""Detection on fake file-system trees with the real file formats (device tree, nv_tegra_release, dpkg)."""

import os

import pytest

from edgealex.detect import (
    L4T_TO_JETPACK, detect, detect_target, dpkg_version, parse_nv_tegra_release, read_dt_strings,
)
from edgealex.errors import EdgeAlexError

GIB_KB = 1024 * 1024

NANO = dict(
    model="NVIDIA Jetson Nano Developer Kit",
    compatible=["nvidia,p3450-0000", "nvidia,tegra210"],
    release="# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
            "DATE: Sat Feb 19 17:05:08 UTC 2022\n# KERNEL_VARIANT: oot\n",
    mem_kb=4059712,
)
AGX_XAVIER = dict(
    model="Jetson-AGX",
    compatible=["nvidia,p2972-0000", "nvidia,galen", "nvidia,tegra194"],
    release="# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64, "
            "DATE: Tue Jan 24 23:38:33 UTC 2023\n",
    mem_kb=32 * GIB_KB - 700000,
)
XAVIER_NX = dict(
    model="NVIDIA Jetson Xavier NX Developer Kit",
    compatible=["nvidia,p3509-0000+p3668-0001", "nvidia,p3668-0001", "nvidia,tegra194"],
    release="# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, DATE: x\n",
    mem_kb=8 * GIB_KB - 400000,
)
ORIN_NX_16 = dict(
    model="NVIDIA Orin NX Developer Kit",
    compatible=["nvidia,p3768-0000+p3767-0000", "nvidia,p3767-0000", "nvidia,tegra234"],
    release="# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
            "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
            "TARGET_USERSPACE_LIB_DIR_PATH=/usr/lib/aarch64-linux-gnu/nvidia\n",
    mem_kb=16 * GIB_KB - 800000,
)
ORIN_NX_8 = dict(ORIN_NX_16, compatible=["nvidia,p3768-0000+p3767-0001", "nvidia,p3767-0001", "nvidia,tegra234"],
                 mem_kb=8 * GIB_KB - 500000)
AGX_ORIN = dict(
    model="NVIDIA Jetson AGX Orin Developer Kit",
    compatible=["nvidia,p3737-0000+p3701-0000", "nvidia,p3701-0000", "nvidia,tegra234"],
    release=ORIN_NX_16["release"], mem_kb=64 * GIB_KB - 2000000,
)
ORIN_NANO = dict(
    model="NVIDIA Jetson Orin Nano Developer Kit",
    compatible=["nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"],
    release=ORIN_NX_16["release"], mem_kb=8 * GIB_KB - 500000,
)

DPKG_STATUS = """Package: nvidia-l4t-core
Status: install ok installed
Priority: standard
Architecture: arm64
Version: {l4t}-20230124153320

Package: libnvinfer8
Status: install ok installed
Architecture: arm64
Version: {trt}-1+cuda11.4
Description: TensorRT runtime libraries
 multi-line description continues here

Package: python3-libnvinfer
Status: deinstall ok config-files
Version: 0.0.1-1
"""


def write(root, relative, data):
    path = os.path.join(str(root), relative.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return path


def make_jetson(root, model, compatible, release=None, mem_kb=None, dpkg=None, tensorrt_for=None):
    """A Jetson root: device tree (NUL-terminated), nv_tegra_release, meminfo, optional dpkg/tensorrt."""
    write(root, "/proc/device-tree/model", model.encode() + b"\0")
    write(root, "/proc/device-tree/compatible", b"".join(c.encode() + b"\0" for c in compatible))
    if release is not None:
        write(root, "/etc/nv_tegra_release", release)
    if mem_kb is not None:
        write(root, "/proc/meminfo", f"MemTotal:       {mem_kb} kB\nMemFree:         123456 kB\n"
                                     "SwapTotal:       2029696 kB\nSwapFree:        2029696 kB\n")
    if dpkg is not None:
        write(root, "/var/lib/dpkg/status", dpkg)
    if tensorrt_for:
        python, version = tensorrt_for
        write(root, f"/usr/lib/python{python}/dist-packages/tensorrt/__init__.py",
              f"import os\n__version__ = \"{version}\"\n")
    return str(root)


def make_desktop(root):
    write(root, "/proc/driver/nvidia/version",
          "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
          "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")
    write(root, "/proc/meminfo", "MemTotal:       65759012 kB\n")
    return str(root)


def make_cpu(root):
    write(root, "/proc/meminfo", "MemTotal:       24682472 kB\nSwapTotal:             0 kB\n")
    write(root, "/proc/cpuinfo", "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n")
    return str(root)


def test_nv_tegra_release_format():
    assert parse_nv_tegra_release(NANO["release"]) == "32.7.1"
    assert parse_nv_tegra_release(ORIN_NX_16["release"]) == "36.4.3"
    assert parse_nv_tegra_release("# R35 (release), REVISION: 2, GCID: 1") == "35.2.0"
    assert parse_nv_tegra_release("garbage") is None
    assert parse_nv_tegra_release("") is None
    assert L4T_TO_JETPACK["32.7.1"] == "4.6.1" and L4T_TO_JETPACK["35.2.1"] == "5.1"


def test_device_tree_strings_are_nul_terminated(tmp_path):
    make_jetson(tmp_path, **NANO)
    raw = open(os.path.join(str(tmp_path), "proc/device-tree/compatible"), "rb").read()
    assert raw.endswith(b"\0") and raw.count(b"\0") == 2
    assert read_dt_strings(str(tmp_path), "/proc/device-tree/compatible") == ["nvidia,p3450-0000", "nvidia,tegra210"]
    assert read_dt_strings(str(tmp_path), "/proc/device-tree/absent") == []


def test_nano(tmp_path):
    root = make_jetson(tmp_path, **NANO, tensorrt_for=("3.6", "8.2.1.8"))
    det = detect(root)
    assert det.is_jetson and det.soc == "tegra210"
    assert det.model == "NVIDIA Jetson Nano Developer Kit"  # NUL stripped
    assert det.l4t == "32.7.1" and det.jetpack == "4.6.1" and det.l4t_source == "/etc/nv_tegra_release"
    assert det.target_name == "nano"
    assert det.tensorrt_elsewhere == [{"path": "/usr/lib/python3.6/dist-packages/tensorrt", "python": "3.6",
                                       "version": "8.2.1.8"}]
    assert det.tensorrt is None and det.cuda_probe is None  # fake root: this interpreter is not probed
    assert detect_target(root).name == "nano"


def test_agx_xavier_with_r32_style_model_string(tmp_path):
    root = make_jetson(tmp_path, **AGX_XAVIER)
    det = detect(root)
    assert det.soc == "tegra194" and det.modules == ["p2972-0000"]
    assert det.l4t == "35.2.1" and det.jetpack == "5.1"
    assert det.target_name == "agx-xavier"
    assert "module id" in det.reasons[0]


def test_xavier_nx(tmp_path):
    det = detect(make_jetson(tmp_path, **XAVIER_NX))
    assert det.target_name == "xavier-nx" and det.jetpack == "5.1.1"


@pytest.mark.parametrize("board,expected", [(ORIN_NX_16, "orin-nx-16gb"), (ORIN_NX_8, "orin-nx-8gb"),
                                            (AGX_ORIN, "agx-orin"), (ORIN_NANO, "orin-nano")])
def test_orin_family_by_module_id(tmp_path, board, expected):
    det = detect(make_jetson(tmp_path, **board))
    assert det.soc == "tegra234" and det.l4t == "36.4.3" and det.jetpack == "6.2"
    assert det.target_name == expected


@pytest.mark.parametrize("mem_gib,expected", [(16, "orin-nx-16gb"), (8, "orin-nx-8gb")])
def test_orin_nx_by_memory_when_module_id_missing(tmp_path, mem_gib, expected):
    board = dict(ORIN_NX_16, compatible=["nvidia,tegra234"], mem_kb=mem_gib * GIB_KB - 600000)
    det = detect(make_jetson(tmp_path, **board))
    assert det.modules == []
    assert det.target_name == expected
    assert "memory" in det.reasons[0]


def test_l4t_from_dpkg_when_release_file_missing(tmp_path):
    status = DPKG_STATUS.format(l4t="35.2.1", trt="8.5.2-1")
    root = make_jetson(tmp_path, **dict(AGX_XAVIER, release=None, dpkg=status))
    assert dpkg_version(root, "python3-libnvinfer") is None  # config-files only: not installed
    det = detect(root)
    assert det.l4t == "35.2.1" and det.jetpack == "5.1"
    assert det.l4t_source.startswith("dpkg nvidia-l4t-core 35.2.1-")
    assert det.tensorrt_dpkg == "8.5.2-1-1+cuda11.4"


def test_unknown_jetson_model_guessed_from_soc(tmp_path):
    det = detect(make_jetson(tmp_path, model="Custom carrier", compatible=["acme,board", "nvidia,tegra194"],
                             release=AGX_XAVIER["release"]))
    assert det.target_name in ("agx-xavier", "xavier-nx")
    assert "guessed from SoC tegra194" in det.reasons[0]


def test_unsupported_jetson_is_refused(tmp_path):
    root = make_jetson(tmp_path, model="NVIDIA Jetson TX2", compatible=["nvidia,p2771-0000", "nvidia,tegra186"],
                       release="# R32 (release), REVISION: 7.1, GCID: 1, BOARD: t186ref\n")
    det = detect(root)
    assert det.is_jetson and det.target_name is None
    with pytest.raises(EdgeAlexError, match="unknown Jetson") as info:
        detect_target(root)
    assert "--target" in info.value.note


def test_desktop_with_nvidia_driver(tmp_path):
    det = detect(make_desktop(tmp_path))
    assert not det.is_jetson
    assert det.nvidia_driver.startswith("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05")
    assert det.target_name == "desktop-cuda"


def test_plain_cpu(tmp_path):
    det = detect(make_cpu(tmp_path))
    assert not det.is_jetson and det.target_name == "cpu" and det.memory_gb == pytest.approx(23.54, abs=0.01)


@pytest.mark.skipif(os.path.exists("/etc/nv_tegra_release") or os.path.exists("/proc/driver/nvidia/version"),
                    reason="this machine is a Jetson or has an NVIDIA driver")
def test_this_machine_is_cpu():
    det = detect()
    assert det.target_name == "cpu"
    assert det.tensorrt is None and det.tensorrt_error  # probed: the reason it does not import
    assert det.cuda_probe
    assert detect_target().name == "cpu"


def test_tensorrt_that_jetpack_brings():
    from edgealex.detect import l4t_tensorrt

    assert [l4t_tensorrt(v) for v in ("32.6.1", "32.7.1", "32.7.6", "35.1.0", "35.2.1", "36.3.0", "36.4.3")] == [
        "8.0", "8.2", "8.2", "8.4", "8.5", "8.6", "10.3"]
    assert l4t_tensorrt(None) is None and l4t_tensorrt("38.2.0") is None
