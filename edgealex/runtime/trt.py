"""TensorRT runner for serialized engines (``.engine``/``.plan``), TensorRT 8.0 to 10.x.

I/O goes through whichever API the installed TensorRT has, found by feature detection:

- tensor-name API (8.5+): ``engine.num_io_tensors``/``get_tensor_name``/``get_tensor_mode``,
  ``context.set_tensor_address`` and ``execute_async_v3(stream)``;
- bindings API (8.0-8.4, removed in 10.0): ``engine.num_bindings``/``binding_is_input``,
  ``execute_async_v2(bindings, stream)``.

Memory is pinned host buffers plus device buffers from :mod:`edgealex.runtime.cudamem`
(cuda-python, else pycuda), on a non-default stream; the stream is synchronised inside
``infer_impl`` so :attr:`Runner.last_inference_ms` covers copy-in, execution and copy-out.
A DLA engine gets ``runtime.DLA_core`` set before it is deserialized. Every TensorRT return
value that can signal failure is checked.
"""


import numpy as np

from edgealex._optional import require
from edgealex.artifacts import check_input_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.runtime.base import Runner, TensorSpec


def make_logger(trt):
    """A ``trt.ILogger`` that forwards to the edgealex logger and keeps the error messages.

    The subclass is defined here, not at module level, so importing this module never imports
    TensorRT.
    """

    class _EdgeAlexTrtLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            level = int(severity)  # INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4
            if level <= 1:
                self.errors.append(str(msg))
                logger.error("TensorRT: %s", msg)
            elif level == 2:
                logger.warning("TensorRT: %s", msg)
            else:
                logger.debug("TensorRT: %s", msg)

    return _EdgeAlexTrtLogger()


class _Tensor:
    """One engine I/O tensor with its pinned host and device buffers."""

    def __init__(self, name, index, is_input, shape, dtype, max_shape):
        self.name = name
        self.index = index
        self.is_input = is_input
        self.shape = tuple(int(d) for d in shape)  # may contain -1 (dynamic)
        self.dtype = np.dtype(dtype)
        self.max_shape = tuple(int(d) for d in max_shape)  # allocation shape
        self.host = None
        self.device = None

    @property
    def dynamic(self):
        return any(d < 0 for d in self.shape)

    def host_view(self, shape):
        count = int(np.prod(shape))
        return self.host.reshape(-1)[:count].reshape(shape)


class TrtRunner(Runner):
    """Run a serialized TensorRT engine.

    Args:
        engine_path (str): the ``.engine``/``.plan`` file.
        record (EngineRecord): its sidecar (labels, preprocessing, DLA core). Defaults to None
            (then ``model_info`` must be given).
        model_info (ModelInfo): labels and preprocessing. Defaults to the sidecar's.
        dla_core (int): DLA core to run a DLA engine on. Defaults to the sidecar's ``dla_core``.
        cuda_backend (str): "cuda-python" or "pycuda"; None picks what imports. Defaults to None.
        device (int): CUDA device index. Defaults to 0.
    """

    name = "tensorrt"

    def __init__(self, engine_path, record=None, model_info=None, dla_core=None, cuda_backend=None, device=0):
        super().__init__()
        self.engine_path = str(engine_path)
        self.record = record
        self._model_info = model_info
        if dla_core is None and record is not None and str(getattr(record, "device", "")).startswith("dla"):
            dla_core = record.dla_core
        self.dla_core = dla_core
        self.cuda_backend = cuda_backend
        self.device = int(device)
        self._reset()

    def _reset(self):
        self._trt = None
        self._logger = None
        self._runtime = None
        self._engine = None
        self._context = None
        self._cuda = None
        self._stream = None
        self._tensors = []
        self._bindings = None
        self._tensor_api = False
        self._output_name = None

    @property
    def model_info(self):
        if self._model_info is None:
            if self.record is None or not getattr(self.record, "model", None):
                raise EdgeAlexError(self.engine_path, "no model metadata (labels, preprocessing) for this engine",
                                    "load it through its sidecar (edgealex.load) or rebuild with `edgealex build`")
            from edgealex.modelinfo import ModelInfo

            self._model_info = ModelInfo.from_dict(self.record.model)
        return self._model_info

    # -- lifecycle -------------------------------------------------------------------------------
    def activate_impl(self):
        trt = require("tensorrt", "the TensorRT backend")
        from edgealex.runtime.cudamem import open_cuda

        self._trt = trt
        try:
            self._activate(trt, open_cuda)
        except BaseException:
            self._release()
            raise

    def _activate(self, trt, open_cuda):
        check_input_file(self.engine_path, "engine", "build it with `edgealex build`",
                         folder_fix="pass the .engine file itself")
        self._cuda = open_cuda(self.cuda_backend, self.device)
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        if self._runtime is None:
            raise EdgeAlexError("TensorRT", "could not create a runtime", "check the TensorRT installation")
        if self.dla_core is not None:
            if not hasattr(self._runtime, "DLA_core"):
                raise EdgeAlexError(self.engine_path, "this TensorRT has no runtime.DLA_core",
                                    "DLA engines need TensorRT on a Jetson with DLA (Xavier, Orin)")
            cores = getattr(self._runtime, "num_DLA_cores", None)
            if cores is not None and int(self.dla_core) >= int(cores):
                raise EdgeAlexError(self.engine_path, f"the engine needs DLA core {self.dla_core} but this device has {cores} DLA core(s)", "run it on a Jetson with that DLA core or rebuild for the GPU")
            self._runtime.DLA_core = int(self.dla_core)  # must precede deserialization
        with open(self.engine_path, "rb") as handle:
            data = handle.read()
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            detail = "; ".join(self._logger.errors[-3:]) or "no detail from TensorRT"
            raise EdgeAlexError(self.engine_path, f"TensorRT could not deserialize the engine ({detail})",
                                "engines only load with the TensorRT version and GPU that built them; "
                                "rebuild it here with `edgealex build`")
        self._engine = engine
        if getattr(engine, "has_implicit_batch_dimension", False):
            raise EdgeAlexError(self.engine_path, "implicit-batch engines are not supported",
                                "rebuild it from ONNX with `edgealex build` (explicit batch)")
        context = engine.create_execution_context()
        if context is None:
            raise EdgeAlexError(self.engine_path, "TensorRT could not create an execution context (out of memory?)",
                                "free GPU memory (close other engines) and try again")
        self._context = context
        self._tensor_api = hasattr(engine, "num_io_tensors")  # 8.5+; bindings API before (removed in 10)
        self._tensors = self._describe_tensors_v3() if self._tensor_api else self._describe_bindings()
        inputs = [t for t in self._tensors if t.is_input]
        if len(inputs) != 1 or len(inputs) == len(self._tensors):
            raise EdgeAlexError(self.engine_path, f"expected one input and at least one output, found {len(inputs)} inputs and {len(self._tensors) - len(inputs)} outputs", "build the engine from a single-input classifier ONNX")
        outputs = [t.name for t in self._tensors if not t.is_input]
        wanted = self.model_info.output_name if (self._model_info or getattr(self.record, "model", None)) else None
        self._output_name = wanted if wanted in outputs else outputs[0]
        self._stream = self._cuda.create_stream()
        self._allocate()

    def _describe_tensors_v3(self):
        trt, engine = self._trt, self._engine
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(engine.get_tensor_shape(name))
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            max_shape = shape
            if is_input and any(d < 0 for d in shape):
                max_shape = tuple(engine.get_tensor_profile_shape(name, 0)[2])
            tensors.append(_Tensor(name, i, is_input, shape, dtype, max_shape))
        return tensors

    def _describe_bindings(self):
        trt, engine = self._trt, self._engine
        if not hasattr(engine, "num_bindings"):
            raise EdgeAlexError("TensorRT {}".format(getattr(trt, "__version__", "?")),
                                "the engine exposes neither the tensor-name nor the bindings API",
                                "use TensorRT 8.0 or newer")
        tensors = []
        for i in range(engine.num_bindings):
            name = engine.get_binding_name(i)
            is_input = engine.binding_is_input(i)
            shape = tuple(engine.get_binding_shape(i))
            dtype = trt.nptype(engine.get_binding_dtype(i))
            max_shape = shape
            if is_input and any(d < 0 for d in shape):
                max_shape = tuple(engine.get_profile_shape(0, i)[2])
            tensors.append(_Tensor(name, i, is_input, shape, dtype, max_shape))
        return tensors

    def _allocate(self):
        inp = self._input_tensor
        if inp.dynamic:
            self._set_input_shape(inp, inp.max_shape)  # outputs then report their largest shape
        for tensor in self._tensors:
            shape = tensor.max_shape if tensor.is_input else self._current_shape(tensor)
            if any(d < 0 for d in shape):
                raise EdgeAlexError(self.engine_path, f"cannot size output {tensor.name} (shape {shape})",
                                    "rebuild the engine with static shapes")
            tensor.max_shape = tuple(shape)
            tensor.host = self._cuda.pinned_empty(tensor.max_shape, tensor.dtype)
            tensor.device = self._cuda.malloc(tensor.host.nbytes)
        if self._tensor_api:
            for tensor in self._tensors:
                if self._context.set_tensor_address(tensor.name, tensor.device) is False:
                    raise EdgeAlexError(self.engine_path, f"set_tensor_address failed for {tensor.name}",
                                        "the engine and this TensorRT disagree; rebuild it with `edgealex build`")
        else:
            self._bindings = [0] * len(self._tensors)
            for tensor in self._tensors:
                self._bindings[tensor.index] = int(tensor.device)

    @property
    def _input_tensor(self):
        return next(t for t in self._tensors if t.is_input)

    def _current_shape(self, tensor):
        if self._tensor_api:
            return tuple(self._context.get_tensor_shape(tensor.name))
        return tuple(self._context.get_binding_shape(tensor.index))

    def _set_input_shape(self, tensor, shape):
        shape = tuple(int(d) for d in shape)
        if self._tensor_api:
            ok = self._context.set_input_shape(tensor.name, shape)
        else:
            ok = self._context.set_binding_shape(tensor.index, shape)
        if ok is False:
            raise EdgeAlexError("input", f"shape {shape} is outside the engine's optimization profile (max {tensor.max_shape})", "send smaller batches or rebuild with a larger profile")

    def deactivate_impl(self):
        self._release()

    def _release(self):
        # Order matters: the context before the engine before the runtime, memory last.
        self._context = None
        self._engine = None
        self._runtime = None
        if self._cuda is not None:
            self._cuda.close()
        self._reset()

    # -- inference ---------------------------------------------------------------------------------
    def input_spec_impl(self):
        if self._tensors:
            inp = self._input_tensor
            return TensorSpec(inp.name, tuple(None if d < 0 else d for d in inp.shape), inp.dtype.name)
        if self.record is not None and self.record.input_shape:
            return TensorSpec(self.model_info.input_name, tuple(self.record.input_shape), "float32")
        raise EdgeAlexError(self.engine_path, "the input shape is known once the runner is active",
                            "use the runner as a context manager first: `with runner: ...`")

    def infer_impl(self, batch):
        inp = self._input_tensor
        if inp.dynamic:
            if any(got > most for got, most in zip(batch.shape, inp.max_shape)):
                raise EdgeAlexError("input", f"shape {tuple(batch.shape)} exceeds the engine's profile maximum {inp.max_shape}", "send smaller batches")
            self._set_input_shape(inp, batch.shape)
        host_in = inp.host_view(batch.shape)
        np.copyto(host_in, batch, casting="same_kind")
        self._cuda.htod_async(inp.device, host_in, self._stream)
        if self._tensor_api:
            ok = self._context.execute_async_v3(self._stream)
        else:
            ok = self._context.execute_async_v2(bindings=self._bindings, stream_handle=self._stream)
        if ok is False:
            self._cuda.synchronize(self._stream)
            detail = "; ".join(self._logger.errors[-3:]) or "no detail from TensorRT"
            raise EdgeAlexError(self.engine_path, f"TensorRT execution failed ({detail})",
                                "check the input shape and the device; rebuild the engine if it persists")
        outputs = []
        for tensor in self._tensors:
            if tensor.is_input:
                continue
            host_out = tensor.host_view(self._current_shape(tensor) if inp.dynamic else tensor.max_shape)
            self._cuda.dtoh_async(host_out, tensor.device, self._stream)
            outputs.append((tensor.name, host_out))
        # Synchronise before returning, so the base class's timer covers the whole inference.
        self._cuda.synchronize(self._stream)
        return dict(outputs)[self._output_name]

    def describe(self):
        return {"backend": "tensorrt", "runner": self.name, "engine": self.engine_path,
                "dla_core": self.dla_core, "cuda": getattr(self._cuda, "name", self.cuda_backend),
                "io_api": "tensor-name" if self._tensor_api else "bindings"}
