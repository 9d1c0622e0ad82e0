"""``build_engine``: ONNX -> engine for a target, with the builder this machine has, and provenance.

Builders (``builder="auto"`` picks and says why):

* ``python`` - the TensorRT Python API (:mod:`edgealex.build.trt`), when ``tensorrt`` imports;
* ``trtexec`` - TensorRT's command-line builder (:mod:`edgealex.build.trtexec`), for an interpreter
  without TensorRT bindings (Jetson Nano: bindings for Python 3.6 only);
* ``ort`` - the ONNX Runtime CPU engine (:mod:`edgealex.build.ort`) for targets whose backend is
  ONNX Runtime (``cpu``; what CI, the demo and this project's tests run).

The output name encodes model, precision, device (gpu/dla0/dla1/cpu), backend + version and target
(:func:`edgealex.engine.engine_name`), so configurations never overwrite each other. The engine
appears only complete, with its sidecar (:class:`edgealex.engine.EngineRecord`): the engine is
written to a temporary file, hashed, the sidecar written, and then the engine renamed into place;
an interrupted or failed build leaves no engine file.
"""

import os
import time
from dataclasses import dataclass, field
from typing import List, Optional

from packaging.version import Version

from edgealex._optional import available, require
from edgealex.artifacts import (atomic_path, ensure_dir, environment_summary, read_sidecar, sha256_file, sidecar_path,
                                write_json_atomic)
from edgealex.build.buildlog import read_layer_placement
from edgealex.build.calibinput import check_cache_coverage, choose_for_ort, choose_for_tensorrt, read_calib_arg
from edgealex.build.ort import DEFAULT_ORT_INT8, build_ort_engine, cpu_facts
from edgealex.build.plan import (batch_profile, features_for_version, int8_source_preference, make_plan,
                                 parse_version, probe_features)
from edgealex.build.trtexec import (JETPACK_TRTEXEC, find_trtexec, format_command, run_trtexec, selected_device,
                                    trtexec_command, trtexec_version)
from edgealex.engine import EngineRecord, engine_name
from edgealex.errors import EdgeAlexError
from edgealex.log import logger

BUILDERS = ("auto", "python", "trtexec", "ort")
DEFAULT_OUT_DIR = "engines"
DEFAULT_BUILDER = "auto"


@dataclass
class BuildResult:
    """What :func:`build_engine` did.

    Args:
        builder (str): "python", "trtexec" or "ort".
        builder_reason (str): why that builder was used.
        target (str): target profile name.
        precision (str): engine precision.
        device (str): "cpu", "gpu", "dla0" or "dla1".
        backend (str): "ort" or "tensorrt".
        backend_version (str): TensorRT or ONNX Runtime version.
        engine_path (str or None): the engine (None when only the trtexec command was printed).
        sidecar_path (str or None): its provenance sidecar.
        record (EngineRecord or None): the sidecar content.
        plan (dict or None): the TensorRT build plan.
        trtexec_command (list or None): trtexec argv (trtexec builds and ``print_trtexec``).
        log_path (str or None): verbose build log (TensorRT builds).
        layers (dict): layers on DLA / GPU from the build log.
        prepared (list): files prepared for the build (e.g. the FP16 ONNX for TensorRT 11).
        warnings (list): what the user should know.
        seconds (float): wall time.
        printed_only (bool): ``print_trtexec``: nothing was built.
    """

    builder: str
    builder_reason: str
    target: str
    precision: str
    device: str
    backend: str
    backend_version: str
    engine_path: Optional[str] = None
    sidecar_path: Optional[str] = None
    record: Optional[EngineRecord] = None
    plan: Optional[dict] = None
    trtexec_command: Optional[List[str]] = None
    log_path: Optional[str] = None
    layers: dict = field(default_factory=dict)
    prepared: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    seconds: float = 0.0
    printed_only: bool = False

    @property
    def command_line(self):
        """The trtexec command as one shell-quoted line (None when there is none)."""
        return format_command(self.trtexec_command) if self.trtexec_command else None

    def to_dict(self):
        return {
            "builder": self.builder, "builder_reason": self.builder_reason, "target": self.target,
            "precision": self.precision, "device": self.device, "backend": self.backend,
            "backend_version": self.backend_version, "engine": self.engine_path, "sidecar": self.sidecar_path,
            "plan": self.plan, "trtexec_command": self.command_line, "log": self.log_path, "layers": self.layers,
            "prepared": self.prepared, "warnings": self.warnings, "seconds": round(self.seconds, 3),
            "printed_only": self.printed_only,
        }


def choose_builder(builder, target, print_trtexec=False):
    """The builder to use, and why.

    Args:
        builder (str): "auto", "python", "trtexec" or "ort".
        target (Target): the target profile.
        print_trtexec (bool): only print the trtexec command. Defaults to False.

    Returns:
        tuple: ``(name, reason)``.

    Raises:
        EdgeAlexError: unknown builder, a builder that does not fit the target, or no TensorRT here.
    """
    if builder not in BUILDERS:
        raise EdgeAlexError("--builder", f"unknown builder {builder!r}", "use one of: " + ", ".join(BUILDERS))
    is_trt = target.backend == "tensorrt"
    if print_trtexec:
        if not is_trt:
            raise EdgeAlexError("--print-trtexec", f"target {target.name} builds ONNX Runtime engines, not TensorRT",
                                "pass a TensorRT target, e.g. --target agx-xavier or --target nano")
        return "trtexec", f"--print-trtexec: the trtexec command for {target.name} (TensorRT {target.tensorrt}), not run"
    if builder == "ort":
        if is_trt:
            raise EdgeAlexError("--builder ort", f"target {target.name} is a TensorRT target",
                                "use --target cpu for an ONNX Runtime engine, or another --builder")
        return "ort", "requested with --builder ort"
    if not is_trt:
        if builder in ("python", "trtexec"):
            raise EdgeAlexError(f"--builder {builder}", f"target {target.name} runs ONNX Runtime, not TensorRT",
                                "leave out --builder, or pass a TensorRT --target")
        return "ort", f"target {target.name} runs ONNX Runtime (no TensorRT)"
    if builder == "python":
        trt = require("tensorrt", "--builder python")
        return "python", f"requested with --builder python (tensorrt {trt.__version__})"
    if builder == "trtexec":
        path = find_trtexec()
        if path is None:
            raise EdgeAlexError("--builder trtexec", f"trtexec is neither on PATH nor at {JETPACK_TRTEXEC}",
                                "install TensorRT's samples (on JetPack: sudo apt install tensorrt), or use "
                                "--print-trtexec to get the command")
        return "trtexec", f"requested with --builder trtexec ({path})"
    if available("tensorrt"):
        import tensorrt

        return "python", f"the tensorrt module ({tensorrt.__version__}) imports in this Python"
    path = find_trtexec()
    if path is not None:
        return "trtexec", f"tensorrt does not import in this Python, but trtexec is at {path}"
    raise EdgeAlexError(f"target {target.name}", "no TensorRT on this machine: `tensorrt` does not import and "
                        f"trtexec is neither on PATH nor at {JETPACK_TRTEXEC}",
                        "build on the device itself, add --print-trtexec to get the trtexec command, or build an "
                        "ONNX Runtime engine with --target cpu")


def build_engine(onnx_path, target=None, precision=None, dla_core=None, gpu_fallback=True, calib=None,
                 workspace_mib=None, timing_cache=None, builder=DEFAULT_BUILDER, out_dir=DEFAULT_OUT_DIR,
                 force_int8=False, print_trtexec=False, ort_int8=DEFAULT_ORT_INT8, max_batch=None, opt_batch=None):
    """Build an engine from an ONNX model for a target.

    Args:
        onnx_path (str): the ONNX from ``edgealex export``.
        target (str or Target or None): target profile name or file; None detects this machine.
        precision (str or None): "fp32", "fp16" or "int8"; None takes the target's default.
        dla_core (int or None): DLA core for a DLA engine; None builds for the GPU (or CPU).
        gpu_fallback (bool): DLA layers may fall back to the GPU; False is strict DLA. Defaults to True.
        calib (str or None): calibration output folder (or its calibration.json), a TensorRT
            calibration cache, or an image folder for on-device calibration (INT8 only).
        workspace_mib (int or None): TensorRT workspace; None takes the target's.
        timing_cache (str or None): TensorRT timing cache file, read and updated.
        builder (str): "auto", "python", "trtexec" or "ort". Defaults to "auto".
        out_dir (str): output folder. Defaults to "engines".
        force_int8 (bool): build INT8 on a board without fast INT8 (Nano), with a warning.
            Defaults to False.
        print_trtexec (bool): only work out and return the trtexec command (any machine).
            Defaults to False.
        ort_int8 (str): ONNX Runtime INT8 model: "auto" (ORT's own INT8 model when the calibration
            has one, about 20% faster on CPU, else the Q/DQ model), "native" or "qdq". Defaults to "auto".
        max_batch (int or None): largest batch of a dynamic-batch ONNX (the optimization profile's
            max; ONNX Runtime engines refuse larger batches too). Defaults to 8
            (:data:`edgealex.build.plan.DEFAULT_MAX_BATCH`).
        opt_batch (int or None): batch TensorRT optimizes for. Defaults to ``max_batch``.

    Returns:
        BuildResult: paths, record, plan, command, warnings.

    Raises:
        EdgeAlexError: anything the user can fix (missing file, a precision/DLA request the target
            refuses, calibration that does not fit, parser/build failures) - with the reason and fix.
    """
    started = time.time()
    from edgealex.modelinfo import check_onnx_path

    onnx_path = check_onnx_path(onnx_path)
    from edgealex.target import resolve_target

    tgt = resolve_target(target)
    precision = precision or tgt.default_precision
    warnings = list(tgt.check_precision(precision, force=force_int8))
    info = _model_info(onnx_path)
    tgt.check_opset(info.opset, onnx_path)
    input_shape = [d if isinstance(d, int) and d > 0 else None for d in info.input_shape]
    static = all(d is not None for d in input_shape)
    tgt.check_dla(dla_core, precision, static_shapes=static)
    profile = batch_profile(input_shape, max_batch, opt_batch)
    if profile is not None:
        logger.info("dynamic batch: optimization profile min %d / opt %d / max %d", profile["min"], profile["opt"],
                    profile["max"])
    if dla_core is None and not gpu_fallback:
        warnings.append("--no-gpu-fallback only applies to DLA builds (--dla N); ignored")
    if workspace_mib is not None and int(workspace_mib) <= 0:
        raise EdgeAlexError("--workspace-mib", f"must be a positive number of MiB, got {workspace_mib}",
                            "pass e.g. --workspace-mib 1024")
    chosen, reason = choose_builder(builder, tgt, print_trtexec)
    if target is None:
        reason += f"; target {tgt.name} was detected on this machine"
    logger.info("target %s, %s, builder %s: %s", tgt.name, precision, chosen, reason)

    onnx_sha256 = sha256_file(onnx_path)
    offer = None
    if calib is not None:
        if precision == "int8":
            offer = read_calib_arg(calib, onnx_sha256)
        else:
            warnings.append(f"--calib is only used by INT8 builds; ignored for {precision}")
    context = _Context(onnx_path=onnx_path, onnx_sha256=onnx_sha256, target=tgt, precision=precision, info=info,
                       input_shape=input_shape, static=static, dla_core=dla_core, gpu_fallback=gpu_fallback,
                       offer=offer, workspace_mib=workspace_mib, timing_cache=timing_cache, out_dir=str(out_dir),
                       builder=chosen, reason=reason, warnings=warnings, started=started,
                       explicit_target=target is not None, batch_profile=profile)
    if chosen == "ort":
        result = _build_ort(context, ort_int8)
    else:
        result = _build_tensorrt(context, print_only=print_trtexec)
    for text in result.warnings:
        logger.warning("%s", text)
    return result


@dataclass
class _Context:
    onnx_path: str
    onnx_sha256: str
    target: object
    precision: str
    info: object
    input_shape: list
    static: bool
    dla_core: Optional[int]
    gpu_fallback: bool
    offer: object
    workspace_mib: Optional[int]
    timing_cache: Optional[str]
    out_dir: str
    builder: str
    reason: str
    warnings: list
    started: float
    explicit_target: bool
    batch_profile: Optional[dict] = None

    @property
    def stem(self):
        return os.path.splitext(os.path.basename(self.onnx_path))[0]


def _left_out(cache_path):
    """Tensor names the calibration recorded as left out of a cache (its sidecar), else ()."""
    side = sidecar_path(cache_path)
    if not os.path.isfile(side):
        return ()
    data = read_sidecar(side, "calibration cache sidecar", artifact="trt-calibration-cache",
                        optional_fields={"left_out": list}, fix="re-run `edgealex calibrate`")
    return tuple(str(name) for name in data.get("left_out", []))


def _model_info(onnx_path):
    """ModelInfo from the ONNX metadata, or from the export sidecar when ``onnx`` is not installed."""
    from edgealex.modelinfo import ModelInfo, read_model_info

    if available("onnx"):
        return read_model_info(onnx_path, allow_default=True)
    side = sidecar_path(onnx_path)
    if os.path.isfile(side):
        data = read_sidecar(side, "ONNX sidecar", artifact="onnx", fields={"model": dict},
                            fix="re-export the model with `edgealex export`")
        if data["sha256"] != sha256_file(onnx_path):
            raise EdgeAlexError(side, "belongs to another version of the ONNX (sha256 differs)",
                                "re-export, or install onnx (pip install onnx) to read the model's own metadata")
        return ModelInfo.from_dict(data["model"])
    raise EdgeAlexError(onnx_path, "cannot read the model's labels and preprocessing: the onnx package is not "
                        "installed and there is no export sidecar next to it",
                        "pip install onnx, or keep the .onnx.json written by `edgealex export` next to the model")


def _commit(engine_path, record, produce):
    """Run ``produce(tmp_path)``, then write the sidecar and rename the engine into place.

    Order: engine to a temporary file -> sha256 -> sidecar (atomic) -> engine renamed. A failure
    before the rename leaves no new engine; a crash between sidecar and rename leaves a sidecar
    whose sha256 no engine matches, which loading refuses.
    """
    with atomic_path(engine_path, "engine") as tmp:
        produce(tmp)
        if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise EdgeAlexError(engine_path, "the builder produced an empty engine file", "see the build log")
        if not record.sha256:
            record.sha256 = sha256_file(tmp)
        side = write_json_atomic(sidecar_path(engine_path), record.to_dict())
    return side


def _build_ort(ctx, ort_int8):
    ort = require("onnxruntime", "edgealex build (ONNX Runtime engine)")
    tgt = ctx.target
    if ctx.precision == "fp16":
        raise EdgeAlexError("--precision fp16", "ONNX Runtime's CPU provider has no fast FP16",
                            "use --precision fp32 or int8 for a CPU engine")
    model_src, model_sha256, choice = ctx.onnx_path, ctx.onnx_sha256, None
    if ctx.precision == "int8":
        if ctx.offer is None:
            raise EdgeAlexError("--calib", "an INT8 ONNX Runtime engine needs the output of `edgealex calibrate`",
                                "run `edgealex calibrate <model.onnx> --images <folder>` and pass its output "
                                "folder with --calib")
        choice = choose_for_ort(ctx.offer, ort_int8)
        model_src, model_sha256 = choice.path, choice.sha256
        logger.info("INT8 model: %s (%s)", model_src, choice.kind)
    version = ort.__version__
    # The two INT8 flavours are different engines: the Q/DQ one is named "<model>.qdq-int8-...".
    stem = ctx.stem + ".qdq" if choice is not None and choice.kind == "qdq" else ctx.stem
    engine_path = os.path.join(ensure_dir(ctx.out_dir),
                               engine_name(stem, ctx.precision, "cpu", "ort", version, tgt.name))
    environment = environment_summary()
    environment.update(cpu_facts(ort))
    record = EngineRecord(
        backend="ort", precision=ctx.precision, device="cpu", target=tgt.name, model=ctx.info.to_dict(),
        onnx_sha256=ctx.onnx_sha256, input_shape=ctx.input_shape, builder="ort", backend_version=version,
        device_name="cpu", soc=tgt.soc, calibration=choice.to_record() if choice else None,
        flags=[], environment=environment, batch_profile=ctx.batch_profile,
    )
    # The engine IS the model file (hard link or copy), so its hash is already known.
    record.sha256 = model_sha256
    built = {}

    def produce(tmp):
        built.update(build_ort_engine(model_src, tmp, ctx.info, ctx.input_shape))
        record.runtime_options = built["runtime_options"]
        record.build_seconds = round(time.time() - ctx.started, 3)
        record.build = {"builder_reason": ctx.reason, "placed_by": built["placed_by"],
                        "output_shape": built["output_shape"], "source_model": os.path.abspath(model_src)}

    side = _commit(engine_path, record, produce)
    logger.info("wrote %s (%s of %s) and %s", engine_path, built["placed_by"], model_src, side)
    return BuildResult(builder="ort", builder_reason=ctx.reason, target=tgt.name, precision=ctx.precision,
                       device="cpu", backend="ort", backend_version=version, engine_path=engine_path,
                       sidecar_path=side, record=record, warnings=ctx.warnings,
                       seconds=time.time() - ctx.started)


def _check_min_tensorrt(onnx_path, info, version):
    """Refuse an INT8 ONNX from `edgealex calibrate` that this TensorRT cannot take (the Q/DQ ONNX
    with INT8 weight initializers needs TensorRT >= 10; see edgealex.calib.ort.QDQ_MIN_TENSORRT)."""
    calibration = (info.provenance or {}).get("calibration")
    needed = calibration.get("min_tensorrt") if isinstance(calibration, dict) else None
    if needed and parse_version(version) < parse_version(needed):
        raise EdgeAlexError(onnx_path, f"this {calibration.get('kind', 'INT8')} ONNX stores its weights as INT8 "
                            f"initializers, which TensorRT {version} does not take (TensorRT >= {needed}: before "
                            "10.x a constant is not typed INT8, NvInfer.h IConstantLayer)",
                            "build the FP32 ONNX with --precision int8 --calib <the calibration folder>: TensorRT "
                            f"{version} takes the calibration cache written next to this file")


def _build_tensorrt(ctx, print_only=False):
    tgt = ctx.target
    exe = None
    if ctx.builder == "python":
        trt = require("tensorrt", "edgealex build --builder python")
        version = str(trt.__version__)
        features = probe_features(trt)
    elif print_only:
        version = tgt.tensorrt
        features = features_for_version(version)
        exe = JETPACK_TRTEXEC if tgt.kind == "jetson" else "trtexec"
    else:
        exe = find_trtexec()
        version = trtexec_version(exe)
        if version is None:
            version = tgt.tensorrt
            ctx.warnings.append(f"could not read the TensorRT version from {exe}; assuming the target's {version}")
        features = features_for_version(version)
    if not print_only:
        _check_local_version(version, tgt, ctx.explicit_target, ctx.warnings)
    from edgealex.target import trt_version_number

    version_number = trt_version_number(version)
    _check_min_tensorrt(ctx.onnx_path, ctx.info, version)
    dla = ctx.dla_core is not None
    choice = None
    if ctx.precision == "int8" and ctx.offer is not None:
        preference = int8_source_preference(version, dla=dla, features=features)
        choice = choose_for_tensorrt(ctx.offer, preference, version_number, version, target_name=tgt.name)
        if choice.kind == "cache" and available("onnx"):
            check_cache_coverage(choice.path, ctx.onnx_path, _left_out(choice.path))
        elif choice.kind == "cache":
            ctx.warnings.append("the onnx package is not installed: the calibration cache's tensor names were not "
                                "checked against the model")
    plan = make_plan(version, ctx.precision, dla_core=ctx.dla_core, gpu_fallback=ctx.gpu_fallback,
                     workspace_mib=ctx.workspace_mib or tgt.workspace_mib,
                     int8_source=choice.kind if choice else None, fast_fp16=tgt.fast_fp16,
                     timing_cache=ctx.timing_cache is not None, features=features, batch_profile=ctx.batch_profile)
    for text in plan.decisions:
        logger.debug("plan: %s", text)
    warnings = ctx.warnings + plan.warnings
    out_dir = ensure_dir(ctx.out_dir)
    engine_path = os.path.join(out_dir, engine_name(ctx.stem, ctx.precision, plan.device, "tensorrt", version, tgt.name))
    log_path = engine_path + ".log"
    prepared = []
    parse_onnx = ctx.onnx_path
    if plan.onnx_input == "qdq":
        parse_onnx = choice.path
    elif plan.onnx_input == "fp16":
        parse_onnx = _prepare_fp16(ctx.onnx_path, os.path.join(out_dir, ctx.stem + "-fp16.onnx"))
        prepared.append(parse_onnx)
    shape = [d if d is not None else 1 for d in ctx.input_shape]
    calib_cache = choice.path if choice is not None and choice.kind == "cache" else None
    result = BuildResult(builder=ctx.builder, builder_reason=ctx.reason, target=tgt.name, precision=ctx.precision,
                         device=plan.device, backend="tensorrt", backend_version=version, plan=plan.to_dict(),
                         prepared=prepared, warnings=warnings)

    if ctx.builder == "trtexec":
        argv = trtexec_command(plan, parse_onnx, engine_path, calib_cache=calib_cache, timing_cache=ctx.timing_cache,
                               input_name=ctx.info.input_name, input_shape=shape, dynamic=not ctx.static, trtexec=exe)
        result.trtexec_command = argv
        if print_only:
            result.printed_only = True
            result.seconds = time.time() - ctx.started
            return result

    record = EngineRecord(
        backend="tensorrt", precision=ctx.precision, device=plan.device, target=tgt.name, model=ctx.info.to_dict(),
        onnx_sha256=ctx.onnx_sha256, input_shape=list(ctx.input_shape), builder=ctx.builder, backend_version=version,
        dla_core=ctx.dla_core, gpu_fallback=plan.gpu_fallback, cuda_version=tgt.cuda, device_name=tgt.soc or "",
        soc=tgt.soc, calibration=choice.to_record() if choice else None,
        flags=list(plan.network_flags) + list(plan.builder_flags), batch_profile=ctx.batch_profile,
    )
    calib_cache_out = None
    if choice is not None and choice.kind == "images":
        calib_cache_out = os.path.join(out_dir, f"{ctx.stem}-trt{version}-{tgt.name}.calib.cache")

    def produce(tmp):
        if ctx.builder == "trtexec":
            argv = list(result.trtexec_command)
            argv = [f"--saveEngine={tmp}" if a.startswith("--saveEngine=") else a for a in argv]
            text = run_trtexec(argv, log_path)
            record.device_name = selected_device(text) or record.device_name
            record.flags = list(result.trtexec_command[1:])
        else:
            from edgealex.build.trt import build_with_python_api

            built = build_with_python_api(plan, parse_onnx, tmp, log_path, ctx.info.input_name, ctx.input_shape,
                                          calibration=choice, timing_cache_path=ctx.timing_cache,
                                          calib_cache_out=calib_cache_out, preprocess_spec=ctx.info.preprocess)
            record.device_name = built["device_name"] or record.device_name
            if built.get("calib_cache_written"):
                record.calibration = dict(record.calibration or {}, cache_written=built["calib_cache_written"],
                                          cache_sha256=sha256_file(built["calib_cache_written"]),
                                          calibration_batches=built["calibration_batches"])
        placement = read_layer_placement(log_path)
        result.layers = {k: placement[k] for k in ("dla", "gpu", "fallback")}
        if dla and placement["fallback"]:
            warnings.append("{} layer(s) could not run on the DLA and fell back to the GPU: {}".format(
                len(placement["fallback"]), ", ".join(placement["fallback"][:8])))
        record.layers = result.layers
        record.build_seconds = round(time.time() - ctx.started, 3)
        record.build = {"builder_reason": ctx.reason, "plan": plan.to_dict(), "log": os.path.abspath(log_path),
                        "parsed_onnx": os.path.abspath(parse_onnx),
                        "trtexec_command": format_command(result.trtexec_command) if result.trtexec_command else None}

    result.sidecar_path = _commit(engine_path, record, produce)
    result.engine_path, result.record, result.log_path = engine_path, record, log_path
    result.seconds = time.time() - ctx.started
    logger.info("wrote %s (%d DLA / %d GPU layer groups) and %s", engine_path, len(result.layers.get("dla", [])),
                len(result.layers.get("gpu", [])), result.sidecar_path)
    return result


def _check_local_version(version, tgt, explicit, warnings):
    """Refuse building for a target whose TensorRT differs from this machine's (engines are not portable)."""
    want, have = tgt.trt_version(), Version(str(version))
    if want is None or have.release[:2] == want.release[:2]:
        if want is not None and have.release[:3] != want.release[:3]:
            warnings.append(f"this machine has TensorRT {have}, the {tgt.name} profile says {want}")
        return
    if explicit:
        raise EdgeAlexError(f"target {tgt.name}", f"runs TensorRT {tgt.tensorrt} but this machine builds with "
                            f"TensorRT {have}; an engine only loads on the TensorRT version that built it",
                            f"build on the {tgt.title} itself, leave out --target to build for this machine, or add "
                            "--print-trtexec to get the command")
    warnings.append(f"the detected target {tgt.name} lists TensorRT {want} but this machine has {have}; "
                    "building with the installed one")


def _prepare_fp16(onnx_path, fp16_path):
    """Write the FP16 version of the ONNX (for strongly typed TensorRT) atomically; returns its path."""
    onnx = require("onnx", "FP16 ONNX for strongly typed TensorRT")
    from edgealex.build.fp16 import convert_to_fp16
    from edgealex.modelinfo import load_onnx

    converted, stats = convert_to_fp16(load_onnx(onnx_path), source=onnx_path)
    with atomic_path(fp16_path, "FP16 ONNX") as tmp:
        onnx.save(converted, tmp)
    logger.info("converted %s to FP16 for strongly typed TensorRT: %s (%d weights, %d clipped values)",
                onnx_path, fp16_path, stats["initializers"], stats["clipped_values"])
    if stats["clipped_values"]:
        logger.warning("%d weight values exceed the FP16 range and were clipped to +-65504", stats["clipped_values"])
    return fp16_path
