"""TensorRT Python-API builds. Skipped unless `tensorrt` imports and a CUDA device is present
(DLA tests also need DLA cores); conftest.py decides by probing."""

import os

import numpy as np
import pytest

from build_helpers import LABELS, SIZE, run_onnx, tiny_classifier
from edgealex.errors import EdgeAlexError

pytestmark = [pytest.mark.trt, pytest.mark.gpu]


def trt_module():
    import tensorrt

    return tensorrt


def test_probed_features_match_the_table_for_this_tensorrt():
    from edgealex.build.plan import features_for_version, probe_features

    trt = trt_module()
    probed, table = probe_features(trt), features_for_version(trt.__version__)
    for key in ("explicit_batch_flag", "strongly_typed_only", "memory_pool_limit", "int8_calibrator",
                "implicit_int8_deprecated"):
        assert getattr(probed, key) == getattr(table, key), key


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_python_api_build_loads_and_matches_onnx_runtime(tmp_path, precision, atol):
    from edgealex.build.api import build_engine
    from edgealex.engine import check_record, read_record
    from edgealex.runtime.cudamem import current_device_name
    from edgealex.runtime.registry import load_runner

    trt = trt_module()
    model = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(model, precision=precision, builder="python", out_dir=str(tmp_path / "e"),
                          timing_cache=str(tmp_path / "timing.cache"))
    assert result.builder == "python" and result.backend_version == trt.__version__
    record = read_record(result.engine_path)
    check_record(result.engine_path, record, tensorrt_version=trt.__version__, device_name=current_device_name())
    assert record.build["plan"]["precision"] == precision and os.path.getsize(tmp_path / "timing.cache") > 0
    with open(result.log_path) as handle:
        assert "[TRT]" in handle.read()
    x = np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32)
    with load_runner(result.engine_path) as runner:
        got = np.array(runner.infer(x))
    want = run_onnx(model, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol * max(1.0, float(np.abs(want).max())))
    assert runner.model_info.labels == LABELS


def test_parser_errors_are_drained_and_nothing_is_written(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgealex.build.api import build_engine

    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["input"], ["logits"], domain="edgealex.test")], "bad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid("edgealex.test", 1)]), str(path))
    with pytest.raises(EdgeAlexError) as err:
        build_engine(str(path), precision="fp32", builder="python", out_dir=str(tmp_path / "e"))
    assert "ONNX parser failed with" in err.value.what and "NoSuchOperator" in err.value.what
    assert not any(n.endswith(".engine") for n in os.listdir(tmp_path / "e"))


def test_int8_on_device_calibration_from_images(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from edgealex.build.api import build_engine
    from edgealex.build.plan import probe_features

    trt = trt_module()
    if not probe_features(trt).int8_calibrator:
        pytest.skip(f"TensorRT {trt.__version__} has no calibrator (INT8 is Q/DQ only)")
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("ok", "scratch"):
        (images / cls).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(images / cls / f"{i}.png"), rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    model = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(model, precision="int8", calib=str(images), builder="python", force_int8=True,
                          out_dir=str(tmp_path / "e"))
    calibration = result.record.calibration
    assert calibration["method"] == "images" and calibration["calibration_batches"] == 8
    assert os.path.isfile(calibration["cache_written"])
    with open(calibration["cache_written"]) as handle:
        assert handle.readline().startswith("TRT-")


@pytest.mark.dla
def test_dla_fp16_build_lists_dla_layers(tmp_path):
    from edgealex.build.api import build_engine

    model = tiny_classifier(tmp_path / "tiny.onnx")
    result = build_engine(model, precision="fp16", dla_core=0, builder="python", out_dir=str(tmp_path / "e"))
    assert result.device == "dla0" and result.record.dla_core == 0
    assert result.layers["dla"], result.layers
