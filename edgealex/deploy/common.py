"""What the DeepStream and Triton deployments share: labels files, the engine sidecar check and the
TensorRT -> DeepStream / Triton release pairings.

Pure Python (no numpy, onnx or TensorRT) and Python 3.6 compatible: this part runs on a Jetson.
Facts: integration-facts.md §1.0 (DeepStream per JetPack), §1.4 (nvinfer labels), §2.1 (Triton
labels), §2.2 (Triton per TensorRT).
"""

from packaging.version import InvalidVersion, Version

from edgealex.engine import check_record, read_record
from edgealex.errors import EdgeAlexError

# --- labels ---------------------------------------------------------------------------------------


def check_labels(labels, subject="labels"):
    """Refuse labels neither nvinfer's nor Triton's label file can carry.

    nvinfer splits each line on ``;`` (ctx.cpp ``parseLabelsFile``) and Triton reads one label per
    line, so a label must be non-empty and hold no ``;``, newline or carriage return.

    Args:
        labels (list of str): class names, index = output position.
        subject (str): what to name in the error. Defaults to "labels".

    Returns:
        list of str: the labels.

    Raises:
        EdgeAlexError: fewer than 2 labels, an empty label, or one with ``;`` or a line break.
    """
    labels = [str(label) for label in labels]
    if len(labels) < 2:
        raise EdgeAlexError(subject, f"a classifier needs at least 2 labels, found {len(labels)}",
                            "export the model with its class names (edgealex export --labels FILE)")
    for label in labels:
        if not label.strip() or ";" in label or "\n" in label or "\r" in label:
            raise EdgeAlexError(subject, f"label {label!r} cannot go into a DeepStream or Triton labels file (empty, or "
                                "holds ';' or a line break: nvinfer splits lines on ';')",
                                "rename the class and export the model again")
    return labels


def nvinfer_labels_text(labels):
    """nvinfer's classifier labels file: ONE line, ``;``-separated, newline-terminated.

    Line *i* lists the labels of output layer *i* (ctx.cpp DS6.2 l.470-494); a classifier with one
    softmax output therefore needs exactly one line. A one-per-line file would label only class 0
    and the other classes would get no metadata at all (facts §1.4-1.5).

    >>> nvinfer_labels_text(["ok", "scratch", "dent"])
    'ok;scratch;dent\\n'
    """
    return ";".join(check_labels(labels)) + "\n"


def triton_labels_text(labels):
    """Triton's ``label_filename``: one label per line (TS docs/examples densenet_labels.txt).

    >>> triton_labels_text(["ok", "scratch"])
    'ok\\nscratch\\n'
    """
    return "\n".join(check_labels(labels)) + "\n"


# --- engines --------------------------------------------------------------------------------------


def load_engine_record(engine_path, want_backend=None, what="engine"):
    """Read an engine's sidecar and check the file against it (sha256).

    This runs where the deployment is written, which is usually not the machine the engine runs on,
    so the TensorRT version and GPU are not compared with this machine's; they are stated in the
    generated files instead.

    Args:
        engine_path (str): an engine written by ``edgealex build``.
        want_backend (str or None): "tensorrt" or "ort" to require one backend.
        what (str): how to name the engine in errors.

    Returns:
        EngineRecord: the sidecar.

    Raises:
        EdgeAlexError: no sidecar, a file that does not match it, or another backend.
    """
    record = read_record(engine_path)
    check_record(engine_path, record, verify_hash=True)
    if want_backend and record.backend != want_backend:
        what_happened = (f"is an {record.backend} engine built for {record.device} ({record.backend_version}), "
                         f"not a {'TensorRT' if want_backend == 'tensorrt' else want_backend} engine")
        raise EdgeAlexError(
            engine_path, what_happened,
            f"build a TensorRT engine on the device (`edgealex build MODEL.onnx`) or leave out the {what} to let the "
            "server build one from the ONNX")
    return record


def profile_max_batch(record):
    """Largest batch an edgealex-built engine accepts, from its sidecar.

    ``edgealex build`` records the optimization profile of a dynamic-batch engine in
    ``batch_profile`` ({"min", "opt", "max"}); an older sidecar without it was built with
    min = opt = max = the recorded ``input_shape`` (a dynamic axis as 1).

    Returns:
        int: the batch.
    """
    if getattr(record, "batch_profile", None):
        return int(record.batch_profile["max"])
    shape = list(record.input_shape or [])
    if not shape or not isinstance(shape[0], int) or shape[0] < 1:
        return 1
    return int(shape[0])


def engine_batch_is_dynamic(record):
    """True when the engine's ONNX had a dynamic batch axis (``model.batch`` is null)."""
    return (record.model or {}).get("batch", 1) is None


# --- release pairings -----------------------------------------------------------------------------

# (TensorRT prefix, Jetson?, DeepStream release, source)
_DEEPSTREAM = (
    ("8.0", True, "DeepStream 6.0.0 (JetPack 4.6)", "dusty-nv/jetson-containers packages/cv/deepstream/config.py; "
     "DeepStream 6.0 ReadmeFirst"),
    ("8.2", True, "DeepStream 6.0.1 (JetPack 4.6.1; unverified)", "jetson-containers"),
    ("8.4", True, "DeepStream 6.1.0 (JetPack 5.0; unverified)", "jetson-containers"),
    ("8.5", True, "DeepStream 6.2 or 6.3 (JetPack 5.1)", "jetson-containers; NVIDIA forum 314452"),
    ("8.6", True, "DeepStream 6.4 or 7.0 (JetPack 6.0)", "jetson-containers"),
    ("10.3", True, "DeepStream 7.1 (JetPack 6.1, unverified) or 8.0 (JetPack 6.2)", "jetson-containers"),
)

# (TensorRT prefix, Jetson?, Triton release, source)
_TRITON = (
    ("8.0.1", True, "tritonserver2.16.0-jetpack4.6.tgz", "triton-inference-server/server#3683"),
    ("8.2.1", True, "tritonserver2.17.0-jetpack4.6 or 2.19.0-jetpack4.6.1 (2.20+ needs CUDA 11: not on a Nano)",
     "jetson-containers packages/ml/tritonserver/config.py; server#7611"),
    ("8.5.2", True, "tritonserver2.34.0-jetpack5.1", "jetson-containers; server#6844"),
    ("8.6", True, "tritonserver 2.40.0 or newer -igpu (JetPack 6; jetson-containers uses 2.59.1 on JetPack 6.0)",
     "server#6844; jetson-containers"),
    ("10", True, "tritonserver 2.40.0 or newer -igpu (JetPack 6; jetson-containers uses 2.68.0 on JetPack 6.2)",
     "server#6844; jetson-containers"),
    ("8.2.3", False, "Triton 2.19.0 (NGC container 22.02)", "docs.twcloud.ai image table (3rd-party)"),
    ("8.5.1", False, "Triton 2.28.0 (NGC container 22.11)", "docs.twcloud.ai image table (3rd-party)"),
    ("8.6.3", False, "NGC container 24.03 (3rd-party)", "blog.gitcode.com (3rd-party)"),
    ("10.0.1", False, "Triton 2.46.0 (NGC container 24.05)", "docs.twcloud.ai image table (3rd-party)"),
    ("10.3", False, "Triton 2.49.0 (NGC container 24.08)", "triton server docs/introduction/compatibility.md"),
    ("10.7.0", False, "NGC container 24.12", "docs.twcloud.ai image table (3rd-party)"),
)


def _match(table, trt_version, jetson):
    try:
        release = Version(str(trt_version)).release
    except InvalidVersion:
        return None
    best = None
    for prefix, on_jetson, text, source in table:
        if on_jetson != bool(jetson):
            continue
        want = tuple(int(p) for p in prefix.split("."))
        if tuple(release[:len(want)]) == want and (best is None or len(want) > best[0]):
            best = (len(want), text, source)
    return None if best is None else (best[1], best[2])


def deepstream_release_for(trt_version, jetson=True):
    """The DeepStream release(s) that build and load engines with ``trt_version`` (facts §1.0).

    Returns:
        tuple or None: (release text, source) or None when the table has no row.
    """
    return _match(_DEEPSTREAM, trt_version, jetson)


def triton_release_for(trt_version, jetson):
    """The Triton release(s) whose TensorRT is ``trt_version`` (facts §2.2; engines are not portable).

    Returns:
        tuple or None: (release text, source) or None when the table has no row.
    """
    return _match(_TRITON, trt_version, jetson)
