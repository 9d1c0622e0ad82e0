"""TensorRT Python-API builder: executes a :class:`~edgealex.build.plan.BuildPlan`.

One code path for TensorRT 8.0 to 11.x; every version-dependent call follows the plan, which was
made from feature probes of the imported module (:func:`edgealex.build.plan.probe_features`).
Every TensorRT return value is checked: all ONNX-parser errors are drained and reported, an empty
network or an empty ``build_serialized_network`` result is an error, and the engine is deserialized
once to prove it loads. The complete verbose log goes to a file next to the engine; the layers
placed on the DLA and on the GPU are read from it (:mod:`edgealex.build.buildlog`).

TensorRT subclasses (logger, calibrator, progress monitor) are defined inside factory functions so
importing this module never imports TensorRT.
"""

import os
import sys
import threading

from edgealex._optional import require
from edgealex.artifacts import write_bytes_atomic
from edgealex.build.plan import profile_shapes
from edgealex.errors import EdgeAlexError
from edgealex.log import is_quiet, logger

_SEVERITY_TAGS = {0: "[F]", 1: "[E]", 2: "[W]", 3: "[I]", 4: "[V]"}
CALIB_MAX_IMAGES = 500  # images for on-device calibration (evenly sampled over the classes)


def make_file_logger(trt, log_handle):
    """A ``trt.ILogger`` writing EVERY message (verbose included) to ``log_handle``.

    Warnings and errors are also forwarded to the edgealex logger; error texts are kept in
    ``.errors`` so a failed build can quote them.
    """

    class _BuildLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []
            self._lock = threading.Lock()

        def log(self, severity, msg):
            level = int(severity)  # INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4
            text = str(msg)
            with self._lock:
                if not log_handle.closed:  # TensorRT may still log while objects are destroyed
                    log_handle.write("{} [TRT] {}\n".format(_SEVERITY_TAGS.get(level, "[?]"), text))
            if level <= 1:
                self.errors.append(text)
                logger.error("TensorRT: %s", text)
            elif level == 2:
                logger.warning("TensorRT: %s", text)

    return _BuildLogger()


def make_entropy_calibrator(trt, batches, batch_size, cache_bytes=None, cache_path=None, cuda=None):
    """An ``IInt8EntropyCalibrator2`` fed from ``batches`` (or from a cache only).

    Args:
        trt (module): tensorrt.
        batches (iterable or None): float32 arrays (N, C, H, W); None for cache-only calibration.
        batch_size (int): N.
        cache_bytes (bytes or None): an existing cache; returning it makes TensorRT skip calibration.
        cache_path (str or None): where TensorRT's new cache is written (atomically).
        cuda (CudaMemory or None): device-memory layer (:func:`edgealex.runtime.cudamem.open_cuda`);
            needed when ``batches`` is given.

    Returns:
        trt.IInt8EntropyCalibrator2: with ``.batches_used``, ``.error`` (an exception raised while
        feeding, re-raised by the builder after the build) and ``.release()``.
    """
    np = require("numpy")

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # required by the pybind11 trampoline
            self._batches = iter(batches) if batches is not None else iter(())
            self._pointer = None
            self._nbytes = 0
            self._stream = None
            self.batches_used = 0
            self.error = None
            self.cache_written = None

        def get_batch_size(self):
            return int(batch_size)

        def get_batch(self, names, *args):
            # An exception must not cross into TensorRT: keep it, end calibration, re-raise later.
            try:
                batch = next(self._batches, None)
                if batch is None:
                    return None
                batch = np.ascontiguousarray(batch, dtype=np.float32)
                if self._pointer is None:
                    self._nbytes = batch.nbytes
                    self._pointer = cuda.malloc(self._nbytes)
                    self._stream = cuda.create_stream()
                if batch.nbytes != self._nbytes:
                    raise EdgeAlexError("calibration batch", f"{batch.nbytes} bytes, expected {self._nbytes}",
                                        "every calibration batch must have the engine's input shape")
                cuda.htod_async(self._pointer, batch, self._stream)
                cuda.synchronize(self._stream)
                self.batches_used += 1
                return [int(self._pointer)] * len(names)
            except Exception as exc:  # noqa: BLE001 - re-raised after the build
                self.error = exc
                return None

        def read_calibration_cache(self, *args):
            return cache_bytes if cache_bytes else None

        def write_calibration_cache(self, cache, *args):
            if cache_path:
                try:
                    write_bytes_atomic(cache_path, bytes(cache))
                    self.cache_written = cache_path
                except Exception as exc:  # noqa: BLE001 - re-raised after the build
                    self.error = exc

        def release(self):
            if self._pointer is not None:
                cuda.free(self._pointer)
                self._pointer = None

    return _EntropyCalibrator()


def make_progress_monitor(trt):
    """A TensorRT 10+ ``IProgressMonitor`` printing top-level build phases to stderr."""

    class _Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._steps = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self._steps[phase_name] = num_steps
            if parent_phase is None and not is_quiet():
                sys.stderr.write(f"[I] TensorRT build phase: {phase_name} ({num_steps} steps)\n")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            self._steps.pop(phase_name, None)

    return _Progress()


class Spinner:
    """The elapsed time of a long call on the one progress bar (:class:`edgealex.progress.ProgressBar`,
    terminal only, not --quiet); a log line otherwise."""

    def __init__(self, text):
        self.text = text
        self._stop = threading.Event()
        self._thread = None
        self._bar = None

    def __enter__(self):
        from edgealex.progress import ProgressBar

        self._bar = ProgressBar(None, "[I] " + self.text, elapsed_only=True, leave=True)
        if self._bar.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        else:
            logger.info("%s ...", self.text)
        return self

    def _run(self):
        while not self._stop.wait(0.5):
            self._bar.refresh()

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.close()
        return False


def calibration_batches(image_set, spec, input_shape):
    """Preprocessed full batches (N, C, H, W) from an image set; a partial last batch is dropped."""
    from edgealex.preprocess import preprocess_batch, read_image

    batch = int(input_shape[0]) if isinstance(input_shape[0], int) and input_shape[0] > 0 else 1
    paths = image_set.paths
    for start in range(0, len(paths) - batch + 1, batch):
        images = [read_image(p) for p in paths[start:start + batch]]
        yield preprocess_batch(images, spec)


def build_with_python_api(plan, onnx_path, engine_tmp_path, log_path, input_name, input_shape, calibration=None,
                          timing_cache_path=None, calib_cache_out=None, preprocess_spec=None):
    """Build and serialize an engine with the TensorRT Python API following ``plan``.

    Args:
        plan (BuildPlan): from :func:`edgealex.build.plan.make_plan` with probed features.
        onnx_path (str): the ONNX to parse (already the Q/DQ or FP16 one when the plan says so).
        engine_tmp_path (str): where the serialized engine is written.
        log_path (str): the verbose build log.
        input_name (str): model input.
        input_shape (list): input shape, None for a dynamic dim (built as 1).
        calibration (CalibrationChoice or None): cache or image folder for a calibrator plan.
        timing_cache_path (str or None): timing cache loaded before and saved after the build.
        calib_cache_out (str or None): where on-device calibration writes its cache.
        preprocess_spec (Preprocess or None): the model's preprocessing for on-device calibration.

    Returns:
        dict: ``{"device_name", "calibration_batches", "calib_cache_written",
        "io": {...}}``.

    Raises:
        EdgeAlexError: parser errors (all of them), empty network, failed or empty build, an engine
            that does not deserialize, calibration failures.
    """
    trt = require("tensorrt", "edgealex build --builder python")
    with open(log_path, "w", encoding="utf-8") as log_handle:
        trt_logger = make_file_logger(trt, log_handle)
        cuda = None
        calibrator = None
        try:
            builder = trt.Builder(trt_logger)
            if builder is None:
                raise EdgeAlexError("TensorRT", "could not create a builder", f"see {log_path}")
            flags = 0
            for name in plan.network_flags:
                flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, trt_logger)
            parsed = parser.parse_from_file(str(onnx_path))
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            if not parsed or errors:
                raise EdgeAlexError(onnx_path, "TensorRT {}'s ONNX parser failed with {} error(s): {}".format(
                    plan.trt_version, len(errors), " | ".join(e.strip() for e in errors) or "(no message)"),
                    "export with an opset this TensorRT parses (13 works from 8.2 on); full log: " + log_path)
            if network.num_layers == 0 or network.num_outputs == 0:
                raise EdgeAlexError(onnx_path, "the parsed network is empty (no layers or no outputs)",
                                    "check the ONNX graph; full log: " + log_path)

            config = builder.create_builder_config()
            if plan.workspace_api == "set_memory_pool_limit":
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
            else:
                config.max_workspace_size = plan.workspace_bytes
            for name in plan.builder_flags:
                config.set_flag(getattr(trt.BuilderFlag, name))
            if plan.profiling_verbosity:
                config.profiling_verbosity = getattr(trt.ProfilingVerbosity, plan.profiling_verbosity)

            shape = [d if isinstance(d, int) and d > 0 else 1 for d in input_shape]
            if plan.batch_profile is not None:
                low, opt, high = profile_shapes(plan.batch_profile, input_shape)
                profile = builder.create_optimization_profile()
                profile.set_shape(input_name, low, opt, high)
                if config.add_optimization_profile(profile) < 0:
                    raise EdgeAlexError(input_name, "TensorRT rejected the optimization profile "
                                        f"min {low} opt {opt} max {high}", f"see {log_path}")
                if plan.int8_mode == "calibrator":
                    # Calibration runs at the calibration profile's opt shape: batch 1, as the calibrator feeds.
                    calib_profile = builder.create_optimization_profile()
                    calib_profile.set_shape(input_name, shape, shape, shape)
                    config.set_calibration_profile(calib_profile)

            if plan.device_type == "DLA":
                if builder.num_DLA_cores <= plan.dla_core:
                    raise EdgeAlexError("--dla", f"this device has {builder.num_DLA_cores} DLA core(s); "
                                        f"core {plan.dla_core} does not exist", "pick an existing core or build for the GPU")
                config.default_device_type = trt.DeviceType.DLA
                config.DLA_core = int(plan.dla_core)

            batches_used = 0
            if plan.int8_mode == "calibrator":
                calibrator, cuda = _calibrator(trt, plan, calibration, shape, calib_cache_out, preprocess_spec)
                config.int8_calibrator = calibrator

            timing_cache = None
            if plan.timing_cache and timing_cache_path:
                blob = b""
                if os.path.isfile(timing_cache_path):
                    with open(timing_cache_path, "rb") as handle:
                        blob = handle.read()
                timing_cache = config.create_timing_cache(blob)
                # set_timing_cache returns False when the cache's header does not match this device.
                if timing_cache is None or config.set_timing_cache(timing_cache, False) is False:
                    raise EdgeAlexError(timing_cache_path, "TensorRT refused the timing cache (made on another "
                                        "device or TensorRT version)", "delete it or pass another --timing-cache")

            if plan.progress == "monitor":
                monitor = make_progress_monitor(trt)
                config.progress_monitor = monitor
                serialized = builder.build_serialized_network(network, config)
            else:
                with Spinner(f"building the {plan.precision} {plan.device} engine with TensorRT {plan.trt_version}"):
                    serialized = builder.build_serialized_network(network, config)

            if calibrator is not None:
                batches_used = calibrator.batches_used
                if calibrator.error is not None:
                    raise calibrator.error
            if serialized is None or _nbytes(serialized) == 0:
                detail = " | ".join(trt_logger.errors[-3:]) or "no error message"
                raise EdgeAlexError(onnx_path, f"TensorRT could not build the engine ({detail})",
                                    f"full log: {log_path}" + ("; with strict DLA (--no-gpu-fallback) every layer "
                                                              "must run on the DLA" if plan.device_type == "DLA"
                                                              and not plan.gpu_fallback else ""))
            with open(engine_tmp_path, "wb") as handle:
                handle.write(serialized)
                handle.flush()
                os.fsync(handle.fileno())
            if timing_cache is not None:
                write_bytes_atomic(timing_cache_path, bytes(config.get_timing_cache().serialize()))

            runtime = trt.Runtime(trt_logger)
            if plan.device_type == "DLA":
                runtime.DLA_core = int(plan.dla_core)
            engine = runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise EdgeAlexError(engine_tmp_path, "the engine just built does not deserialize",
                                    f"full log: {log_path}")
            io = _engine_io(trt, engine)
        finally:
            if calibrator is not None:
                calibrator.release()
            if cuda is not None:
                cuda.close()
    return {"device_name": _device_name(), "calibration_batches": batches_used,
            "calib_cache_written": getattr(calibrator, "cache_written", None), "io": io}


def _nbytes(host_memory):
    """Size of a TensorRT ``IHostMemory`` (``nbytes``), or of any buffer."""
    size = getattr(host_memory, "nbytes", None)
    return int(size) if size is not None else len(memoryview(host_memory))


def _calibrator(trt, plan, calibration, shape, calib_cache_out, preprocess_spec):
    """(calibrator, cuda-or-None) for a calibrator plan."""
    if calibration is None:
        raise EdgeAlexError("--calib", "this INT8 build needs a calibration cache or an image folder",
                            "run `edgealex calibrate` or pass an image folder")
    if calibration.kind == "cache":
        with open(calibration.path, "rb") as handle:
            blob = handle.read()
        return make_entropy_calibrator(trt, None, shape[0], cache_bytes=blob), None
    from edgealex.imagefolder import load_image_set, sample_evenly
    from edgealex.runtime.cudamem import open_cuda

    image_set = sample_evenly(load_image_set(calibration.path), CALIB_MAX_IMAGES)
    if len(image_set) < shape[0]:
        raise EdgeAlexError(calibration.path, f"has {len(image_set)} image(s), fewer than one batch of {shape[0]}",
                            "add images (a few hundred spread over the classes calibrate well)")
    logger.info("calibrating on the device with %d images from %s (entropy, batch %d)", len(image_set),
                calibration.path, shape[0])
    cuda = open_cuda()
    calibrator = make_entropy_calibrator(trt, calibration_batches(image_set, preprocess_spec, shape), shape[0],
                                         cache_path=calib_cache_out, cuda=cuda)
    return calibrator, cuda


def _engine_io(trt, engine):
    """Names and shapes of the engine's I/O tensors, through whichever API this TensorRT has."""
    io = {}
    if hasattr(engine, "num_io_tensors"):
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
            io[name] = {"mode": mode, "shape": [int(d) for d in engine.get_tensor_shape(name)]}
    else:
        for i in range(engine.num_bindings):
            name = engine.get_binding_name(i)
            io[name] = {"mode": "input" if engine.binding_is_input(i) else "output",
                        "shape": [int(d) for d in engine.get_binding_shape(i)]}
    return io


def _device_name():
    """The CUDA device name as the runners see it (what check_record compares), or None."""
    try:
        from edgealex.runtime.cudamem import current_device_name

        return current_device_name()
    except Exception as exc:  # noqa: BLE001 - provenance only; the build itself succeeded
        logger.warning("could not read the CUDA device name (%s)", exc)
        return None
