"""PyTorch -> ONNX export: checker, metadata, parity, atomic output, CLI errors."""

import json
import os

import pytest
from typer.testing import CliRunner

from edgealex.errors import EdgeAlexError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgealex.cli.main import app  # noqa: E402
from edgealex.export.onnx import DEFAULT_OPSET, export_onnx  # noqa: E402
from edgealex.modelinfo import read_model_info  # noqa: E402
from edgealex.models.alexnet import build_model, save_checkpoint  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402

LABELS = ["ok", "scratch", "stain", "crack", "hole"]


def _ort_vs_torch(path, model, seed=7):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model.eval()(x).numpy()
    return float(abs(got - want).max())


def test_alexnet_export_metadata_and_parity(alexnet_onnx):
    proto = onnx.load(alexnet_onnx)
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == DEFAULT_OPSET == 13
    assert proto.ir_version == 7
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "Relu", "MaxPool", "Gemm"} <= ops
    info = read_model_info(alexnet_onnx)
    assert info.arch == "alexnet" and info.labels == LABELS
    assert info.preprocess == Preprocess(input_size=224, resize=256)
    assert info.input_shape == [1, 3, 224, 224]
    assert info.provenance["stage"] == "export" and info.provenance["init"] == "random (seed 0)"
    side = json.load(open(alexnet_onnx + ".json"))
    assert side["parity"]["max_abs_diff"] <= 1e-4 and side["parity"]["top1_agreement"] == 1.0
    assert side["model"]["labels"] == LABELS
    assert _ort_vs_torch(alexnet_onnx, build_model("alexnet", 5, seed=0)) <= 1e-4


def test_alexnet_v1_exports_native_lrn(tmp_path):
    weights = tmp_path / "v1.pt"
    model = build_model("alexnet-v1", num_classes=5, seed=11)
    # scale the first conv so LRN's denominator actually matters in the parity check
    with torch.no_grad():
        model.features[0].weight.mul_(50.0)
    save_checkpoint(str(weights), model, LABELS, Preprocess())
    out = str(tmp_path / "v1.onnx")
    result = export_onnx(out, arch="alexnet-v1", weights=str(weights), parity_samples=2)
    proto = onnx.load(out)
    lrn = [n for n in proto.graph.node if n.op_type == "LRN"]
    assert len(lrn) == 2
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn[0].attribute}
    assert attrs["size"] == 5 and attrs["beta"] == pytest.approx(0.75) and attrs["bias"] == pytest.approx(2.0)
    assert result.max_abs_diff <= 1e-4 and result.top1_agreement == 1.0
    assert _ort_vs_torch(out, model) <= 1e-4
    assert read_model_info(out).labels == LABELS  # labels came from the checkpoint


def test_dynamic_batch_export(tmp_path):
    out = str(tmp_path / "dyn.onnx")
    export_onnx(out, arch="alexnet", num_classes=3, dynamic_batch=True, parity_samples=1)
    info = read_model_info(out)
    assert info.batch is None and info.input_shape[0] == "batch"
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": torch.zeros(3, 3, 224, 224).numpy()})[0].shape == (3, 3)


def test_labels_and_num_classes_must_agree(tmp_path):
    with pytest.raises(EdgeAlexError, match="the labels list 5 classes"):
        export_onnx(str(tmp_path / "x.onnx"), labels=LABELS, num_classes=4)
    assert not os.listdir(str(tmp_path))


def test_failed_export_leaves_previous_file_untouched(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous good model")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(EdgeAlexError):
        export_onnx(str(out), weights=str(bad))
    assert out.read_bytes() == b"previous good model"
    assert sorted(os.listdir(str(tmp_path))) == ["bad.pt", "model.onnx"]


@pytest.mark.parametrize("args, expected", [
    (["--arch", "vgg16"], "--arch vgg16 | unknown architecture.\nNote: choose one of: alexnet, alexnet-v1"),
    (["--weights", "/nonexistent/w.pth"], "/nonexistent/w.pth | the checkpoint does not exist."),
    (["--num-classes", "1"], "--num-classes 1 | a classifier needs at least 2 classes."),
    (["-o", "/proc/edgealex-test/m.onnx"], "cannot create the folder for the ONNX model"),
    (["-o", "model.txt"], "model.txt | the output must be an .onnx file."),
])
def test_cli_user_errors_are_one_line_without_traceback(args, expected, tmp_path):
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(str(tmp_path))
    try:
        result = runner.invoke(app, ["export"] + args)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 1
    text = result.output if hasattr(result, "output") else result.stdout
    assert expected in text
    assert "Traceback" not in text
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith(".onnx")]


def test_cli_wrong_head_size_error(tmp_path):
    weights = tmp_path / "imagenet.pth"
    torch.save(build_model("alexnet", 1000).state_dict(), str(weights))
    result = CliRunner().invoke(app, ["export", "--weights", str(weights), "--num-classes", "5",
                                      "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert "classifier.6.weight (1000, 4096) != (5, 4096)" in result.output
    assert "--new-head" in result.output


def test_cli_export_json(tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", "--num-classes", "3", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["num_classes"] == 3 and data["max_abs_diff"] <= 1e-4 and data["top1_agreement"] == 1.0
    assert os.path.isfile(str(out))


def test_an_input_size_other_than_the_checkpoints_is_refused(tmp_path):
    """Found by a fresh-user attack (issue 17): `export --weights model.pt --input-size 128` wrote a
    224 px ONNX without a word (the checkpoint's preprocessing won)."""
    from typer.testing import CliRunner

    from edgealex.cli.main import app
    from edgealex.models.alexnet import build_model, save_checkpoint
    from edgealex.preprocess import Preprocess

    ckpt = str(tmp_path / "m.pt")
    save_checkpoint(ckpt, build_model("alexnet", num_classes=2, seed=0), ["ok", "bad"], Preprocess(input_size=224))
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(app, ["export", "--weights", ckpt, "--input-size", "128", "-o", str(out)])
    assert r.exit_code == 1 and "--input-size 128 | the checkpoint was trained on 224 px" in r.output
    assert not out.exists() and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["export", "--weights", ckpt, "-o", str(out)])  # the checkpoint's size
    assert r.exit_code == 0 and out.exists(), r.output


def test_a_handed_over_model_is_not_recorded_as_a_random_init(tmp_path):
    """bench --torch-weights tells models apart by the export provenance: a model handed to
    export_onnx (model=, its weights are the caller's) must not claim "random (seed N)" weights."""
    from edgealex.export.onnx import export_onnx
    from edgealex.models.alexnet import build_model
    from edgealex.modelinfo import read_model_info

    small = {"conv": [8, 8, 8, 8, 8], "fc": [16, 16]}
    path = str(tmp_path / "handed.onnx")
    export_onnx(path, model=build_model("alexnet", num_classes=3, seed=7, widths=small), labels=["a", "b", "c"],
                parity_samples=1)
    assert read_model_info(path).provenance["init"] is None
