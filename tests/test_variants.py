"""Model variants (alexnet-se, alexnet-dw, alexnet-bn): structure, parameter counts, export parity,
INT8 calibration, an ORT engine that runs, and the DLA placement prediction of their layers.

Small widths keep every model tiny (a few thousand parameters) while the graph is the real one.
"""

import json
import os

import numpy as np
import pytest
from conftest import cli_runner

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from edgealex.cli.main import app  # noqa: E402
from edgealex.errors import EdgeAlexError  # noqa: E402
from edgealex.export.onnx import export_onnx  # noqa: E402
from edgealex.models.alexnet import (ARCHS, build_model, load_checkpoint, parameter_count,  # noqa: E402
                                     save_checkpoint)
from edgealex.preprocess import Preprocess  # noqa: E402
from edgealex.synth import LABELS, render_sample  # noqa: E402

TINY_WIDTHS = {"conv": [8, 16, 16, 16, 32], "fc": [32, 32]}
NEW_ARCHS = ("alexnet-se", "alexnet-dw", "alexnet-bn")


def _conv_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith("features."))


def test_registry_and_parameter_counts():
    assert set(NEW_ARCHS) <= set(ARCHS)
    full = build_model("alexnet", 1000)
    assert parameter_count(full) == 61100840  # torchvision's AlexNet (torchvision.models docs: 61.1 M)
    se = build_model("alexnet-se", 1000)
    # SE after conv5 (256 channels, reduction 16): 256*16+16 + 16*256+256 parameters
    assert parameter_count(se) - parameter_count(full) == 256 * 16 + 16 + 16 * 256 + 256
    dw = build_model("alexnet-dw", 1000)
    # depthwise-separable conv2..conv5 remove most convolution weights, not the 58.6 M FC ones
    assert _conv_params(dw) < 0.25 * _conv_params(full)
    assert parameter_count(dw) > 0.9 * parameter_count(full)
    groups = [m.groups for m in dw.features if isinstance(m, torch.nn.Conv2d)]
    assert groups == [1, 64, 1, 192, 1, 384, 1, 256, 1]
    bn = build_model("alexnet-bn", 10)
    kinds = [type(m).__name__ for m in bn.features]
    assert kinds.count("BatchNorm2d") == 5 and "LRN" not in kinds
    assert kinds[:3] == ["Conv2d", "BatchNorm2d", "ReLU"]


def test_bad_widths_and_dropout_are_user_errors():
    with pytest.raises(EdgeAlexError, match="5 conv and 2 hidden FC widths"):
        build_model("alexnet", 5, widths={"conv": [8, 8], "fc": [8, 8]})
    with pytest.raises(EdgeAlexError, match="dropout"):
        build_model("alexnet", 5, dropout=1.0)


def _images(root, per_class=3, size=96):
    for ci, label in enumerate(LABELS):
        os.makedirs(root / label, exist_ok=True)
        for n in range(per_class):
            img = render_sample(np.random.default_rng([7, ci, n]), label, size=size)
            assert cv2.imwrite(str(root / label / f"{n}.jpg"), img)
    return str(root)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("imgs"))


@pytest.mark.parametrize("arch", NEW_ARCHS)
@pytest.mark.parametrize("input_size", [224, 112])
def test_variant_exports_calibrates_builds_and_runs(arch, input_size, images, tmp_path):
    from edgealex.build.api import build_engine
    from edgealex.calib.pipeline import calibrate

    model = build_model(arch, len(LABELS), seed=3, widths=TINY_WIDTHS)
    if arch == "alexnet-bn":  # non-trivial statistics, so folding BN into the convs is really checked
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
    ckpt = tmp_path / f"{arch}.pt"
    save_checkpoint(str(ckpt), model, LABELS, Preprocess(input_size=input_size, resize=input_size * 256 // 224))
    assert load_checkpoint(str(ckpt))["widths"] == TINY_WIDTHS
    out = str(tmp_path / f"{arch}.onnx")
    result = export_onnx(out, weights=str(ckpt), parity_samples=2)  # arch and widths from the checkpoint
    assert result.info.arch == arch and result.max_abs_diff <= 1e-4 and result.top1_agreement == 1.0
    proto = onnx.load(out)
    assert proto.opset_import[0].version == 13
    ops = [n.op_type for n in proto.graph.node]
    if arch == "alexnet-se":
        assert {"GlobalAveragePool", "Sigmoid", "Mul"} <= set(ops)
    if arch == "alexnet-dw":
        groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
        # conv2..conv5 depthwise (groups = input channels), in graph order; at 112 px the exported
        # adaptive pool adds grouped convolutions after them
        assert [g for g in groups if g > 1][:4] == [8, 16, 16, 16]
    if arch == "alexnet-bn":
        assert "BatchNormalization" not in ops  # folded into the convolutions at export
    assert "Resize" not in ops  # 112 px: the 2x2 -> 6x6 adaptive pool exports as grouped convs (export_module)
    x = torch.randn(1, 3, input_size, input_size)
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4

    calib = calibrate(out, images, str(tmp_path / "calib"), method="minmax", min_agreement=0.0, progress=False)
    assert calib.count >= 8 and calib.gate.images >= 1
    engine = build_engine(out, target="cpu", precision="int8", calib=str(tmp_path / "calib"),
                          out_dir=str(tmp_path / "engines"))
    res = cli_runner().invoke(app, ["run", engine.engine_path, "--source", images, "--max-frames", "3",
                                   "--sink", str(tmp_path / "v.jsonl"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == 3


@pytest.fixture(scope="module")
def se_dw_onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("dla")
    paths = {}
    for arch, size in (("alexnet-se", 224), ("alexnet-se", 112), ("alexnet-dw", 224)):
        ckpt = root / f"{arch}-{size}.pt"
        spec = Preprocess(input_size=size, resize=size * 256 // 224)
        save_checkpoint(str(ckpt), build_model(arch, 5, seed=0, widths=TINY_WIDTHS), LABELS, spec)
        paths[(arch, size)] = export_onnx(str(root / f"{arch}-{size}.onnx"), weights=str(ckpt), parity_samples=1).path
    return paths


def _devices(report):
    by_op = {}
    for node in report.nodes:
        by_op.setdefault(node.op_type, set()).add(node.device)
    return by_op


def test_dla_check_places_se_and_depthwise_layers(se_dw_onnx):
    from edgealex.dla.placement import predict_placement

    # the SE block: the two 1x1-conv "FC" layers, sigmoid and the channel multiply fit the DLA rules;
    # its global pooling window is conv5's whole map: 13x13 at 224 px (above DLA's 8: GPU), 6x6 at 112 px
    big = predict_placement(se_dw_onnx[("alexnet-se", 224)], "agx-xavier", "int8")
    by_op = _devices(big)
    assert by_op["Sigmoid"] == {"dla"} and by_op["Mul"] == {"dla"} and by_op["Conv"] == {"dla"}
    assert by_op["GlobalAveragePool"] == {"gpu"}
    pool = [n for n in big.nodes if n.op_type == "GlobalAveragePool"][0]
    assert "13x13" in pool.reasons[0]
    assert by_op["Gemm"] == {"unknown"}  # the classifier, as for plain AlexNet
    small = _devices(predict_placement(se_dw_onnx[("alexnet-se", 112)], "agx-xavier", "int8"))
    assert small["GlobalAveragePool"] == {"dla"}
    dw = predict_placement(se_dw_onnx[("alexnet-dw", 224)], "agx-xavier", "fp16")
    grouped = [n for n in dw.nodes if n.op_type == "Conv" and any("groups" in r for r in n.reasons)]
    assert len(grouped) == 4 and all(n.device == "dla" for n in grouped)
    res = cli_runner().invoke(app, ["dla-check", se_dw_onnx[("alexnet-se", 112)], "--target", "agx-xavier",
                                   "--precision", "int8", "--no-tensorrt", "--json"])
    assert res.exit_code == 0, res.output
    ops = {n["op_type"]: n["device"] for n in json.loads(res.stdout)["nodes"]}
    assert ops["Sigmoid"] == "dla" and ops["GlobalAveragePool"] == "dla"
