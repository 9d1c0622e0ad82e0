"""`edgealex demo --fast` end to end, then again from its caches."""

import json
import os
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from edgealex.cli.main import app  # noqa: E402


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "edgealex-demo"
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--fast", "--out", str(out), "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["demo", "--fast", "--out", str(out), "--json"])
    assert second.exit_code == 0, second.output
    load = lambda r: json.loads(r.stdout[r.stdout.index("{"):])  # noqa: E731
    return out, load(first), load(second)


def test_demo_leaves_every_artifact(demo_runs):
    out, _, summary = demo_runs  # the files on disk are the second run's
    art = summary["artifacts"]
    assert summary["target"] == "cpu" and summary["profile"] == "fast"
    for key in ("onnx", "video", "verdicts", "report_html", "summary"):
        assert os.path.isfile(art[key]) and os.path.getsize(art[key]) > 0, key
        assert art[key].startswith(str(out))
    # issue 17 item 8: neither the resume state (--keep-resume) nor the checkpoint (--keep-checkpoint)
    # is kept: the ONNX is the one copy of the weights; the training record stays for the reuse
    model_dir = os.path.dirname(art["onnx"])
    assert "checkpoint" not in art and sorted(n for n in os.listdir(model_dir) if ".pt" in n) == ["alexnet-defects.pt.json"]
    from edgealex.artifacts import folder_bytes
    assert summary["figures"]["disk_mb"] == round(folder_bytes(out) / 1e6, 1) > 0
    calib = json.load(open(os.path.join(art["calibration"], "calibration.json")))
    assert calib["gate_passed"] is True and os.path.isfile(os.path.join(art["calibration"], calib["qdq_onnx"]))
    assert sorted(calib["caches"]) == ["8201", "8502"]
    # engines: FP32 and both INT8 layouts, each with its provenance sidecar
    names = sorted(os.path.basename(p) for p in art["engines"])
    assert len(names) == 3 and any("-fp32-" in n for n in names) and sum("int8" in n for n in names) == 2
    assert all(os.path.isfile(p + ".json") for p in art["engines"])
    # the annotated video has frames, the JSONL one verdict per frame
    video = cv2.VideoCapture(art["video"])
    ok, frame = video.read()
    video.release()
    assert ok and frame.shape == (360, 640, 3)
    lines = [json.loads(line) for line in open(art["verdicts"])]
    assert len(lines) == summary["figures"]["frames"] > 0
    assert {"top_class", "confidence", "defect", "frame"} <= set(lines[0])
    # the report embeds its plots
    parser = _Images()
    parser.feed(open(art["report_html"]).read())
    page = open(art["report_html"]).read()
    # no power sensor on CI machines and one batch size: the latency CDF is the one plot
    assert len(parser.images) == 1 and all(src.startswith("data:image/png;base64,") for src in parser.images)
    # the live loop is in the report with the distinct images its accuracy rests on (issue 17 item 5)
    assert "Live inspection loop" in page and "distinct images" in page
    bench = summary["figures"]["bench"]
    assert len(bench) == 3 and all(row["throughput"] > 0 for row in bench)
    # accuracy and agreement of every engine on the real holdout images, with their count (item 1)
    assert all(row["eval_images"] == 10 and 0.0 <= row["accuracy"] <= 1.0 for row in bench)
    assert bench[0]["agreement"] == 1.0 and "of 10 img" in page
    assert all(row["energy"].startswith("n/a (") for row in bench)  # no power sensor on CI machines
    agreement = summary["figures"]["int8_agreement"]
    assert 0.5 <= agreement <= 1.0


def test_second_run_reuses_the_caches(demo_runs):
    _, first, second = demo_runs
    assert not any(first["cached"].values())
    for step in ("data", "train", "export", "calibrate"):
        assert second["cached"][step], step
    assert second["artifacts"]["onnx"] == first["artifacts"]["onnx"]
    assert sorted(second["artifacts"]["engines"]) == sorted(first["artifacts"]["engines"])


def test_a_broken_cache_is_redone_and_keep_checkpoint_trains_to_write_it(demo_runs, tmp_path):
    """Found by a fresh-user attack (issue 17): a cache file that is valid JSON but not an object
    gave tracebacks; a truncated INT8 model in calib/ was reused (and its engine silently skipped);
    --keep-checkpoint after a run that removed the checkpoint listed a file that did not exist."""
    import shutil

    out, _, _ = demo_runs
    copy = tmp_path / "edgealex-demo"
    shutil.copytree(out, copy)
    (copy / "data" / "dataset.json").write_text("[]")
    (copy / "bench" / "mine").mkdir()
    (copy / "bench" / "mine" / "my-results.json").write_text('{"mine": 1}')  # the user's: kept
    old_results = sorted(p.name for p in (copy / "bench").glob("demo-*.json"))
    assert old_results
    ort_int8 = next((copy / "calib").glob("*.int8-ort-cpu.onnx"))
    with open(ort_int8, "r+b") as handle:
        handle.truncate(1000)
    r = CliRunner().invoke(app, ["demo", "--fast", "--out", str(copy), "--json", "--keep-checkpoint"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert not summary["cached"]["data"] and not summary["cached"]["calibrate"]  # both redone, no traceback
    assert not summary["cached"]["train"]  # the checkpoint asked for did not exist: trained again to write it
    assert os.path.isfile(summary["artifacts"]["checkpoint"]) and "disk: " in summary_text(summary)
    assert os.path.getsize(ort_int8) > 1000 and not summary["skipped"]
    assert (copy / "bench" / "mine" / "my-results.json").read_text() == '{"mine": 1}'
    new_results = sorted(p.name for p in (copy / "bench").glob("demo-*.json"))
    assert len(new_results) == len(old_results) and not set(new_results) & set(old_results)  # only its own
    assert any("-int8-cpu-" in os.path.basename(p) for p in summary["artifacts"]["engines"])


def summary_text(summary):
    from edgealex.demo import DemoResult

    return DemoResult(**{k: v for k, v in summary.items() if k in DemoResult.__dataclass_fields__}).format()


def test_a_tensorrt_target_without_tensorrt_is_refused_before_anything_is_made(tmp_path):
    """Found by a fresh-user attack (issue 17): `demo --target agx-xavier` on a machine without
    TensorRT trained for minutes, then failed with a message about options the demo does not have."""
    import shutil

    if shutil.which("trtexec") or os.path.exists("/usr/src/tensorrt/bin/trtexec"):
        pytest.skip("trtexec is installed here: the target can be built")
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: the target can be built")
    except ImportError:
        pass
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--fast", "--target", "agx-xavier", "--out", str(out)])
    assert r.exit_code == 1 and r.output.startswith("--target agx-xavier | builds TensorRT engines")
    assert "Note: leave --target out" in r.output and not out.exists()
