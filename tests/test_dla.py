"""DLA placement prediction on tiny ONNX graphs built with onnx.helper, and on the AlexNet export."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgealex.cli.main import app
from edgealex.dla import dla_check, predict_placement, rules_for
from edgealex.dla.placement import predict_model
from edgealex.dla.trtcheck import attribute_layers, compare
from edgealex.errors import EdgeAlexError
from edgealex.target import load_target

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

runner = CliRunner()


def weight(name, shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


class Net:
    """A chain of nodes on a 1x3xHxW (or custom) input, saved as a real .onnx file."""

    def __init__(self, shape=(1, 8, 32, 32)):
        self.shape = list(shape)
        self.nodes, self.inits, self.last, self.channels = [], [], "input", shape[1]

    def add(self, op, *extra_inputs, outputs=1, **attrs):
        name = f"{op.lower()}{len(self.nodes)}"
        outs = [f"{name}_out"] + [f"{name}_out{i}" for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op, [self.last] + list(extra_inputs), outs, name=name, **attrs))
        self.last = outs[0]
        return name

    def conv(self, kernel=3, out=None, **attrs):
        out = out or self.channels
        k = kernel if isinstance(kernel, (list, tuple)) else [kernel, kernel]
        w = f"w{len(self.nodes)}"
        self.inits.append(weight(w, [out, self.channels // attrs.get("group", 1)] + list(k)))
        self.channels = out
        return self.add("Conv", w, kernel_shape=list(k), **attrs)

    def const(self, name, values):
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
        return name

    def save(self, path, opset=13):
        graph = helper.make_graph(
            self.nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, self.shape)],
            [helper.make_empty_tensor_value_info(self.last)], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        # the output's type comes from shape inference, then the model must pass the checker
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        model.graph.output[0].CopyFrom(inferred.graph.output[0])
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        return str(path)


def predict(net, tmp_path, target="agx-xavier", precision="fp16", trt=None):
    path = net.save(tmp_path / "m.onnx")
    if trt is None:
        return predict_placement(path, target, precision)
    return predict_model(onnx.load(path), load_target(target), precision, trt)


def node(report, name):
    return next(n for n in report.nodes if n.name == name)


# -- convolution ------------------------------------------------------------------------------------

def test_conv_33x33_falls_back_with_the_reason(tmp_path):
    net = Net((1, 8, 64, 64))
    name = net.conv(33)
    report = predict(net, tmp_path)
    assert node(report, name).device == "gpu"
    assert "kernel 33x33 outside DLA's [1, 32]" in node(report, name).reasons[0]
    assert report.dla_subgraphs == 0 and not report.fully_on_dla


def test_conv_limits(tmp_path):
    net = Net((1, 8, 64, 64))
    ok = net.conv(3, pads=[1, 1, 1, 1])
    stride = net.conv(3, strides=[9, 9])
    pad = net.conv(3, pads=[3, 3, 3, 3])
    dilation = net.conv(3, dilations=[33, 33])
    maps = net.conv(1, out=9000)
    report = predict(net, tmp_path)
    assert node(report, ok).device == "dla"
    assert "stride 9x9" in node(report, stride).reasons[0]
    assert "not smaller than kernel" in node(report, pad).reasons[0]
    assert "dilation 33x33" in node(report, dilation).reasons[0]
    assert "9000 output maps" in node(report, maps).reasons[0]


def test_3d_conv_is_gpu(tmp_path):
    net = Net((1, 4, 8, 8, 8))
    name = net.conv([3, 3, 3], pads=[1] * 6)
    assert "3D convolution" in node(predict(net, tmp_path), name).reasons[0]


# -- pooling, LRN, activations, elementwise --------------------------------------------------------------

def test_lrn_window_sizes(tmp_path):
    net = Net()
    bad = net.add("LRN", size=4)
    good = net.add("LRN", size=5)
    report = predict(net, tmp_path)
    assert node(report, bad).device == "gpu" and "LRN window 4 not in {3, 5, 7, 9}" in node(report, bad).reasons
    assert node(report, good).device == "dla"


def test_pooling_limits(tmp_path):
    net = Net((1, 8, 64, 64))
    window = net.add("MaxPool", kernel_shape=[9, 9])
    stride = net.add("MaxPool", kernel_shape=[2, 2], strides=[17, 17])
    ok = net.add("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    report = predict(net, tmp_path)
    assert "window 9x9" in node(report, window).reasons[0]
    assert "stride 17x17" in node(report, stride).reasons[0]
    assert node(report, ok).device == "dla"


def test_exclusive_average_padding_by_version_and_soc(tmp_path):
    net = Net()
    name = net.add("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1])  # ONNX default: exclusive
    assert node(predict(net, tmp_path, "agx-xavier", trt="8.5.2"), name).device == "gpu"  # "On Xavier" (8.5)
    assert node(predict(net, tmp_path, "agx-orin", trt="10.3.0"), name).device == "dla"  # rule is Xavier-only
    assert node(predict(net, tmp_path, "agx-orin", trt="8.2.1"), name).device == "gpu"  # 8.2: every DLA


def test_global_pool_window_from_shapes(tmp_path):
    small, large = Net((1, 8, 6, 6)), Net((1, 8, 16, 16))
    a, b = small.add("GlobalAveragePool"), large.add("GlobalAveragePool")
    assert node(predict(small, tmp_path), a).device == "dla"
    assert "16x16" in node(predict(large, tmp_path), b).reasons[0]


def test_activation_and_elementwise_kinds(tmp_path):
    net = Net()
    leaky = net.add("LeakyRelu", alpha=0.1)
    sigmoid = net.add("Sigmoid")
    add = net.add("Add", net.const("bias", np.zeros((1, 8, 1, 1))))
    div = net.add("Div", net.const("scale", np.ones((1, 8, 1, 1))))
    report = predict(net, tmp_path)
    assert node(report, leaky).device == "gpu" and "not one of ReLU, Sigmoid, Tanh, Clip" in node(report, leaky).reasons[0]
    assert node(report, sigmoid).device == "dla"
    assert node(report, add).device == "dla"
    assert node(report, div).device == "gpu" and "SUM, PROD, MAX, MIN, SUB" in node(report, div).reasons[0]


def test_softmax_gather_concat_and_qdq(tmp_path):
    net = Net((1, 5, 1, 1))
    softmax = net.add("Softmax", axis=1)
    report = predict(net, tmp_path, "agx-xavier")
    assert node(report, softmax).device == "gpu" and "not supported on Xavier" in node(report, softmax).reasons[0]
    assert node(predict(net, tmp_path, "agx-orin"), softmax).device == "dla"
    assert node(predict(net, tmp_path, "agx-xavier", trt="8.2.1"), softmax).device == "unknown"

    net = Net()
    same = net.add("Concat", "input", axis=1)
    net.inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "idx"))
    gather = net.add("Gather", "idx", axis=1)
    report = predict(net, tmp_path)
    assert node(report, same).device == "dla"
    assert node(report, gather).device == "gpu" and "no DLA support" in node(report, gather).reasons[0]
    net = Net()
    wrong = net.add("Concat", "input", axis=2)
    assert node(predict(net, tmp_path), wrong).device == "gpu"

    net = Net()
    net.const("s", 0.1)
    net.inits.append(numpy_helper.from_array(np.array(0, dtype=np.int8), "z"))
    q = net.add("QuantizeLinear", "s", "z")
    report = predict(net, tmp_path, "agx-xavier")
    assert node(report, q).device == "gpu" and "explicit quantization" in node(report, q).reasons[0]
    assert node(predict(net, tmp_path, "agx-orin"), q).device == "unknown"


def test_resize_rules_only_in_8_2(tmp_path):
    net = Net()
    good = net.add("Resize", "", net.const("scales", [1, 1, 2, 2]), mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    bad = net.add("Resize", "", "scales", mode="linear")
    report = predict(net, tmp_path, "agx-orin", trt="8.2.1")
    assert node(report, good).device == "dla"
    assert node(report, bad).device == "gpu" and "nearest only" in node(report, bad).reasons[0]
    assert node(predict(net, tmp_path), good).device == "unknown"  # 8.5 header dropped the rules


def test_gemm_is_unknown_not_a_guess(tmp_path):
    net = Net((1, 64))
    net.inits.append(weight("fc", [10, 64]))
    gemm = net.add("Gemm", "fc", transB=1)
    report = predict(net, tmp_path)
    assert node(report, gemm).device == "unknown"
    assert "not verified" in node(report, gemm).reasons[0] and "IMatrixMultiplyLayer" in node(report, gemm).reasons[0]
    assert "1 unknown (Gemm" in report.verdict


# -- precision, dynamic shapes, graph structure ------------------------------------------------------

def test_fp32_puts_everything_on_gpu(tmp_path):
    net = Net()
    net.conv(3, pads=[1, 1, 1, 1])
    report = predict(net, tmp_path, precision="fp32")
    assert all(n.device == "gpu" for n in report.nodes)
    assert "only FP16 or INT8" in report.nodes[0].reasons[0]


def test_dynamic_batch_is_a_warning_dynamic_spatial_is_gpu(tmp_path):
    net = Net(("N", 8, 32, 32))
    name = net.conv(3, pads=[1, 1, 1, 1])
    report = predict(net, tmp_path)
    assert node(report, name).device == "dla"
    # the fix named is the one `edgealex build` accepts (it refuses a DLA build of a dynamic batch)
    assert any("dynamic batch" in w and "build --dla-core N` refuses" in w and "export --batch N" in w
               for w in report.warnings)
    net = Net((1, 8, "H", "W"))
    name = net.conv(3, pads=[1, 1, 1, 1])
    report = predict(net, tmp_path)
    assert node(report, name).device == "gpu" and "dynamic shapes" in node(report, name).reasons[0]


def test_subgraphs_transitions_and_no_layer_nodes(tmp_path):
    net = Net()
    net.conv(3, pads=[1, 1, 1, 1])
    identity = net.add("Identity")
    net.conv(3, pads=[1, 1, 1, 1])
    net.add("LeakyRelu")
    net.conv(3, pads=[1, 1, 1, 1])
    report = predict(net, tmp_path)
    assert node(report, identity).device == "none"
    # conv-identity-conv is one subgraph; LeakyRelu splits: input>dla, dla>gpu, gpu>dla, dla>output
    assert report.dla_subgraphs == 2 and report.transitions == 4
    assert report.counts == {"dla": 3, "gpu": 1, "unknown": 0, "none": 1}


def test_more_subgraphs_than_loadables(tmp_path):
    net = Net()
    for _ in range(17):
        net.conv(1)
        net.add("LeakyRelu")
    report = predict(net, tmp_path)
    assert report.dla_subgraphs == 17 and report.loadables_per_core == 16
    assert "exceed the 16-per-core loadable limit" in report.verdict and not report.fully_on_dla


def test_fully_on_dla_model(tmp_path):
    net = Net()
    net.conv(3, pads=[1, 1, 1, 1])
    net.add("Relu")
    net.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    report = predict(net, tmp_path, precision="int8")
    assert report.fully_on_dla and report.verdict.startswith("PREDICTION: all 3 layers can run on DLA (1 subgraph")
    assert any("EntropyCalibrator2" in c for c in report.caveats)


def test_rule_sets_by_version():
    assert rules_for("8.2.1").name == "8.2" and not rules_for("8.2.1").caveats
    assert rules_for("8.0.1").name == "8.2" and "8.0.1" in rules_for("8.0.1").caveats[0]
    assert rules_for("8.5.2").name == "8.5" and rules_for("8.6.1").name == "8.5"
    assert rules_for("10.3.0").name == "10" and rules_for("10.3.0").max_dim == 8192
    assert any("TensorRT 11" in c for c in rules_for("11.4.0").caveats)


def test_targets_without_dla_are_refused(tmp_path):
    net = Net()
    net.conv(3)
    path = net.save(tmp_path / "m.onnx")
    for name in ("nano", "orin-nano", "cpu", "desktop-cuda"):
        with pytest.raises(EdgeAlexError, match="has no DLA") as info:
            predict_placement(path, name)
        assert "agx-xavier" in info.value.note
    with pytest.raises(EdgeAlexError, match="does not exist"):
        dla_check(path, "orin-nx-8gb", dla_core=1)


# -- AlexNet export -------------------------------------------------------------------------------------

def test_alexnet_export_on_agx_xavier(alexnet_onnx):
    report = dla_check(alexnet_onnx, "agx-xavier", "fp16")
    by_op = {}
    for n in report.nodes:
        by_op.setdefault(n.op_type, set()).add(n.device)
    # every conv/pool parameter of torchvision's AlexNet is inside the DLA limits (facts §3.4)
    assert by_op["Conv"] == {"dla"} and by_op["MaxPool"] == {"dla"} and by_op["AveragePool"] == {"dla"}
    # the classifier is what the facts do not know: Gemm as matrix multiply, Flatten as shuffle
    assert by_op["Gemm"] == {"unknown"} and by_op["Flatten"] == {"unknown"}
    features = [n for n in report.nodes if n.name.startswith("/features")]
    assert features and all(n.device == "dla" for n in features)
    assert report.counts["gpu"] == 0
    assert report.dla_subgraphs == 1 and report.transitions == 2
    assert report.rules == "8.5" and report.tensorrt == "8.5.2" and report.label == "PREDICTION"
    assert not report.fully_on_dla
    assert report.tensorrt_check is not None  # compared, or the reason it was skipped


def test_alexnet_export_on_orin_tensorrt_10(alexnet_onnx):
    report = predict_placement(alexnet_onnx, "agx-orin", "int8")
    flatten = next(n for n in report.nodes if n.op_type == "Flatten")
    assert flatten.device == "gpu" and "> 8192" in flatten.reasons[0]


# -- CLI ----------------------------------------------------------------------------------------------

def test_cli_table_json_strict_and_refusal(tmp_path, alexnet_onnx):
    result = runner.invoke(app, ["dla-check", alexnet_onnx, "--target", "agx-xavier"])
    assert result.exit_code == 0, result.output
    assert "PREDICTION" in result.output and "/features/features.0/Conv" in result.output
    assert "limit 16 loadables per DLA core" in result.output
    result = runner.invoke(app, ["dla-check", alexnet_onnx, "--target", "agx-xavier", "--strict"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["dla-check", alexnet_onnx, "--target", "nano"])
    assert result.exit_code == 1 and "has no DLA" in result.output and "Traceback" not in result.output
    net = Net()
    net.conv(3, pads=[1, 1, 1, 1])
    small = net.save(tmp_path / "small.onnx")
    result = runner.invoke(app, ["dla-check", small, "-t", "xavier-nx", "--strict", "--json", "--no-tensorrt"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fully_on_dla"] and data["counts"]["dla"] == 1 and data["label"] == "PREDICTION"
    assert data["tensorrt_check"] == {"skipped": "not requested (--no-tensorrt)"}


# -- TensorRT cross-check -----------------------------------------------------------------------------

def test_layer_attribution_to_onnx_nodes():
    layers = [{"name": "(Unnamed Layer* 0) [Constant]", "type": "CONSTANT", "can_run_on_dla": False},
              {"name": "(Unnamed Layer* 1) [Shuffle]", "type": "SHUFFLE", "can_run_on_dla": True},
              {"name": "gemm0", "type": "MATRIX_MULTIPLY", "can_run_on_dla": False},
              {"name": "gemm0_bias", "type": "ELEMENTWISE", "can_run_on_dla": True},
              {"name": "relu1", "type": "ACTIVATION", "can_run_on_dla": True}]
    out = attribute_layers(["gemm0", "relu1"], layers)
    assert [x["name"] for x in out["gemm0"]] == ["(Unnamed Layer* 1) [Shuffle]", "gemm0", "gemm0_bias"]
    assert [x["name"] for x in out["relu1"]] == ["relu1"]


def test_compare_reports_disagreements_and_resolved_unknowns(tmp_path):
    net = Net((1, 64))
    net.inits.append(weight("fc", [10, 64]))
    net.add("Gemm", "fc", transB=1)
    report = predict(net, tmp_path)
    result = compare(report, {"tensorrt": "8.5.2", "layers": [
        {"name": "gemm0", "type": "MATRIX_MULTIPLY", "can_run_on_dla": True}]})
    assert result["resolved"][0]["tensorrt"] == "dla" and result["disagree"] == []


@pytest.mark.trt
@pytest.mark.dla
def test_tensorrt_can_run_on_dla_matches_the_rules(tmp_path):
    from edgealex.dla.trtcheck import ask_tensorrt

    net = Net((1, 8, 64, 64))
    ok = net.conv(3, pads=[1, 1, 1, 1])
    big = net.conv(33)
    path = net.save(tmp_path / "m.onnx")
    answers = ask_tensorrt(path, "fp16", 0)
    layers = {layer["name"]: layer["can_run_on_dla"] for layer in answers["layers"]}
    assert layers[ok] is True and layers[big] is False
    report = dla_check(path, "agx-xavier", "fp16")
    assert report.tensorrt_check["disagree"] == [], report.tensorrt_check


def test_messages_cite_primary_sources_not_the_facts_sheet(tmp_path):
    """Issue 17 follow-up E: every reason, caveat and warning dla-check prints cites NVIDIA's headers or
    docs, never a "facts §" sheet or "open item" that is not in the repository."""
    gemm = Net((1, 64))
    gemm.inits.append(weight("fc", [10, 64]))
    gemm.add("Gemm", "fc", transB=1)
    qdq = Net()
    qdq.conv(3, pads=[1, 1, 1, 1])
    qdq.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    qdq.add("BatchNormalization", qdq.const("g", [1.0] * 8), qdq.const("b", [0.0] * 8), qdq.const("m", [0.0] * 8),
            qdq.const("v", [1.0] * 8))
    qdq.add("Softplus")
    qdq.const("s", 0.1)
    qdq.inits.append(numpy_helper.from_array(np.array(0, dtype=np.int8), "z"))
    qdq.add("QuantizeLinear", "s", "z")
    texts = []
    for i, net in enumerate((gemm, qdq)):
        path = net.save(tmp_path / f"m{i}.onnx")
        for target in ("agx-xavier", "agx-orin"):
            for extra in ([], ["--json"]):
                result = runner.invoke(app, ["dla-check", path, "-t", target, "--precision", "int8", "--no-tensorrt"]
                                       + extra)
                assert result.exit_code == 0, result.output
                texts.append(result.output)
    text = "\n".join(texts)
    assert "not verified" in text and "include/NvInfer.h" in text and "explicit quantization" in text
    for stale in ("facts §", "open item", "the facts", "(§"):
        assert stale not in text
    from edgealex.dla.rules import rules_for

    for version in ("8.2.1", "8.4.1", "8.5.2", "10.3.0", "11.4.1"):
        rules = rules_for(version)
        assert "facts" not in rules.source + " ".join(rules.caveats)


def test_a_skip_edge_around_a_gpu_layer_splits_the_dla_subgraph(tmp_path):
    """Found by a fresh-user attack (issue 15): alexnet-se counted 1 DLA subgraph with 4 transitions.
    SE's Relu feeds both the GPU's GlobalAveragePool and, directly, the Mul that waits for the GPU's
    result: Relu and Mul cannot be one DLA loadable."""
    net = Net((1, 8, 16, 16))
    net.conv(3, pads=[1, 1, 1, 1])
    net.add("Relu")
    relu_out = net.last
    pool = net.add("GlobalAveragePool")  # 16x16: GPU
    net.add("Sigmoid")
    net.nodes.append(helper.make_node("Mul", [relu_out, net.last], ["mul_out"], name="mul"))
    net.last = "mul_out"
    report = predict(net, tmp_path)
    assert node(report, pool).device == "gpu" and node(report, "mul").device == "dla"
    # input>dla (conv, relu) | dla>gpu (pool) | gpu>dla (sigmoid, mul: a second subgraph) | dla>output
    assert report.dla_subgraphs == 2 and report.transitions == 4
