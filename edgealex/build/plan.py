"""The TensorRT build plan: which API calls and flags a build uses, as pure data.

A :class:`BuildPlan` is computed from the TensorRT version (through the feature table
:func:`features_for_version`, facts §1.1) and, on a machine with TensorRT, from feature probes of the
imported module (:func:`probe_features`); a probe always wins over the table. The same plan drives
the Python-API builder (:mod:`edgealex.build.trt`) and the trtexec command (:mod:`edgealex.build.trtexec`),
so both paths make the same engine, and the plan is recorded in the engine sidecar.

What changes across generations (facts §1, §2.6, §3.5):

======================  =========================  ===============================================
TensorRT                network / workspace        precision
======================  =========================  ===============================================
8.0, 8.2                EXPLICIT_BATCH flag,       FP16/INT8 builder flags; INT8 = entropy
                        ``max_workspace_size``     calibrator (cache or on-device images)
8.4, 8.5, 8.6           EXPLICIT_BATCH flag,       same
                        ``set_memory_pool_limit``
10.x                    no flag (always explicit   FP16/INT8 flags; GPU INT8 = Q/DQ ONNX (explicit
                        batch), memory pools       quantization); the calibrator (deprecated 10.1)
                                                   only for DLA or when only a cache/images exist
11.x                    strongly typed only        no precision flags, no calibrator: FP16 = an FP16
                                                   ONNX (converted first), INT8 = the Q/DQ ONNX
======================  =========================  ===============================================

Every build calls ``build_serialized_network`` (present from 8.0; ``build_engine`` is deprecated
from 8.0 and gone in 10) and parses with ``OnnxParser.parse_from_file``.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

from packaging.version import Version

from edgealex.errors import EdgeAlexError

# The generations whose plans are tested one by one (tests/test_build_plan.py).
GENERATIONS = ("8.0", "8.2", "8.4", "8.5", "8.6", "10", "11")
CALIBRATOR_CLASS = "IInt8EntropyCalibrator2"  # "required calibrator for DLA" (facts §2.1, §3.3)
INT8_SOURCES = ("cache", "images", "qdq")


@dataclass(frozen=True)
class TrtFeatures:
    """Which TensorRT Python API features exist (facts §1.1 and the §10.1 binding read-outs).

    Args:
        explicit_batch_flag (bool): ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` must be set
            (the 8.x ONNX parser requires it; ignored in 10, gone in 11).
        strongly_typed_flag (bool): ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists (10.0+).
        strongly_typed_only (bool): no FP16/INT8 builder flags: precision comes from the ONNX (11.x).
        max_workspace_size (bool): ``IBuilderConfig.max_workspace_size`` exists (8.0-8.6; gone in 10).
        memory_pool_limit (bool): ``IBuilderConfig.set_memory_pool_limit`` exists (8.4+).
        int8_calibrator (bool): ``IInt8EntropyCalibrator2`` and ``config.int8_calibrator`` exist (<= 10.x).
        implicit_int8_deprecated (bool): implicit quantization is deprecated (10.1+).
        precision_flags_deprecated (bool): FP16/INT8 builder flags are deprecated (10.12+).
        profiling_verbosity (bool): ``ProfilingVerbosity.DETAILED`` exists (8.2+).
        progress_monitor (bool): ``IProgressMonitor`` and ``config.progress_monitor`` exist (10.x).
        timing_cache (bool): ``create_timing_cache``/``set_timing_cache`` exist (8.0+).
    """

    explicit_batch_flag: bool
    strongly_typed_flag: bool
    strongly_typed_only: bool
    max_workspace_size: bool
    memory_pool_limit: bool
    int8_calibrator: bool
    implicit_int8_deprecated: bool
    precision_flags_deprecated: bool
    profiling_verbosity: bool
    progress_monitor: bool
    timing_cache: bool = True

    def to_dict(self):
        return asdict(self)


def parse_version(version):
    """A ``packaging`` Version from a string or Version; a user error when it is not a version."""
    if isinstance(version, Version):
        return version
    try:
        return Version(str(version))
    except Exception:
        raise EdgeAlexError("TensorRT version", f"{version!r} is not a version number",
                            "use a version such as 8.5.2 or 10.3.0")


def generation(version):
    """The generation label of a TensorRT version: "8.2", "8.5", "10", "11" ..."""
    version = parse_version(version)
    if version.major >= 10:
        return str(version.major)
    return f"{version.major}.{version.minor}"


def features_for_version(version):
    """The API features of a TensorRT version, from the facts table (no TensorRT needed).

    Args:
        version (str or Version): e.g. "8.2.1", "10.3.0".

    Returns:
        TrtFeatures: the table's answer. ``progress_monitor`` is only claimed from 10.3 on, the
        first release the bindings were read for (facts §10.1); a probe of the real module
        (:func:`probe_features`) turns it on for earlier 10.x when it exists.

    Raises:
        EdgeAlexError: for TensorRT older than 8.0 (not supported by edgealex).
    """
    v = parse_version(version)
    if v < Version("8.0"):
        raise EdgeAlexError("TensorRT " + str(v), "TensorRT older than 8.0 is not supported",
                            "use JetPack 4.6 or newer (TensorRT 8.0+)")
    return TrtFeatures(
        explicit_batch_flag=v.major < 10,
        strongly_typed_flag=v.major >= 10,
        strongly_typed_only=v.major >= 11,
        max_workspace_size=v < Version("10.0"),
        memory_pool_limit=v >= Version("8.4"),
        int8_calibrator=v.major < 11,
        implicit_int8_deprecated=v >= Version("10.1"),
        precision_flags_deprecated=v >= Version("10.12"),
        profiling_verbosity=v >= Version("8.2"),
        progress_monitor=v >= Version("10.3"),
        timing_cache=True,
    )


def probe_features(trt):
    """The API features of an imported ``tensorrt`` module, detected with ``hasattr``.

    The version still matters for two things a probe cannot see: the 8.x ONNX parser *requires*
    EXPLICIT_BATCH (10.x keeps the enum only as a deprecated no-op), and the deprecation releases.

    Args:
        trt (module): the imported ``tensorrt`` module (or any object with the same attributes).

    Returns:
        TrtFeatures: what this TensorRT offers.
    """
    v = parse_version(getattr(trt, "__version__", "0"))
    flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
    builder_flags = getattr(trt, "BuilderFlag", None)
    config = getattr(trt, "IBuilderConfig", None)
    verbosity = getattr(trt, "ProfilingVerbosity", None)
    return TrtFeatures(
        explicit_batch_flag=hasattr(flags, "EXPLICIT_BATCH") and v.major < 10,
        strongly_typed_flag=hasattr(flags, "STRONGLY_TYPED"),
        strongly_typed_only=not (hasattr(builder_flags, "FP16") and hasattr(builder_flags, "INT8")),
        max_workspace_size=hasattr(config, "max_workspace_size"),
        memory_pool_limit=hasattr(config, "set_memory_pool_limit"),
        int8_calibrator=hasattr(trt, CALIBRATOR_CLASS) and hasattr(config, "int8_calibrator"),
        implicit_int8_deprecated=v >= Version("10.1"),
        precision_flags_deprecated=v >= Version("10.12"),
        profiling_verbosity=hasattr(verbosity, "DETAILED"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"),
        timing_cache=hasattr(config, "create_timing_cache"),
    )


@dataclass
class BuildPlan:
    """Every decision of a TensorRT build, as data (JSON-ready through :meth:`to_dict`).

    Args:
        trt_version (str): TensorRT version the plan is for.
        generation (str): "8.0", "8.2", "8.4", "8.5", "8.6", "10" or "11".
        precision (str): requested precision "fp32", "fp16" or "int8".
        device (str): "gpu", "dla0" or "dla1".
        dla_core (int or None): DLA core, None on the GPU.
        gpu_fallback (bool): DLA layers TensorRT cannot place fall back to the GPU.
        network_flags (list): ``NetworkDefinitionCreationFlag`` names for ``create_network``.
        workspace_api (str): "max_workspace_size" or "set_memory_pool_limit".
        workspace_mib (int): workspace limit in MiB.
        builder_flags (list): ``BuilderFlag`` names to set (FP16, INT8, GPU_FALLBACK).
        strongly_typed (bool): layer precisions come from the ONNX (11.x, or STRONGLY_TYPED on 10.x).
        int8_mode (str or None): "calibrator" (implicit quantization) or "qdq" (explicit).
        calibrator (str or None): calibrator class name when int8_mode is "calibrator".
        calibration_source (str or None): "cache" or "images" for the calibrator, "qdq" for Q/DQ.
        onnx_input (str): the ONNX TensorRT parses: "source", "qdq" (the calibration output's
            Q/DQ model) or "fp16" (the source converted to FP16 first).
        device_type (str): "GPU" or "DLA" (``config.default_device_type``).
        timing_cache (bool): load and save a timing cache.
        profiling_verbosity (str or None): "DETAILED" where it exists.
        progress (str): "monitor" (TensorRT's IProgressMonitor) or "spinner".
        batch_profile (dict or None): ``{"min", "opt", "max"}`` batch sizes of the optimization
            profile of a dynamic-batch ONNX (:func:`batch_profile`); None for a static batch.
        build_call (str): always "build_serialized_network".
        parse_call (str): always "parse_from_file".
        features (dict): the :class:`TrtFeatures` the plan was derived from.
        decisions (list): one sentence per decision (shown with ``--verbose`` and in the sidecar).
        warnings (list): degraded or deprecated paths the user should know about.
    """

    trt_version: str
    generation: str
    precision: str
    device: str
    dla_core: Optional[int]
    gpu_fallback: bool
    network_flags: List[str]
    workspace_api: str
    workspace_mib: int
    builder_flags: List[str]
    strongly_typed: bool
    int8_mode: Optional[str]
    calibrator: Optional[str]
    calibration_source: Optional[str]
    onnx_input: str
    device_type: str
    timing_cache: bool
    profiling_verbosity: Optional[str]
    progress: str
    batch_profile: Optional[dict] = None
    build_call: str = "build_serialized_network"
    parse_call: str = "parse_from_file"
    features: dict = field(default_factory=dict)
    decisions: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def workspace_bytes(self):
        return int(self.workspace_mib) << 20

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


def make_plan(trt_version, precision, dla_core=None, gpu_fallback=True, workspace_mib=1024,
              int8_source=None, fast_fp16=True, timing_cache=False, features=None, batch_profile=None):
    """Decide how to build an engine with a given TensorRT.

    Args:
        trt_version (str or Version): TensorRT version of the builder.
        precision (str): "fp32", "fp16" or "int8".
        dla_core (int or None): DLA core, None for the GPU. Defaults to None.
        gpu_fallback (bool): allow GPU fallback for DLA layers. Defaults to True.
        workspace_mib (int): builder workspace in MiB. Defaults to 1024.
        int8_source (str or None): what calibration is available for INT8: "cache" (a TensorRT
            calibration cache for this version), "images" (an image folder for on-device
            calibration) or "qdq" (a Q/DQ ONNX). Defaults to None.
        fast_fp16 (bool): the device has fast FP16, so INT8 builds also allow FP16 layers.
            Defaults to True.
        timing_cache (bool): a timing cache file is used. Defaults to False.
        features (TrtFeatures or None): probed features; None takes the table for the version.
        batch_profile (dict or None): from :func:`batch_profile`; None for a static batch.

    Returns:
        BuildPlan: the plan.

    Raises:
        EdgeAlexError: a request this TensorRT cannot build (e.g. INT8 on 11.x without a Q/DQ
            ONNX, on-device calibration on 11.x, INT8 on 8.x with only a Q/DQ ONNX).
    """
    version = parse_version(trt_version)
    feats = features or features_for_version(version)
    if precision not in ("fp32", "fp16", "int8"):
        raise EdgeAlexError("--precision", f"unknown precision {precision!r}", "use fp32, fp16 or int8")
    if int8_source is not None and int8_source not in INT8_SOURCES:
        raise ValueError(f"int8_source must be one of {INT8_SOURCES}, got {int8_source!r}")
    if workspace_mib is None or int(workspace_mib) <= 0:
        raise EdgeAlexError("--workspace-mib", f"must be a positive number of MiB, got {workspace_mib!r}",
                            "pass e.g. --workspace-mib 1024")
    decisions, warnings = [], []
    on_dla = dla_core is not None
    tag = f"TensorRT {version}"

    network_flags = []
    if feats.explicit_batch_flag:
        network_flags.append("EXPLICIT_BATCH")
        decisions.append(f"{tag}: create_network with EXPLICIT_BATCH (the 8.x ONNX parser requires it)")
    else:
        decisions.append(f"{tag}: create_network without EXPLICIT_BATCH (networks are always explicit batch)")

    if feats.memory_pool_limit:
        workspace_api = "set_memory_pool_limit"
    elif feats.max_workspace_size:
        workspace_api = "max_workspace_size"
    else:
        raise EdgeAlexError(tag, "has neither set_memory_pool_limit nor max_workspace_size",
                            "this TensorRT is not supported by edgealex")
    decisions.append(f"workspace {workspace_mib} MiB via {workspace_api}")

    builder_flags = []
    strongly_typed = feats.strongly_typed_only
    int8_mode = calibrator = calibration_source = None
    onnx_input = "source"

    if precision == "fp16":
        if feats.strongly_typed_only:
            onnx_input = "fp16"
            decisions.append(f"{tag} is strongly typed only: FP16 means converting the ONNX to FP16 first")
        else:
            builder_flags.append("FP16")
            decisions.append("FP16 builder flag")
    elif precision == "int8":
        int8_mode, calibration_source = _int8_path(version, feats, on_dla, int8_source, decisions, warnings)
        if int8_mode == "calibrator":
            calibrator = CALIBRATOR_CLASS
        else:
            onnx_input = "qdq"
        if not feats.strongly_typed_only:
            builder_flags.append("INT8")
            if fast_fp16:
                # NVIDIA's samples set FP16 next to INT8: some layers are faster in FP16 than INT8.
                builder_flags.append("FP16")
                decisions.append("INT8 + FP16 builder flags (layers faster in FP16 may use it)")
            else:
                decisions.append("INT8 builder flag (no fast FP16 on this device)")
    if builder_flags and feats.precision_flags_deprecated:
        warnings.append(f"{tag} deprecates the FP16/INT8 builder flags (strong typing); they are still "
                        "used for mixed precision")

    device_type = "GPU"
    if on_dla:
        device_type = "DLA"
        decisions.append(f"default device type DLA, DLA core {dla_core}")
        if gpu_fallback:
            builder_flags.append("GPU_FALLBACK")
            decisions.append("GPU_FALLBACK: layers the DLA cannot run go to the GPU (listed in the build log)")
        else:
            decisions.append("strict DLA (no GPU_FALLBACK): any layer the DLA cannot run fails the build")
        if feats.strongly_typed_only:
            warnings.append(f"DLA on {tag} needs JetPack 7.2.2+ on AGX Orin (11.0-11.3 have no DLA: "
                            "docs.nvidia.com/deeplearning/tensorrt/11.4.1/inference-library/dla-strongly-typed-networks.html)")

    if batch_profile is not None:
        if on_dla:
            raise EdgeAlexError("--dla-core", "DLA does not support dynamic shapes (the ONNX has a dynamic batch)",
                                "export the model with a static batch (edgealex export --batch N, without "
                                "--dynamic-batch) for a DLA build")
        decisions.append("optimization profile: batch min {min} / opt {opt} / max {max}".format(**batch_profile))

    if timing_cache and not feats.timing_cache:
        raise EdgeAlexError("--timing-cache", f"{tag} has no timing cache API", "leave out --timing-cache")
    if timing_cache:
        decisions.append("timing cache loaded before and saved after the build")

    return BuildPlan(
        trt_version=str(version), generation=generation(version), precision=precision,
        device=f"dla{dla_core}" if on_dla else "gpu", dla_core=dla_core, gpu_fallback=bool(gpu_fallback and on_dla),
        network_flags=network_flags, workspace_api=workspace_api, workspace_mib=int(workspace_mib),
        builder_flags=builder_flags, strongly_typed=strongly_typed, int8_mode=int8_mode, calibrator=calibrator,
        calibration_source=calibration_source, onnx_input=onnx_input, device_type=device_type,
        timing_cache=bool(timing_cache), profiling_verbosity="DETAILED" if feats.profiling_verbosity else None,
        progress="monitor" if feats.progress_monitor else "spinner", batch_profile=batch_profile,
        features=feats.to_dict(),
        decisions=decisions, warnings=warnings,
    )


DEFAULT_MAX_BATCH = 8  # the README's `bench --batch 1,2,4,8` sweep fits the default profile
# Largest element count of one tensor: TensorRT 8.x extents are int32 (nvinfer1::Dims32) and tensors
# of 2^31 or more elements were unsupported before 10.0 (NVIDIA/TensorRT issue #3815); the input of
# a profile's max batch must fit it (2^31 - 1 float32 values are 8 GiB, past every Jetson's memory).
MAX_TENSOR_ELEMENTS = 2 ** 31 - 1


def batch_profile(input_shape, max_batch=None, opt_batch=None):
    """The batch sizes of the optimization profile for an ONNX input (pure; no TensorRT needed).

    A dynamic batch axis gets ``min 1 / opt / max``: ``max_batch`` defaults to
    :data:`DEFAULT_MAX_BATCH`, ``opt_batch`` (the size TensorRT tunes its kernels for) to
    ``max_batch``. A static batch has no profile: ``max_batch``/``opt_batch`` must then equal it.

    Args:
        input_shape (list): the ONNX input shape, None (or a name) for a dynamic axis.
        max_batch (int or None): largest batch the engine will take (``--max-batch``).
        opt_batch (int or None): batch the build optimizes for (``--opt-batch``).

    Returns:
        dict or None: ``{"min": 1, "opt": o, "max": m}``, or None for a static batch.

    Raises:
        EdgeAlexError: a batch below 1, opt above max, a batch whose input passes MAX_TENSOR_ELEMENTS,
            a dynamic non-batch axis, or --max-batch /
            --opt-batch on a static-batch ONNX that does not match it.
    """
    for option, value in (("--max-batch", max_batch), ("--opt-batch", opt_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EdgeAlexError(option, f"must be a whole number >= 1, got {value!r}", f"e.g. {option} 8")
    dims = list(input_shape or [])
    dynamic = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
    if [i for i in dynamic if i != 0]:
        raise EdgeAlexError("model input", f"shape {dims} has dynamic non-batch dimensions",
                            "export the model with a fixed input size (edgealex export --input-size N)")
    if 0 not in dynamic:
        static = dims[0] if dims else 1
        for option, value in (("--max-batch", max_batch), ("--opt-batch", opt_batch)):
            if value is not None and value != static:
                raise EdgeAlexError(option, f"{value} but the ONNX has a static batch of {static}",
                                    "export it with `edgealex export --dynamic-batch` to build a batch range")
        return None
    for option, value in (("--max-batch", max_batch), ("--opt-batch", opt_batch)):
        if value is not None:
            check_batch_fits(option, value, dims[1:])
    most = max_batch if max_batch is not None else max(DEFAULT_MAX_BATCH, opt_batch or 1)
    opt = opt_batch if opt_batch is not None else most
    if opt > most:
        raise EdgeAlexError("--opt-batch", f"{opt} is above --max-batch {most}", f"pass --opt-batch <= {most}")
    return {"min": 1, "opt": int(opt), "max": int(most)}


def check_batch_fits(option, batch, image_dims):
    """Refuse a batch whose input tensor would pass :data:`MAX_TENSOR_ELEMENTS`.

    Args:
        option (str): the option named in the error, e.g. "--max-batch".
        batch (int): the batch size.
        image_dims (list of int): the input's dimensions after the batch axis, e.g. [3, 224, 224].

    Raises:
        EdgeAlexError: ``batch`` x the image's element count passes 2^31 - 1.
    """
    per_image = 1
    for d in image_dims:
        per_image *= int(d)
    largest = max(1, MAX_TENSOR_ELEMENTS // max(per_image, 1))
    if batch > largest:
        shape = "x".join(str(d) for d in image_dims)
        raise EdgeAlexError(option, f"{batch} images of {shape} are more than the {MAX_TENSOR_ELEMENTS} elements "
                            f"a TensorRT tensor may hold (the largest batch of a {shape} input is {largest})",
                            f"pass {option} {min(largest, DEFAULT_MAX_BATCH)} (or up to {largest})")


def profile_shapes(profile, input_shape):
    """``(min, opt, max)`` full input shapes of a batch profile (batch axis replaced)."""
    rest = [int(d) for d in list(input_shape)[1:]]
    return tuple([int(profile[key])] + rest for key in ("min", "opt", "max"))


def int8_source_preference(trt_version, dla=False, features=None):
    """The calibration artifacts an INT8 build can use, best first.

    Args:
        trt_version (str or Version): TensorRT version of the builder.
        dla (bool): the build targets a DLA core. Defaults to False.
        features (TrtFeatures or None): probed features; None takes the table for the version.

    Returns:
        tuple: a subset of ("cache", "images", "qdq") in order of preference: 11.x takes only the
        Q/DQ ONNX; DLA and 8.x take the calibrator (cache, then on-device images); 10.x GPU prefers
        the Q/DQ ONNX and falls back to the (deprecated) calibrator.
    """
    version = parse_version(trt_version)
    feats = features or features_for_version(version)
    if not feats.int8_calibrator:
        return ("qdq",)
    if dla or version.major < 10:
        return ("cache", "images")
    return ("qdq", "cache", "images")


def _int8_path(version, feats, on_dla, source, decisions, warnings):
    """(int8_mode, calibration_source) for an INT8 build, or a user error."""
    tag = f"TensorRT {version}"
    calib_hint = ("run `edgealex calibrate` for this model and pass its output folder with --calib "
                  "(it holds the Q/DQ ONNX and the calibration caches)")
    if source is None:
        raise EdgeAlexError("--calib", "INT8 needs calibration data (without it TensorRT would use placeholder "
                            "ranges and the accuracy is meaningless)", calib_hint)
    if not feats.int8_calibrator:
        # 11.x: implicit quantization is removed; explicit Q/DQ is the only INT8.
        if source != "qdq":
            raise EdgeAlexError("--calib", f"{tag} has no calibrator (implicit INT8 was removed in 11.0), "
                                f"so a {'calibration cache' if source == 'cache' else 'image folder'} cannot be used",
                                calib_hint)
        decisions.append(f"{tag}: INT8 from the Q/DQ ONNX (explicit quantization, strongly typed)")
        if on_dla:
            warnings.append("Q/DQ INT8 on DLA is unverified on this TensorRT (TensorRT 8.x does not support explicit "
                            "quantization on DLA and NVIDIA's docs name no first version that does); check the DLA "
                            "layer list")
        return "qdq", "qdq"
    if on_dla:
        # 8.x DLA has no explicit quantization; on 10.x Q/DQ-on-DLA support is unverified (facts §3.5),
        # so DLA INT8 always takes the calibrator (per-tensor scales, EntropyCalibrator2).
        if source == "qdq":
            raise EdgeAlexError("--calib", f"INT8 on DLA with {tag} needs a calibration cache or an image folder "
                                "(DLA takes implicit quantization, not a Q/DQ ONNX)",
                                "pass the calibration folder that has a cache for this TensorRT version, "
                                "a cache file, or an image folder to calibrate on the device")
        decisions.append(f"{tag}: DLA INT8 by implicit quantization with {CALIBRATOR_CLASS} ({source})")
    elif version.major < 10:
        if source == "qdq":
            raise EdgeAlexError("--calib", f"INT8 with {tag} is built from a calibration cache for this version "
                                "or an image folder (implicit quantization), and the calibration output has "
                                "no cache for it",
                                "re-run `edgealex calibrate` for this TensorRT version, pass a cache file, or "
                                "pass an image folder to calibrate on the device")
        decisions.append(f"{tag}: INT8 by implicit quantization with {CALIBRATOR_CLASS} ({source})")
    else:
        if source == "qdq":
            decisions.append(f"{tag}: GPU INT8 from the Q/DQ ONNX (explicit quantization)")
            return "qdq", "qdq"
        decisions.append(f"{tag}: GPU INT8 with {CALIBRATOR_CLASS} ({source}) because no Q/DQ ONNX was given")
    if feats.implicit_int8_deprecated:
        warnings.append("implicit INT8 (calibrators) is deprecated since TensorRT 10.1 and removed in 11.0; "
                        "prefer the Q/DQ ONNX from `edgealex calibrate` where the device allows it")
    return "calibrator", source
