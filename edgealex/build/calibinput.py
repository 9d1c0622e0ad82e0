"""What ``edgealex build --calib X`` points at, and which calibration artifact a build takes.

``--calib`` accepts:

a. a TensorRT calibration cache file (``TRT-<n>-EntropyCalibration2`` header): used by the
   calibrator of a TensorRT 8.x / DLA build; refused when ``<n>`` is not the builder's TensorRT;
b. a calibration output folder of ``edgealex calibrate`` (holds ``calibration.json`` with
   ``model_sha256``, ``qdq_onnx``, ``ort_int8_onnx`` and ``caches`` per TensorRT version), or that
   ``calibration.json`` itself; refused when it was made for another ONNX (sha256 differs);
c. a folder of images: on-device calibration through the model's own preprocessing (TensorRT
   calibrator builds only; ONNX Runtime and 11.x need ``edgealex calibrate`` first).
"""

import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from edgealex.artifacts import read_sidecar, sha256_file, sidecar_path
from edgealex._optional import require
from edgealex.errors import EdgeAlexError

CALIBRATION_JSON = "calibration.json"
CALIBRATOR_ALGORITHM = "EntropyCalibration2"  # what IInt8EntropyCalibrator2 reads and writes


@dataclass
class CalibrationOffer:
    """Everything a ``--calib`` argument provides.

    Args:
        source (str): the argument as given.
        kind (str): "cache" (a cache file), "output" (a calibration folder) or "images".
        caches (dict): TensorRT version number -> cache file.
        qdq_onnx (str or None): TensorRT-loadable Q/DQ ONNX.
        ort_int8_onnx (str or None): ONNX Runtime's own INT8 model.
        images (str or None): image folder for on-device calibration.
        record (dict): the calibration.json content (output folders).
    """

    source: str
    kind: str
    caches: Dict[int, str] = field(default_factory=dict)
    qdq_onnx: Optional[str] = None
    ort_int8_onnx: Optional[str] = None
    images: Optional[str] = None
    record: dict = field(default_factory=dict)

    def describe(self):
        parts = []
        if self.caches:
            parts.append("caches for TensorRT " + ", ".join(str(n) for n in sorted(self.caches)))
        if self.qdq_onnx:
            parts.append("a Q/DQ ONNX")
        if self.ort_int8_onnx:
            parts.append("an ONNX Runtime INT8 model")
        if self.images:
            parts.append("an image folder")
        return ", ".join(parts) or "nothing usable"


@dataclass
class CalibrationChoice:
    """The calibration artifact a build uses, with its provenance.

    Args:
        kind (str): "cache", "images", "qdq" or "ort-native".
        path (str): the file or folder.
        sha256 (str or None): sha256 of the file (None for a folder).
        version_number (int or None): the cache header number.
        offer (CalibrationOffer): where it came from.
    """

    kind: str
    path: str
    sha256: Optional[str] = None
    version_number: Optional[int] = None
    offer: Optional[CalibrationOffer] = None

    def to_record(self):
        """The ``calibration`` dict of the engine sidecar."""
        out = {"method": self.kind, "source": os.path.abspath(self.offer.source) if self.offer else None,
               "path": os.path.abspath(self.path)}
        if self.kind == "cache":
            out["cache_sha256"] = self.sha256
            out["cache_version_number"] = self.version_number
        elif self.kind in ("qdq", "ort-native"):
            out["qdq_sha256" if self.kind == "qdq" else "int8_onnx_sha256"] = self.sha256
        if self.offer is not None and self.offer.record:
            for key in ("images_manifest_sha256", "method", "count", "agreement", "cache_algorithm", "gate_passed",
                        "created_at", "holdout_images", "accuracy", "agreements"):
                if key in self.offer.record:
                    out.setdefault("calibration_" + key, self.offer.record[key])
        return out


def read_calib_arg(calib, onnx_sha256):
    """Inspect a ``--calib`` argument.

    Args:
        calib (str): cache file, calibration folder (or its calibration.json) or image folder.
        onnx_sha256 (str): sha256 of the ONNX being built (a calibration folder must match it).

    Returns:
        CalibrationOffer: what it provides.

    Raises:
        EdgeAlexError: missing path, unreadable cache, a calibration folder for another model, or a
            calibration.json naming files that are missing.
    """
    from edgealex.calib.cache import read_cache

    calib = str(calib)
    if not os.path.exists(calib):
        raise EdgeAlexError(calib, "the --calib path does not exist",
                            "pass a calibration folder from `edgealex calibrate`, a .cache file or an image folder")
    if os.path.isfile(calib) and os.path.basename(calib) == CALIBRATION_JSON:
        calib_dir = os.path.dirname(os.path.abspath(calib))
        return _read_output_dir(calib_dir, calib, onnx_sha256)
    if os.path.isfile(calib) and calib.lower().endswith(".onnx"):
        raise EdgeAlexError(calib, "--calib takes the calibration folder, not one of its ONNX models",
                            "pass the folder `edgealex calibrate -o` wrote (its calibration.json says which model "
                            "and cache each TensorRT version takes), or a .cache file, or an image folder")
    if os.path.isfile(calib):
        cache = read_cache(calib)
        side = sidecar_path(calib)
        record = {}
        if os.path.isfile(side):
            record = read_sidecar(side, "calibration cache sidecar", artifact="trt-calibration-cache",
                                  fields={"calibration": dict}, optional_fields={"left_out": list},
                                  fix="re-run `edgealex calibrate`")
            if record["sha256"] != sha256_file(calib):
                raise EdgeAlexError(calib, f"does not match its sidecar {os.path.basename(side)} (sha256 differs)",
                                    "the cache was edited or replaced; re-run `edgealex calibrate`")
            owner = record["calibration"].get("source_model_sha256")
            if owner != onnx_sha256:
                raise EdgeAlexError(calib, "this calibration cache was made for another model (its sidecar records "
                                    f"model sha256 {str(owner)[:12]}, the ONNX being built is {onnx_sha256[:12]})",
                                    "run `edgealex calibrate` on this ONNX and pass its cache or output folder")
        return CalibrationOffer(source=calib, kind="cache", caches={int(cache.version_number): calib}, record=record)
    if os.path.isfile(os.path.join(calib, CALIBRATION_JSON)):
        return _read_output_dir(calib, calib, onnx_sha256)
    return CalibrationOffer(source=calib, kind="images", images=calib)


def _read_output_dir(folder, source, onnx_sha256):
    from edgealex.calib.pipeline import check_calibration_outputs, read_calibration

    data = read_calibration(folder)
    recorded = str(data.get("model_sha256"))
    if recorded != onnx_sha256:
        raise EdgeAlexError(source, f"this calibration was made for another model (model_sha256 {recorded[:12]} "
                            f"but the ONNX being built is {onnx_sha256[:12]})",
                            "run `edgealex calibrate` on this ONNX, or build the ONNX the calibration belongs to")
    if data.get("gate_passed") is False:
        raise EdgeAlexError(source, "this calibration failed its INT8 accuracy gate (calibration.json: gate_passed "
                            f"false, agreement {data.get('agreement')})",
                            "re-calibrate with more representative images (see report.md in that folder)")

    check_calibration_outputs(data)
    return CalibrationOffer(source=source, kind="output", caches=dict(data["caches"]),
                            qdq_onnx=data.get("qdq_onnx") or None, ort_int8_onnx=data.get("ort_int8_onnx") or None,
                            record=data)


def choose_for_tensorrt(offer, preference, version_number, trt_version, target_name=None):
    """The calibration artifact a TensorRT INT8 build takes.

    Args:
        offer (CalibrationOffer): from :func:`read_calib_arg`.
        preference (tuple): from :func:`edgealex.build.plan.int8_source_preference`.
        version_number (int): ``NV_TENSORRT_VERSION`` of the builder (8502, 100300...).
        trt_version (str): the builder's TensorRT version, for messages.
        target_name (str or None): target profile name, for the `edgealex calibrate` hint.

    Returns:
        CalibrationChoice: the artifact.

    Raises:
        EdgeAlexError: a cache from another TensorRT version, a cache of another algorithm, or
            nothing in the offer the build can use (the message says what was found and what is needed).
    """
    from edgealex.calib.cache import read_cache

    if offer.kind == "cache" and "cache" in preference:
        (number, path), = offer.caches.items()
        if number != version_number:
            raise EdgeAlexError(path, f"the calibration cache was written by TensorRT {number} (header TRT-{number}-...) "
                                f"but this build uses TensorRT {trt_version} ({version_number}); TensorRT would "
                                "re-calibrate and fail without images",
                                "pass a cache for this TensorRT version (edgealex calibrate writes one per target), "
                                "or an image folder to calibrate on the device")
    for kind in preference:
        if kind == "cache" and version_number in offer.caches:
            path = offer.caches[version_number]
            cache = read_cache(path)
            if int(cache.version_number) != version_number:
                raise EdgeAlexError(path, f"is listed for TensorRT {version_number} but its header says "
                                    f"TRT-{cache.version_number}", "re-run `edgealex calibrate`")
            if cache.algorithm != CALIBRATOR_ALGORITHM:
                raise EdgeAlexError(path, f"is a {cache.algorithm} cache; edgealex builds with "
                                    f"IInt8EntropyCalibrator2, which only reads {CALIBRATOR_ALGORITHM}",
                                    "re-run `edgealex calibrate` (it writes EntropyCalibration2 caches)")
            return CalibrationChoice("cache", path, sha256_file(path), version_number, offer)
        if kind == "images" and offer.images:
            return CalibrationChoice("images", offer.images, None, None, offer)
        if kind == "qdq" and offer.qdq_onnx:
            return CalibrationChoice("qdq", offer.qdq_onnx, sha256_file(offer.qdq_onnx), None, offer)
    wanted = {"cache": f"a calibration cache for TensorRT {trt_version} ({version_number})",
              "images": "an image folder (on-device calibration)", "qdq": "a Q/DQ ONNX"}
    calibrate = "run `edgealex calibrate <model.onnx> --images <folder>{}` and pass its output folder".format(
        f" --trt-version {target_name or trt_version}" if "cache" in preference else "")
    raise EdgeAlexError(offer.source, "has {} but this INT8 build needs {}".format(
        offer.describe(), " or ".join(wanted[k] for k in preference)),
        calibrate + (", or pass an image folder to calibrate on the device" if "images" in preference else ""))


def model_tensor_names(onnx_path, with_outputs=False):
    """Float tensors of an ONNX graph that an implicit-INT8 build needs a range for.

    The graph inputs and every node output whose inferred element type is float/float16 (or
    unknown); initializers (weights) are not activations. TensorRT's ONNX parser names its tensors
    after these ONNX value names, which is what a calibration cache is keyed by (facts §2.3).

    Returns:
        list[str]: the names in graph order (and, with ``with_outputs``, the set of graph outputs).
    """
    onnx = require("onnx", "checking a calibration cache against the model")
    from edgealex.modelinfo import load_onnx

    model = load_onnx(onnx_path)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is only used to skip integer tensors
        pass
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.output) + list(graph.input)}
    floats = (0, onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    weights = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in weights]
    for node in graph.node:
        if node.op_type in ("Constant", "Shape", "Size", "ConstantOfShape"):
            continue
        names.extend(o for o in node.output if o and types.get(o, 0) in floats)
    if with_outputs:
        return names, {o.name for o in graph.output}
    return names


def check_cache_coverage(cache_path, onnx_path, left_out=()):
    """Refuse a calibration cache whose tensor names do not fit the model being built.

    Every cache entry must name a tensor of the model (a cache of another model names tensors this
    one lacks), and every float tensor of the model must have a range (TensorRT would run the layers
    around a tensor without one in FP32/FP16, facts §2.4), except the graph outputs (kept in float)
    and the tensors the calibration itself left out (zero range; ``left_out`` from the cache sidecar).

    Args:
        cache_path (str): TensorRT calibration cache.
        onnx_path (str): the ONNX the build parses.
        left_out (sequence): tensor names the calibration recorded as left out.

    Raises:
        EdgeAlexError: naming the cache entries the model lacks and the model tensors without a range.
    """
    from edgealex.calib.cache import read_cache

    scales = read_cache(cache_path).scales
    tensors, outputs = model_tensor_names(onnx_path, with_outputs=True)
    known = set(tensors)
    foreign = [name for name in scales if name not in known]
    # graph outputs may go without a range: the logits (or an appended softmax) stay in float
    missing = [name for name in tensors if name not in scales and name not in set(left_out) and name not in outputs]
    if not foreign and not missing:
        return
    parts = []
    if foreign:
        parts.append("{} of its {} tensor names are not in the model ({})".format(
            len(foreign), len(scales), ", ".join(foreign[:6]) + (" ..." if len(foreign) > 6 else "")))
    if missing:
        parts.append("{} of the model's {} tensors have no range ({})".format(
            len(missing), len(tensors), ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")))
    raise EdgeAlexError(cache_path, "the calibration cache does not belong to {}: {}".format(
        os.path.basename(onnx_path), "; ".join(parts)),
        "run `edgealex calibrate` on this ONNX and pass its output folder or cache")


def choose_for_ort(offer, ort_int8="auto"):
    """The INT8 model an ONNX Runtime engine takes from a calibration output.

    Args:
        offer (CalibrationOffer): from :func:`read_calib_arg`.
        ort_int8 (str): "auto" (ONNX Runtime's own INT8 model when present, else the Q/DQ one),
            "native" or "qdq". Defaults to "auto".

    Returns:
        CalibrationChoice: kind "ort-native" or "qdq".

    Raises:
        EdgeAlexError: the offer is a cache or an image folder (ONNX Runtime needs a quantized
            ONNX from `edgealex calibrate`), or lacks the requested model.
    """
    if offer.kind != "output":
        what = "a TensorRT calibration cache" if offer.kind == "cache" else "an image folder"
        raise EdgeAlexError(offer.source, f"is {what}; an ONNX Runtime INT8 engine is built from the quantized "
                            "ONNX of a calibration output folder",
                            "run `edgealex calibrate <model.onnx> --images <folder>` and pass its output "
                            "folder with --calib")
    if ort_int8 not in ("auto", "native", "qdq"):
        raise EdgeAlexError("--ort-int8", f"unknown choice {ort_int8!r}", "use auto, native or qdq")
    if ort_int8 in ("auto", "native") and offer.ort_int8_onnx:
        return CalibrationChoice("ort-native", offer.ort_int8_onnx, sha256_file(offer.ort_int8_onnx), None, offer)
    if ort_int8 == "native":
        raise EdgeAlexError(offer.source, "has no ONNX Runtime INT8 model (ort_int8_onnx is null)",
                            "use --ort-int8 qdq, or re-run `edgealex calibrate` so it writes one")
    if offer.qdq_onnx:
        return CalibrationChoice("qdq", offer.qdq_onnx, sha256_file(offer.qdq_onnx), None, offer)
    raise EdgeAlexError(offer.source, "has no quantized ONNX (qdq_onnx and ort_int8_onnx are missing)",
                        "re-run `edgealex calibrate`")
