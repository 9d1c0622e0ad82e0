"""``edgealex deploy deepstream``: a DeepStream deployment of an edgealex classifier.

Writes into one folder, after every check has passed (built in a staging folder and swapped in at the
end, :func:`edgealex.artifacts.staging_dir`: a failure leaves the previous deployment intact; other
files in the folder are left alone):

- ``<model>.deepstream.onnx`` -- the exported ONNX with the per-channel 1/std folded into the first
  convolution, a Softmax appended and a batch axis for N sources (:mod:`edgealex.deploy.graph`);
  its parity with edgealex's own pipeline (same pixels -> probabilities within 1e-4 in ONNX
  Runtime) is checked first; ``.json`` sidecar as ``edgealex export`` writes one;
- ``config_infer_primary.txt`` -- Gst-nvinfer as a primary full-frame classifier;
- ``labels.txt`` -- nvinfer's classifier format: ONE ``;``-separated line;
- ``deepstream_app.txt`` -- a deepstream-app config: N sources -> one batched classifier;
- ``calib/`` -- with ``--calib``: the INT8 calibration carried over to the DeepStream ONNX
  (TensorRT caches with the input range of the new input, a Q/DQ ONNX with the same rewrite and a
  ``calibration.json`` ``edgealex build --calib`` accepts);
- the engine given with ``--engine`` (and its sidecar), copied;
- ``README.md`` and ``deploy.json``: what was done, the measured stretch-vs-crop agreement and the
  exact command to run.

Facts: integration-facts.md §1 (DeepStream 6.0/6.2/7.0 sources: gstnvinfer_property_parser,
nvdsinfer_context_impl*, nvdsinfer_model_builder, deepstream_config_file_parser).
"""

import os
import shlex
import shutil
from dataclasses import dataclass, field
from typing import List, Optional

from edgealex.artifacts import (environment_summary, read_json, sha256_bytes, sha256_file, sidecar_path, staging_dir,
                                write_bytes_atomic, write_json_atomic, write_text_atomic)
from edgealex.deploy.common import (deepstream_release_for, engine_batch_is_dynamic, load_engine_record,
                                    nvinfer_labels_text, profile_max_batch)
from edgealex.deploy.keyfile import COMMENT, format_key_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger

NET_SCALE_FACTOR = 1.0 / 255.0  # repr: 0.00392156862745098
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # ctx.h NvDsInferNetworkMode
COLOR_FORMAT = {"RGB": 0, "BGR": 1}  # model-color-format
# edgealex interpolation -> nvinfer scaling-filter (nvbufsurftransform.h): 0 nearest, 1 bilinear,
# 2 GPU-cubic / VIC-5tap. nvinfer has no area filter: bilinear is the closest.
# "pil-bilinear" (torchvision's antialiased resize) has no nvinfer equivalent either: bilinear.
SCALING_FILTER = {"nearest": 0, "linear": 1, "cubic": 2, "area": 1, "pil-bilinear": 1}
RESIZE_MODES = ("stretch", "letterbox")
BATCH_MODES = ("dynamic", "static")
DEFAULT_SOURCE = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_720p.mp4"
# deepstream_sources.h NvDsSourceType: 1 camera V4L2, 2 URI, 3 multi-URI, 4 RTSP, 5 camera CSI.
SOURCE_V4L2, SOURCE_URI, SOURCE_RTSP, SOURCE_CSI = 1, 2, 4, 5
INFER_CONFIG = "config_infer_primary.txt"
APP_CONFIG = "deepstream_app.txt"
LABELS = "labels.txt"
CALIB_DIR = "calib"
MANIFEST = "deploy.json"
GIE_ID = 1


@dataclass
class Source:
    """One deepstream-app source group.

    Args:
        uri (str): as given.
        type (int): deepstream-app source type (1 V4L2, 2 URI, 4 RTSP, 5 CSI).
        live (bool): a camera or network stream (streammux ``live-source``).
        entries (list): ``(key, value)`` pairs of the ``[sourceN]`` group after ``enable``/``type``.
    """

    uri: str
    type: int
    live: bool
    entries: list


def parse_source(uri, width=1280, height=720, fps=30):
    """A ``--sources`` URI -> a deepstream-app source (facts §1.8; deepstream_sources.h).

    Accepted: ``csi://N`` (type 5), ``v4l2:///dev/videoN`` / ``/dev/videoN`` (type 1),
    ``rtsp://...`` (type 4), ``file://...``, ``http(s)://...`` and plain file paths (type 2, URI;
    a relative path is made absolute, since deepstream-app needs a URI).

    Raises:
        EdgeAlexError: an empty or unsupported URI.
    """
    text = str(uri).strip()
    camera = [("camera-width", int(width)), ("camera-height", int(height)), ("camera-fps-n", int(fps)),
              ("camera-fps-d", 1)]
    if text.startswith("csi://"):
        sensor = text[len("csi://"):].split("?")[0] or "0"
        if not sensor.isdigit():
            raise EdgeAlexError(text, "the CSI sensor id is not a number", "use csi://0, csi://1, ...")
        return Source(text, SOURCE_CSI, True, [("camera-csi-sensor-id", int(sensor))] + camera)
    device = text[len("v4l2://"):] if text.startswith("v4l2://") else text
    if device.startswith("/dev/video"):
        number = device[len("/dev/video"):]
        if not number.isdigit():
            raise EdgeAlexError(text, "is not a /dev/videoN device", "use v4l2:///dev/video0 or /dev/video0")
        return Source(text, SOURCE_V4L2, True, [("camera-v4l2-dev-node", int(number))] + camera)
    network = text.startswith(("rtsp://", "rtsps://", "http://", "https://"))
    if network or text.startswith("file://"):
        _check_uri(text, network)
    if text.startswith("rtsp://") or text.startswith("rtsps://"):
        return Source(text, SOURCE_RTSP, True, [("uri", text)])
    if text.startswith("file://") or text.startswith("http://") or text.startswith("https://"):
        return Source(text, SOURCE_URI, False, [("uri", text)])
    if not text or "://" in text:
        raise EdgeAlexError(text or "--sources", "is not a source deepstream-app can open",
                            "use csi://N, /dev/videoN, rtsp://..., file:///path.mp4 or a video file path")
    return Source(text, SOURCE_URI, False, [("uri", "file://" + os.path.abspath(text))])


def _check_uri(text, network):
    """A network URI needs a host, a file URI a path (deepstream-app would fail on the device, after the copy)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise EdgeAlexError(text, f"is not a valid URI ({exc})", "use e.g. rtsp://HOST:8554/stream or file:///path.mp4")
    if network and not host:
        raise EdgeAlexError(text, "has no host", "use e.g. rtsp://HOST:8554/stream (user:password@HOST if needed)")
    if not network and parts.path in ("", "/"):
        raise EdgeAlexError(text, "has no file path", "use file:///absolute/path/video.mp4")


def ds_engine_name(onnx_name, batch, precision, dla_core=None, gpu_id=0):
    """The engine file nvinfer writes after building from ``onnx-file`` (mb.cpp DS6.2 l.717-724).

    >>> ds_engine_name("m.deepstream.onnx", 4, "int8")
    'm.deepstream.onnx_b4_gpu0_int8.engine'
    """
    device = f"dla{dla_core}" if dla_core is not None else f"gpu{gpu_id}"
    return f"{onnx_name}_b{int(batch)}_{device}_{precision}.engine"


def format_offsets(mean):
    """nvinfer ``offsets`` at the pixel scale: 255 * mean per channel, 6 significant digits.

    >>> format_offsets((0.485, 0.456, 0.406))
    [123.675, 116.28, 103.53]
    """
    return [float(f"{255.0 * m:.6g}") for m in mean]


def src_crop(spec, width, height):
    """nvvideoconvert ``src-crop`` (left:top:width:height) of edgealex's centre crop on a width x height frame.

    >>> from edgealex.preprocess import Preprocess
    >>> src_crop(Preprocess(), 1280, 720)
    '325:45:630:630'
    """
    y0, x0, h, w = spec.crop_box(height, width)
    return f"{x0}:{y0}:{w}:{h}"


def nvinfer_config(settings):
    """The ``[property]`` group of the nvinfer config, from a settings dict (see :func:`deploy_deepstream`).

    Keys only from gstnvinfer_property_parser.h (facts §1.2); unknown keys would only print a
    warning and keep defaults, so none are used.

    Returns:
        str: the key file text.
    """
    s = settings
    entries = [
        (COMMENT, "Gst-nvinfer: primary full-frame classifier written by edgealex deploy deepstream."),
        (COMMENT, "Comments stay on their own lines: GLib would read a trailing comment as part of the value."),
        (COMMENT, "Relative paths resolve against this file's folder."),
        ("gpu-id", 0),
        (COMMENT, "nvinfer builds (or rebuilds) the engine from onnx-file when model-engine-file is missing,"),
        (COMMENT, "fails to deserialize, or was built for another batch size, precision or device."),
        ("onnx-file", s["onnx_file"]),
        ("model-engine-file", s["engine_file"]),
    ]
    if s.get("int8_calib_file"):
        entries += [(COMMENT, "INT8 ranges: a TensorRT {} cache (header TRT-{}-EntropyCalibration2) for this ONNX's "
                              "tensor names".format(s["trt_version"], s["cache_number"])),
                    ("int8-calib-file", s["int8_calib_file"])]
    for note in s.get("int8_notes", []):
        entries.append((COMMENT, note))
    entries += [
        ("labelfile-path", LABELS),
        (COMMENT, "batch-size = number of sources; the engine's profile must allow it."),
        ("batch-size", s["batch"]),
        (COMMENT, "network-mode: 0 FP32, 1 INT8, 2 FP16"),
        ("network-mode", NETWORK_MODE[s["precision"]]),
    ]
    if s.get("dla_core") is not None:
        entries += [(COMMENT, "DLA core (from the engine's sidecar with --engine); layers the DLA cannot run go to the GPU"),
                    ("enable-dla", True),
                    ("use-dla-core", int(s["dla_core"]))]
    entries += [
        (COMMENT, "network-type 1 = classifier, process-mode 1 = full frame (primary)"),
        ("network-type", 1),
        ("process-mode", 1),
        ("gie-unique-id", GIE_ID),
        (COMMENT, "Preprocessing: y = net-scale-factor * (x - offsets[c]) with x in 0..255, so y = x/255 - mean;"),
        (COMMENT, "the per-channel 1/std ({}) is inside onnx-file (folded into the first convolution's weights;".format(
            ", ".join(f"{v:g}" for v in s["std"]))),
        (COMMENT, "a per-channel Mul before the input quantizer in a Q/DQ model)."),
        (COMMENT, "model-color-format: 0 RGB, 1 BGR"),
        ("model-color-format", COLOR_FORMAT[s["channel_order"]]),
        ("net-scale-factor", NET_SCALE_FACTOR),
        ("offsets", s["offsets"]),
        ("network-input-order", 0),
        (COMMENT, "edgealex centre-crops (resize {} + crop {}); nvinfer scales the whole frame: {}.".format(
            s["resize_short"], s["input_size"],
            "stretched (aspect not kept)" if s["resize"] == "stretch" else "letterboxed (black bars, centred)")),
        ("maintain-aspect-ratio", s["resize"] == "letterbox"),
        ("symmetric-padding", s["resize"] == "letterbox"),
        (COMMENT, "scaling-filter: 0 nearest, 1 bilinear, 2 GPU-cubic/VIC-5tap (default 6 = nearest)"),
        ("scaling-filter", s["scaling_filter"]),
        ("output-blob-names", s["output_name"]),
        (COMMENT, "A class is reported when its probability > classifier-threshold (strict); 0.0 always"),
        (COMMENT, "reports the top class. No label or no class above it = no metadata on that frame."),
        ("classifier-threshold", float(s["classifier_threshold"])),
    ]
    return format_key_file([("property", entries)])


def app_config(settings, sources):
    """The deepstream-app config: N sources -> streammux (batch N) -> the classifier -> fakesink.

    Group and key names from DS6.0 deepstream_config_file_parser.{h,c} and
    deepstream_app_config_parser.c (facts §1.8).

    Returns:
        str: the key file text.
    """
    s = settings
    count = len(sources)
    columns = min(count, 4)
    rows = (count + columns - 1) // columns
    groups = [
        ("application", [(COMMENT, "deepstream-app config written by edgealex deploy deepstream."),
                         (COMMENT, "Run: " + s["command"]),
                         ("enable-perf-measurement", True), ("perf-measurement-interval-sec", 5)]),
        ("tiled-display", [(COMMENT, "headless: set enable=1 and a display sink to watch the streams"),
                           ("enable", False), ("rows", rows), ("columns", columns),
                           ("width", 1280), ("height", 720)]),
    ]
    for index, source in enumerate(sources):
        entries = [(COMMENT, f"from --sources {source.uri}"),
                   (COMMENT, "type: 1 V4L2, 2 URI, 3 MultiURI, 4 RTSP, 5 CSI (deepstream_sources.h)"),
                   ("enable", True), ("type", source.type)]
        entries += source.entries
        if source.type in (SOURCE_URI, SOURCE_RTSP):
            entries.append(("gpu-id", 0))
        groups.append((f"source{index}", entries))
    groups += [
        ("streammux", [(COMMENT, "batch-size = number of sources; width/height = the cameras' native size avoids a "
                                 "second scaling"),
                       ("gpu-id", 0), ("live-source", any(src.live for src in sources)), ("batch-size", count),
                       ("batched-push-timeout", 40000), ("width", s["mux_width"]), ("height", s["mux_height"]),
                       ("enable-padding", False)]),
        ("primary-gie", [(COMMENT, "element properties set here override the nvinfer config file"),
                         ("enable", True), ("gpu-id", 0), ("gie-unique-id", GIE_ID), ("batch-size", count),
                         ("interval", 0), ("config-file", INFER_CONFIG)]),
        ("sink0", [(COMMENT, "type: 1 fakesink, 2 EGL, 3 file, 4 RTSP out, 6 msgconv+broker (deepstream_sinks.h)"),
                   ("enable", True), ("type", 1), ("sync", False)]),
    ]
    return format_key_file(groups)


@dataclass
class DeepStreamResult:
    """What ``edgealex deploy deepstream`` wrote and measured."""

    out_dir: str
    files: dict
    command: str
    precision: str
    batch: int
    batch_mode: str
    sources: List[str]
    parity: dict
    qdq_parity: Optional[dict] = None
    agreement: Optional[dict] = None
    engine: Optional[str] = None
    trt_version: Optional[str] = None
    deepstream_release: Optional[str] = None
    rewrite: dict = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def to_dict(self):
        return {"out_dir": self.out_dir, "files": dict(self.files), "command": self.command,
                "precision": self.precision, "batch": self.batch, "batch_mode": self.batch_mode,
                "sources": list(self.sources), "parity": self.parity, "qdq_parity": self.qdq_parity,
                "agreement": self.agreement, "engine": self.engine, "trt_version": self.trt_version,
                "deepstream_release": self.deepstream_release, "rewrite": self.rewrite,
                "warnings": list(self.warnings)}


def _check_engine(engine, record, source_sha256, sources):
    derived = ((record.model or {}).get("provenance") or {}).get("derived") or {}
    if record.onnx_sha256 == source_sha256:
        raise EdgeAlexError(engine, "was built from the exported ONNX itself, which expects std-normalised input and "
                            "returns logits; nvinfer feeds x/255 - mean and reads the outputs as probabilities",
                            "run this command without --engine, build the DeepStream ONNX it writes on the device "
                            "(edgealex build DIR/<model>.deepstream.onnx ...), then pass that engine")
    if derived.get("stage") != "deploy-deepstream" or derived.get("source_sha256") != source_sha256:
        raise EdgeAlexError(engine, "was not built from a DeepStream ONNX of this model (its sidecar records "
                            "{})".format("a DeepStream ONNX of another model" if derived.get("stage") ==
                                         "deploy-deepstream" else "no DeepStream rewrite"),
                            "build the <model>.deepstream.onnx this command writes for this model")
    capacity = profile_max_batch(record)
    if capacity < len(sources):
        raise EdgeAlexError(engine, f"accepts batches of at most {capacity} (its optimization profile) but {len(sources)} sources need "
                            f"batch {len(sources)}; nvinfer would throw it away and rebuild",
                            "write the DeepStream ONNX with --batch-mode static (batch = number of sources), build "
                            "it with edgealex build, and pass that engine")
    return capacity


def _resolve_trt(record, target, precision, force_int8, warnings, dla_core=None):
    """(TensorRT version or None, jetson?) from the engine sidecar, else the --target profile.

    A target's capability rules apply as in ``edgealex build`` (INT8 on a board without fast INT8,
    the Nano, is refused unless forced; nvinfer itself would fall back to FP16 there).
    """
    if record is not None:
        return record.backend_version, bool(record.soc)
    if target:
        from edgealex.target import load_target

        tgt = load_target(target)
        if not tgt.tensorrt:
            raise EdgeAlexError(f"--target {target}", "has no TensorRT, so DeepStream cannot run there",
                                "pass a Jetson or CUDA target (see `edgealex targets`)")
        warnings.extend(tgt.check_precision(precision, force=force_int8))
        tgt.check_dla(dla_core, precision, static_shapes=True)
        return tgt.tensorrt, tgt.kind == "jetson"
    return None, True


def _input_range_scale(mean):
    """Cache scale of nvinfer's input ``y = x/255 - mean`` over every pixel value: max |y| / 127."""
    amax = max(max(abs(m), abs(1.0 - m)) for m in mean)
    return amax / 127.0


def cache_file_name(stem, number):
    """``<stem>.deepstream.trt<N>.cache``: the carried-over cache for TensorRT number N."""
    return f"{stem}.deepstream.trt{number}.cache"


def _derive_caches(offer, derived, source_mean, source_input, stem):
    """TensorRT caches for the DeepStream ONNX: same scales, the input's replaced by the exact range of y.

    Returns:
        dict: version number -> (file name, text).
    """
    from edgealex.calib.cache import format_cache, read_cache

    out = {}
    for number, path in sorted(offer.caches.items()):
        cache = read_cache(path)
        scales = dict(cache.scales)
        if source_input not in scales:
            raise EdgeAlexError(path, f"has no range for the model input {source_input!r}",
                                "re-run `edgealex calibrate` for this model")
        renamed = derived.renamed.get(source_input)
        if renamed:
            scales[renamed] = scales[source_input]  # the Mul's output is the old input
        scales[source_input] = _input_range_scale(source_mean)
        out[int(number)] = (cache_file_name(stem, number),
                            format_cache(scales, cache.version_number, algorithm=cache.algorithm))
    return out


def deploy_deepstream(model, out_dir, sources=None, engine=None, calib=None, precision=None, target=None,
                      resize="stretch", batch_mode="dynamic", classifier_threshold=0.0, images=None,
                      max_images=500, mux_size=(1280, 720), fps=30, force_int8=False, dla_core=None):
    """Write a DeepStream deployment of an exported classifier into ``out_dir``.

    Args:
        model (str): the ONNX from ``edgealex export`` (labels and preprocessing in its metadata).
        out_dir (str): output folder (created).
        sources (list of str or None): source URIs (csi://N, /dev/videoN, rtsp://..., file:///...,
            video paths); None: one DeepStream sample stream. Their number is the batch size.
        engine (str or None): a TensorRT engine ``edgealex build`` made from the DeepStream ONNX this
            command writes (sidecar checked: same source model, batch capacity >= number of sources).
        calib (str or None): ``edgealex calibrate`` output folder for this model (INT8).
        precision (str or None): fp32, fp16 or int8; default: the engine's, else int8 with
            ``calib``, else fp16.
        target (str or None): target profile; gives the TensorRT version when no engine is given
            (which INT8 cache, which DeepStream release).
        resize (str): "stretch" (nvinfer's default) or "letterbox" (maintain-aspect-ratio +
            symmetric-padding). Defaults to "stretch".
        batch_mode (str): "dynamic" batch axis (nvinfer builds a profile up to batch-size) or
            "static" batch = number of sources (for ``edgealex build``, whose profile is the ONNX's
            shape, and DLA). Ignored with ``engine`` (taken from its sidecar).
        classifier_threshold (float): nvinfer's classifier-threshold (strict >). Defaults to 0.0.
        images (str or None): holdout images (folder or manifest) for the stretch-vs-crop
            agreement; default: the calibration's holdout when ``calib`` is given.
        max_images (int): at most this many images are measured. Defaults to 500.
        mux_size (tuple): (width, height) of streammux and the cameras. Defaults to (1280, 720).
        fps (int): camera frame rate. Defaults to 30.
        force_int8 (bool): INT8 for a target without fast INT8 (Nano) anyway. Defaults to False.
        dla_core (int or None): let nvinfer build for this DLA core (``enable-dla``/``use-dla-core``);
            DLA needs static shapes, so the batch axis becomes static. With ``engine`` the core comes
            from its sidecar. Defaults to None (GPU).

    Returns:
        DeepStreamResult

    Raises:
        EdgeAlexError: bad model, sources, engine, calibration or options; a failed parity check
            (nothing is written then).
    """
    from edgealex.build.calibinput import read_calib_arg
    from edgealex.deploy import graph
    from edgealex.modelinfo import from_model_proto, load_onnx

    model = str(model)
    out_dir = str(out_dir)
    if resize not in RESIZE_MODES:
        raise EdgeAlexError(f"--resize {resize}", "unknown resize mode", "use stretch or letterbox")
    if batch_mode not in BATCH_MODES:
        raise EdgeAlexError(f"--batch-mode {batch_mode}", "unknown batch mode", "use dynamic or static")
    if precision is not None and precision not in NETWORK_MODE:
        raise EdgeAlexError(f"--precision {precision}", "unknown precision", "use fp32, fp16 or int8")
    if not 0.0 <= float(classifier_threshold) < 1.0:
        raise EdgeAlexError(f"--classifier-threshold {classifier_threshold}",
                            "must be in [0, 1) (it is compared with a probability)", "use e.g. 0.0 or 0.5")
    warnings = []
    proto = load_onnx(model)
    info = from_model_proto(proto, model, allow_default=True)
    if info.from_defaults:
        warnings.append("the ONNX has no edgealex metadata: ImageNet preprocessing and labels class_0.. assumed")
    labels_text = nvinfer_labels_text(info.labels)
    source_bytes = proto.SerializeToString()
    source_sha256 = sha256_file(model)
    src_list = [parse_source(uri, mux_size[0], mux_size[1], fps) for uri in (sources or [DEFAULT_SOURCE])]
    count = len(src_list)

    record = None
    if engine:
        record = load_engine_record(str(engine), "tensorrt", "--engine")
        _check_engine(str(engine), record, source_sha256, src_list)
        batch = None if engine_batch_is_dynamic(record) else int(record.model.get("batch"))
        batch_mode = "dynamic" if batch is None else "static"
        if precision and precision != record.precision:
            raise EdgeAlexError(f"--precision {precision}", f"the engine is {record.precision}",
                                "leave out --precision (it comes from the engine)")
        precision = record.precision
        if dla_core is not None and dla_core != record.dla_core:
            raise EdgeAlexError(f"--dla {dla_core}", "the engine was built for {}".format(
                f"DLA core {record.dla_core}" if record.dla_core is not None else "the GPU"),
                "leave out --dla (it comes from the engine)")
        dla_core = record.dla_core
    else:
        precision = precision or ("int8" if calib else "fp16")
        if dla_core is not None:
            if precision == "fp32":
                raise EdgeAlexError("--precision fp32", "DLA runs only FP16 or INT8", "use --precision fp16 or int8")
            if batch_mode == "dynamic":
                warnings.append("DLA needs static shapes: the DeepStream ONNX gets a static batch of "
                                f"{count} (the number of sources)")
                batch_mode = "static"
        batch = None if batch_mode == "dynamic" else count
    trt_version, jetson = _resolve_trt(record, target, precision, force_int8, warnings, dla_core)
    offer = read_calib_arg(str(calib), source_sha256) if calib else None
    if offer is not None and offer.kind != "output":
        raise EdgeAlexError(str(calib), "is not an `edgealex calibrate` output folder",
                            "pass the folder `edgealex calibrate -o` wrote for this model")
    if precision == "int8" and record is None and offer is None:
        raise EdgeAlexError("--precision int8", "INT8 needs the calibration of this model (without it nvinfer "
                            "falls back to FP16)", "pass --calib DIR from `edgealex calibrate`")

    # 1. The DeepStream ONNX and its parity with edgealex's own pipeline.
    spec = info.preprocess
    offsets = format_offsets(spec.mean)
    derived = graph.derive_onnx(proto, info, fold_std=True, softmax=True, batch=batch, stage="deploy-deepstream",
                                source_sha256=source_sha256, path=model)

    def nvinfer_input(pixels):
        return graph.nvinfer_input(pixels, NET_SCALE_FACTOR, offsets)

    parity = graph.check_parity(graph.parity(source_bytes, info, derived, nvinfer_input, samples=max(4, count),
                                             batch=count, path=model), "DeepStream ONNX", model)
    stem = os.path.splitext(os.path.basename(model))[0]
    onnx_name = stem + ".deepstream.onnx"
    onnx_bytes = derived.proto.SerializeToString()
    onnx_sha256 = sha256_bytes(onnx_bytes)
    if record is not None and record.onnx_sha256 != onnx_sha256:
        warnings.append("the engine was built from a DeepStream ONNX of this model that differs from the one written "
                        "now (another edgealex version or options): nvinfer uses the engine and rebuilds from the new "
                        "ONNX only when the engine does not load")

    # 2. INT8: caches and the Q/DQ model carried over to the DeepStream ONNX.
    calib_files, cache_names, qdq_parity, qdq_name = {}, {}, None, None
    if offer is not None:
        for number, (name, text) in _derive_caches(offer, derived, spec.mean, info.input_name, stem).items():
            calib_files[name] = text.encode("utf-8")
            cache_names[str(number)] = name
        if offer.qdq_onnx:
            qdq = load_onnx(offer.qdq_onnx, "Q/DQ ONNX")
            qdq_info = from_model_proto(qdq, offer.qdq_onnx, allow_default=True)
            qdq_info.input_name, qdq_info.output_name = info.input_name, info.output_name
            qdq_derived = graph.derive_onnx(qdq, qdq_info, fold_std=True, softmax=True, batch=batch,
                                            stage="deploy-deepstream-qdq", source_sha256=sha256_file(offer.qdq_onnx),
                                            path=offer.qdq_onnx)
            qdq_parity = graph.check_parity(graph.parity(qdq.SerializeToString(), qdq_info,
                                                         qdq_derived, nvinfer_input, samples=max(4, count),
                                                         batch=count, path=offer.qdq_onnx),
                                            "DeepStream Q/DQ ONNX", offer.qdq_onnx)
            qdq_name = stem + ".deepstream.int8-qdq.onnx"
            calib_files[qdq_name] = qdq_derived.proto.SerializeToString()
    int8_calib_file, cache_number, int8_notes = None, None, []
    onnx_file = onnx_name
    if precision == "int8" and record is None:
        from edgealex.target import trt_version_number

        numbers = sorted(int(n) for n in offer.caches)
        if trt_version is not None:
            major = int(str(trt_version).split(".")[0])
            cache_number = trt_version_number(trt_version)
            if major >= 10:
                if not qdq_name:
                    raise EdgeAlexError(str(calib), f"has no Q/DQ ONNX, which INT8 on TensorRT {trt_version} needs",
                                        "re-run `edgealex calibrate` for this model")
                onnx_file = CALIB_DIR + "/" + qdq_name
                cache_number = None
                int8_notes = [
                    f"TensorRT {trt_version}: INT8 from the Q/DQ ONNX (explicit quantization). nvinfer sets kINT8 only with an",
                    "int8-calib-file; how TensorRT treats Q/DQ without it is unverified. Safest: build the engine with",
                    f"edgealex build {onnx_name} --precision int8 --calib {CALIB_DIR} (on the device) and pass it with --engine."]
                warnings.append(f"INT8 on TensorRT {trt_version} without --engine: nvinfer builds from the Q/DQ ONNX (unverified "
                                "path); prebuild the engine with edgealex build and pass --engine")
            elif cache_number not in offer.caches:
                raise EdgeAlexError(str(calib), "has no calibration cache for TensorRT {} ({}); it has {}".format(
                    trt_version, cache_number, ", ".join(str(n) for n in numbers) or "none"),
                    f"re-run `edgealex calibrate --trt-version {trt_version}`")
        elif len(numbers) == 1:
            cache_number = numbers[0]
            warnings.append(f"no --target: using the only calibration cache, for TensorRT number {cache_number}")
        else:
            raise EdgeAlexError("--calib", "holds caches for several TensorRT versions ({}) and nothing says which one "
                                "the device runs".format(", ".join(str(n) for n in numbers)),
                                "pass --target (e.g. --target nano) or --engine")
        if cache_number is not None:
            int8_calib_file = CALIB_DIR + "/" + cache_file_name(stem, cache_number)
    elif precision == "int8" and offer is not None and trt_version is not None:
        # The engine carries its INT8 ranges; the cache only matters if nvinfer has to rebuild it.
        from edgealex.target import trt_version_number

        number = trt_version_number(trt_version)
        if int(str(trt_version).split(".")[0]) < 10 and number in offer.caches:
            cache_number = number
            int8_calib_file = CALIB_DIR + "/" + cache_file_name(stem, number)

    # 3. Stretch vs crop, measured.
    agreement = measure_agreement(source_bytes, info, derived, resize, offsets, images=images, offer=offer,
                                  max_images=max_images, batch=count)

    # 4. Configs.
    engine_file = ds_engine_name(onnx_file.split("/")[-1], count if batch is None else batch, precision,
                                 dla_core)
    if onnx_file != onnx_name:
        engine_file = CALIB_DIR + "/" + engine_file
    if record is not None:
        engine_file = os.path.basename(str(engine))
    ds_release = deepstream_release_for(trt_version, jetson) if trt_version else None
    command = f"cd {shlex.quote(out_dir)} && deepstream-app -c {APP_CONFIG}"
    settings = {
        "onnx_file": onnx_file, "engine_file": engine_file, "int8_calib_file": int8_calib_file,
        "trt_version": trt_version, "cache_number": cache_number, "int8_notes": int8_notes, "batch": count,
        "precision": precision, "dla_core": dla_core, "std": spec.std,
        "channel_order": spec.channel_order, "offsets": offsets, "input_size": spec.input_size,
        "resize_short": spec.resize, "resize": resize, "scaling_filter": SCALING_FILTER[spec.interpolation],
        "output_name": derived.info.output_name, "classifier_threshold": classifier_threshold,
        "mux_width": int(mux_size[0]), "mux_height": int(mux_size[1]), "command": command,
        "src_crop": src_crop(spec, int(mux_size[0]), int(mux_size[1])),
    }
    infer_text = nvinfer_config(settings)
    app_text = app_config(settings, src_list)

    # 5. Write: every file into a staging folder inside out_dir, swapped in at the end, so a failure
    # (a full disk, Ctrl-C, SIGTERM) leaves the previous deployment there exactly as it was.
    _check_out_dir(out_dir, calib)
    files = {}
    inputs = [model, engine, sidecar_path(str(engine)) if engine else None, calib, images]
    with staging_dir(out_dir, "DeepStream deployment",
                     owned=lambda folder: _deployment_files(folder, onnx_name, onnx_sha256, inputs)) as stage:
        def put(rel, write, data):
            write(os.path.join(stage, rel), data)
            return os.path.join(os.path.abspath(out_dir), rel)

        onnx_path = os.path.join(out_dir, onnx_name)
        files["onnx"] = put(onnx_name, write_bytes_atomic, onnx_bytes)
        files["onnx_sidecar"] = put(sidecar_path(onnx_name), write_json_atomic, {
            "artifact": "onnx", "path": os.path.abspath(onnx_path), "sha256": onnx_sha256,
            "model": derived.info.to_dict(), "parity": parity, "derived_from": os.path.abspath(model),
            "derived_from_sha256": source_sha256, "rewrite": derived.to_dict()})
        if calib_files:
            os.mkdir(os.path.join(stage, CALIB_DIR))
            for name, data in sorted(calib_files.items()):
                files["calib/" + name] = put(os.path.join(CALIB_DIR, name), write_bytes_atomic, data)
            files["calib/calibration.json"] = put(os.path.join(CALIB_DIR, "calibration.json"), write_json_atomic,
                                                  _calib_manifest(offer, onnx_sha256, derived, cache_names, qdq_name,
                                                                  qdq_parity))
        if record is not None:
            engine_name = os.path.basename(str(engine))
            files["engine"] = put(engine_name, _copy_file, str(engine))
            files["engine_sidecar"] = put(sidecar_path(engine_name), _copy_file, sidecar_path(str(engine)))
        files["labels"] = put(LABELS, write_text_atomic, labels_text)
        files["infer_config"] = put(INFER_CONFIG, write_text_atomic, infer_text)
        files["app_config"] = put(APP_CONFIG, write_text_atomic, app_text)
        result = DeepStreamResult(
            out_dir=os.path.abspath(out_dir), files=files, command=command, precision=precision, batch=count,
            batch_mode=batch_mode, sources=[s.uri for s in src_list], parity=parity, qdq_parity=qdq_parity,
            agreement=agreement, engine=files.get("engine"), trt_version=trt_version,
            deepstream_release=ds_release[0] if ds_release else None, rewrite=derived.to_dict(), warnings=warnings)
        files["readme"] = put("README.md", write_text_atomic, readme_text(result, info, settings))
        manifest = result.to_dict()
        manifest.update({"artifact": "deepstream-deployment", "model": os.path.abspath(model),
                         "model_sha256": source_sha256, "environment": environment_summary()})
        files["manifest"] = put(MANIFEST, write_json_atomic, manifest)
    for text in warnings:
        logger.warning("%s", text)
    return result


def _copy_file(dst, src):
    """Copy ``src`` to ``dst`` (a path in the staging folder; the engine may be the one in the output folder)."""
    shutil.copyfile(src, dst)


def _check_out_dir(out_dir, calib):
    """Refuse an output folder whose ``calib/`` is the calibration this command reads (it would be replaced)."""
    if calib and os.path.realpath(str(calib)) == os.path.realpath(os.path.join(out_dir, CALIB_DIR)):
        raise EdgeAlexError(str(calib), f"is the {CALIB_DIR}/ folder of the output folder, which the deployment "
                                        "replaces with the calibration carried over to the DeepStream ONNX",
                            "keep the calibration outside the output folder (or pass another -o)")


def _deployment_files(out_dir, onnx_name, onnx_sha256, inputs=()):
    """Entries of a previous DeepStream deployment in ``out_dir`` that a new one replaces (names only).

    The names this command writes, the files the previous ``deploy.json`` lists, and the engine
    nvinfer built from the previous DeepStream ONNX when that ONNX is not the one written now (nvinfer
    loads ``model-engine-file`` whenever it exists and never compares it with ``onnx-file``, so a stale
    engine would silently run the old model). Other files in the folder are left alone, and so are
    ``inputs`` (paths this run reads: a previous deployment's ONNX deployed again, a copied engine
    passed with --engine) and the folders that hold them.
    """
    if not os.path.isdir(out_dir):
        return []
    found = {onnx_name, sidecar_path(onnx_name), CALIB_DIR, LABELS, INFER_CONFIG, APP_CONFIG, "README.md", MANIFEST}
    previous = {}
    manifest = os.path.join(out_dir, MANIFEST)
    if os.path.isfile(manifest):
        try:
            previous = read_json(manifest, "previous deployment manifest")
        except EdgeAlexError:
            previous = {}
    listed = previous.get("files") if isinstance(previous, dict) else None
    for path in (listed.values() if isinstance(listed, dict) else ()):
        if isinstance(path, str) and os.path.isabs(path):
            rel = os.path.relpath(path, os.path.abspath(out_dir))
            if not rel.startswith(os.pardir) and rel != os.curdir:
                found.add(rel.split(os.sep)[0])
    old_sidecar = os.path.join(out_dir, sidecar_path(onnx_name))
    stale = True
    if os.path.isfile(old_sidecar):
        try:
            stale = read_json(old_sidecar, "previous DeepStream ONNX sidecar").get("sha256") != onnx_sha256
        except (EdgeAlexError, AttributeError):
            stale = True
    if stale:  # nvinfer's engines built from the previous ONNX (ds_engine_name), next to it
        found.update(name for name in os.listdir(out_dir)
                     if name.startswith(onnx_name + "_b") and name.endswith(".engine"))
    read = [os.path.realpath(str(p)) for p in inputs if p]

    def is_input(name):
        real = os.path.realpath(os.path.join(out_dir, name))
        return any(p == real or p.startswith(real + os.sep) for p in read)

    return sorted(n for n in found if os.path.lexists(os.path.join(out_dir, n)) and not is_input(n))


def _calib_manifest(offer, onnx_sha256, derived, caches, qdq_name, qdq_parity):
    record = dict(offer.record)
    keep = ("method", "method_settings", "count", "agreement", "agreements", "accuracy", "holdout_images",
            "min_agreement", "gate_passed", "images_manifest_sha256", "holdout_manifest_sha256", "cache_algorithm",
            "onnxruntime_version")
    out = {key: record[key] for key in keep if key in record}
    out.update({
        "artifact": "calibration", "schema": 1, "paths_relative_to": "the folder of this file",
        "model_sha256": onnx_sha256, "model_info": derived.info.to_dict(), "qdq_onnx": qdq_name,
        "ort_int8_onnx": None, "caches": caches,
        "derived_for": "deepstream: the calibration of {} carried over to its DeepStream ONNX; every tensor keeps "
                       "its range except the input, whose range is the exact range of x/255 - mean".format(
                           record.get("model_path", "the source model")),
        "source_calibration": offer.record.get("dir") if isinstance(offer.record, dict) else None,
        "qdq_parity": qdq_parity,
    })
    return out


def measure_agreement(source_bytes, info, derived, resize, offsets, images=None, offer=None, max_images=500,
                      batch=1):
    """Top-1 agreement between nvinfer's preprocessing and edgealex's centre crop on held-out images.

    edgealex: :func:`edgealex.preprocess.preprocess` (short side to ``resize``, centre crop) ->
    source ONNX -> softmax. nvinfer, as configured: the whole image scaled to the input (stretched,
    or letterboxed with black, centred bars), bilinear (``scaling-filter=1``), channels in the
    model's order, ``net-scale-factor * (x - offsets)`` -> DeepStream ONNX. streammux is assumed to
    run at the cameras' native size (no second scaling). Interpolation differs slightly from the
    GPU/VIC scaler; the geometry is what this measures.

    Args:
        images (str or None): folder (class sub-folders = ground truth) or manifest.
        offer (CalibrationOffer or None): its holdout manifest is used when ``images`` is None.

    Returns:
        dict: ``{"measured": True, "images", "agreement", "accuracy_edgealex", "accuracy_nvinfer",
        "source", "resize"}`` or ``{"measured": False, "reason", "how"}``.
    """
    from edgealex.deploy import graph
    from edgealex.imagefolder import load_image_set

    how = ("pass --images DIR (held-out images, class sub-folders = ground truth) or --calib DIR from "
           "`edgealex calibrate`, whose holdout is used")
    source = images
    if source is None and offer is not None and offer.record.get("holdout_manifest"):
        source = offer.record["holdout_manifest"]
    if source is None:
        return {"measured": False, "reason": "no images given", "how": how, "resize": resize}
    try:
        image_set = load_image_set(str(source), verify=False)
    except EdgeAlexError as exc:
        if images is not None:
            raise
        return {"measured": False, "reason": f"the calibration's holdout is unreadable ({exc.what})",
                "how": how, "resize": resize}
    from edgealex._optional import require

    np = require("numpy")
    ort = require("onnxruntime", "edgealex deploy (agreement)")
    onnx = require("onnx", "edgealex deploy")
    from edgealex.preprocess import preprocess, read_image, to_bgr_uint8

    spec = info.preprocess
    items = list(image_set.items)[:int(max_images)]
    ours, theirs, truth, skipped = [], [], [], 0
    for path, cls in items:
        try:
            image = to_bgr_uint8(read_image(path))
        except EdgeAlexError:
            skipped += 1
            continue
        ours.append(preprocess(image, spec))
        theirs.append(nvinfer_pixels(image, spec.input_size, resize, spec.channel_order))
        truth.append(info.labels.index(cls) if cls in info.labels else -1)
    if not ours:
        return {"measured": False, "reason": f"no readable image in {source}", "how": how, "resize": resize}
    source_model = onnx.load_from_string(source_bytes)
    src = graph._session(ort, source_bytes)
    ref = graph._run(src, np.stack(ours), graph.static_batch_of(source_model))
    der = graph._session(ort, derived.proto.SerializeToString())
    got = graph._run(der, graph.nvinfer_input(np.stack(theirs), NET_SCALE_FACTOR, offsets), derived.info.batch or batch)
    top_ours, top_theirs = np.argmax(ref, axis=1), np.argmax(got, axis=1)
    truth = np.asarray(truth)
    known = truth >= 0
    result = {"measured": True, "images": int(len(ours)), "skipped": skipped, "source": os.path.abspath(str(source)),
              "resize": resize, "agreement": float(np.mean(top_ours == top_theirs))}
    if known.any():
        result["accuracy_edgealex"] = float(np.mean(top_ours[known] == truth[known]))
        result["accuracy_nvinfer"] = float(np.mean(top_theirs[known] == truth[known]))
        result["labelled_images"] = int(known.sum())
    return result


def nvinfer_pixels(image, size, resize, channel_order):
    """One BGR uint8 frame scaled as nvinfer scales it -> float32 (3, S, S) pixels in 0..255.

    ``stretch``: the whole frame to S x S (``maintain-aspect-ratio=0``). ``letterbox``: scaled to
    fit, black bars on both sides (``maintain-aspect-ratio=1``, ``symmetric-padding=1``).
    Bilinear, as ``scaling-filter=1``.
    """
    from edgealex._optional import require

    np = require("numpy")
    cv2 = require("cv2", "image preprocessing")
    height, width = image.shape[:2]
    if resize == "stretch":
        scaled = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    else:
        ratio = min(size / float(width), size / float(height))
        new_w, new_h = max(1, int(round(width * ratio))), max(1, int(round(height * ratio)))
        inner = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        scaled = np.zeros((size, size, 3), dtype=np.uint8)
        y0, x0 = (size - new_h) // 2, (size - new_w) // 2
        scaled[y0:y0 + new_h, x0:x0 + new_w] = inner
    if channel_order == "RGB":
        scaled = scaled[:, :, ::-1]
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)).astype(np.float32)


def agreement_sentence(agreement):
    """The line the README and the command print about stretch vs crop."""
    if not agreement or not agreement.get("measured"):
        reason = (agreement or {}).get("reason", "no images")
        how = (agreement or {}).get("how", "pass --images DIR")
        return f"Stretch-vs-crop agreement: not measured ({reason}); to measure it, {how}."
    text = ("Stretch-vs-crop agreement: nvinfer's preprocessing ({}) and edgealex's centre crop give the same top-1 "
            "class on {:.1%} of {} held-out images".format(agreement["resize"], agreement["agreement"],
                                                          agreement["images"]))
    if "accuracy_edgealex" in agreement:
        text += " (accuracy {:.1%} with the crop, {:.1%} as nvinfer sees it)".format(
            agreement["accuracy_edgealex"], agreement["accuracy_nvinfer"])
    if agreement.get("skipped"):
        text += "; {} unreadable image file(s) skipped".format(agreement["skipped"])
    return text + "."


def readme_text(result, info, settings):
    """The generated README.md of a DeepStream deployment."""
    lines = [
        "# DeepStream deployment of {} ({} classes)".format(os.path.basename(result.files["onnx"]), len(info.labels)),
        "",
        "Written by `edgealex deploy deepstream`. Run on the device, from this folder:",
        "",
        "```bash",
        result.command,
        "```",
        "",
        f"{len(result.sources)} source(s) -> nvstreammux (batch {result.batch}) -> Gst-nvinfer primary full-frame "
        f"classifier ({result.precision.upper()}) -> fakesink; per-stream fps every 5 s.",
        "",
        "| file | what |",
        "|---|---|",
        "| `{}` | the exported ONNX, 1/std folded into `{}`, Softmax appended (`{}`), batch axis {} |".format(
            os.path.basename(result.files["onnx"]), result.rewrite.get("folded_into") or "a Mul at the input",
            settings["output_name"], "dynamic" if result.batch_mode == "dynamic" else f"static {result.batch}"),
        f"| `{INFER_CONFIG}` | Gst-nvinfer config |",
        f"| `{LABELS}` | labels in nvinfer's classifier format: one `;`-separated line |",
        f"| `{APP_CONFIG}` | deepstream-app config |",
    ]
    if any(k.startswith("calib/") for k in result.files):
        lines.append("| `calib/` | INT8 calibration carried over to the DeepStream ONNX (`edgealex build "
                     "{} --precision int8 --calib calib` accepts it) |".format(os.path.basename(result.files["onnx"])))
    if result.engine:
        lines.append(f"| `{os.path.basename(result.engine)}` | the TensorRT engine (sidecar checked: built from this "
                     "model's DeepStream ONNX) |")
    lines += [
        "",
        "## Checks",
        "",
        "- Parity: the same pixels through nvinfer's arithmetic (`net-scale-factor` 1/255, `offsets` {}) and the "
        "DeepStream ONNX give the probabilities of edgealex's own pipeline within {:.2g} (max abs diff; limit 1e-4; "
        "top-1 agreement {:.0%}, {} inputs, ONNX Runtime).".format(
            ";".join(f"{v:g}" for v in settings["offsets"]), result.parity["max_abs_diff"],
            result.parity["top1_agreement"], result.parity["samples"]),
    ]
    if result.qdq_parity:
        lines.append("- The Q/DQ INT8 model, rewritten the same way: max abs diff {:.2g} of probabilities vs "
                     "the calibrated Q/DQ model.".format(result.qdq_parity["max_abs_diff"]))
    lines += ["- " + agreement_sentence(result.agreement), ""]
    lines += [
        "## What differs from `edgealex run`",
        "",
        "- edgealex scales the short side to {} and crops the centre {}x{}; nvinfer scales the whole frame "
        "({}). To crop like edgealex, crop upstream with nvvideoconvert: for {}x{} frames edgealex's crop is "
        "`src-crop=\"{}\"` (left:top:width:height); or fine-tune on stretched frames.".format(
            settings["resize_short"], settings["input_size"], settings["input_size"],
            "stretched" if settings["resize"] == "stretch" else "letterboxed", settings["mux_width"],
            settings["mux_height"], settings["src_crop"]),
        f"- nvinfer uses the GPU or VIC scaler (`scaling-filter=1`, bilinear); edgealex uses OpenCV's {info.preprocess.interpolation}.",
        f"- `{os.path.basename(result.files['onnx'])}` outputs probabilities from x/255 - mean: it is for nvinfer, not "
        "for `edgealex run` (which takes the exported ONNX or an engine built from it).",
        "- A frame gets classifier metadata only when a class passes `classifier-threshold` and has a label: "
        "treat a frame without metadata as unknown, never as pass.",
        "",
        "## Versions",
        "",
    ]
    if result.trt_version:
        lines.append("- TensorRT {}: {}.".format(result.trt_version, result.deepstream_release or
                                                "no DeepStream release known to edgealex for it"))
    else:
        lines.append("- No target given: nvinfer builds the engine on the device with its own TensorRT.")
    lines += ["- Engines and INT8 caches are tied to one TensorRT version; nvinfer rebuilds from `onnx-file` when "
              "the engine does not load.", ""]
    for text in result.warnings:
        lines.append("Warning: " + text)
    return "\n".join(lines).rstrip() + "\n"
