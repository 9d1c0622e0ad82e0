"""The ONNX Runtime "engine": the model file the CPU backend runs, plus the session options that make
it fast, recorded in the engine sidecar (``runtime_options``).

The engine file is the FP32 ONNX itself or the INT8 model from ``edgealex calibrate``, hard-linked
into the output folder when it is on the same filesystem (a 244 MB AlexNet is not copied) and copied
otherwise. A hard link is safe because every edgealex writer replaces files by rename (a new inode),
and the sidecar's sha256 catches anything else.

Session options (:func:`runtime_options`, applied by :class:`edgealex.runtime.ort.OrtRunner`):
``ORT_ENABLE_ALL`` graph optimisations, intra-op threads
= physical cores (hyper-threads share one core's vector units and only add contention for these
GEMM-bound kernels), one inter-op thread, sequential execution (a single chain of layers has
nothing to run in parallel), CPU execution provider.

The ORT-optimised model is *not* serialised (``optimized_model_filepath``): measured on the 2-core
Xeon dev machine with AlexNet (ORT 1.32), session creation plus first run took 0.97 s from the
source ONNX and 1.01 s from the pre-optimised file, and ORT warns that the saved model holds
hardware-specific (NCHWc) layouts. It would only add a machine-specific artifact.
"""

import os
import shutil

from edgealex._optional import require
from edgealex.errors import EdgeAlexError

ORT_INT8_CHOICES = ("auto", "native", "qdq")
# "auto" takes ONNX Runtime's own INT8 layout when the calibration output has it: on CPU it is about
# 20% faster than the TensorRT-style Q/DQ model (facts §10.5: ~360 vs ~300 img/s), and an ORT engine
# never goes to TensorRT anyway. "qdq" keeps the one model that also builds with TensorRT.
DEFAULT_ORT_INT8 = "auto"


def physical_cores():
    """Number of physical CPU cores (Linux /proc/cpuinfo; falls back to ``os.cpu_count()``)."""
    cores = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            physical = core = None
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((physical, core))
                    physical = core = None
            if core is not None:
                cores.add((physical, core))
    except OSError:
        pass
    return len(cores) or (os.cpu_count() or 1)


def runtime_options():
    """The ``runtime_options`` an ORT engine's sidecar records (keys and values as
    :class:`edgealex.runtime.ort.OrtRunner` reads them).

    Returns:
        dict: ``{"providers": ["cpu"], "graph_optimization_level": "all", "intra_op_num_threads":
        <physical cores>, "inter_op_num_threads": 1, "execution_mode": "sequential"}``.
    """
    return {
        "providers": ["cpu"],
        "graph_optimization_level": "all",
        "intra_op_num_threads": physical_cores(),
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
    }


def cpu_facts(ort=None):
    """What the build machine offers ONNX Runtime (recorded in the sidecar's environment)."""
    ort = ort or require("onnxruntime", "edgealex build (ONNX Runtime)")
    return {"onnxruntime_version": ort.__version__, "available_providers": list(ort.get_available_providers()),
            "physical_cores": physical_cores(), "logical_cpus": os.cpu_count()}


def link_or_copy(source, destination):
    """Hard-link ``source`` to ``destination`` (replacing it), or copy when linking is not possible.

    Returns:
        str: "hardlink" or "copy".
    """
    if os.path.lexists(destination):
        os.remove(destination)
    try:
        os.link(source, destination)
        return "hardlink"
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(source, destination)
        return "copy"


def build_ort_engine(model_path, engine_tmp_path, model_info, input_shape):
    """Place the model at ``engine_tmp_path`` and check that ONNX Runtime loads and runs it.

    Args:
        model_path (str): FP32 ONNX or INT8 model to turn into the engine.
        engine_tmp_path (str): temporary engine path (renamed to the final name by the caller).
        model_info (ModelInfo): labels, preprocessing, input name.
        input_shape (list): input shape; a dynamic dim (None) runs with 1.

    Returns:
        dict: ``{"runtime_options", "placed_by", "output_shape"}``.

    Raises:
        EdgeAlexError: ONNX Runtime cannot load or run the model.
    """
    np = require("numpy")
    from edgealex.runtime.ort import OrtRunner

    placed_by = link_or_copy(str(model_path), str(engine_tmp_path))
    options = runtime_options()
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in input_shape]
    with OrtRunner(engine_tmp_path, model_info=model_info, **options) as runner:
        try:
            logits = runner.infer(np.zeros(shape, dtype=np.float32))
        except EdgeAlexError:
            raise
        except Exception as exc:  # onnxruntime's own runtime error types
            raise EdgeAlexError(str(model_path), f"ONNX Runtime fails to run the model ({str(exc).strip()[:300]})",
                                "check the model's input shape and type (float32 NCHW)")
    return {"runtime_options": options, "placed_by": placed_by, "output_shape": list(logits.shape)}
