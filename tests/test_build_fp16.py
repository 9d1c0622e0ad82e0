"""FP32 -> FP16 ONNX conversion for strongly typed TensorRT 11 (FP16 engines need an FP16 ONNX)."""

import json
import os

import numpy as np
import pytest

from build_helpers import SIZE, tiny_classifier
from edgealex.errors import EdgeAlexError

onnx = pytest.importorskip("onnx")


def reference(model, x):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"input": x})[0]


def test_weights_fp16_io_fp32_and_same_logits(tmp_path):
    from onnx import TensorProto

    from edgealex.build.fp16 import METADATA_KEY, convert_to_fp16

    model = onnx.load(tiny_classifier(tmp_path / "tiny.onnx"))
    half, stats = convert_to_fp16(model)
    assert stats["initializers"] == 4 and stats["clipped_values"] == 0
    assert all(t.data_type == TensorProto.FLOAT16 for t in half.graph.initializer)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert [n.op_type for n in half.graph.node] == ["Cast", "Conv", "Relu", "Flatten", "Gemm", "Cast"]
    assert all(t.data_type == TensorProto.FLOAT for t in model.graph.initializer)  # source untouched
    props = {p.key: p.value for p in half.metadata_props}
    assert json.loads(props[METADATA_KEY])["keep_io_types"] is True
    assert "edgealex" in props  # labels and preprocessing travel with the FP16 model
    x = np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32)
    want, got = reference(model, x), reference(half, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-2 * np.abs(want).max())


def test_out_of_range_weights_are_clipped_and_counted(tmp_path):
    from onnx import numpy_helper

    from edgealex.build.fp16 import FP16_MAX, convert_to_fp16

    model = onnx.load(tiny_classifier(tmp_path / "tiny.onnx"))
    bias = numpy_helper.to_array(model.graph.initializer[3]).copy()
    bias[0], bias[1] = 1e6, -1e9
    model.graph.initializer[3].CopyFrom(numpy_helper.from_array(bias, model.graph.initializer[3].name))
    half, stats = convert_to_fp16(model)
    assert stats["clipped_values"] == 2
    converted = numpy_helper.to_array(half.graph.initializer[3])
    assert converted[0] == FP16_MAX and converted[1] == -FP16_MAX and np.isfinite(converted).all()


def test_resize_scales_stay_float32():
    from onnx import TensorProto, helper, numpy_helper

    from edgealex.build.fp16 import convert_to_fp16

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    graph = helper.make_graph(
        [helper.make_node("Resize", ["input", "", "scales"], ["logits"], mode="nearest")], "resize",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])], initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    half, stats = convert_to_fp16(model)
    assert half.graph.initializer[0].data_type == TensorProto.FLOAT and stats["initializers"] == 0
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    np.testing.assert_array_equal(reference(half, x), reference(model, x))


def test_control_flow_is_refused():
    from onnx import TensorProto, helper

    from edgealex.build.fp16 import convert_to_fp16

    branch = helper.make_graph([], "b", [], [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["logits"], then_branch=branch, else_branch=branch)], "cf",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])])
    with pytest.raises(EdgeAlexError, match="control flow"):
        convert_to_fp16(helper.make_model(graph), source="cf.onnx")


def test_trt11_fp16_print_prepares_the_fp16_onnx(tmp_path):
    """A strongly typed target gets the FP16 ONNX written next to the engine and named in the command."""
    from edgealex.build.api import build_engine
    from edgealex.target import load_target

    source = load_target("desktop-cuda")
    profile = tmp_path / "rtx-trt11.toml"
    text = open(source.source).read().replace('name = "desktop-cuda"', 'name = "rtx-trt11"')
    profile.write_text(text.replace(f'tensorrt = "{source.tensorrt}"', 'tensorrt = "11.1.0"'))
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(onnx_path, target=str(profile), precision="fp16", print_trtexec=True,
                          out_dir=str(tmp_path / "e"))
    fp16_path = os.path.join(str(tmp_path / "e"), "tiny-fp16.onnx")
    assert result.prepared == [fp16_path] and os.path.isfile(fp16_path)
    assert f"--onnx={fp16_path}" in result.trtexec_command
    assert "--fp16" not in result.trtexec_command and result.plan["onnx_input"] == "fp16"
    assert onnx.load(fp16_path).graph.initializer[0].data_type == onnx.TensorProto.FLOAT16
