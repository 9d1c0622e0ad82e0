"""Engine artifacts: naming, the provenance sidecar, and the compatibility check on load.

An *engine* is what ``edgealex build`` produces and ``run``/``bench`` load:

- TensorRT: a serialized ``.engine`` plan (not portable across TensorRT versions or GPUs).
- ONNX Runtime: an ``.onnx`` file (the FP32 ONNX or the INT8 Q/DQ model) plus the session
  options that make it fast, recorded in the sidecar.

Every engine has a sidecar ``<engine>.json`` (:class:`EngineRecord`), written atomically next to
it. Loading compares the record with the file and the machine and refuses a mismatch with a reason.
"""

import os
import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from edgealex.artifacts import (check_input_file, environment_summary, read_json, sha256_file, sidecar_path, validate_sidecar,
                                write_json_atomic)
from edgealex.errors import EdgeAlexError

SCHEMA_VERSION = 1
BACKENDS = ("ort", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
ENGINE_SUFFIX = {"ort": ".onnx", "tensorrt": ".engine"}


@dataclass
class EngineRecord:
    """The sidecar of an engine: how it was made and for which machine.

    Args:
        backend (str): "ort" or "tensorrt".
        precision (str): "fp32", "fp16" or "int8".
        device (str): "cpu", "gpu", "dla0" or "dla1".
        target (str): target profile name it was built for, e.g. "agx-xavier".
        model (dict): the :class:`edgealex.modelinfo.ModelInfo` record (labels, preprocessing).
        onnx_sha256 (str): sha256 of the ONNX the engine was built from.
        input_shape (list): static input shape, e.g. [1, 3, 224, 224] (``None`` for a dynamic dim).
        builder (str): "ort", "python" (TensorRT API) or "trtexec".
        backend_version (str): TensorRT or ONNX Runtime version that built it.
        dla_core (int): DLA core, None for GPU/CPU engines.
        gpu_fallback (bool): DLA layers may fall back to the GPU.
        cuda_version (str): CUDA runtime version, None on CPU.
        device_name (str): GPU name (e.g. "Xavier", "NVIDIA GeForce RTX 4090") or "cpu".
        soc (str): Jetson SoC (tegra194, ...), None elsewhere.
        calibration (dict): {"cache_sha256": ..., "qdq_sha256": ..., "method": ..., "images_sha256": ...}.
        flags (list): builder flags or trtexec arguments.
        runtime_options (dict): options the runner applies (ORT providers, threads, optimisation level).
        layers (dict): {"dla": [...], "gpu": [...]} from the verbose build log, where known.
        build_seconds (float): wall time of the build.
        sha256 (str): sha256 of the engine file itself.
        environment (dict): versions, host, command line, time.
        build (dict): how the builder worked: the TensorRT build plan, why this builder, the build
            log and the ONNX it parsed (``edgealex build``; empty for older sidecars).
        batch_profile (dict or None): ``{"min", "opt", "max"}`` batch sizes of a dynamic-batch
            engine (the TensorRT optimization profile; the range an ONNX Runtime engine accepts);
            None for a static batch or an engine built before profiles were recorded.
    """

    backend: str
    precision: str
    device: str
    target: str
    model: dict
    onnx_sha256: str
    input_shape: List[Optional[int]]
    builder: str
    backend_version: str
    dla_core: Optional[int] = None
    gpu_fallback: bool = False
    cuda_version: Optional[str] = None
    device_name: str = "cpu"
    soc: Optional[str] = None
    calibration: Optional[dict] = None
    flags: List[str] = field(default_factory=list)
    runtime_options: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    build_seconds: float = 0.0
    sha256: str = ""
    environment: dict = field(default_factory=environment_summary)
    build: dict = field(default_factory=dict)
    batch_profile: Optional[dict] = None

    def to_dict(self):
        data = asdict(self)
        data["artifact"] = "engine"
        data["schema"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data, source="engine sidecar"):
        """The record of a parsed sidecar, after :func:`edgealex.artifacts.validate_sidecar`.

        Raises:
            EdgeAlexError: not an engine sidecar, newer schema, no valid sha256, a field of the
                wrong type, or a batch profile that is not ``{"min", "opt", "max"}`` with
                ``1 <= min <= opt <= max``.
        """
        validate_sidecar(data, source, artifact="engine", schema_max=SCHEMA_VERSION, fields=_FIELDS,
                         fix="rebuild the engine with `edgealex build`")
        if data["backend"] not in BACKENDS or data["precision"] not in PRECISIONS:
            raise EdgeAlexError(source, "unknown backend {!r} or precision {!r}".format(
                data["backend"], data["precision"]), "rebuild the engine with `edgealex build`")
        if any(d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
               for d in data["input_shape"]):
            raise EdgeAlexError(source, "input_shape {!r} is not a list of positive integers (null for a "
                                "dynamic axis)".format(data["input_shape"]), "rebuild the engine with `edgealex build`")
        if data.get("batch_profile") is not None:
            check_batch_profile(data["batch_profile"], source)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as exc:
            raise EdgeAlexError(source, f"the sidecar is incomplete ({exc})", "rebuild the engine")

    def batch_range(self):
        """``(min, max)`` batch sizes this engine runs: the build's batch profile, else the static
        batch of ``input_shape``, else ``(1, None)`` (a dynamic axis without a recorded profile)."""
        if self.batch_profile:
            return int(self.batch_profile["min"]), int(self.batch_profile["max"])
        first = self.input_shape[0] if self.input_shape else None
        if isinstance(first, int) and first > 0:
            return first, first
        return 1, None


_FIELDS = {"backend": str, "precision": str, "device": str, "target": str, "model": dict, "input_shape": list,
           "builder": str, "backend_version": str}


def check_batch_profile(profile, source="batch profile"):
    """Refuse a batch profile that is not ``{"min": a, "opt": b, "max": c}`` with 1 <= a <= b <= c."""
    ok = isinstance(profile, dict) and all(
        isinstance(profile.get(k), int) and not isinstance(profile.get(k), bool) for k in ("min", "opt", "max"))
    if not ok or not 1 <= profile["min"] <= profile["opt"] <= profile["max"]:
        raise EdgeAlexError(source, f"the batch profile {profile!r} is not min <= opt <= max (positive integers)",
                            "rebuild the engine with `edgealex build`")
    return profile


def check_batch(record, batch, subject="--batch"):
    """Refuse a batch size outside the engine's batch range (see :meth:`EngineRecord.batch_range`).

    Args:
        record (EngineRecord or None): the engine's sidecar; None checks nothing.
        batch (int): the batch size a run or benchmark asks for.
        subject (str): the option named in the error. Defaults to "--batch".

    Raises:
        EdgeAlexError: ``batch`` is below the profile's min or above its max (static engines: not
            equal to their batch), with the build option that fixes it.
    """
    if record is None:
        return
    low, high = record.batch_range()
    if batch >= low and (high is None or batch <= high):
        return
    if low == high and not record.batch_profile:
        raise EdgeAlexError(subject, f"{batch} but the engine takes batches of {low} (a static batch)",
                            f"use --batch {low}, or export with --dynamic-batch and build with --max-batch {batch}")
    raise EdgeAlexError(subject, f"{batch} is outside the engine's optimization profile (batch {low}..{high})",
                        f"use a batch from {low} to {high}, or rebuild with `edgealex build --max-batch {batch}`")


def engine_name(model_stem, precision, device, backend, backend_version, target):
    """File name encoding every build parameter, so configurations never overwrite each other.

    The one naming rule (README, "Engine names"): ``<model>-<precision>-<device>-<backend><version>-
    <target>.<ext>``, fields separated by "-"; in ``<model>`` every character other than letters,
    digits, "_" and "." becomes "_" (a "-" would split a field: ``model-dyn`` -> ``model_dyn``). The
    caller passes ``<stem>.qdq`` for an ONNX Runtime engine of the Q/DQ INT8 model.

    >>> engine_name("alexnet", "int8", "dla0", "tensorrt", "8.5.2.2", "agx-xavier")
    'alexnet-int8-dla0-trt8.5.2.2-agx-xavier.engine'
    """
    tag = {"ort": "ort", "tensorrt": "trt"}[backend]
    stem = re.sub(r"[^A-Za-z0-9_.]+", "_", model_stem).strip("_") or "model"
    return f"{stem}-{precision}-{device}-{tag}{backend_version}-{target}{ENGINE_SUFFIX[backend]}"


def write_record(engine_path, record):
    """Hash the engine file and write its sidecar atomically. Returns the sidecar path."""
    record.sha256 = sha256_file(engine_path)
    return write_json_atomic(sidecar_path(engine_path), record.to_dict())


def read_record(engine_path):
    """The :class:`EngineRecord` of an engine, or a user error when the sidecar is missing or bad."""
    engine_path = check_input_file(engine_path, "engine", "build it with `edgealex build`",
                                   folder_fix="pass the .engine file itself")
    side = sidecar_path(engine_path)
    if not os.path.isfile(side):
        raise EdgeAlexError(engine_path, f"the engine has no provenance sidecar ({os.path.basename(side)} is missing)", "rebuild it with `edgealex build`, which writes both")
    return EngineRecord.from_dict(read_json(side, "engine sidecar"), source=side)


def same_tensorrt(recorded, local):
    """True when an engine built with TensorRT ``recorded`` is for the ``local`` TensorRT.

    Equal strings match. A trtexec build knows only ``major.minor.patch`` (its banner prints
    ``[TensorRT v8502]``) while ``tensorrt.__version__`` has four parts ("8.5.2.2"), so a recorded
    version with fewer parts matches when it is a prefix of the local one.

    >>> same_tensorrt("8.5.2", "8.5.2.2"), same_tensorrt("8.5.2.2", "8.5.2.2"), same_tensorrt("8.5.2", "8.6.1")
    (True, True, False)
    """
    recorded, local = str(recorded), str(local)
    if recorded == local:
        return True
    mine, theirs = recorded.split("."), local.split(".")
    return 3 <= len(mine) < len(theirs) and theirs[:len(mine)] == mine


def check_record(engine_path, record, tensorrt_version=None, device_name=None, verify_hash=True):
    """Refuse an engine that does not match its sidecar or this machine.

    Args:
        engine_path (str): the engine file.
        record (EngineRecord): its sidecar.
        tensorrt_version (str): TensorRT version of this interpreter (TensorRT engines only).
        device_name (str): name of the CUDA device it will run on (TensorRT engines only).
        verify_hash (bool): compare the file's sha256 with the sidecar. Defaults to True.

    Raises:
        EdgeAlexError: with the reason and the fix.
    """
    engine_path = str(engine_path)
    if verify_hash and sha256_file(engine_path) != record.sha256:
        raise EdgeAlexError(engine_path, "the engine file does not match its sidecar (sha256 differs)",
                            "the file was modified or replaced; rebuild it with `edgealex build`")
    if record.backend == "tensorrt":
        if tensorrt_version is not None and not same_tensorrt(record.backend_version, tensorrt_version):
            raise EdgeAlexError(engine_path, f"built with TensorRT {record.backend_version} but this machine has TensorRT {tensorrt_version}",
                "TensorRT engines are not portable across versions; rebuild it here with `edgealex build`")
        if device_name is not None and record.device_name and record.device_name != device_name:
            raise EdgeAlexError(engine_path, f"built on '{record.device_name}' but this device is '{device_name}'",
                "TensorRT engines are tied to the GPU they were built on; rebuild it here with `edgealex build`")
    return record
