"""``edgealex calibrate``: an FP32 ONNX + an image folder -> every INT8 artifact, from ONE pass.

Steps (each artifact records the model sha256, the image-manifest hash, the method and the count):

1. List the images (folder or manifest), split off held-out images (or take ``--holdout``), sample
   ``count`` evenly over the classes.
2. Read and preprocess each calibration image once, with the preprocessing stored in the model,
   and feed it to ONNX Runtime's calibrator (entropy, min-max or percentile) over every float
   tensor. Ranges are computed once.
3. From those ranges: the TensorRT-compatible Q/DQ ONNX (checked: every zero-point 0), the
   ORT-native INT8 ONNX, and one TensorRT calibration cache per TensorRT version (the scale of a
   tensor is the Q/DQ model's scale where it has one, else amax/127 of its range).
4. The accuracy gate on held-out images; reports (JSON + Markdown); ``calibration.json`` last.
   A failed gate still writes everything (``gate.passed: false``) and raises ``GateFailed``.
"""

import contextlib
import io
import math
import os
import shutil
import time
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional

from edgealex._optional import require
from edgealex.artifacts import (
    environment_summary, ensure_dir, now_iso, read_json, read_sidecar, sha256_file, sidecar_path, staging_dir,
    write_json_atomic,
)
from edgealex.calib import ort as calib_ort
from edgealex.calib.cache import DEFAULT_ALGORITHM, INT8_MAX, resolve_cache_versions, write_cache
from edgealex.calib.gate import GateResult, evaluate, stack_batch
from edgealex.calib.images import ReadStats, iter_preprocessed, quiet_opencv
from edgealex.progress import ProgressBar
from edgealex.validate import check_float
from edgealex.errors import EdgeAlexError, GateFailed
from edgealex.imagefolder import load_image_set, manifest, sample_evenly, write_manifest
from edgealex.log import logger
from edgealex.modelinfo import ModelInfo, attach, from_model_proto, load_onnx

MIN_CALIBRATION_IMAGES = 8     # below this a range is a guess, not a calibration
HOLDOUT_FRACTION = 0.2         # share of the folder held out when no --holdout is given...
HOLDOUT_SPLIT_MAX = 200        # ...capped, so a large folder keeps its images for calibration
CHUNK_IMAGES = 16              # images per ORT collect_data call (bounds the memory of activations)
SCHEMA_VERSION = 1

MANIFEST_NAME = "calibration.json"
QDQ_SUFFIX = ".int8-qdq-trt.onnx"     # TensorRT explicit quantization (and ORT CPU)
ORT_SUFFIX = ".int8-ort-cpu.onnx"     # ORT only: non-zero zero-points, INT8 weights
RANGES_NAME = "ort-ranges.json"
IMAGES_MANIFEST = "images.manifest.json"
HOLDOUT_MANIFEST = "holdout.manifest.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def cache_name(version_number):
    return f"calib.trt{int(version_number)}.cache"


@dataclass
class CalibrationResult:
    """Everything ``calibrate`` wrote and measured (paths are absolute).

    Args:
        out_dir (str): the output folder.
        manifest_path (str): ``calibration.json``.
        qdq_onnx (str): the TensorRT-compatible Q/DQ ONNX.
        ort_int8_onnx (str or None): the ORT-native INT8 ONNX.
        caches (dict): TensorRT version number -> calibration cache path.
        ranges_json (str): ORT's ranges (reusable with ``quantize_static(calibration_cache_path=)``).
        report_json (str): the calibration report.
        report_md (str): its Markdown summary.
        method (str): calibration method.
        count (int): images used for calibration.
        gate (GateResult): the accuracy check.
        stats (ReadStats): what happened to the calibration images.
        seconds (float): wall time of the whole run.
        timings_s (dict): step -> seconds.
        images_manifest_sha256 (str): hash of the calibration image list.
    """

    out_dir: str
    manifest_path: str
    qdq_onnx: str
    ort_int8_onnx: Optional[str]
    caches: Dict[int, str]
    ranges_json: str
    report_json: str
    report_md: str
    method: str
    count: int
    gate: GateResult
    stats: ReadStats
    seconds: float
    timings_s: Dict[str, float] = field(default_factory=dict)
    images_manifest_sha256: str = ""

    @property
    def agreement(self):
        """Top-1 agreement of the Q/DQ model with FP32 (None when nothing was evaluated)."""
        return self.gate.agreement.get("int8_qdq")

    @property
    def accuracy(self):
        return dict(self.gate.accuracy)

    @property
    def passed(self):
        return self.gate.passed

    def to_dict(self):
        return {
            "out_dir": self.out_dir, "manifest": self.manifest_path, "qdq_onnx": self.qdq_onnx,
            "ort_int8_onnx": self.ort_int8_onnx, "caches": {str(k): v for k, v in self.caches.items()},
            "ranges_json": self.ranges_json, "report_json": self.report_json, "report_md": self.report_md,
            "method": self.method, "count": self.count, "agreement": self.agreement,
            "accuracy": self.accuracy, "gate": self.gate.to_dict(), "read": self.stats.to_dict(),
            "seconds": round(self.seconds, 3), "timings_s": dict(self.timings_s),
            "images_manifest_sha256": self.images_manifest_sha256,
        }


# --------------------------------------------------------------------------------------------------
# inputs


def _check_options(method, count, min_agreement):
    if method not in calib_ort.METHODS:
        raise EdgeAlexError(f"--method {method}", "unknown calibration method",
                            "use one of: " + ", ".join(calib_ort.METHODS))
    if count is not None and count < MIN_CALIBRATION_IMAGES:
        raise EdgeAlexError(f"--count {count}", f"calibration needs at least {MIN_CALIBRATION_IMAGES} images",
                            f"pass --count {MIN_CALIBRATION_IMAGES} or more (a few hundred is typical)")
    check_float("--min-agreement", min_agreement, low=0.0, high=1.0, example="0.99")


def _model_input(model, info, path):
    """(input name, static batch or None) of the model, checked against its metadata."""
    onnx = require("onnx", calib_ort.PURPOSE)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    match = [i for i in inputs if i.name == info.input_name]
    if len(inputs) != 1 or not match:
        raise EdgeAlexError(path, f"expected one image input named {info.input_name!r}, found {[i.name for i in inputs]}", "export the model with `edgealex export`")
    tensor_type = match[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise EdgeAlexError(path, "the input is not float32", "calibrate the FP32 model, not a quantized one")
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in model.graph.node):
        raise EdgeAlexError(path, "is already quantized", "calibrate the FP32 ONNX from `edgealex export`")
    dims = tensor_type.shape.dim
    batch = dims[0].dim_value if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    return match[0].name, batch


def _split(image_set, holdout):
    """(calibration pool, held-out set)."""
    if holdout is not None:
        held = load_image_set(holdout)
        overlap = {os.path.realpath(p) for p in held.paths} & {os.path.realpath(p) for p in image_set.paths}
        if overlap:
            logger.warning("%d held-out image(s) are also calibration candidates: the agreement figure "
                           "will be optimistic", len(overlap))
        return image_set, held
    total = len(image_set)
    held_count = min(max(1, int(round(total * HOLDOUT_FRACTION))), HOLDOUT_SPLIT_MAX)
    held_count = min(held_count, total - MIN_CALIBRATION_IMAGES)
    if held_count < 1:
        raise EdgeAlexError(image_set.root, f"holds {total} image(s): too few to calibrate and check",
                            f"add images (at least {MIN_CALIBRATION_IMAGES + 1}: {MIN_CALIBRATION_IMAGES} to "
                            "calibrate, 1 to check), or pass --holdout DIR")
    held = sample_evenly(image_set, held_count)
    held_paths = set(held.paths)
    pool = image_set.subset(item for item in image_set.items if item[0] not in held_paths)
    logger.info("no --holdout: %d of %d images held out for the accuracy check, %d left to calibrate",
                len(held), total, len(pool))
    return pool, held


def _calibration_files(out_dir):
    """Files of a previous calibration in ``out_dir`` (names only)."""
    if not os.path.isdir(out_dir):
        return []
    found = set()
    previous = os.path.join(out_dir, MANIFEST_NAME)
    if os.path.isfile(previous):
        found.add(MANIFEST_NAME)
        try:
            data = read_json(previous, "calibration manifest")
        except EdgeAlexError:
            data = {}
        listed = [data.get(k) for k in ("qdq_onnx", "ort_int8_onnx", "ranges_json", "report_json", "report_md",
                                        "images_manifest", "holdout_manifest")]
        listed += list((data.get("caches") or {}).values())
        for name in listed:
            if isinstance(name, str) and name and os.path.basename(name) == name:
                found.add(name)
                found.add(os.path.basename(sidecar_path(name)))
    for name in os.listdir(out_dir):
        if (name.endswith((QDQ_SUFFIX, ORT_SUFFIX, QDQ_SUFFIX + ".json", ORT_SUFFIX + ".json"))
                or (name.startswith("calib.trt") and (name.endswith(".cache") or name.endswith(".cache.json")))
                or name in (RANGES_NAME, IMAGES_MANIFEST, HOLDOUT_MANIFEST, REPORT_JSON, REPORT_MD)):
            found.add(name)
    return sorted(n for n in found if os.path.isfile(os.path.join(out_dir, n)))


def _check_out_dir(out_dir, force):
    """Refuse a folder holding a previous calibration (unless ``force``); make sure it is writable."""
    previous = _calibration_files(out_dir)
    if previous and not force:
        raise EdgeAlexError(out_dir, "already holds a calibration ({}{})".format(
            ", ".join(previous[:4]), ", ..." if len(previous) > 4 else ""),
            "pass --force to replace it, or choose another folder with -o")
    ensure_dir(out_dir, "calibration output folder")


def _relocated(result, stage, final_dir):
    """``result`` with its paths moved from the staging folder to the output folder."""
    def move(path):
        return None if path is None else os.path.join(os.path.abspath(final_dir), os.path.relpath(path, stage))

    return dataclasses.replace(
        result, out_dir=os.path.abspath(final_dir), manifest_path=move(result.manifest_path),
        qdq_onnx=move(result.qdq_onnx), ort_int8_onnx=move(result.ort_int8_onnx),
        caches={n: move(p) for n, p in result.caches.items()}, ranges_json=move(result.ranges_json),
        report_json=move(result.report_json), report_md=move(result.report_md))


# --------------------------------------------------------------------------------------------------
# calibration pass


@contextlib.contextmanager
def _ort_prints():
    # ORT's histogram collector print()s progress to stdout; keep stdout clean for --json.
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
    if sink.getvalue().strip():
        logger.debug("onnxruntime: %s", " / ".join(sink.getvalue().split("\n")).strip(" /"))


def _collect(calibrator, image_set, spec, input_name, batch, progress):
    """Read each image once and feed it to the calibrator in chunks. Returns ReadStats."""
    stats = ReadStats()
    per_call = max(1, CHUNK_IMAGES // batch)
    stream = iter_preprocessed(image_set.items, spec, stats)
    with ProgressBar(len(image_set), "calibrating", enabled=progress) as bar, quiet_opencv():
        while True:
            batches = []
            for _ in range(per_call):
                arrays = []
                for _, _, array in stream:
                    arrays.append(array)
                    if len(arrays) == batch:
                        break
                if not arrays:
                    break
                batches.append(stack_batch(arrays, batch))
            if batches:
                with _ort_prints():
                    calibrator.collect_data(calib_ort.ArrayReader(input_name, batches))
            bar.update(stats.listed - bar.done)  # skipped files count as done too
            if not batches:
                break
    return stats


def _too_few(stats, image_set):
    reasons = {}
    for _, reason in stats.skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    detail = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    return EdgeAlexError(
        image_set.root, f"only {stats.used} of {stats.listed} calibration images were readable "
        f"(need at least {MIN_CALIBRATION_IMAGES}){': ' + detail if detail else ''}",
        "replace the unreadable files or add images")


# --------------------------------------------------------------------------------------------------
# outputs


def _derived_info(info, output_name, quantization):
    provenance = dict(info.provenance)
    provenance["calibration"] = quantization
    return ModelInfo(arch=info.arch, labels=list(info.labels), preprocess=info.preprocess,
                     input_name=info.input_name, output_name=output_name, batch=info.batch, opset=info.opset,
                     provenance=provenance)


def _finish_int8(tmp_path, final_path, info, quantization, kind, sidecar_extra):
    """Load a quantized model, attach the edgealex record, save it and its sidecar atomically."""
    from edgealex.artifacts import atomic_path

    onnx = require("onnx", calib_ort.PURPOSE)
    model = onnx.load(tmp_path)
    float_outputs = calib_ort.keep_outputs_float(model)
    check = calib_ort.inspect_qdq(model)
    # the oldest TensorRT that takes this file travels in the ONNX itself, so `build` can refuse it
    derived = _derived_info(info, model.graph.output[0].name,
                            dict(quantization, kind=kind, min_tensorrt=check["min_tensorrt"]))
    attach(model, derived)
    with atomic_path(final_path, "INT8 ONNX") as tmp:
        onnx.save(model, tmp)
    sidecar = {"artifact": kind, "path": os.path.basename(final_path), "sha256": sha256_file(final_path),
               "bytes": os.path.getsize(final_path), "ir_version": int(model.ir_version),
               "opset": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
               "qdq_check": check, "float_outputs": float_outputs, "calibration": quantization,
               "model_info": derived.to_dict(),
               "environment": environment_summary()}
    sidecar.update(sidecar_extra)
    write_json_atomic(sidecar_path(final_path), sidecar)
    return model, check


def _tensor_order(model):
    """Graph inputs, then node outputs in node order: the order a cache lists tensors."""
    inits = {t.name for t in model.graph.initializer}
    order = [i.name for i in model.graph.input if i.name not in inits]
    for node in model.graph.node:
        order.extend(o for o in node.output if o)
    return order


def _cache_scales(ranges, qdq_scales, order):
    """tensor -> (scale, source); tensors with a zero or non-finite range are left out."""
    scales, left_out = {}, []
    ordered = [n for n in order if n in ranges] + sorted(set(ranges) - set(order))
    for name in ordered:
        if name in qdq_scales:
            scale, source = qdq_scales[name], "qdq"
        else:
            low, high = ranges[name]
            scale, source = max(abs(low), abs(high)) / INT8_MAX, "range"
        if not math.isfinite(scale) or scale <= 0.0:
            left_out.append(name)
            continue
        scales[name] = (scale, source)
    return scales, left_out


def calibrate(model_path, images, out_dir, count=None, method="entropy", holdout=None, min_agreement=0.99,
              trt_versions=None, force=False, ort_native=True, progress=True):
    """Calibrate an FP32 ONNX classifier for INT8 from an image folder, in one pass.

    Args:
        model_path (str): FP32 ONNX (ideally from ``edgealex export``: its metadata carries the
            preprocessing; without it ImageNet defaults are used and a warning is logged).
        images (str): image folder (recursive, class sub-folders allowed) or a manifest ``.json``.
        out_dir (str): output folder (refused if it holds a previous calibration, unless ``force``).
        count (int): calibration images, sampled evenly over the classes. Defaults to all.
        method (str): "entropy" (default), "minmax" or "percentile" (ORT's calibrators).
        holdout (str): folder or manifest of held-out images for the accuracy gate. Defaults to
            20% of ``images`` (at most 200), split evenly over the classes.
        min_agreement (float): minimum top-1 agreement of each INT8 model with FP32. Defaults to 0.99.
        trt_versions (list): TensorRT versions, version numbers or target names to write caches
            for. Defaults to the Jetson targets "nano" (8.2.1 -> 8201) and "agx-xavier" (8502).
        force (bool): replace a previous calibration in ``out_dir``. Defaults to False.
        ort_native (bool): also write the ORT-native INT8 ONNX. Defaults to True.
        progress (bool): show progress bars on stderr. Defaults to True.

    Returns:
        CalibrationResult: paths and figures.

    Raises:
        EdgeAlexError: bad input (model, folders, options, too few readable images).
        GateFailed: an INT8 model's agreement is below ``min_agreement``; every output is kept
            for inspection and ``calibration.json`` says ``"gate_passed": false``.
    """
    started = time.perf_counter()
    timings: Dict[str, float] = {}
    _check_options(method, count, min_agreement)
    versions = resolve_cache_versions(trt_versions)
    for module in ("numpy", "onnx", "onnxruntime", "cv2"):
        require(module, calib_ort.PURPOSE)
    calib_ort.check_ort_support()
    onnxruntime = require("onnxruntime", calib_ort.PURPOSE)

    model_path, out_dir = str(model_path), str(out_dir)
    model = load_onnx(model_path)
    info = from_model_proto(model, model_path, allow_default=True)
    input_name, static_batch = _model_input(model, info, model_path)
    batch = static_batch or 1
    order = _tensor_order(model)
    del model
    model_sha256 = sha256_file(model_path)
    stem = os.path.splitext(os.path.basename(model_path))[0]

    image_set = load_image_set(images)
    pool, held = _split(image_set, holdout)
    calib_set = sample_evenly(pool, count)
    if len(calib_set) < MIN_CALIBRATION_IMAGES:
        raise EdgeAlexError(str(images), f"has {len(calib_set)} calibration image(s); at least "
                            f"{MIN_CALIBRATION_IMAGES} are needed", "add images to the folder")
    if count is not None and count > len(pool):
        logger.warning("--count %d: only %d images available for calibration, using all of them", count, len(pool))
    _check_out_dir(out_dir, force)
    images_manifest, holdout_manifest = manifest(calib_set), manifest(held)
    timings["prepare"] = time.perf_counter() - started
    logger.info("calibrating %s with %d image(s) (%s), checking on %d held-out image(s)",
                model_path, len(calib_set), method, len(held))

    final_dir = out_dir
    # Everything is built in a staging folder inside the output folder and swapped in at the end:
    # an interrupted or failed run (Ctrl-C, SIGTERM, full disk) leaves the previous calibration
    # complete, and its scratch files (the augmented model, ~4x the model) go with the stage.
    with staging_dir(final_dir, "calibration", owned=_calibration_files) as stage:
        paths = {"qdq": os.path.join(stage, stem + QDQ_SUFFIX), "ranges": os.path.join(stage, RANGES_NAME),
                 "ort": os.path.join(stage, stem + ORT_SUFFIX) if ort_native else None}
        provenance = {
            "source_model": os.path.basename(model_path), "source_model_sha256": model_sha256,
            "images_manifest_sha256": images_manifest["manifest_sha256"], "method": method,
            "method_settings": calib_ort.method_settings(method), "count": None,
            "onnxruntime_version": onnxruntime.__version__, "created_at": now_iso(),
        }
        scratch = os.path.join(stage, ".scratch")
        os.mkdir(scratch)
        step = time.perf_counter()
        with _ort_prints():
            calibrator = calib_ort.create_range_calibrator(model_path, method, os.path.join(scratch, "augmented.onnx"))
        stats = _collect(calibrator, calib_set, info.preprocess, input_name, batch, progress)
        if stats.used < MIN_CALIBRATION_IMAGES:
            raise _too_few(stats, calib_set)
        if stats.skipped:
            logger.warning("skipped %d unreadable calibration image(s) (listed in the report)", len(stats.skipped))
        timings["read_and_collect"] = time.perf_counter() - step
        step = time.perf_counter()
        with _ort_prints():
            tensors_data = calibrator.compute_data()
        del calibrator
        ranges = calib_ort.ranges_table(tensors_data)
        write_manifest(os.path.join(stage, IMAGES_MANIFEST), images_manifest)
        write_manifest(os.path.join(stage, HOLDOUT_MANIFEST), holdout_manifest)
        calib_ort.save_ranges(tensors_data, paths["ranges"])
        timings["compute_ranges"] = time.perf_counter() - step
        provenance["count"] = stats.used

        step = time.perf_counter()
        extra = {"source_model_sha256": model_sha256, "images_manifest_sha256": provenance["images_manifest_sha256"],
                 "method": method, "count": stats.used}
        tmp_qdq = calib_ort.quantize_trt_qdq(model_path, os.path.join(scratch, "qdq.onnx"), paths["ranges"], method)
        qdq_model, qdq_check = _finish_int8(tmp_qdq, paths["qdq"], info, provenance, "int8-qdq-trt",
                                            dict(extra, for_backends=["tensorrt-explicit-int8", "onnxruntime"]))
        if not qdq_check["trt_compatible"]:
            raise EdgeAlexError(
                f"onnxruntime {onnxruntime.__version__}", "produced a Q/DQ model TensorRT cannot load "
                f"(non-zero or non-INT8 zero-points: {qdq_check['nonzero_zero_points'][:3] + qdq_check['non_int8_zero_points'][:3]})",
                "use onnxruntime 1.32, whose quantizer options this was written against")
        qdq_scales = calib_ort.qdq_activation_scales(qdq_model)
        del qdq_model
        timings["quantize_qdq"] = time.perf_counter() - step
        ort_check = None
        if ort_native:
            step = time.perf_counter()
            tmp_ort = calib_ort.quantize_ort_native(model_path, os.path.join(scratch, "ort.onnx"), paths["ranges"], method)
            _, ort_check = _finish_int8(tmp_ort, paths["ort"], info, provenance, "int8-ort-cpu",
                                        dict(extra, for_backends=["onnxruntime"]))
            timings["quantize_ort"] = time.perf_counter() - step
        shutil.rmtree(scratch)

        step = time.perf_counter()
        scales, left_out = _cache_scales(ranges, qdq_scales, order)
        if left_out:
            logger.warning("%d tensor(s) have a zero range and are left out of the TensorRT cache: %s",
                           len(left_out), ", ".join(left_out[:5]))
        caches = {}
        for number in versions:
            path = os.path.join(stage, cache_name(number))
            write_cache(path, {name: s for name, (s, _) in scales.items()}, number, DEFAULT_ALGORITHM)
            write_json_atomic(sidecar_path(path), {
                "artifact": "trt-calibration-cache", "path": os.path.basename(path), "version_number": number,
                "algorithm": DEFAULT_ALGORITHM, "tensors": len(scales), "left_out": list(left_out),
                "sha256": sha256_file(path),
                "calibration": provenance, "environment": environment_summary()})
            caches[number] = path
        timings["caches"] = time.perf_counter() - step

        step = time.perf_counter()
        models = {"fp32": model_path, "int8_qdq": paths["qdq"]}
        if ort_native:
            models["int8_ort"] = paths["ort"]
        gate = evaluate(models, held, info.preprocess, info.labels, input_name, batch=batch,
                        min_agreement=float(min_agreement), progress=progress)
        timings["gate"] = time.perf_counter() - step

        result = CalibrationResult(
            out_dir=os.path.abspath(stage), manifest_path=os.path.abspath(os.path.join(stage, MANIFEST_NAME)),
            qdq_onnx=os.path.abspath(paths["qdq"]), ort_int8_onnx=os.path.abspath(paths["ort"]) if ort_native else None,
            caches={n: os.path.abspath(p) for n, p in caches.items()}, ranges_json=os.path.abspath(paths["ranges"]),
            report_json=os.path.abspath(os.path.join(stage, REPORT_JSON)),
            report_md=os.path.abspath(os.path.join(stage, REPORT_MD)), method=method, count=stats.used,
            gate=gate, stats=stats, seconds=0.0, timings_s={},
            images_manifest_sha256=images_manifest["manifest_sha256"])
        result.seconds = time.perf_counter() - started
        result.timings_s = {k: round(v, 3) for k, v in timings.items()}

        from edgealex.calib.report import write_reports

        write_reports(result, info=info, model_path=model_path, model_sha256=model_sha256, calib_set=calib_set,
                      held=held, ranges=ranges, scales=scales, left_out=left_out, qdq_check=qdq_check,
                      ort_check=ort_check, provenance=provenance, holdout_manifest=holdout_manifest)
        _write_manifest(result, info, model_path, model_sha256, provenance, holdout_manifest, calib_set, held)
    result = _relocated(result, stage, final_dir)
    if not gate.passed:
        raise _gate_failure(result)
    return result


def _write_manifest(result, info, model_path, model_sha256, provenance, holdout_manifest, calib_set, held):
    gate = result.gate
    name = os.path.basename
    data = {
        "artifact": "calibration",
        "schema": SCHEMA_VERSION,
        "paths_relative_to": "the folder of this file",
        "model_path": os.path.abspath(model_path),
        "model_sha256": model_sha256,
        "model_info": info.to_dict(),
        "preprocess_from_defaults": bool(info.from_defaults),
        "images_root": os.path.abspath(calib_set.root),
        "images_manifest": IMAGES_MANIFEST,
        "images_manifest_sha256": result.images_manifest_sha256,
        "holdout_root": os.path.abspath(held.root),
        "holdout_manifest": HOLDOUT_MANIFEST,
        "holdout_manifest_sha256": holdout_manifest["manifest_sha256"],
        "method": result.method,
        "method_settings": provenance["method_settings"],
        "count": result.count,
        "skipped": len(result.stats.skipped),
        "qdq_onnx": name(result.qdq_onnx),
        "ort_int8_onnx": name(result.ort_int8_onnx) if result.ort_int8_onnx else None,
        "caches": {str(n): name(p) for n, p in sorted(result.caches.items())},
        "cache_algorithm": DEFAULT_ALGORITHM,
        "ranges_json": name(result.ranges_json),
        "report_json": name(result.report_json),
        "report_md": name(result.report_md),
        "agreement": result.agreement,
        "agreements": dict(gate.agreement),
        "accuracy": dict(gate.accuracy),
        "holdout_images": gate.images,
        "min_agreement": gate.min_agreement,
        "gate_passed": gate.passed,
        "onnxruntime_version": provenance["onnxruntime_version"],
        "seconds": round(result.seconds, 3),
        "created_at": now_iso(),
        "environment": environment_summary(),
    }
    write_json_atomic(result.manifest_path, data)


def _gate_failure(result):
    gate = result.gate
    if gate.images == 0:
        what = f"no held-out image was readable ({len(gate.stats.skipped)} skipped), so INT8 accuracy is unchecked"
    else:
        names = {"int8_qdq": "TensorRT Q/DQ model", "int8_ort": "ORT-native INT8 model"}
        parts = [f"{names.get(k, k)} agrees with FP32 on {gate.agree_counts[k]}/{gate.images} held-out images "
                 f"({gate.agreement[k]:.1%})" for k in gate.failures()]
        what = "; ".join(parts) + f", below --min-agreement {gate.min_agreement:.1%}"
    return GateFailed(
        "INT8 accuracy gate", what,
        f"the outputs are kept in {result.out_dir} for inspection (calibration.json has gate_passed=false, "
        "see report.md); calibrate with more or more representative images, try --method percentile or "
        "minmax, or lower --min-agreement")


def read_calibration(path):
    """Read a ``calibration.json`` (or the folder holding it) and resolve its file names.

    Returns:
        dict: the manifest, with ``"dir"`` added and every file field an absolute path
        (``caches`` as ``{int version number: path}``).

    Raises:
        EdgeAlexError: missing or not a calibration manifest, a newer or non-integer schema, or a
            file field that is not a name (or null), or a gate_passed that is not true/false.
    """
    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_NAME)
    maybe_file = (str, type(None))
    data = read_sidecar(path, "calibration manifest", artifact="calibration", require_sha256=False,
                        schema_max=SCHEMA_VERSION, fields={"model_sha256": str},
                        optional_fields={"qdq_onnx": maybe_file, "ort_int8_onnx": maybe_file,
                                         "ranges_json": maybe_file, "report_json": maybe_file,
                                         "report_md": maybe_file, "images_manifest": maybe_file,
                                         "holdout_manifest": maybe_file, "gate_passed": (bool, type(None))},
                        fix="point at the folder `edgealex calibrate -o` wrote, or re-run `edgealex calibrate`")
    caches = data.get("caches") or {}
    if not isinstance(caches, dict) or not all(str(k).isdigit() and isinstance(v, str) for k, v in caches.items()):
        raise EdgeAlexError(path, f"its caches {caches!r} are not {{TensorRT version number: file name}}",
                            "re-run `edgealex calibrate`")
    folder = os.path.dirname(os.path.abspath(path))
    for key in ("qdq_onnx", "ort_int8_onnx", "ranges_json", "report_json", "report_md", "images_manifest",
                "holdout_manifest"):
        if data.get(key):
            data[key] = os.path.join(folder, data[key])
    data["caches"] = {int(k): os.path.join(folder, v) for k, v in (data.get("caches") or {}).items()}
    data["dir"] = folder
    return data


def check_calibration_outputs(data):
    """Every INT8 model and cache a manifest names is present and, where it has a sidecar (every
    ``edgealex calibrate`` output does), still the file that sidecar records (sha256), so a reused
    calibration is the one that passed the gate.

    Args:
        data (dict): from :func:`read_calibration`.

    Raises:
        EdgeAlexError: naming the first missing, edited or truncated output.
    """
    named = [(data.get("qdq_onnx"), "Q/DQ ONNX"), (data.get("ort_int8_onnx"), "ONNX Runtime INT8 model")]
    named += [(path, f"calibration cache for TensorRT {number}") for number, path in sorted(data["caches"].items())]
    manifest = os.path.join(data["dir"], MANIFEST_NAME)
    fix = "re-run `edgealex calibrate --force` for this model; the folder no longer holds what passed the gate"
    for path, what in named:
        if not path:
            continue
        if not os.path.isfile(path):
            raise EdgeAlexError(manifest, f"names the {what} {os.path.basename(path)} but it is missing", fix)
        side = sidecar_path(path)
        if not os.path.exists(side):
            continue  # a folder assembled by hand or by `deploy deepstream` (no sidecars): nothing to compare
        try:
            recorded = read_json(side, f"{what} sidecar").get("sha256")
        except EdgeAlexError as exc:
            raise EdgeAlexError(path, f"its sidecar cannot be checked: {exc.what}", fix)
        if recorded != sha256_file(path):
            raise EdgeAlexError(path, f"the {what} does not match its sidecar {os.path.basename(side)} "
                                "(sha256 differs: edited, truncated or replaced)", fix)

