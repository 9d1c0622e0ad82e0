"""``edgealex doctor``: what works on this box, what does not, and the exact fix.

Every check feature-detects (imports inside ``try``, files read under ``root``) and never raises: a
check that breaks unexpectedly reports ``warn`` with the exception text. Status values:

- ``ok``: works;
- ``warn``: works partly, or something a *different* target would need is missing;
- ``fail``: the detected (or chosen) target cannot work until it is fixed;
- ``skip``: does not apply here (e.g. nvpmodel on a desktop).

``edgealex doctor`` exits 0 when no check fails.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import List, Optional

from packaging.version import InvalidVersion, Version

from edgealex._optional import install_hint
from edgealex.detect import _path, _read_text, detect, l4t_tensorrt

STATUSES = ("ok", "warn", "fail", "skip")


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self):
        return asdict(self)


@dataclass
class DoctorReport:
    """All checks plus what they were run against."""

    checks: List[Check]
    target: Optional[str]
    detection: dict

    @property
    def failed(self):
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self):
        return not self.failed

    def to_dict(self):
        return {"ok": self.ok, "target": self.target, "detection": self.detection,
                "checks": [c.to_dict() for c in self.checks]}


class _Context:
    def __init__(self, root, det, target, probe_runtime, interpreter=None):
        self.root = root
        self.det = det
        self.target = target
        self.probe = probe_runtime
        self.interpreter = interpreter if interpreter is not None else venv_info()

    @property
    def gpu_target(self):
        return self.target is not None and self.target.backend == "tensorrt"

    @property
    def jetson(self):
        return self.det.is_jetson or (self.target is not None and self.target.kind == "jetson")


def run_checks(root="/", target=None, probe_runtime=None):
    """Run every check.

    Args:
        root (str): file-system root (a fake tree in tests).
        target (str|Target|None): check against this profile; default: the detected one.
        probe_runtime (bool|None): probe this interpreter (imports, CUDA, NVML, subprocesses).
            Default: only when ``root`` is ``/``.

    Returns:
        list[Check]: in a fixed order; see :func:`doctor` for the report with the detection.
    """
    return doctor(root, target, probe_runtime).checks


def doctor(root="/", target=None, probe_runtime=None, interpreter=None):
    """Run every check and return a :class:`DoctorReport`.

    ``interpreter`` is :func:`venv_info` of the Python to judge (default: this one; tests pass others).
    """
    from edgealex.errors import EdgeAlexError
    from edgealex.target import load_target

    root = str(root)
    if probe_runtime is None:
        probe_runtime = os.path.abspath(root) == os.sep
    det = detect(root, probe_runtime=probe_runtime)
    checks = []
    chosen = None
    try:
        chosen = load_target(target) if target is not None else (
            load_target(det.target_name) if det.target_name else None)
    except EdgeAlexError as err:
        checks.append(Check("target", "fail", err.what, err.note))
    ctx = _Context(root, det, chosen, probe_runtime, interpreter)
    for func in _CHECKS:
        try:
            result = func(ctx)
        except Exception as exc:  # a check must never take the doctor down
            result = Check(func.__name__.replace("_check_", "").replace("_", " "), "warn",
                           f"the check itself failed ({type(exc).__name__}: {exc})",
                           "please report this as an edgealex bug")
        checks.extend(result if isinstance(result, list) else [result])
    return DoctorReport(checks=checks, target=chosen.name if chosen else None, detection=det.to_dict())


# ---------------------------------------------------------------------------------------------------
# individual checks

def _check_platform(ctx):
    det, target = ctx.det, ctx.target
    if det.is_jetson:
        what = (f"{det.model or 'unknown model'} ({det.soc or 'SoC ?'}"
                + (f", module {det.module}" if det.module else "") + f"), L4T {det.l4t or '?'}"
                + f" = JetPack {det.jetpack or '?'}")
    elif det.nvidia_driver:
        what = "desktop with NVIDIA driver: " + det.nvidia_driver
    else:
        what = "no Jetson and no NVIDIA driver found"
    if target is None:
        return Check("platform", "fail", what + "; no target profile matches",
                     "pass --target NAME (see `edgealex targets`) or add a profile to targets/")
    what += f" -> target {target.name}"
    if det.target_name and target.name != det.target_name:
        return Check("platform", "warn", what + f" (chosen with --target; detection says {det.target_name})",
                     "drop --target to use the detected profile, unless detection is wrong")
    board_trt = l4t_tensorrt(det.l4t) if det.is_jetson else None
    if board_trt and target.tensorrt and _major_minor(board_trt) != _major_minor(target.tensorrt):
        return Check("platform", "warn",
                     what + f"; the profile assumes JetPack {target.jetpack} (TensorRT {target.tensorrt}) "
                            f"but this board runs JetPack {det.jetpack or '?'} (TensorRT {board_trt})",
                     f"copy targets/{target.name}.toml, set the versions this board ships and pass "
                     "--target path/to/copy.toml")
    if det.is_jetson and det.l4t and not det.jetpack:
        return Check("platform", "warn", what + f"; L4T {det.l4t} is not in edgealex's JetPack table",
                     "check the TensorRT version below against the profile")
    return Check("platform", "ok", what)


def _major_minor(text):
    match = re.match(r"(\d+)(?:\.(\d+))?", text or "")
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def _check_python(ctx):
    here = "{}.{}".format(*sys.version_info[:2])
    det, target = ctx.det, ctx.target
    if det.tensorrt:
        return Check("python", "ok", f"Python {here} ({sys.executable}); tensorrt {det.tensorrt} imports")
    other = [e for e in det.tensorrt_elsewhere if e["python"] and e["python"] != here]
    same = [e for e in det.tensorrt_elsewhere if e["python"] in (here, None)]
    if same and ctx.probe:
        where = same[0]["path"]
        return Check("python", "fail",
                     f"TensorRT is installed for this Python version ({where}) but does not import here "
                     f"({det.tensorrt_error}); a virtualenv without system site-packages hides it",
                     f"recreate the venv with the system packages: /usr/bin/python{here} -m venv "
                     "--system-site-packages ~/edgealex-venv")
    if other:
        entry = other[0]
        return Check("python", "fail",
                     f"TensorRT's Python bindings are installed for python{entry['python']} only "
                     f"({entry['path']}{', ' + entry['version'] if entry['version'] else ''}) but edgealex "
                     f"runs on Python {here}",
                     f"run edgealex with JetPack's interpreter: /usr/bin/python{entry['python']} -m venv "
                     f"--system-site-packages ~/edgealex-venv && ~/edgealex-venv/bin/pip install edgealex "
                     "(JetPack's TensorRT exists only for the system python3)")
    if target is not None and target.kind == "jetson" and target.python != here:
        return Check("python", "warn",
                     f"Python {here}; {target.title}'s JetPack {target.jetpack} ships TensorRT bindings for "
                     f"python{target.python} only", f"use /usr/bin/python{target.python} on the board")
    return Check("python", "ok", f"Python {here} ({sys.executable})")


def venv_info(prefix=None, base_prefix=None):
    """Whether a Python runs in a virtualenv, and whether that venv sees the system site-packages.

    Args:
        prefix (str): ``sys.prefix`` of the interpreter. Defaults to this one's.
        base_prefix (str): ``sys.base_prefix``. Defaults to this one's.

    Returns:
        dict: ``{"venv": bool, "prefix": str, "system_site_packages": bool|None}`` (None: no
        ``pyvenv.cfg`` to read). Read from ``<prefix>/pyvenv.cfg``'s ``include-system-site-packages``
        (Python's venv module writes it, docs.python.org/3/library/venv.html).
    """
    prefix = prefix or sys.prefix
    base_prefix = base_prefix or getattr(sys, "base_prefix", sys.prefix)
    if os.path.realpath(prefix) == os.path.realpath(base_prefix):
        return {"venv": False, "prefix": prefix, "system_site_packages": True}
    text = _read_file(os.path.join(prefix, "pyvenv.cfg"))
    match = re.search(r"^\s*include-system-site-packages\s*=\s*(\w+)", text or "", re.M | re.I)
    system = None if match is None else match.group(1).lower() == "true"
    return {"venv": True, "prefix": prefix, "system_site_packages": system}


def _check_venv(ctx):
    info = ctx.interpreter
    if not info["venv"]:
        return Check("virtualenv", "ok", f"no virtualenv ({info['prefix']}): the system site-packages are visible")
    if info["system_site_packages"] is not False:
        return Check("virtualenv", "ok", f"virtualenv {info['prefix']} with the system site-packages")
    detail = f"virtualenv {info['prefix']} without --system-site-packages"
    if ctx.jetson:
        trt = f"tensorrt {ctx.det.tensorrt} imports anyway" if ctx.det.tensorrt else (
            "JetPack's TensorRT (python3-libnvinfer, /usr/lib/python3*/dist-packages) is hidden")
        status = "warn" if ctx.det.tensorrt else "fail"
        return Check("virtualenv", status,
                     detail + f": {trt}, and so is JetPack's OpenCV with GStreamer (csi:// cameras)",
                     f"re-create it with the system packages: /usr/bin/python3 -m venv --system-site-packages "
                     f"{info['prefix']} (or set include-system-site-packages = true in {info['prefix']}/pyvenv.cfg)")
    return Check("virtualenv", "ok", detail + " (fine off a Jetson: TensorRT and OpenCV come from pip here)")


def numpy_verdict(returncode, output, jetson, user_openblas):
    """Judge ``python -c "import numpy; print(numpy.__version__)"`` run with the user's environment.

    Args:
        returncode (int): the child's exit status (negative: killed by that signal).
        output (str): its stdout + stderr.
        jetson (bool): running on a Jetson.
        user_openblas (str|None): the user's OPENBLAS_CORETYPE (None: unset).

    Returns:
        (status, detail, fix) for a :class:`Check`.
    """
    import signal

    if returncode == -signal.SIGILL or "Illegal instruction" in (output or ""):
        return ("warn",
                "`import numpy` dies with \"Illegal instruction\" in your shell (numpy 1.19.5's OpenBLAS "
                "misdetects the CPU, numpy#18131); edgealex sets OPENBLAS_CORETYPE=ARMV8 for itself on a Jetson",
                "for your own scripts: echo 'export OPENBLAS_CORETYPE=ARMV8' >> ~/.bashrc (or pip3 install "
                "numpy==1.19.4 where onnxruntime is not installed: onnxruntime 1.10 requires numpy>=1.19.5)")
    if returncode != 0:
        last = (output or "").strip().splitlines()[-1:] or ["no output"]
        return ("fail", f"`import numpy` fails (exit {returncode}: {last[0]})",
                "pip3 install 'numpy>=1.17' (on JetPack 4.6: pip3 install numpy==1.19.5 with "
                "OPENBLAS_CORETYPE=ARMV8 exported)")
    version = (output or "").strip().splitlines()[-1] if (output or "").strip() else "?"
    try:
        old = Version(version) < Version("1.17")
    except InvalidVersion:
        old = False
    if old:
        return ("fail", f"numpy {version} is older than 1.17 (np.random.default_rng); JetPack 4.6's "
                "python3-numpy is 1.13.3",
                "python3 -m pip install --user 'numpy>=1.17,<1.20' (1.19.5 with export OPENBLAS_CORETYPE=ARMV8)")
    detail = f"numpy {version}"
    if jetson and version == "1.19.5":
        detail += "; OPENBLAS_CORETYPE=" + (user_openblas or "unset (edgealex sets ARMV8 for itself)")
    return ("ok", detail, "")


def probe_numpy(command=None, user_openblas=None):
    """(returncode, output) of importing numpy in a child with the user's OPENBLAS_CORETYPE restored."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if user_openblas is not None:
        env["OPENBLAS_CORETYPE"] = user_openblas
    command = command or [sys.executable, "-c", "import numpy; print(numpy.__version__)"]
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              env=env, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return 1, f"{type(exc).__name__}: {exc}"
    return proc.returncode, proc.stdout


def _check_numpy(ctx):
    if not ctx.probe:
        return Check("numpy", "skip", "not probed (fake root)")
    from edgealex import _USER_OPENBLAS_CORETYPE

    code, output = probe_numpy(user_openblas=_USER_OPENBLAS_CORETYPE)
    status, detail, fix = numpy_verdict(code, output, ctx.jetson, _USER_OPENBLAS_CORETYPE)
    return Check("numpy", status, detail, fix)


def _check_tensorrt(ctx):
    det, target = ctx.det, ctx.target
    if not ctx.probe:
        return Check("tensorrt", "skip", "not probed (fake root)")
    if det.tensorrt is None:
        reason = det.tensorrt_error or "not importable"
        extra = f"; dpkg has libnvinfer {det.tensorrt_dpkg}" if det.tensorrt_dpkg else ""
        if ctx.gpu_target:
            return Check("tensorrt", "fail", f"TensorRT does not import ({reason}){extra}", install_hint("tensorrt"))
        return Check("tensorrt", "warn",
                     f"TensorRT does not import ({reason}){extra}; the {target.name if target else 'cpu'} "
                     "target runs on ONNX Runtime, TensorRT is only needed for Jetson/desktop-GPU targets",
                     "only for GPU targets: " + install_hint("tensorrt"))
    parts = [f"TensorRT {det.tensorrt}"]
    status, fix = "ok", ""
    try:
        version = Version(det.tensorrt)
    except InvalidVersion:
        version = None
    if version is not None and target is not None and target.tensorrt:
        expected = Version(target.tensorrt)
        if version.release[:2] != expected.release[:2]:
            status = "warn"
            parts.append(f"the {target.name} profile expects {target.tensorrt}")
            fix = "use the profile that matches this install, or a copy with the right versions (--target FILE)"
    if version is not None and version >= Version("11"):
        parts.append("TensorRT 11 removed implicit INT8 calibration: INT8 needs a Q/DQ model")
    elif version is not None and version >= Version("10.1"):
        parts.append("implicit INT8 calibration is deprecated since 10.1 (still works)")
    caps = _trt_capabilities()
    if caps.get("error"):
        parts.append("no builder: " + caps["error"])
        if ctx.gpu_target:
            status, fix = "fail", "TensorRT imports but cannot create a builder: check the CUDA driver (nvidia-smi)"
    else:
        for key in ("fast_fp16", "fast_int8"):
            if key in caps:
                parts.append(f"{key} {'yes' if caps[key] else 'no'}")
        if "dla_cores" in caps:
            parts.append(f"DLA cores {caps['dla_cores']}")
            if target is not None and caps["dla_cores"] != target.dla_cores:
                status = "warn"
                parts.append(f"profile {target.name} says {target.dla_cores}")
                fix = fix or "check --target: the board's DLA count differs from the profile"
    return Check("tensorrt", status, "; ".join(parts), fix)


def _trt_capabilities():
    """platform_has_fast_fp16/int8 (absent in TRT 11) and num_DLA_cores from a builder."""
    try:
        import tensorrt as trt

        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    caps = {}
    for attr, key in (("platform_has_fast_fp16", "fast_fp16"), ("platform_has_fast_int8", "fast_int8"),
                      ("num_DLA_cores", "dla_cores")):
        if hasattr(builder, attr):
            try:
                caps[key] = getattr(builder, attr)
            except Exception:
                pass
    return caps


def _cuda_toolkit_version(root):
    text = _read_text(root, "/usr/local/cuda/version.json")
    match = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"', text or "", re.S)
    if match:
        return match.group(1), "/usr/local/cuda/version.json"
    text = _read_text(root, "/usr/local/cuda/version.txt")
    match = re.search(r"CUDA Version\s+([\d.]+)", text or "")
    if match:
        return match.group(1), "/usr/local/cuda/version.txt"
    return None, None


def _check_cuda_runtime(ctx):
    version, source = _cuda_toolkit_version(ctx.root)
    lib = None
    if ctx.probe:
        import ctypes.util

        lib = ctypes.util.find_library("cudart")
    if version or lib:
        detail = f"CUDA {version} ({source})" if version else f"libcudart found ({lib})"
        target = ctx.target
        if version and target is not None and target.cuda and _major_minor(version)[0] != _major_minor(target.cuda)[0]:
            return Check("cuda runtime", "warn", detail + f"; the {target.name} profile expects CUDA {target.cuda}",
                         "use the profile that matches this install")
        return Check("cuda runtime", "ok", detail)
    if ctx.gpu_target:
        return Check("cuda runtime", "fail", "no CUDA runtime found (/usr/local/cuda/version.*, libcudart)",
                     "on a Jetson: sudo apt install nvidia-jetpack; on a desktop the tensorrt wheels bring "
                     "their CUDA libraries (pip install tensorrt)")
    return Check("cuda runtime", "warn", "no CUDA runtime (fine for the cpu target)",
                 "only for GPU targets: install the NVIDIA driver and CUDA")


def _check_cuda_python(ctx):
    det, target = ctx.det, ctx.target
    if not ctx.probe:
        return Check("cuda-python / pycuda", "skip", "not probed (fake root)")
    nano = target is not None and target.cuda and _major_minor(target.cuda) < (11, 0)
    hint = ("pycuda (cuda-python has no CUDA 10.2 build): export PATH=/usr/local/cuda/bin:$PATH && "
            "pip3 install pycuda" if nano else install_hint("cuda"))
    if det.cuda_device:
        return Check("cuda-python / pycuda", "ok", f"{det.cuda_device} via {det.cuda_probe}")
    if ctx.gpu_target:
        return Check("cuda-python / pycuda", "fail", f"no CUDA device through Python ({det.cuda_probe})", hint)
    return Check("cuda-python / pycuda", "warn", f"no CUDA device through Python ({det.cuda_probe}); "
                 "not needed for the cpu target", "only for GPU targets: " + hint)


def _check_onnxruntime(ctx):
    if not ctx.probe:
        return Check("onnxruntime", "skip", "not probed (fake root)")
    needed = ctx.target is not None and ctx.target.backend == "ort"
    try:
        import onnxruntime as ort
    except Exception as exc:
        return Check("onnxruntime", "fail" if needed else "warn",
                     f"ONNX Runtime does not import ({type(exc).__name__}: {exc})", install_hint("onnxruntime"))
    providers = ort.get_available_providers()
    return Check("onnxruntime", "ok", f"ONNX Runtime {ort.__version__}, providers: {', '.join(providers)}")


def gstreamer_from_build_info(info):
    """True/False from ``cv2.getBuildInformation()``'s ``GStreamer: YES (...)``/``NO`` line; None if absent."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", info or "", re.M)
    if not match:
        return None
    return match.group(1).upper().startswith("YES")


def _check_opencv(ctx):
    if not ctx.probe:
        return Check("opencv", "skip", "not probed (fake root)")
    try:
        import cv2
    except Exception as exc:
        return Check("opencv", "warn", f"OpenCV does not import ({type(exc).__name__}: {exc}); images and "
                     "cameras are unavailable", install_hint("cv2"))
    gst = gstreamer_from_build_info(cv2.getBuildInformation())
    where = os.path.dirname(getattr(cv2, "__file__", "") or "")
    parts = [f"OpenCV {cv2.__version__} ({where})", "GStreamer " + {True: "YES", False: "NO", None: "unknown"}[gst]]
    system = [p for p in glob.glob(_path(ctx.root, "/usr/lib/python3*/dist-packages/cv2*"))
              + glob.glob(_path(ctx.root, "/usr/lib/python3/dist-packages/cv2*"))
              if not os.path.realpath(p).startswith(os.path.realpath(where) if where else "\0")]
    pip_wheel = "site-packages" in where
    if ctx.jetson and pip_wheel and system:
        return Check("opencv", "warn", "; ".join(parts) + f"; a pip OpenCV shadows JetPack's ({system[0]})",
                     "pip uninstall opencv-python opencv-python-headless (JetPack's OpenCV has GStreamer for CSI)")
    if gst is False or gst is None:
        if ctx.jetson:
            return Check("opencv", "warn", "; ".join(parts) + "; CSI cameras (nvarguscamerasrc) cannot open",
                         "use JetPack's OpenCV: pip uninstall opencv-python opencv-python-headless; "
                         "sudo apt install python3-opencv")
        return Check("opencv", "warn", "; ".join(parts) + "; GStreamer pipelines cannot open (files, USB "
                     "cameras via V4L2/FFmpeg still work)",
                     "PyPI wheels never have GStreamer; build OpenCV with -DWITH_GSTREAMER=ON if you need pipelines")
    return Check("opencv", "ok", "; ".join(parts))


def running_processes(root):
    """Command names (``/proc/<pid>/comm``) of running processes."""
    names = []
    for comm in glob.glob(_path(root, "/proc/[0-9]*/comm")):
        text = _read_file(comm)
        if text:
            names.append(text.strip())
    return names


def _read_file(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _check_argus(ctx):
    if not ctx.jetson:
        return Check("nvargus-daemon", "skip", "not a Jetson: CSI cameras do not exist here")
    if "nvargus-daemon" in running_processes(ctx.root):
        return Check("nvargus-daemon", "ok", "running (CSI cameras can open)")
    return Check("nvargus-daemon", "warn", "not running: CSI cameras (csi://N) cannot open",
                 "sudo systemctl restart nvargus-daemon")


def _check_video_devices(ctx):
    devices = sorted(glob.glob(_path(ctx.root, "/dev/video*")))
    if devices:
        names = []
        for dev in devices:
            base = os.path.basename(dev)
            label = _read_text(ctx.root, f"/sys/class/video4linux/{base}/name")
            names.append(f"/dev/{base}" + (f" ({label.strip()})" if label and label.strip() else ""))
        return Check("video devices", "ok", ", ".join(names))
    return Check("video devices", "warn", "no /dev/video* device: no USB/CSI camera connected",
                 "plug in a camera, or run on a video file or an image folder instead")


def power_sources(root, target=None, probe_runtime=True):
    """Try every power meter ``edgealex bench`` can use (its own code, so doctor and bench agree).

    Returns:
        list[dict]: ``{"kind", "readable", "detail"}`` per meter in bench's ``auto`` order; jtop and
        NVML (interpreter probes) only when ``probe_runtime``.
    """
    from edgealex.bench.power import AUTO_ORDER, NullMeter, open_meter

    sources = []
    for name in AUTO_ORDER:
        if name in ("jtop", "nvml") and not probe_runtime:
            continue
        meter = open_meter(name, target=target, root=root)
        if isinstance(meter, NullMeter):
            reason = meter.reason.split(": ", 1)[-1]
            sources.append({"kind": name, "readable": False, "detail": reason})
            continue
        try:
            info = meter.describe()
            sources.append({"kind": name, "readable": True,
                            "detail": "; ".join(x for x in (info.get("total"), info.get("source")) if x)})
        finally:
            meter.close_impl()
    return sources


def _check_power(ctx):
    sources = power_sources(ctx.root, ctx.target, ctx.probe)
    readable = [s for s in sources if s["readable"]]
    if readable:
        return Check("power sensors", "ok", " | ".join(f"{s['kind']}: {s['detail']}" for s in readable))
    detail = "no power sensor readable (" + "; ".join(f"{s['kind']}: {s['detail']}" for s in sources) + ")"
    if ctx.jetson:
        fix = ("sudo pip3 install jetson-stats && sudo systemctl restart jtop, or run as root to read the "
               "INA3221 files under /sys/bus/i2c/devices/*/hwmon")
    elif any(s["kind"] == "rapl" and "readable by root only" in s["detail"] for s in sources):
        from edgealex.bench.power.rapl import PERMISSION_FIX

        fix = PERMISSION_FIX
    elif ctx.det.nvidia_driver:
        fix = install_hint("pynvml") + " (NVML reports the GPU board's power)"
    else:
        fix = "none on this machine: results will report latency only, no energy per image"
    return Check("power sensors", "warn", detail, fix)


def parse_nvpmodel_conf(text):
    """(modes {id: name}, default id) from ``/etc/nvpmodel.conf`` (``< POWER_MODEL ID=0 NAME=MAXN >``)."""
    modes = {}
    for match in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", text or ""):
        modes[int(match.group(1))] = match.group(2)
    default = re.search(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)", text or "")
    return modes, int(default.group(1)) if default else None


def current_nvpmodel(root, probe_runtime):
    """(mode id, how): from ``/var/lib/nvpmodel/status`` (``pmode:0000 ...``) or ``nvpmodel -q``."""
    text = _read_text(root, "/var/lib/nvpmodel/status")
    match = re.search(r"pmode:(\d+)", text or "")
    if match:
        return int(match.group(1)), "/var/lib/nvpmodel/status"
    exe = shutil.which("nvpmodel") or ("/usr/sbin/nvpmodel" if os.path.exists("/usr/sbin/nvpmodel") else None)
    if probe_runtime and exe:
        try:
            out = subprocess.run([exe, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None, None
        numbers = re.findall(r"^\s*(\d+)\s*$", out, re.M)
        if numbers:
            return int(numbers[-1]), "nvpmodel -q"
    return None, None


def _check_nvpmodel(ctx):
    if not ctx.jetson:
        return Check("nvpmodel", "skip", "not a Jetson")
    conf_text = None
    conf_path = None
    for candidate in ["/etc/nvpmodel.conf"] + sorted(
            "/" + os.path.relpath(p, ctx.root) for p in glob.glob(_path(ctx.root, "/etc/nvpmodel/*.conf"))):
        conf_text = _read_text(ctx.root, candidate)
        if conf_text:
            conf_path = candidate
            break
    modes, default = parse_nvpmodel_conf(conf_text)
    if not modes and ctx.target is not None:
        modes = dict(ctx.target.power_modes)
    current, how = current_nvpmodel(ctx.root, ctx.probe)
    if current is None:
        return Check("nvpmodel", "warn", "current power mode unknown" + (f" (modes in {conf_path})" if conf_path else ""),
                     "sudo nvpmodel -q shows it; edgealex bench records the mode when it can read it")
    name = modes.get(current, "?")
    fastest = next((i for i, n in sorted(modes.items()) if n.upper().startswith("MAXN")), 0)
    detail = f"mode {current} = {name} (from {how}" + (f"; table {conf_path}" if conf_path else "") + ")"
    if current != fastest:
        return Check("nvpmodel", "warn", detail + f"; not the fastest mode {fastest} = {modes.get(fastest, '?')}",
                     f"for peak numbers: sudo nvpmodel -m {fastest} && sudo jetson_clocks "
                     "(or keep this mode and say so in the report)")
    return Check("nvpmodel", "ok", detail)


def jetson_clocks_state(root):
    """(True/False/None, detail): clocks pinned when every CPU's and the GPU's min frequency == max."""
    pinned, details = [], []
    for policy in sorted(glob.glob(_path(root, "/sys/devices/system/cpu/cpu[0-9]*/cpufreq"))):
        low, high = _read_file(os.path.join(policy, "scaling_min_freq")), _read_file(os.path.join(policy, "scaling_max_freq"))
        if low and high:
            pinned.append(low.strip() == high.strip())
    if pinned:
        details.append(f"CPU min==max on {sum(pinned)}/{len(pinned)} cores")
    gpus = [d for d in glob.glob(_path(root, "/sys/class/devfreq/*"))
            if re.search(r"gpu|gv11b|ga10b|gp10b|gm20b", os.path.basename(d))]
    for gpu in gpus:
        low, high = _read_file(os.path.join(gpu, "min_freq")), _read_file(os.path.join(gpu, "max_freq"))
        if low and high:
            pinned.append(low.strip() == high.strip())
            details.append(f"GPU min {'==' if low.strip() == high.strip() else '<'} max")
    if not pinned:
        return None, "no cpufreq/devfreq files"
    return all(pinned), ", ".join(details)


def _check_jetson_clocks(ctx):
    if not ctx.jetson:
        return Check("jetson_clocks", "skip", "not a Jetson")
    state, detail = jetson_clocks_state(ctx.root)
    if state is None:
        return Check("jetson_clocks", "warn", f"state unknown ({detail})", "sudo jetson_clocks --show")
    if state:
        return Check("jetson_clocks", "ok", f"on: clocks pinned to the mode's maximum ({detail})")
    return Check("jetson_clocks", "warn", f"off: DVFS scales clocks, latency varies ({detail})",
                 "sudo jetson_clocks before benchmarking (sudo jetson_clocks --restore undoes it)")


def _meminfo(root):
    text = _read_text(root, "/proc/meminfo") or ""
    values = {}
    for key in ("MemTotal", "MemAvailable", "SwapTotal"):
        match = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.M)
        if match:
            values[key] = int(match.group(1)) / (1024.0 * 1024.0)
    return values


def _check_disk(ctx):
    where = os.getcwd() if os.path.abspath(ctx.root) == os.sep else ctx.root
    usage = shutil.disk_usage(where)
    free_gib = usage.free / float(1 << 30)
    detail = f"{free_gib:.1f} GiB free in {where}"
    if free_gib < 1:
        return Check("disk", "fail", detail + "; an AlexNet ONNX (~244 MB), engines and caches need more",
                     "free some space or work in another folder")
    if free_gib < 4:
        return Check("disk", "warn", detail + "; tight for several engines and calibration sets",
                     "free some space (old engines: *.engine, timing caches)")
    return Check("disk", "ok", detail)


def _check_memory(ctx):
    info = _meminfo(ctx.root)
    if "MemTotal" not in info:
        return Check("memory / swap", "warn", "cannot read /proc/meminfo", "")
    total, swap = info["MemTotal"], info.get("SwapTotal", 0.0)
    detail = f"{total:.1f} GiB memory, {swap:.1f} GiB swap"
    if ctx.jetson and total < 6 and swap < 2:
        return Check("memory / swap", "warn", detail + "; a TensorRT build on a 4 GB board can be killed by the "
                     "out-of-memory killer",
                     "add swap: sudo fallocate -l 4G /var/swapfile && sudo chmod 600 /var/swapfile && "
                     "sudo mkswap /var/swapfile && sudo swapon /var/swapfile")
    return Check("memory / swap", "ok", detail)


_CHECKS = (_check_platform, _check_python, _check_venv, _check_numpy, _check_tensorrt, _check_cuda_runtime, _check_cuda_python,
           _check_onnxruntime, _check_opencv, _check_argus, _check_video_devices, _check_power, _check_nvpmodel,
           _check_jetson_clocks, _check_disk, _check_memory)
