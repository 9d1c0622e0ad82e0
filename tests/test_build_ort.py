"""ONNX Runtime engines end to end: build -> load -> same logits; sidecar; atomic writes; refusals."""

import os

import numpy as np
import pytest

from build_helpers import SIZE, calibration_output, run_onnx, tiny_classifier, write_cache
from edgealex.artifacts import sha256_file, sidecar_path
from edgealex.build.api import build_engine
from edgealex.engine import check_record, read_record
from edgealex.errors import EdgeAlexError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def batch(n=2, seed=3):
    return np.random.default_rng(seed).random((n, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture()
def tiny(tmp_path):
    return tiny_classifier(tmp_path / "tiny.onnx", batch=None)


def test_fp32_engine_runs_like_the_source(tmp_path, tiny):
    import onnxruntime as ort

    from edgealex.runtime.registry import load_runner

    out = tmp_path / "engines"
    result = build_engine(tiny, target="cpu", out_dir=str(out))
    assert result.builder == "ort" and "runs ONNX Runtime" in result.builder_reason
    assert os.path.basename(result.engine_path) == f"tiny-fp32-cpu-ort{ort.__version__}-cpu.onnx"
    assert sorted(os.listdir(out)) == sorted([os.path.basename(result.engine_path),
                                              os.path.basename(result.sidecar_path)])
    x = batch()
    np.testing.assert_array_equal(run_onnx(result.engine_path, x), run_onnx(tiny, x))
    with load_runner(result.engine_path) as runner:  # the runner used by run/bench reads the sidecar
        np.testing.assert_array_equal(runner.infer(x), run_onnx(tiny, x))
        assert runner.model_info.labels == ["ok", "scratch", "stain", "crack", "hole"]
    # Same filesystem: hard-linked, not copied.
    assert os.stat(result.engine_path).st_ino == os.stat(tiny).st_ino
    assert result.record.build["placed_by"] == "hardlink"


def test_sidecar_content(tmp_path, tiny):
    from edgealex.runtime.ort import RUNTIME_OPTION_KEYS

    result = build_engine(tiny, target="cpu", out_dir=str(tmp_path / "e"))
    record = read_record(result.engine_path)
    assert record.backend == "ort" and record.precision == "fp32" and record.device == "cpu"
    assert record.target == "cpu" and record.builder == "ort" and record.device_name == "cpu"
    assert record.onnx_sha256 == sha256_file(tiny) == record.sha256 == sha256_file(result.engine_path)
    assert record.input_shape == [None, 3, SIZE, SIZE]
    assert record.model["labels"] == ["ok", "scratch", "stain", "crack", "hole"]
    assert record.model["preprocess"]["input_size"] == SIZE
    assert set(record.runtime_options) <= set(RUNTIME_OPTION_KEYS)
    assert record.runtime_options["graph_optimization_level"] == "all"
    assert record.runtime_options["intra_op_num_threads"] == record.environment["physical_cores"] >= 1
    assert "CPUExecutionProvider" in record.environment["available_providers"]
    assert record.environment["edgealex_version"] and record.build_seconds > 0
    assert record.build["output_shape"] == [1, 5]
    assert record.calibration is None


def test_int8_from_a_calibration_folder(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, qdq=True, ort_native=True)
    x = batch()
    auto = build_engine(tiny, target="cpu", precision="int8", calib=calib, out_dir=str(tmp_path / "e"))
    native = os.path.join(calib, "model.ort-int8.onnx")
    assert auto.record.calibration["method"] == "ort-native"
    assert auto.record.calibration["int8_onnx_sha256"] == sha256_file(native) == auto.record.sha256
    np.testing.assert_array_equal(run_onnx(auto.engine_path, x), run_onnx(native, x))
    assert os.path.basename(auto.engine_path).startswith("tiny-int8-cpu-ort")

    qdq = build_engine(tiny, target="cpu", precision="int8", calib=calib, ort_int8="qdq", out_dir=str(tmp_path / "e"))
    assert qdq.record.calibration["method"] == "qdq"
    # Both INT8 flavours live side by side: the Q/DQ engine carries ".qdq" in its name.
    assert os.path.basename(qdq.engine_path).startswith("tiny.qdq-int8-cpu-ort")
    assert len(os.listdir(tmp_path / "e")) == 4
    check_record(auto.engine_path, read_record(auto.engine_path))
    np.testing.assert_array_equal(run_onnx(qdq.engine_path, x), run_onnx(os.path.join(calib, "model.qdq.onnx"), x))
    # INT8 stays close to FP32 on this tiny model (the quantization is real, not a copy).
    fp32 = run_onnx(tiny, x)
    assert np.abs(run_onnx(qdq.engine_path, x) - fp32).max() < 0.25 * np.abs(fp32).max()
    assert not np.array_equal(run_onnx(qdq.engine_path, x), fp32)


def test_int8_auto_falls_back_to_qdq_and_native_must_exist(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, qdq=True, ort_native=False)
    result = build_engine(tiny, target="cpu", precision="int8", calib=os.path.join(calib, "calibration.json"),
                          out_dir=str(tmp_path / "e"))
    assert result.record.calibration["method"] == "qdq"
    with pytest.raises(EdgeAlexError, match="no ONNX Runtime INT8 model"):
        build_engine(tiny, target="cpu", precision="int8", calib=calib, ort_int8="native", out_dir=str(tmp_path / "e"))


def test_fp32_and_int8_do_not_overwrite_each_other(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, caches=())
    out = str(tmp_path / "e")
    a = build_engine(tiny, target="cpu", out_dir=out)
    b = build_engine(tiny, target="cpu", precision="int8", calib=calib, out_dir=out)
    assert a.engine_path != b.engine_path and len(os.listdir(out)) == 4
    check_record(a.engine_path, read_record(a.engine_path))
    check_record(b.engine_path, read_record(b.engine_path))


def test_calibration_of_another_model_is_refused(tmp_path, tiny):
    calib = calibration_output(tmp_path / "calib", tiny, caches=(), model_sha256="0" * 64)
    with pytest.raises(EdgeAlexError) as err:
        build_engine(tiny, target="cpu", precision="int8", calib=calib, out_dir=str(tmp_path / "e"))
    assert "made for another model" in err.value.what and "000000000000" in err.value.what
    assert not os.path.exists(tmp_path / "e")


def test_calibration_that_failed_its_gate_is_refused(tmp_path, tiny):
    import json

    calib = calibration_output(tmp_path / "calib", tiny, caches=())
    manifest = os.path.join(calib, "calibration.json")
    data = json.load(open(manifest))
    data.update(gate_passed=False, agreement=0.62)
    json.dump(data, open(manifest, "w"))
    with pytest.raises(EdgeAlexError) as err:
        build_engine(tiny, target="cpu", precision="int8", calib=calib, out_dir=str(tmp_path / "e"))
    assert "failed its INT8 accuracy gate" in err.value.what and "0.62" in err.value.what


def test_ort_int8_needs_a_calibration_output(tmp_path, tiny):
    with pytest.raises(EdgeAlexError, match="needs the output of `edgealex calibrate`"):
        build_engine(tiny, target="cpu", precision="int8", out_dir=str(tmp_path / "e"))
    cache = write_cache(tmp_path / "x.cache", 8502)
    with pytest.raises(EdgeAlexError, match="is a TensorRT calibration cache"):
        build_engine(tiny, target="cpu", precision="int8", calib=cache, out_dir=str(tmp_path / "e"))
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(EdgeAlexError) as err:
        build_engine(tiny, target="cpu", precision="int8", calib=str(images), out_dir=str(tmp_path / "e"))
    assert "is an image folder" in err.value.what and "edgealex calibrate" in err.value.note


def test_target_rules_apply_to_cpu(tmp_path, tiny):
    with pytest.raises(EdgeAlexError, match="fp16 is not offered"):
        build_engine(tiny, target="cpu", precision="fp16", out_dir=str(tmp_path / "e"))
    with pytest.raises(EdgeAlexError, match="has no DLA"):
        build_engine(tiny, target="cpu", dla_core=0, out_dir=str(tmp_path / "e"))
    with pytest.raises(EdgeAlexError, match="is a TensorRT target"):
        build_engine(tiny, target="agx-xavier", builder="ort", out_dir=str(tmp_path / "e"))
    with pytest.raises(EdgeAlexError, match="runs ONNX Runtime, not TensorRT"):
        build_engine(tiny, target="cpu", builder="trtexec", out_dir=str(tmp_path / "e"))
    with pytest.raises(EdgeAlexError, match="unknown builder"):
        build_engine(tiny, target="cpu", builder="tensorflow", out_dir=str(tmp_path / "e"))


def _unrunnable_model(path):
    """A model onnx.load reads but ONNX Runtime cannot load (an operator no runtime has)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["input"], ["logits"], domain="edgealex.test")], "bad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("edgealex.test", 1)])
    onnx.save(model, str(path))
    return str(path)


def test_failed_build_leaves_no_engine_and_keeps_the_previous_one(tmp_path):
    out = tmp_path / "e"
    good = tiny_classifier(tmp_path / "tiny.onnx")
    first = build_engine(good, target="cpu", out_dir=str(out))
    before = {name: sha256_file(out / name) for name in os.listdir(out)}
    # The same model name now holds a model ONNX Runtime cannot load: the rebuild fails mid-build
    # (after the engine's temporary file was created) and must leave the earlier engine untouched.
    os.remove(good)
    _unrunnable_model(good)
    with pytest.raises(EdgeAlexError) as err:
        build_engine(good, target="cpu", out_dir=str(out))
    assert "ONNX Runtime could not load the model" in err.value.what
    assert {name: sha256_file(out / name) for name in os.listdir(out)} == before  # no temp files either
    check_record(first.engine_path, read_record(first.engine_path))


def test_corrupt_onnx_and_unwritable_output(tmp_path, tiny):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(open(tiny, "rb").read()[:500])
    with pytest.raises(EdgeAlexError, match="not a readable ONNX file"):
        build_engine(str(corrupt), target="cpu", out_dir=str(tmp_path / "e"))
    assert not os.path.exists(tmp_path / "e")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(EdgeAlexError, match="cannot create the"):
        build_engine(tiny, target="cpu", out_dir=str(blocker / "engines"))
    with pytest.raises(EdgeAlexError, match="does not exist"):
        build_engine(str(tmp_path / "missing.onnx"), target="cpu", out_dir=str(tmp_path / "e"))


def test_modified_engine_is_refused_on_load(tmp_path, tiny):
    from edgealex.runtime.registry import load_runner

    result = build_engine(tiny, target="cpu", out_dir=str(tmp_path / "e"))
    # Replace the engine file by a different valid model (a new inode, as an editor would).
    other = tiny_classifier(tmp_path / "other.onnx", batch=None, seed=7)
    os.replace(other, result.engine_path)
    with pytest.raises(EdgeAlexError, match="does not match its sidecar"):
        check_record(result.engine_path, read_record(result.engine_path))
    with pytest.raises(EdgeAlexError, match="does not match its sidecar"):
        load_runner(result.engine_path)
    os.remove(sidecar_path(result.engine_path))
    with pytest.raises(EdgeAlexError, match="no provenance sidecar"):
        read_record(result.engine_path)


def test_alexnet_engine_matches_the_source(tmp_path, alexnet_onnx):
    result = build_engine(alexnet_onnx, target="cpu", out_dir=str(tmp_path / "e"))
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    np.testing.assert_array_equal(run_onnx(result.engine_path, x), run_onnx(alexnet_onnx, x))
    assert result.record.input_shape == [1, 3, 224, 224]
    assert result.record.model["arch"] == "alexnet"


def test_rebuilding_over_a_hard_linked_engine_leaves_no_temporary_file(tmp_path, tiny):
    """The second build links the same source file again: rename() of one hard link over another
    link to the same file is a no-op, which used to leave the ``.tmp-*`` name behind."""
    out = tmp_path / "engines"
    first = build_engine(tiny, target="cpu", out_dir=str(out))
    second = build_engine(tiny, target="cpu", out_dir=str(out))
    assert second.engine_path == first.engine_path and second.record.build["placed_by"] == "hardlink"
    assert sorted(os.listdir(out)) == sorted([os.path.basename(first.engine_path),
                                              os.path.basename(first.sidecar_path)])
