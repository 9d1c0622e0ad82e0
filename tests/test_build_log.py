"""Layer placement (DLA / GPU) read from TensorRT verbose build logs in the spellings TensorRT uses."""

from edgealex.build.buildlog import parse_layer_placement, read_layer_placement, split_layer_list

# TensorRT 8.4+ via trtexec --verbose (framed headers, one [DlaLayer]/[GpuLayer] line per layer).
TRTEXEC_85 = """\
[11/20/2026-10:01:02] [I] [TRT] ---------------------------------------------------------------
[11/20/2026-10:01:02] [I] [TRT] Input filename:   alexnet.onnx
[11/20/2026-10:01:02] [V] [TRT] Parsing node: /features/features.0/Conv [Conv]
[11/20/2026-10:01:03] [W] [TRT] Layer '/classifier/classifier.6/Gemm' (MATRIX_MULTIPLY): Unsupported on DLA. Switching this layer's device type to GPU.
[11/20/2026-10:01:03] [W] [TRT] Layer '/avgpool/AveragePool' (POOLING): Unsupported on DLA. Switching this layer's device type to GPU.
[11/20/2026-10:01:04] [I] [TRT] ---------- Layers Running on DLA ----------
[11/20/2026-10:01:04] [I] [TRT] [DlaLayer] {ForeignNode[/features/features.0/Conv.../features/features.12/MaxPool]}
[11/20/2026-10:01:04] [I] [TRT] [DlaLayer] {ForeignNode[/classifier/classifier.1/Gemm.../classifier/classifier.5/Relu]}
[11/20/2026-10:01:04] [I] [TRT] ---------- Layers Running on GPU ----------
[11/20/2026-10:01:04] [I] [TRT] [GpuLayer] POOLING: /avgpool/AveragePool
[11/20/2026-10:01:04] [I] [TRT] [GpuLayer] SHUFFLE: /Flatten + reshape_before_/classifier/classifier.1/Gemm
[11/20/2026-10:01:04] [I] [TRT] [GpuLayer] MATRIX_MULTIPLY: /classifier/classifier.6/Gemm
[11/20/2026-10:01:05] [V] [TRT] Total number of generated kernels selected for the engine: 3
[11/20/2026-10:01:05] [I] [TRT] Total Host Persistent Memory: 1234
&&&& PASSED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=alexnet.onnx --useDLACore=0
"""

# TensorRT 8.0/8.2 via the Python logger: one header, then ONE comma-separated line; DLA groups in braces.
PYTHON_82 = """\
[TensorRT] VERBOSE: Applying generic optimizations to the graph for inference.
[TensorRT] WARNING: Default DLA is enabled but layer Softmax_21 is not supported on DLA, falling back to GPU.
[TensorRT] INFO:
[TensorRT] INFO: --------------- Layers running on DLA:
[TensorRT] INFO: {Conv_0,Relu_1,MaxPool_2,Conv_3,Relu_4}, {Conv_6,Relu_7},
[TensorRT] INFO: --------------- Layers running on GPU:
[TensorRT] INFO: Flatten_15, Gemm_16 + Relu_17, PWN(PWN(Sigmoid_18), Mul_19), Softmax_21,
[TensorRT] VERBOSE: Constructing optimization profile number 0 [1/1].
"""

# edgealex's own Python-API log ("[I] [TRT] ..."), INT8 with on-device calibration: TensorRT builds a
# calibration network first (everything on the GPU), then the engine. The last listing is the engine's.
EDGEALEX_CALIBRATION_BUILD = """\
[I] [TRT] Starting Calibration.
[I] [TRT] ---------- Layers Running on DLA ----------
[I] [TRT] ---------- Layers Running on GPU ----------
[I] [TRT] [GpuLayer] CONVOLUTION: Conv_0 + Relu_1
[I] [TRT] [GpuLayer] POOLING: MaxPool_2
[I] [TRT] Calibrated batch 0 in 0.02 seconds.
[V] [TRT] Calibration completed in 1.5 seconds.
[I] [TRT] ---------- Layers Running on DLA ----------
[I] [TRT] [DlaLayer] {ForeignNode[Conv_0...MaxPool_2]}
[I] [TRT] ---------- Layers Running on GPU ----------
[I] [TRT] [GpuLayer] SHUFFLE: Flatten_3
[I] [TRT] [GpuLayer] CONSTANT: fc.weight
[V] [TRT] Engine generation completed in 4.1 seconds.
"""

# The cuDLA-sample mix: old header, [DlaLayer] lines with trailing commas, nothing on the GPU.
MIXED = """\
[I] [TRT]
[I] [TRT] --------------- Layers running on DLA:
[I] [TRT] [DlaLayer] {ForeignNode[Conv_0...Gemm_7]},
[I] [TRT] --------------- Layers running on GPU:
[I] [TRT]
&&&& PASSED
"""

# TensorRT 7-style DeepStream output: "INFO: [TRT]:" prefix, empty DLA list, subgraph-limit fallbacks.
DEEPSTREAM = """\
WARNING: [TRT]: DLA supports only 16 subgraphs per DLA core. Switching to GPU for layer conv_17
INFO: [TRT]: --------------- Layers running on DLA:
INFO: [TRT]:
INFO: [TRT]: --------------- Layers running on GPU:
INFO: [TRT]: conv1 + activation_1/Relu, block_1a_conv_1 + activation_2/Relu, conv_17,
INFO: [TRT]: Detected 1 inputs and 2 output network tensors.
"""


def test_trtexec_85_log():
    placement = parse_layer_placement(TRTEXEC_85)
    assert placement["found"]
    assert placement["dla"] == ["{ForeignNode[/features/features.0/Conv.../features/features.12/MaxPool]}",
                                "{ForeignNode[/classifier/classifier.1/Gemm.../classifier/classifier.5/Relu]}"]
    assert placement["gpu"] == ["/avgpool/AveragePool", "/Flatten + reshape_before_/classifier/classifier.1/Gemm",
                                "/classifier/classifier.6/Gemm"]
    assert placement["fallback"] == ["/classifier/classifier.6/Gemm", "/avgpool/AveragePool"]


def test_python_82_one_line_lists():
    placement = parse_layer_placement(PYTHON_82)
    assert placement["dla"] == ["{Conv_0,Relu_1,MaxPool_2,Conv_3,Relu_4}", "{Conv_6,Relu_7}"]
    assert placement["gpu"] == ["Flatten_15", "Gemm_16 + Relu_17", "PWN(PWN(Sigmoid_18), Mul_19)", "Softmax_21"]
    assert placement["fallback"] == ["Softmax_21"]


def test_last_listing_wins_after_calibration():
    placement = parse_layer_placement(EDGEALEX_CALIBRATION_BUILD)
    assert placement["dla"] == ["{ForeignNode[Conv_0...MaxPool_2]}"]
    assert placement["gpu"] == ["Flatten_3", "fc.weight"]


def test_mixed_cudla_spelling_and_empty_gpu_list():
    placement = parse_layer_placement(MIXED)
    assert placement == {"dla": ["{ForeignNode[Conv_0...Gemm_7]}"], "gpu": [], "fallback": [], "found": True}


def test_deepstream_prefix_empty_dla_and_subgraph_fallback():
    placement = parse_layer_placement(DEEPSTREAM)
    assert placement["dla"] == []
    assert placement["gpu"] == ["conv1 + activation_1/Relu", "block_1a_conv_1 + activation_2/Relu", "conv_17"]
    assert placement["fallback"] == ["conv_17"]


def test_a_log_without_placement():
    placement = parse_layer_placement("[I] [TRT] Loaded engine size: 112 MiB\n[V] [TRT] Tactic: 0x1 Time: 0.1\n")
    assert placement == {"dla": [], "gpu": [], "fallback": [], "found": False}


def test_split_respects_nesting():
    assert split_layer_list("{a,b}, c(d, e), f[g,h] + i,") == ["{a,b}", "c(d, e)", "f[g,h] + i"]


def test_read_from_file(tmp_path):
    log = tmp_path / "e.engine.log"
    log.write_text(TRTEXEC_85)
    assert read_layer_placement(str(log))["dla"][0].startswith("{ForeignNode[")
    assert read_layer_placement(str(tmp_path / "missing.log"))["found"] is False
