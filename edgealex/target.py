"""Target profiles: what each device kind is and can do, loaded from ``targets/*.toml``.

A :class:`Target` is a frozen, validated description of one device kind (Jetson Nano, AGX Xavier,
Orin, a desktop GPU, a plain CPU): SoC and CUDA arch, DLA cores, fast FP16/INT8, the JetPack ->
TensorRT/CUDA/Python versions it ships, default precision, power modes and rails, camera pipeline.
The capability rules every later stage enforces live here (:meth:`Target.check_precision`,
:meth:`Target.check_dla`), so ``build``, ``calibrate``, ``run`` and ``dla-check`` refuse the same
things with the same words.

Where the profiles live: the TOML files are kept once in git, in the top-level ``targets/`` folder.
``edgealex/data/targets`` is a symbolic link to it, and ``pyproject.toml`` lists
``data/targets/*.toml`` as package data, so a wheel or a non-editable install copies the files into
the package (setuptools follows the link when it builds). :func:`targets_dir` looks in the package
first, then in the checkout, and ``$EDGEALEX_TARGETS_DIR`` overrides both.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from packaging.version import InvalidVersion, Version

from edgealex.errors import EdgeAlexError

PRECISIONS = ("fp32", "fp16", "int8")
KINDS = ("jetson", "desktop", "cpu")
BACKENDS = ("tensorrt", "ort")
ENV_DIR = "EDGEALEX_TARGETS_DIR"

_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Target:
    """One device kind. Load with :func:`load_target`; never build by hand outside tests."""

    name: str
    title: str
    kind: str
    soc: Optional[str]
    cuda_arch: Optional[str]
    dla_cores: int
    fast_fp16: bool
    fast_int8: bool
    jetpack: Optional[str]
    l4t: Optional[str]
    tensorrt: Optional[str]
    cuda: Optional[str]
    python: str
    default_precision: str
    input_size: int
    workspace_mib: int
    memory_gb: float
    power_modes: Tuple[Tuple[int, str], ...]
    power_rails: Tuple[str, ...]
    power_total_rail: Optional[str]
    power_total_is_sum: bool
    power_note: str
    camera_pipeline: str
    backend: str
    precisions: Tuple[str, ...] = PRECISIONS
    notes: Tuple[str, ...] = ()
    detect_soc: Optional[str] = None
    detect_modules: Tuple[str, ...] = ()
    detect_models: Tuple[str, ...] = ()
    detect_memory_gb: Optional[float] = None
    max_onnx_opset: Optional[int] = None
    source: str = field(default="", compare=False)

    # -- versions -------------------------------------------------------------------------------
    def trt_version(self):
        """TensorRT version this target ships, as ``packaging.version.Version`` (None for cpu)."""
        return Version(self.tensorrt) if self.tensorrt else None

    def calib_cache_version_number(self):
        """The number in a calibration cache header ``TRT-<n>-EntropyCalibration2`` (facts §2.2).

        8.x: ``MAJOR*1000 + MINOR*100 + PATCH`` (8.2.1 -> 8201); 10.x+: ``(MAJOR*100 + MINOR)*100 + PATCH``
        (10.3.0 -> 100300). ``None`` when the target has no TensorRT.
        """
        version = self.trt_version()
        if version is None:
            return None
        return trt_version_number(version)

    # -- capability rules -----------------------------------------------------------------------
    def check_precision(self, precision, force=False):
        """Refuse a precision this board cannot run well.

        Args:
            precision (str): "fp32", "fp16" or "int8".
            force (bool): build INT8 on a board without fast INT8 anyway (a warning is returned).

        Returns:
            list[str]: warnings to show the user (empty when all is well).

        Raises:
            EdgeAlexError: unknown precision, precision not offered by the target, or INT8 on a board
                without fast INT8 (Jetson Nano) when ``force`` is False.
        """
        warnings = []
        if precision not in PRECISIONS:
            raise EdgeAlexError("--precision", f"unknown precision {precision!r}",
                                "use one of: " + ", ".join(PRECISIONS))
        if precision not in self.precisions:
            raise EdgeAlexError(
                f"target {self.name}", f"{precision} is not offered on {self.title}",
                "use one of: " + ", ".join(self.precisions))
        if precision == "int8" and not self.fast_int8:
            reason = (f"{self.title} has no fast INT8 (sm_{(self.cuda_arch or '?').replace('.', '')} lacks "
                      "the DP4A instructions INT8 kernels need), so an INT8 engine is not faster than FP16 "
                      "and loses accuracy")
            if not force:
                raise EdgeAlexError(f"target {self.name}", reason,
                                    "use --precision fp16, or add --force-int8 to build it anyway")
            warnings.append(reason + "; building INT8 anyway because it was forced")
        if precision == "fp16" and not self.fast_fp16:
            warnings.append(f"{self.title} has no fast FP16; FP16 may be slower than FP32 here")
        return warnings

    def check_dla(self, dla_core, precision, static_shapes=True):
        """Refuse a DLA request this board or model cannot satisfy.

        Args:
            dla_core (int|None): requested DLA core; None means GPU only (nothing to check).
            precision (str): build precision.
            static_shapes (bool): whether every input dimension is fixed.

        Raises:
            EdgeAlexError: no DLA on the board, core index out of range, FP32 on DLA, dynamic shapes.
        """
        if dla_core is None:
            return
        if self.dla_cores <= 0:
            raise EdgeAlexError(f"target {self.name}", f"{self.title} has no DLA",
                                "drop --dla-core and build for the GPU")
        if not isinstance(dla_core, int) or isinstance(dla_core, bool) or not 0 <= dla_core < self.dla_cores:
            valid = ", ".join(str(i) for i in range(self.dla_cores))
            raise EdgeAlexError("--dla-core", f"DLA core {dla_core} does not exist on {self.title} "
                                f"({self.dla_cores} core{'s' if self.dla_cores != 1 else ''})",
                                f"use --dla-core {valid}")
        if precision not in ("fp16", "int8"):
            raise EdgeAlexError("--precision", f"DLA runs only FP16 or INT8, not {precision}",
                                "use --precision fp16 (or int8 with calibration) for a DLA build")
        if not static_shapes:
            raise EdgeAlexError("model input", "DLA does not support dynamic shapes",
                                "export the model with a static batch (edgealex export --batch N, "
                                "without --dynamic-batch)")

    def check_opset(self, opset, subject="model"):
        """Refuse an ONNX whose opset is newer than this target's TensorRT ONNX parser reads.

        The limit is ``software.max_onnx_opset`` of the profile (onnx-tensorrt ``docs/operators.md``
        of the TensorRT release, cited in each profile). Targets without TensorRT have no limit.

        Args:
            opset (int): the model's default-domain opset (0 = unknown, not checked).
            subject (str): the model path for the message.

        Raises:
            EdgeAlexError: opset above the limit, with the opset to re-export with.
        """
        if not opset or self.max_onnx_opset is None or int(opset) <= self.max_onnx_opset:
            return
        raise EdgeAlexError(subject, f"the ONNX uses opset {opset} but TensorRT {self.tensorrt} on {self.title} parses "
                            f"ONNX up to opset {self.max_onnx_opset}",
                            f"re-export with --opset {self.max_onnx_opset} (edgealex export --opset "
                            f"{self.max_onnx_opset})")

    # -- helpers --------------------------------------------------------------------------------
    def format_camera_pipeline(self, **values):
        """The default camera pipeline with its ``{placeholders}`` filled in.

        Defaults: sensor_id 0, device 0, 1280x720 at 30 fps, flip 0, output 640x360.
        """
        return format_pipeline(self.camera_pipeline, **values)

    def power_mode_name(self, mode_id):
        """nvpmodel name for ``mode_id`` or None when the profile does not list it."""
        for ident, name in self.power_modes:
            if ident == mode_id:
                return name
        return None

    def to_dict(self):
        """A JSON-ready dict (tuples become lists)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "power_modes":
                value = [{"id": ident, "name": label} for ident, label in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        out["calib_cache_version_number"] = self.calib_cache_version_number()
        return out


def format_pipeline(template, **values):
    """Fill a GStreamer pipeline template's ``{placeholders}`` (defaults for the ones not given)."""
    params = dict(PIPELINE_DEFAULTS)
    params.update(values)
    return template.format(**params)


PIPELINE_DEFAULTS = {"sensor_id": 0, "device": 0, "width": 1280, "height": 720, "fps": 30, "flip": 0,
                     "out_width": 640, "out_height": 360}


def trt_version_number(version):
    """``NV_TENSORRT_VERSION`` for a version: 8.2.1 -> 8201, 10.3.0 -> 100300 (facts §2.2)."""
    version = version if isinstance(version, Version) else Version(str(version))
    release = tuple(version.release) + (0, 0, 0)
    major, minor, patch = release[:3]
    if major < 10:
        return major * 1000 + minor * 100 + patch
    return (major * 100 + minor) * 100 + patch


# ---------------------------------------------------------------------------------------------------
# Loading and validation

# field -> (section, key, type, required). Types: str, optional_str, int, bool, float, str_list,
# modes, precision_list.
_SCHEMA = (
    ("name", None, "name", "str", True),
    ("title", None, "title", "str", True),
    ("kind", None, "kind", "str", True),
    ("notes", None, "notes", "str_list", False),
    ("soc", "hardware", "soc", "optional_str", False),
    ("cuda_arch", "hardware", "cuda_arch", "optional_str", False),
    ("dla_cores", "hardware", "dla_cores", "int", True),
    ("fast_fp16", "hardware", "fast_fp16", "bool", True),
    ("fast_int8", "hardware", "fast_int8", "bool", True),
    ("memory_gb", "hardware", "memory_gb", "float", True),
    ("jetpack", "software", "jetpack", "optional_str", False),
    ("l4t", "software", "l4t", "optional_str", False),
    ("tensorrt", "software", "tensorrt", "optional_str", False),
    ("cuda", "software", "cuda", "optional_str", False),
    ("python", "software", "python", "str", True),
    ("backend", "software", "backend", "str", True),
    ("max_onnx_opset", "software", "max_onnx_opset", "optional_int", False),
    ("precisions", "build", "precisions", "str_list", True),
    ("default_precision", "build", "default_precision", "str", True),
    ("input_size", "build", "input_size", "int", True),
    ("workspace_mib", "build", "workspace_mib", "int", True),
    ("power_modes", "power", "modes", "modes", True),
    ("power_rails", "power", "rails", "str_list", True),
    ("power_total_rail", "power", "total_rail", "optional_str", False),
    ("power_total_is_sum", "power", "total_is_sum", "bool", True),
    ("power_note", "power", "note", "str", True),
    ("camera_pipeline", "camera", "pipeline", "str", True),
    ("detect_soc", "detect", "soc", "optional_str", False),
    ("detect_modules", "detect", "modules", "str_list", False),
    ("detect_models", "detect", "models", "str_list", False),
    ("detect_memory_gb", "detect", "memory_gb", "optional_float", False),
)
_SECTIONS = ("hardware", "software", "build", "power", "camera", "detect")


def _toml():
    # tomllib is in the standard library from 3.11; tomli (same API) is a core dependency below that.
    # Imported by name so the 3.8 static check (vermin) does not flag the 3.11-only module.
    import importlib

    for module in ("tomllib", "tomli"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise EdgeAlexError("edgealex targets", "no TOML parser in this Python (tomllib needs 3.11)",
                        "pip install tomli")


def _bad(path, key, what):
    return EdgeAlexError(f"{path} [{key}]", what,
                         "fix the profile; compare with a built-in one (edgealex targets show agx-xavier)")


def _convert(path, key, kind, value):
    """Check one value's TOML type and convert it to the dataclass type."""
    def fail(expected):
        return _bad(path, key, f"expected {expected}, got {type(value).__name__} {value!r}")

    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise fail("a non-empty string")
        return value
    if kind == "optional_str":
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail("a non-empty string (or leave the key out)")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if kind == "optional_int":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer (or leave the key out)")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind in ("float", "optional_float"):
        if value is None and kind == "optional_float":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail("a list of non-empty strings")
        return tuple(value)
    if kind == "modes":
        if not isinstance(value, list):
            raise fail("a list of {id = N, name = \"...\"} tables")
        modes = []
        for entry in value:
            if (not isinstance(entry, dict) or set(entry) != {"id", "name"} or isinstance(entry["id"], bool)
                    or not isinstance(entry["id"], int) or not isinstance(entry["name"], str)):
                raise _bad(path, key, f"each power mode must be {{id = N, name = \"...\"}}, got {entry!r}")
            modes.append((entry["id"], entry["name"]))
        ids = [ident for ident, _ in modes]
        if len(set(ids)) != len(ids):
            raise _bad(path, key, f"duplicate nvpmodel ids {ids}")
        return tuple(modes)
    raise AssertionError(kind)


def target_from_dict(data, source="<dict>"):
    """Validate a parsed profile and build a :class:`Target`.

    Args:
        data (dict): the parsed TOML document.
        source (str): file name used in error messages.

    Raises:
        EdgeAlexError: naming the file and the field for any wrong type, missing or unknown key, or a
            value the rules forbid (unknown precision, negative DLA cores, default precision the board
            does not allow...).
    """
    if not isinstance(data, dict):
        raise EdgeAlexError(source, "a target profile must be a TOML table")
    known_top = {key for _, section, key, _, _ in _SCHEMA if section is None} | set(_SECTIONS)
    for key in data:
        if key not in known_top:
            raise _bad(source, key, "unknown key")
    for section in _SECTIONS:
        if section in data and not isinstance(data[section], dict):
            raise _bad(source, section, "expected a [section] table")
        known = {key for _, sec, key, _, _ in _SCHEMA if sec == section}
        for key in data.get(section, {}):
            if key not in known:
                raise _bad(source, f"{section}.{key}", "unknown key")

    values = {}
    for attr, section, key, kind, required in _SCHEMA:
        table = data if section is None else data.get(section, {})
        label = key if section is None else f"{section}.{key}"
        if key not in table:
            if required:
                raise _bad(source, label, "missing")
            values[attr] = () if kind == "str_list" else None
            continue
        values[attr] = _convert(source, label, kind, table[key])

    def rule(ok, label, what):
        if not ok:
            raise _bad(source, label, what)

    rule(values["kind"] in KINDS, "kind", f"{values['kind']!r} is not one of {', '.join(KINDS)}")
    rule(values["backend"] in BACKENDS, "software.backend",
         f"{values['backend']!r} is not one of {', '.join(BACKENDS)}")
    rule(values["dla_cores"] >= 0, "hardware.dla_cores", f"must be >= 0, got {values['dla_cores']}")
    rule(values["input_size"] > 0, "build.input_size", f"must be > 0, got {values['input_size']}")
    rule(values["workspace_mib"] >= 0, "build.workspace_mib", f"must be >= 0, got {values['workspace_mib']}")
    rule(values["memory_gb"] > 0, "hardware.memory_gb", f"must be > 0, got {values['memory_gb']}")
    for precision in values["precisions"]:
        rule(precision in PRECISIONS, "build.precisions",
             f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    rule(bool(values["precisions"]), "build.precisions", "must list at least one precision")
    default = values["default_precision"]
    rule(default in PRECISIONS, "build.default_precision",
         f"unknown precision {default!r} (use {', '.join(PRECISIONS)})")
    rule(default in values["precisions"], "build.default_precision",
         f"{default} is not in build.precisions {list(values['precisions'])}")
    rule(not (default == "int8" and not values["fast_int8"]), "build.default_precision",
         "int8 cannot be the default on a board without fast INT8 (hardware.fast_int8 = false)")
    rule(not (default == "fp16" and not values["fast_fp16"]), "build.default_precision",
         "fp16 cannot be the default on a board without fast FP16 (hardware.fast_fp16 = false)")
    for attr, label in (("tensorrt", "software.tensorrt"), ("jetpack", "software.jetpack"),
                        ("l4t", "software.l4t"), ("cuda", "software.cuda"), ("python", "software.python"),
                        ("cuda_arch", "hardware.cuda_arch")):
        if values[attr] is not None:
            try:
                Version(values[attr])
            except InvalidVersion:
                raise _bad(source, label, f"{values[attr]!r} is not a version number")
    if values["backend"] == "tensorrt":
        rule(values["tensorrt"] is not None, "software.tensorrt", "a TensorRT target must name its TensorRT version")
        rule(values["workspace_mib"] > 0, "build.workspace_mib", "a TensorRT target needs a build workspace > 0")
        rule(values["max_onnx_opset"] is not None and values["max_onnx_opset"] >= 7, "software.max_onnx_opset",
             "a TensorRT target must name the newest ONNX opset its parser reads (>= 7)")
    if values["kind"] == "jetson":
        for attr, label in (("soc", "hardware.soc"), ("cuda_arch", "hardware.cuda_arch"),
                            ("jetpack", "software.jetpack"), ("l4t", "software.l4t")):
            rule(values[attr] is not None, label, "a Jetson profile must set it")
    else:
        rule(values["dla_cores"] == 0, "hardware.dla_cores", "only Jetson boards have DLA cores")
    if values["power_total_rail"] is not None:
        rule(values["power_total_rail"] in values["power_rails"], "power.total_rail",
             f"{values['power_total_rail']!r} is not one of power.rails {list(values['power_rails'])}")
        rule(not values["power_total_is_sum"], "power.total_is_sum",
             "must be false when power.total_rail names the total rail")
    else:
        rule(not values["power_total_is_sum"] or values["power_rails"], "power.total_is_sum",
             "a summed total needs power.rails")
    try:
        format_pipeline(values["camera_pipeline"])
    except (KeyError, IndexError, ValueError) as exc:
        raise _bad(source, "camera.pipeline", f"bad placeholder in the template ({exc!r})")

    values["precisions"] = tuple(values["precisions"])
    return Target(source=source, **values)


def load_target_file(path):
    """Load and validate one profile file.

    Raises:
        EdgeAlexError: unreadable file, TOML syntax error, or a validation failure (names file and field).
    """
    toml = _toml()
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except OSError as exc:
        raise EdgeAlexError(path, f"cannot read the target profile ({exc.strerror or exc})",
                            "check the path, or use a name from `edgealex targets`")
    except ValueError as exc:  # tomllib.TOMLDecodeError / tomli.TOMLDecodeError subclass ValueError
        raise EdgeAlexError(path, f"not valid TOML ({exc})", "fix the syntax of the profile")
    return target_from_dict(data, source=path)


def targets_dir():
    """The folder holding the built-in ``*.toml`` profiles.

    Order: ``$EDGEALEX_TARGETS_DIR``; ``edgealex/data/targets`` inside the installed package (a link to
    the checkout's ``targets/`` in git, real files in a wheel); the checkout's ``targets/``.

    Raises:
        EdgeAlexError: when none of them exists.
    """
    candidates = []
    env = os.environ.get(ENV_DIR)
    if env:
        if not os.path.isdir(env):
            raise EdgeAlexError(f"${ENV_DIR}", f"{env} is not a folder", f"unset {ENV_DIR} or point it at a folder of *.toml")
        return env
    candidates.append(os.path.join(_HERE, "data", "targets"))
    candidates.append(os.path.join(os.path.dirname(_HERE), "targets"))
    for folder in candidates:
        if os.path.isdir(folder) and any(n.endswith(".toml") for n in os.listdir(folder)):
            return folder
    raise EdgeAlexError("edgealex targets", "the built-in target profiles are missing (looked in "
                        + ", ".join(candidates) + ")",
                        "reinstall edgealex (pip install --force-reinstall edgealex) or set " + ENV_DIR)


def target_names():
    """Names of the built-in profiles, sorted."""
    folder = targets_dir()
    return sorted(n[:-5] for n in os.listdir(folder) if n.endswith(".toml") and not n.startswith("."))


def list_targets():
    """Every built-in profile, loaded and validated, sorted by name."""
    return [load_target(name) for name in target_names()]


def load_target(name_or_path):
    """A built-in profile by name (``agx-xavier``) or any profile file by path.

    Raises:
        EdgeAlexError: unknown name (the message lists the valid names) or an invalid profile.
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
        return load_target_file(text)
    names = target_names()
    if text not in names:
        raise EdgeAlexError(f"target {text!r}", "unknown target",
                            "use one of: " + ", ".join(names) + " (or a path to a .toml profile)")
    target = load_target_file(os.path.realpath(os.path.join(targets_dir(), text + ".toml")))
    if target.name != text:
        raise _bad(target.source, "name", f"is {target.name!r} but the file is {text}.toml")
    return target


def resolve_target(name_or_path=None):
    """``load_target(name_or_path)``, or the detected target of this machine when None."""
    if name_or_path is None:
        from edgealex.detect import detect_target

        return detect_target()
    return load_target(name_or_path)


def describe(target):
    """Ordered (label, value) rows for ``edgealex targets show``."""
    rows: List[Tuple[str, Any]] = [
        ("name", target.name), ("title", target.title), ("kind", target.kind),
        ("soc / CUDA arch", f"{target.soc or '-'} / {('sm_' + target.cuda_arch.replace('.', '')) if target.cuda_arch else '-'}"),
        ("DLA cores", target.dla_cores),
        ("fast FP16 / INT8", f"{_yes(target.fast_fp16)} / {_yes(target.fast_int8)}"),
        ("memory", f"{target.memory_gb:g} GB"),
        ("JetPack / L4T", f"{target.jetpack or '-'} / {target.l4t or '-'}"),
        ("backend", target.backend),
        ("TensorRT / CUDA / Python", f"{target.tensorrt or '-'} / {target.cuda or '-'} / {target.python}"),
        ("ONNX opsets parsed", f"up to {target.max_onnx_opset}" if target.max_onnx_opset else "-"),
        ("calibration cache header", f"TRT-{target.calib_cache_version_number()}-EntropyCalibration2"
         if target.tensorrt else "-"),
        ("precisions (default)", f"{', '.join(target.precisions)} ({target.default_precision})"),
        ("input size", target.input_size),
        ("build workspace", f"{target.workspace_mib} MiB"),
        ("power modes", ", ".join(f"{i}={n}" for i, n in target.power_modes) or "- (read /etc/nvpmodel.conf)"),
        ("power rails", ", ".join(target.power_rails) or "-"),
        ("power total", target.power_total_rail or ("sum of rails" if target.power_total_is_sum else "-")),
        ("power note", target.power_note),
        ("camera pipeline", target.camera_pipeline),
        ("profile file", target.source),
    ]
    return rows


def _yes(flag):
    return "yes" if flag else "no"


def summary_row(target) -> Dict[str, Any]:
    """One row of the ``edgealex targets`` table."""
    return {
        "name": target.name, "title": target.title, "soc": target.soc or "-",
        "arch": ("sm_" + target.cuda_arch.replace(".", "")) if target.cuda_arch else "-",
        "dla": target.dla_cores, "int8": _yes(target.fast_int8), "jetpack": target.jetpack or "-",
        "tensorrt": target.tensorrt or "-", "python": target.python, "default": target.default_precision,
        "backend": target.backend,
    }
