"""Pick the runner for an artifact: ``load_runner("model.onnx")``, ``load_runner("x.engine")``.

=====================================  ====================================================
artifact                               runner
=====================================  ====================================================
``.onnx`` with an engine sidecar       :class:`OrtRunner` with the sidecar's runtime options
                                       (file checked against the sidecar's sha256)
``.onnx`` without one (plain export)   :class:`OrtRunner`, CPU, labels from the ONNX metadata
``.engine`` / ``.plan`` / ``.trt``     :class:`TrtRunner` after the sidecar check against this
                                       machine (TensorRT version, CUDA device name)
=====================================  ====================================================

Backends are imported only when a runner of that kind is requested.
"""

import inspect
import os

from edgealex.artifacts import check_input_file, read_json, sidecar_path, validate_sidecar
from edgealex.errors import EdgeAlexError

TRT_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)


def _split_options(cls, options, path):
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "record")]
    accepted = [p for p in accepted if p not in ("model_path", "engine_path")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EdgeAlexError(path, "option(s) {} do not apply to {}".format(", ".join(unknown), cls.__name__),
                            "options for this runner: " + ", ".join(accepted))
    return options


def _check_target(path, record):
    """Refuse an engine whose sidecar names another known target than the one detected here."""
    from edgealex.target import load_target, resolve_target

    if not record.target:
        return
    try:
        load_target(record.target)  # a target edgealex knows (a custom name is not compared)
        here = resolve_target(None)
    except EdgeAlexError:
        return
    if here.name != record.target:
        raise EdgeAlexError(path, f"was built for {record.target} (TensorRT {record.backend_version}, "
                            f"{record.device_name}) but this machine is '{here.name}'",
            "TensorRT engines run only where they were built: copy the ONNX here and run "
            f"`edgealex build model.onnx` (target {here.name}), or run this engine on the {record.target}")


def load_runner(path, verify_hash=True, **options):
    """The runner for an engine or ONNX file, configured from its sidecar.

    Args:
        path (str): ``.onnx`` (ONNX Runtime) or ``.engine``/``.plan``/``.trt`` (TensorRT).
        verify_hash (bool): compare the file's sha256 with its sidecar. Defaults to True.
        **options: runner options overriding the sidecar's, e.g. ``providers=["cuda"]``,
            ``intra_op_num_threads=2`` (:class:`OrtRunner`) or ``dla_core=1``,
            ``cuda_backend="pycuda"`` (:class:`TrtRunner`).

    Returns:
        Runner: not yet active; use it as a context manager. ``runner.model_info`` holds the
        labels and preprocessing, ``runner.record`` the sidecar (or None).

    Raises:
        EdgeAlexError: missing file (or a folder in its place), unknown artifact type, a sidecar that does not match the file
            or this machine, or an option the runner does not take.
    """
    from edgealex.engine import EngineRecord, check_record, read_record

    path = str(path)
    suffix = os.path.splitext(path)[1].lower()
    check_input_file(path, "ONNX model" if suffix in ONNX_SUFFIXES else "engine" if suffix else "file",
                     "build one with `edgealex build` or export an ONNX with `edgealex export`")
    if suffix not in TRT_SUFFIXES:  # a training checkpoint passed as a model: export it first
        from edgealex.modelinfo import refuse_pytorch_checkpoint

        refuse_pytorch_checkpoint(path, "an ONNX model or an engine")
    if suffix in ONNX_SUFFIXES:
        from edgealex.runtime.ort import OrtRunner

        record = None
        side = sidecar_path(path)
        if os.path.isfile(side):
            data = validate_sidecar(read_json(side, "sidecar", expect=None), side, require_sha256=False,
                                    fix="rebuild the engine with `edgealex build` (or remove the stray sidecar)")
            if data.get("artifact") == "engine":
                record = EngineRecord.from_dict(data, source=side)
                if record.backend != "ort":
                    raise EdgeAlexError(path, f"its sidecar describes a {record.backend} engine, not an ONNX Runtime one", "pass the engine file the sidecar belongs to, or rebuild with `edgealex build`")
                check_record(path, record, verify_hash=verify_hash)
        return OrtRunner(path, record=record, **_split_options(OrtRunner, options, path))
    if suffix in TRT_SUFFIXES:
        from edgealex._optional import require
        from edgealex.runtime.cudamem import current_device_name
        from edgealex.runtime.trt import TrtRunner

        record = read_record(path)
        if record.backend != "tensorrt":
            raise EdgeAlexError(path, f"its sidecar describes a {record.backend} engine, not a TensorRT one",
                                "rebuild it with `edgealex build --backend tensorrt`")
        # File against sidecar first: that answer needs no TensorRT and no GPU.
        check_record(path, record, verify_hash=verify_hash)
        # Then the board it was built for: on another machine that is the reason it cannot run,
        # whatever else (TensorRT, CUDA) is missing here.
        _check_target(path, record)
        _split_options(TrtRunner, options, path)
        trt = require("tensorrt", "the TensorRT backend")
        device_name = current_device_name(options.get("cuda_backend"), options.get("device", 0))
        check_record(path, record, tensorrt_version=trt.__version__, device_name=device_name, verify_hash=False)
        return TrtRunner(path, record=record, **options)
    raise EdgeAlexError(path, "unknown artifact type '{}'".format(suffix or "(no extension)"),
                        "pass an ONNX Runtime engine (.onnx) or a TensorRT engine (.engine/.plan)")
