"""What a benchmark result records about the machine it ran on.

Everything is read where readable and marked unknown otherwise; nothing here needs root or a
service. Files are read below ``root`` (``/`` on a real machine) so tests can use fake trees:

- nvpmodel mode: ``/var/lib/nvpmodel/status`` (``pmode:0000``), then ``nvpmodel -q``;
- jetson_clocks: ``jetson_clocks --show`` needs root, so the state is *inferred*: every CPU's
  ``scaling_min_freq`` equal to its ``scaling_max_freq`` (and the GPU devfreq min equal to max);
- clocks: ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` (kHz),
  ``/sys/class/devfreq/*/cur_freq`` (Hz);
- temperatures: ``/sys/devices/virtual/thermal/thermal_zone*/{type,temp}`` (milli-degrees C);
- versions of edgealex, Python, numpy, ONNX Runtime, TensorRT, CUDA, PyTorch, OpenCV (from
  package metadata or already-imported modules; nothing heavy is imported to find out).
"""

import glob
import importlib
import os
import platform
import re
import shutil
import subprocess
import sys

from edgealex.artifacts import environment_summary

_DISTS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
          "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11"),
          "torch": ("torch",), "numpy": ("numpy",), "opencv": ("opencv-python-headless", "opencv-python"),
          "onnx": ("onnx",), "cuda-python": ("cuda-python", "cuda-bindings"), "pycuda": ("pycuda",)}
_MODULES = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "torch": "torch", "numpy": "numpy",
            "opencv": "cv2", "onnx": "onnx", "pycuda": "pycuda"}


def _read(root, rel):
    try:
        with open(os.path.join(root, rel.lstrip("/"))) as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _metadata():
    """``importlib.metadata`` (Python >= 3.8), else the ``importlib_metadata`` backport (click pulls it in
    on 3.6/3.7), else None. Imported by name so that the device side still parses on Python 3.6."""
    for name in ("importlib.metadata", "importlib_metadata"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _dist_version(names):
    metadata = _metadata()
    if metadata is None:
        return None
    for name in names:
        try:
            return metadata.version(name)
        except Exception:  # PackageNotFoundError
            continue
    return None


def versions():
    """Versions of the libraries a result depends on (None when absent)."""
    from edgealex import __version__

    out = {"edgealex": __version__, "python": platform.python_version()}
    for key, dists in _DISTS.items():
        mod = sys.modules.get(_MODULES.get(key, ""))
        out[key] = getattr(mod, "__version__", None) or _dist_version(dists)
    return out


def cuda_version(root="/"):
    """CUDA toolkit version from /usr/local/cuda (version.json or version.txt), or None."""
    text = _read(root, "usr/local/cuda/version.json")
    if text:
        m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"', text)
        if m:
            return m.group(1)
    text = _read(root, "usr/local/cuda/version.txt")
    if text:
        m = re.search(r"([\d]+\.[\d.]+)", text)
        if m:
            return m.group(1)
    return None


def nvpmodel(root="/", target=None, run_commands=True):
    """Current nvpmodel mode: {"id", "name", "source"} or None where there is no nvpmodel."""
    status = _read(root, "var/lib/nvpmodel/status")
    if status:
        m = re.search(r"pmode:(\d+)", status)
        if m:
            ident = int(m.group(1))
            name = target.power_mode_name(ident) if target is not None and hasattr(target, "power_mode_name") else None
            return {"id": ident, "name": name, "source": "/var/lib/nvpmodel/status"}
    if run_commands and root == "/" and shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        m = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", out)
        if m:
            return {"id": int(m.group(2)), "name": m.group(1), "source": "nvpmodel -q"}
    return None


def cpu_clocks(root="/"):
    """Per-CPU cpufreq: {"cpu0": {"cur_khz", "min_khz", "max_khz", "governor"}} where readable."""
    out = {}
    for folder in sorted(glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq"))):
        cpu = os.path.basename(os.path.dirname(folder))
        entry = {}
        for key, name in (("cur_khz", "scaling_cur_freq"), ("min_khz", "scaling_min_freq"),
                          ("max_khz", "scaling_max_freq")):
            text = _read(folder, name)
            if text and text.isdigit():
                entry[key] = int(text)
        gov = _read(folder, "scaling_governor")
        if gov:
            entry["governor"] = gov
        if entry:
            out[cpu] = entry
    return out


def devfreq_clocks(root="/"):
    """Devfreq devices (the Jetson GPU among them): {"name": {"cur_hz", "min_hz", "max_hz"}}."""
    out = {}
    for folder in sorted(glob.glob(os.path.join(root, "sys/class/devfreq/*"))):
        entry = {}
        for key, name in (("cur_hz", "cur_freq"), ("min_hz", "min_freq"), ("max_hz", "max_freq")):
            text = _read(folder, name)
            if text and text.isdigit():
                entry[key] = int(text)
        if entry:
            out[os.path.basename(folder)] = entry
    return out


def temperatures(root="/"):
    """{"<zone type>": degrees C} from the thermal zones."""
    out = {}
    for folder in sorted(glob.glob(os.path.join(root, "sys/devices/virtual/thermal/thermal_zone*"))):
        text = _read(folder, "temp")
        if not text:
            continue
        try:
            value = int(text) / 1000.0
        except ValueError:
            continue
        name = _read(folder, "type") or os.path.basename(folder)
        out[name] = value
    return out


def jetson_clocks_state(cpus, devfreq):
    """'likely on' when every clock's min equals its max, 'likely off', or None when unknown."""
    pairs = [(c.get("min_khz"), c.get("max_khz")) for c in cpus.values()]
    pairs += [(d.get("min_hz"), d.get("max_hz")) for d in devfreq.values()]
    pairs = [p for p in pairs if None not in p]
    if not pairs:
        return None
    if all(lo == hi for lo, hi in pairs):
        return "likely on (every min clock equals its max; inferred, `sudo jetson_clocks --show` confirms)"
    return "likely off (clocks may scale; inferred from min < max)"


def cpu_model(root="/"):
    text = _read(root, "proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else platform.processor() or None


def cpu_isa(root="/"):
    """The vector ISA of this CPU as a short phrase, from the /proc/cpuinfo flags (x86 only).

    Returns e.g. "AVX-512 (VNNI, bf16)", "AVX2, no AVX-512" or None where no x86 flags are listed.
    Figures measured on one machine travel with this phrase: INT8 and bf16 speed depend on it."""
    text = _read(root, "proc/cpuinfo") or ""
    m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    if not m:
        return None
    flags = set(m.group(1).split())
    if "avx512f" in flags:
        extras = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx512_bf16", "bf16"), ("amx_tile", "AMX"))
                  if flag in flags]
        return "AVX-512" + (" ({})".format(", ".join(extras)) if extras else "")
    if "avx2" in flags:
        return "AVX2, no AVX-512" + (", AVX-VNNI" if "avx_vnni" in flags else "")
    return "no AVX2"


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def detected(root="/"):
    """edgealex.detect's view of this machine (model, SoC, JetPack, TensorRT, CUDA device)."""
    try:
        from edgealex.detect import detect
    except ImportError:
        return None
    try:
        det = detect(root)
    except Exception as exc:  # detection must never stop a benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}
    data = det.to_dict()
    keep = ("is_jetson", "model", "soc", "module", "l4t", "jetpack", "tensorrt", "cuda_device", "nvidia_driver",
            "memory_gb", "target_name")
    return {k: data.get(k) for k in keep}


def collect(target=None, root="/", run_commands=True):
    """The environment section of a result.

    Args:
        target: the ``edgealex.target.Target`` the run was made for, or None.
        root (str): filesystem root. Defaults to "/".
        run_commands (bool): allow ``nvpmodel -q``. Defaults to True.

    Returns:
        dict: target, detected device, power mode, jetson_clocks, clocks, temperatures, CPU, load
        average, versions, command line, host.
    """
    cpus = cpu_clocks(root)
    devfreq = devfreq_clocks(root)
    env = environment_summary()
    env.update({
        "target": getattr(target, "name", None),
        "detected": detected(root),
        "nvpmodel": nvpmodel(root, target, run_commands),
        "jetson_clocks": jetson_clocks_state(cpus, devfreq),
        "cpu_clocks": cpus,
        "devfreq_clocks": devfreq,
        "temperatures_c": temperatures(root),
        "cpu_model": cpu_model(root),
        "cpu_isa": cpu_isa(root),
        "cpu_count": os.cpu_count(),
        "loadavg_start": loadavg(),
        "versions": versions(),
        "cuda_toolkit": cuda_version(root),
        "command_line": " ".join(sys.argv),
    })
    return env
