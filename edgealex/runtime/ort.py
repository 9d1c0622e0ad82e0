"""ONNX Runtime runner: CPU by default, CUDA and TensorRT execution providers where installed.

Session settings come from three places, later ones winning: ONNX Runtime's defaults, the
``runtime_options`` of the engine's sidecar (:class:`edgealex.engine.EngineRecord`), and the
keyword arguments of :class:`OrtRunner`. Recognised ``runtime_options`` keys (all optional)::

    providers                 ["cpu"] | ["tensorrt", "cuda", "cpu"] | ["auto"] (names or aliases)
    provider_options          {"tensorrt": {"trt_fp16_enable": true, "trt_dla_enable": true,
                               "trt_dla_core": 0, "trt_engine_cache_enable": true, ...}, "cuda": {...}}
    intra_op_num_threads      int (0 = ONNX Runtime's default: one per physical core)
    inter_op_num_threads      int
    execution_mode            "sequential" | "parallel"
    graph_optimization_level  "disable" | "basic" | "extended" | "all"
    session_config            {"session.intra_op.allow_spinning": "0", ...}  (add_session_config_entry)

TensorRT EP settings are passed as provider options, never as environment variables.
"""

import json

from edgealex._optional import require
from edgealex.artifacts import check_input_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.runtime.base import Runner, TensorSpec

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_ALIASES = {"cpu": CPU, "cuda": CUDA, "gpu": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}
AUTO_ORDER = (TENSORRT, CUDA, CPU)
RUNTIME_OPTION_KEYS = ("providers", "provider_options", "intra_op_num_threads", "inter_op_num_threads",
                       "execution_mode", "graph_optimization_level", "session_config")
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_EXEC_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
               "tensor(int64)": "int64"}


# The CLI flags of the runner options, for messages (run/bench spell intra_op_num_threads --threads).
_OPTION_NAMES = {"intra_op_num_threads": "--threads", "inter_op_num_threads": "inter_op_num_threads"}
# Inputs a preprocessed (normalised, float32) image can be given to; float16 is cast without loss of meaning.
_FLOAT_INPUTS = ("tensor(float)", "tensor(float16)", "tensor(double)")


def provider_name(name):
    """Full ONNX Runtime provider name from an alias ("cpu", "cuda", "tensorrt") or a full name."""
    return PROVIDER_ALIASES.get(str(name).lower(), str(name))


def resolve_providers(requested, available):
    """The provider list to create a session with.

    Args:
        requested (list or None): names or aliases in priority order; ["auto"] takes every
            available one of TensorRT, CUDA, CPU; None means CPU only.
        available (list): ``onnxruntime.get_available_providers()``.

    Returns:
        list: full provider names, CPU last as the fallback.

    Raises:
        EdgeAlexError: a requested provider is not available in this onnxruntime build.
    """
    if not requested:
        return [CPU]
    if isinstance(requested, str):
        requested = [part for part in requested.split(",") if part.strip()]
    names = [provider_name(name.strip()) for name in requested]
    if names == ["auto"]:
        return [name for name in AUTO_ORDER if name in available] or [CPU]
    missing = [name for name in names if name not in available]
    if missing:
        hint = ("install the GPU build (pip install onnxruntime-gpu; on Jetson the wheel from the Jetson "
                "Zoo / jetson-containers for your JetPack) and make sure CUDA/TensorRT libraries load"
                if any(n in (CUDA, TENSORRT) for n in missing) else "use one of the available providers")
        raise EdgeAlexError("onnxruntime providers", "{} not available here (available: {})".format(
            ", ".join(missing), ", ".join(available)), hint)
    if CPU not in names:
        names.append(CPU)  # ONNX Runtime assigns unsupported nodes to CPU anyway; make it explicit
    return names


class OrtRunner(Runner):
    """Run an ONNX model (FP32 or INT8 Q/DQ) with ONNX Runtime.

    Args:
        model_path (str): the ``.onnx`` file.
        providers (list or str): provider names or aliases ("cpu", "cuda", "tensorrt", "auto"),
            highest priority first. Defaults to None: the sidecar's choice, else CPU only.
        provider_options (dict): per-provider option dicts keyed by name or alias, e.g.
            ``{"tensorrt": {"trt_fp16_enable": True}}``. Defaults to None.
        intra_op_num_threads (int): threads inside one operator; 0 = ORT default. Defaults to None.
        inter_op_num_threads (int): threads across operators. Defaults to None.
        execution_mode (str): "sequential" or "parallel". Defaults to None (ORT: sequential).
        graph_optimization_level (str): "disable", "basic", "extended" or "all". Defaults to None
            (ORT: all).
        session_config (dict): extra ``add_session_config_entry`` key/values. Defaults to None.
        dla_core (int): with the TensorRT provider, run on this DLA core (sets ``trt_dla_enable``
            and ``trt_dla_core``). Defaults to None.
        record (EngineRecord): the engine sidecar; its ``runtime_options`` and ``model`` apply.
            Defaults to None.
        model_info (ModelInfo): labels and preprocessing; default: sidecar, then ONNX metadata.
    """

    name = "onnxruntime"

    def __init__(self, model_path, providers=None, provider_options=None, intra_op_num_threads=None,
                 inter_op_num_threads=None, execution_mode=None, graph_optimization_level=None,
                 session_config=None, dla_core=None, record=None, model_info=None):
        super().__init__()
        self.model_path = str(model_path)
        self.record = record
        options = dict(getattr(record, "runtime_options", None) or {})
        unknown = sorted(set(options) - set(RUNTIME_OPTION_KEYS))
        if unknown:
            logger.warning("%s: ignoring unknown runtime_options in the sidecar: %s", self.model_path,
                           ", ".join(unknown))
        explicit = {"providers": providers, "provider_options": provider_options,
                    "intra_op_num_threads": intra_op_num_threads, "inter_op_num_threads": inter_op_num_threads,
                    "execution_mode": execution_mode, "graph_optimization_level": graph_optimization_level,
                    "session_config": session_config}
        for key, value in explicit.items():
            if value is not None:
                options[key] = value
        if dla_core is not None:
            per = {provider_name(k): dict(v) for k, v in (options.get("provider_options") or {}).items()}
            per.setdefault(TENSORRT, {}).update({"trt_dla_enable": True, "trt_dla_core": int(dla_core)})
            options["provider_options"] = per
            if not options.get("providers"):
                options["providers"] = ["tensorrt", "cuda", "cpu"]
        self.options = options
        self._model_info = model_info
        self._session = None
        self._input = None
        self._spec = None
        self._output_name = None
        self.providers = None

    # -- lifecycle -------------------------------------------------------------------------------
    def activate_impl(self):
        ort = require("onnxruntime", "the ONNX Runtime backend")
        check_input_file(self.model_path, "model", "check the path or run `edgealex build`")
        providers = resolve_providers(self.options.get("providers"), ort.get_available_providers())
        per_provider = {provider_name(k): dict(v) for k, v in (self.options.get("provider_options") or {}).items()}
        stray = [name for name in per_provider if name not in providers]
        if stray:
            logger.warning("provider options for %s ignored: that provider is not used", ", ".join(stray))
        session_options = self._session_options(ort)
        try:
            self._session = ort.InferenceSession(
                self.model_path, sess_options=session_options, providers=providers,
                provider_options=[per_provider.get(name, {}) for name in providers])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise EdgeAlexError(self.model_path, f"ONNX Runtime could not load the model ({type(exc).__name__}: {first_line[:300]})", "re-export or rebuild it; check the provider options")
        self.providers = list(self._session.get_providers())
        dropped = [name for name in providers if name not in self.providers]
        if dropped:
            logger.warning("ONNX Runtime did not enable %s (running on %s); check its CUDA/TensorRT libraries",
                           ", ".join(dropped), ", ".join(self.providers))
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise EdgeAlexError(self.model_path, f"the model has {len(inputs)} inputs; edgealex runs single-input classifiers", "export the classifier with one image input")
        self._input = inputs[0]
        if self._input.type not in _FLOAT_INPUTS:
            raise EdgeAlexError(self.model_path, f"the model's input {self._input.name!r} is {_ORT_DTYPES.get(self._input.type, self._input.type)}, but edgealex feeds it normalised "
                                "pixels (float, mean/std applied), which would be cast to integers",
                                "export the classifier with a float32 image input (edgealex export does)")
        self._spec = None
        outputs = [o.name for o in self._session.get_outputs()]
        info = self.model_info
        self._output_name = info.output_name if info.output_name in outputs else outputs[0]
        self._check_record_shape()
        logger.debug("%s: %s on %s", self.name, self.model_path, ", ".join(self.providers))

    def _session_options(self, ort):
        opts = ort.SessionOptions()
        for key in ("intra_op_num_threads", "inter_op_num_threads"):
            value = self.options.get(key)
            if value is not None:
                if int(value) < 0:
                    raise EdgeAlexError(_OPTION_NAMES.get(key, key), f"must be >= 0, got {value}",
                                        "use 0 for ONNX Runtime's default")
                setattr(opts, key, int(value))
        level = self.options.get("graph_optimization_level")
        if level is not None:
            if str(level).lower() not in _OPT_LEVELS:
                raise EdgeAlexError("graph_optimization_level", f"unknown value {level!r}",
                                    "use one of: " + ", ".join(_OPT_LEVELS))
            opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[str(level).lower()])
        mode = self.options.get("execution_mode")
        if mode is not None:
            if str(mode).lower() not in _EXEC_MODES:
                raise EdgeAlexError("execution_mode", f"unknown value {mode!r}",
                                    "use one of: " + ", ".join(_EXEC_MODES))
            opts.execution_mode = getattr(ort.ExecutionMode, _EXEC_MODES[str(mode).lower()])
        for key, value in (self.options.get("session_config") or {}).items():
            opts.add_session_config_entry(str(key), str(value))
        return opts

    def _check_record_shape(self):
        want = list(getattr(self.record, "input_shape", None) or [])
        have = [d if isinstance(d, int) else None for d in self._input.shape]
        if want and len(want) == len(have) and any(
                w is not None and h is not None and w != h for w, h in zip(want, have)):
            raise EdgeAlexError(self.model_path, f"the sidecar records input shape {want} but the model has {have}", "the sidecar belongs to another model; rebuild with `edgealex build`")

    def deactivate_impl(self):
        self._session = None
        self._input = None
        self._spec = None

    # -- metadata ----------------------------------------------------------------------------------
    @property
    def model_info(self):
        """:class:`ModelInfo`: given, else the sidecar's, else the ONNX metadata (or defaults)."""
        if self._model_info is None:
            from edgealex.modelinfo import METADATA_KEY, ModelInfo, read_model_info

            if self.record is not None and getattr(self.record, "model", None):
                self._model_info = ModelInfo.from_dict(self.record.model)
            elif self._session is not None and METADATA_KEY in self._session.get_modelmeta().custom_metadata_map:
                # Read from the session itself: a device without the onnx package still works.
                raw = self._session.get_modelmeta().custom_metadata_map[METADATA_KEY]
                try:
                    self._model_info = ModelInfo.from_dict(json.loads(raw))
                except ValueError:
                    raise EdgeAlexError(self.model_path, "the edgealex metadata is not valid JSON",
                                        "export the model again with `edgealex export`")
            else:
                self._model_info = read_model_info(self.model_path, allow_default=True)
        return self._model_info

    def input_spec_impl(self):
        if self._input is not None:
            spec = self._spec
            if spec is None:  # computed once per session: infer() checks every batch against it
                shape = tuple(d if isinstance(d, int) and d > 0 else None for d in self._input.shape)
                dtype = _ORT_DTYPES.get(self._input.type)
                if dtype is None:
                    raise EdgeAlexError(self.model_path, f"unsupported input type {self._input.type}",
                                        "export the model with a float32 input")
                spec = self._spec = TensorSpec(self._input.name, shape, dtype)
            return spec
        if self.record is not None and self.record.input_shape:
            return TensorSpec(self.model_info.input_name, tuple(self.record.input_shape), "float32")
        raise EdgeAlexError(self.model_path, "the input shape is known once the runner is active",
                            "use the runner as a context manager first: `with runner: ...`")

    def infer_impl(self, batch):
        return self._session.run([self._output_name], {self._input.name: batch})[0]

    def describe(self):
        """What runs where, for summaries and provenance."""
        return {"backend": "ort", "runner": self.name, "model": self.model_path,
                "providers": self.providers or self.options.get("providers") or [CPU],
                "options": {k: v for k, v in self.options.items() if k != "providers"}}
