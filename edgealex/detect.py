"""Where does edgealex run? Jetson model, L4T/JetPack, TensorRT, CUDA device -> a target name.

Everything is read from files below a ``root`` folder (``/`` on a real machine), in the formats the
kernel and JetPack write them (facts §8):

- ``/proc/device-tree/model`` and ``/proc/device-tree/compatible``: NUL-terminated strings; the last
  ``compatible`` entry names the SoC (``nvidia,tegra194``), others carry module/carrier P-numbers
  (``nvidia,p3768-0000+p3767-0001``).
- ``/etc/nv_tegra_release`` first line ``# R32 (release), REVISION: 7.1, GCID: ..., BOARD: ...``;
  fallback: the ``nvidia-l4t-core`` stanza of dpkg's status database (what ``dpkg-query --show
  nvidia-l4t-core`` prints).
- ``/proc/meminfo`` to tell the 8 GB from the 16 GB Orin NX when the module id is missing.
- ``/proc/driver/nvidia/version`` for a desktop NVIDIA driver.

Tests build such trees in a temporary folder. Probes of *this interpreter* (``import tensorrt``,
cuda-python / pycuda device count) only run when ``root`` is ``/`` unless asked for.
"""

import glob
import os
import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from edgealex.log import logger

# L4T release -> JetPack (jetson-containers NVIDIA_JETPACK table, facts §8).
L4T_TO_JETPACK = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "35.6.1": "5.1.5", "35.6.2": "5.1.5", "35.6.4": "5.1.6",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.2": "6.1.1", "36.4.3": "6.2",
    "36.4.4": "6.2.1", "36.4.7": "6.2.1", "36.5.0": "6.2.1",
}



def l4t_tensorrt(l4t):
    """TensorRT major.minor that JetPack's apt packages bring for an L4T release (facts §0), or None.

    R32.6.1 (JetPack 4.6) -> 8.0 (3rd-party package lists); R32.7.x -> 8.2; R35.1.0 (JetPack 5.0.2) -> 8.4
    (UNVERIFIED); other R35 -> 8.5; R36.2/R36.3 (CUDA 12.2) -> 8.6; R36.4+ (CUDA 12.6) -> 10.3.
    """
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", l4t or "")
    if not match:
        return None
    release = tuple(int(x or 0) for x in match.groups())
    if release[0] == 32:
        return "8.0" if release[:2] <= (32, 6) else "8.2"
    if release[0] in (34, 35):
        return "8.4" if release[:2] <= (35, 1) else "8.5"
    if release[0] == 36:
        return "8.6" if release[:2] <= (36, 3) else "10.3"
    return None


_RELEASE_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?")
_MODULE_RE = re.compile(r"p\d{4}-\d{4}")
_TEGRA_RE = re.compile(r"^nvidia,(tegra\d+)$")


@dataclass
class Detection:
    """What :func:`detect` found. Fields are None/empty when unknown."""

    root: str = "/"
    is_jetson: bool = False
    model: Optional[str] = None
    compatible: List[str] = field(default_factory=list)
    soc: Optional[str] = None
    modules: List[str] = field(default_factory=list)
    memory_gb: Optional[float] = None
    l4t: Optional[str] = None
    l4t_source: Optional[str] = None
    jetpack: Optional[str] = None
    nvidia_driver: Optional[str] = None
    tensorrt: Optional[str] = None
    tensorrt_error: Optional[str] = None
    tensorrt_dpkg: Optional[str] = None
    tensorrt_elsewhere: List[dict] = field(default_factory=list)
    cuda_device: Optional[str] = None
    cuda_probe: Optional[str] = None
    target_name: Optional[str] = None
    reasons: List[str] = field(default_factory=list)

    @property
    def module(self):
        """The first module/carrier P-number, e.g. ``p3767-0001`` (None when absent)."""
        return self.modules[0] if self.modules else None

    def to_dict(self):
        out = asdict(self)
        out["module"] = self.module
        return out


def _path(root, relative):
    return os.path.join(root, relative.lstrip("/"))


def _read_text(root, relative, limit=1 << 20):
    try:
        with open(_path(root, relative), "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def read_dt_strings(root, relative):
    """A device-tree property as a list of strings (NUL-separated, trailing NUL dropped)."""
    text = _read_text(root, relative)
    if text is None:
        return []
    return [part.strip() for part in text.split("\0") if part.strip()]


def parse_nv_tegra_release(text):
    """``# R32 (release), REVISION: 7.1, ...`` -> ``"32.7.1"`` (None when the line does not match)."""
    if not text:
        return None
    match = _RELEASE_RE.search(text.splitlines()[0] if text.splitlines() else text)
    if not match:
        return None
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return f"{major}.{minor}.{patch}"


def dpkg_version(root, package):
    """Version of an installed package from ``/var/lib/dpkg/status`` (None when absent)."""
    text = _read_text(root, "/var/lib/dpkg/status", limit=64 << 20)
    if not text:
        return None
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(" "):
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        status = fields.get("Status", "install ok installed").split()
        if fields.get("Package") == package and status and status[-1] == "installed":
            return fields.get("Version")
    return None


def memory_gb(root):
    """MemTotal from ``/proc/meminfo`` in GiB (None when unreadable)."""
    text = _read_text(root, "/proc/meminfo")
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text or "", re.M)
    return round(int(match.group(1)) / (1024.0 * 1024.0), 2) if match else None


def find_other_tensorrt(root):
    """TensorRT Python packages installed for system interpreters (JetPack's ``python3-libnvinfer``).

    Returns:
        list[dict]: ``{"path", "python", "version"}`` per ``/usr/lib/python3*/dist-packages/tensorrt``
        (and ``/usr/local/lib/...``), version read from its ``__init__.py`` when it states one.
    """
    found = []
    patterns = ["/usr/lib/python3*/dist-packages/tensorrt", "/usr/local/lib/python3*/dist-packages/tensorrt",
                "/usr/lib/python3*/site-packages/tensorrt", "/usr/local/lib/python3*/site-packages/tensorrt"]
    for pattern in patterns:
        for path in sorted(glob.glob(_path(root, pattern))):
            if not os.path.isdir(path):
                continue
            parts = path.split(os.sep)
            python = next((p[len("python"):] for p in parts if re.match(r"^python3(\.\d+)?$", p)), None)
            version = None
            init = _read_text(path, "__init__.py")
            match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", init or "")
            if match:
                version = match.group(1)
            found.append({"path": os.sep + os.path.relpath(path, root) if root != "/" else path,
                          "python": python if python and python != "3" else None, "version": version})
    return found


def probe_tensorrt():
    """(version, error): ``tensorrt.__version__`` in this interpreter, or why it does not import."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or OSError when libnvinfer.so is missing
        return None, f"{type(exc).__name__}: {exc}"
    return str(getattr(tensorrt, "__version__", "unknown")), None


def probe_cuda_device():
    """(device name, how it was probed) through cuda-python, then pycuda; name None when no device."""
    notes = []
    cudart = None
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib

            cudart = importlib.import_module(module)
            break
        except Exception as exc:
            notes.append(f"{module}: {type(exc).__name__}")
    if cudart is not None:
        try:
            err, count = cudart.cudaGetDeviceCount()
            if int(err) != 0:
                return None, f"cuda-python: cudaGetDeviceCount returned {err}"
            if count < 1:
                return None, "cuda-python: no CUDA device"
            err, props = cudart.cudaGetDeviceProperties(0)
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return f"{name} (sm_{props.major}{props.minor})", "cuda-python"
        except Exception as exc:
            return None, f"cuda-python probe failed: {type(exc).__name__}: {exc}"
    try:
        import pycuda.driver as drv

        drv.init()
        if drv.Device.count() < 1:
            return None, "pycuda: no CUDA device"
        dev = drv.Device(0)
        major, minor = dev.compute_capability()
        return f"{dev.name()} (sm_{major}{minor})", "pycuda"
    except ImportError as exc:
        notes.append(f"pycuda: {type(exc).__name__}")
    except Exception as exc:
        return None, f"pycuda probe failed: {type(exc).__name__}: {exc}"
    return None, "neither cuda-python nor pycuda is importable (" + "; ".join(notes) + ")"


def detect(root="/", probe_runtime=None):
    """Find out what machine edgealex runs on.

    Args:
        root (str): file-system root to read from (a fake tree in tests).
        probe_runtime (bool|None): also probe this interpreter (import tensorrt, CUDA device count).
            Default: only when ``root`` is ``/``.

    Returns:
        Detection: with ``target_name`` set to a built-in profile, or None for an unknown Jetson.
    """
    root = str(root)
    if probe_runtime is None:
        probe_runtime = os.path.abspath(root) == os.sep
    det = Detection(root=root)

    model = read_dt_strings(root, "/proc/device-tree/model")
    det.model = model[0] if model else None
    det.compatible = read_dt_strings(root, "/proc/device-tree/compatible")
    for entry in det.compatible:
        match = _TEGRA_RE.match(entry)
        if match:
            det.soc = match.group(1)
        for module in _MODULE_RE.findall(entry):
            if module not in det.modules:
                det.modules.append(module)
    det.memory_gb = memory_gb(root)

    release = _read_text(root, "/etc/nv_tegra_release")
    det.l4t = parse_nv_tegra_release(release)
    if det.l4t:
        det.l4t_source = "/etc/nv_tegra_release"
    else:
        core = dpkg_version(root, "nvidia-l4t-core")
        if core:
            match = re.match(r"(\d+\.\d+(?:\.\d+)?)", core)
            det.l4t = match.group(1) if match else None
            det.l4t_source = "dpkg nvidia-l4t-core " + core
    det.jetpack = L4T_TO_JETPACK.get(det.l4t) if det.l4t else None
    det.is_jetson = bool(det.l4t or (det.soc and det.soc.startswith("tegra"))
                         or any(c.startswith("nvidia,tegra") for c in det.compatible))

    driver = _read_text(root, "/proc/driver/nvidia/version")
    if driver:
        det.nvidia_driver = driver.splitlines()[0].strip() if driver.strip() else "present"

    libnvinfer = dpkg_version(root, "libnvinfer8") or dpkg_version(root, "libnvinfer10")
    det.tensorrt_dpkg = libnvinfer or dpkg_version(root, "python3-libnvinfer")
    det.tensorrt_elsewhere = find_other_tensorrt(root)
    if probe_runtime:
        det.tensorrt, det.tensorrt_error = probe_tensorrt()
        det.cuda_device, det.cuda_probe = probe_cuda_device()

    det.target_name = _choose_target(det)
    return det


def _choose_target(det):
    """Match the detection against the profiles' ``[detect]`` tables; record why in ``det.reasons``."""
    from edgealex.target import list_targets

    targets = list_targets()
    if det.is_jetson:
        jetsons = [t for t in targets if t.kind == "jetson"]
        if det.soc:
            jetsons = [t for t in jetsons if t.detect_soc in (None, det.soc)]
        scored = []
        model = (det.model or "").lower()
        for target in jetsons:
            score = 0
            if any(m.startswith(p) for m in det.modules for p in target.detect_modules):
                score = 3
            elif any(s.lower() in model for s in target.detect_models):
                score = 2
            if score:
                scored.append((score, target))
        if scored:
            best = max(score for score, _ in scored)
            candidates = [t for score, t in scored if score == best]
            how = "module id " + ", ".join(det.modules) if best == 3 else f"model string {det.model!r}"
            if len(candidates) > 1 and det.memory_gb is not None:
                with_memory = [t for t in candidates if t.detect_memory_gb]
                if with_memory:
                    candidates = sorted(with_memory, key=lambda t: abs(t.detect_memory_gb - det.memory_gb))
                    how += f" and {det.memory_gb:g} GiB of memory"
            chosen = candidates[0]
            det.reasons.append(f"{chosen.name}: matched by {how}")
            if len(candidates) > 1:
                det.reasons.append("also possible: " + ", ".join(t.name for t in candidates[1:])
                                   + " (pass --target to choose)")
            return chosen.name
        if jetsons and det.soc:
            chosen = jetsons[0]
            det.reasons.append(f"{chosen.name}: guessed from SoC {det.soc} only (model {det.model!r} and modules "
                               f"{det.modules} match no profile); pass --target to be sure")
            return chosen.name
        det.reasons.append(f"unknown Jetson (model {det.model!r}, SoC {det.soc}); no profile matches")
        return None
    cpu_only_reason = []
    if det.nvidia_driver or det.cuda_device:
        what = det.cuda_device or det.nvidia_driver
        det.reasons.append(f"desktop-cuda: NVIDIA GPU driver found ({what})")
        return "desktop-cuda"
    cpu_only_reason.append("no Jetson device tree, no /proc/driver/nvidia/version")
    if det.cuda_probe:
        cpu_only_reason.append(det.cuda_probe)
    det.reasons.append("cpu: " + "; ".join(cpu_only_reason))
    return "cpu"


def detect_target(root="/", probe_runtime=None):
    """The :class:`~edgealex.target.Target` of this machine.

    Raises:
        EdgeAlexError: on a Jetson that matches no profile (the message says what was found).
    """
    from edgealex.errors import EdgeAlexError
    from edgealex.target import load_target

    det = detect(root, probe_runtime=probe_runtime)
    if det.target_name is None:
        raise EdgeAlexError("target detection", "; ".join(det.reasons),
                            "pass --target NAME (see `edgealex targets`) or add a profile to targets/")
    logger.debug("detected target %s (%s)", det.target_name, "; ".join(det.reasons))
    return load_target(det.target_name)
