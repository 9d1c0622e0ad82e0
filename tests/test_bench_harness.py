"""edgealex bench end to end on tiny ONNX models (ONNX Runtime CPU): results, traces, power, crash safety."""

import csv
import glob
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import PYTHON, REPO, default_sigint

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edgealex.bench.result import TRACE_FIELDS, load_result  # noqa: E402
from edgealex.cli.main import app  # noqa: E402

LABELS = ["ok", "scratch", "stain", "crack", "hole"]


def tiny_onnx(path, batch=1, size=16, seed=0):
    """Flatten + Gemm classifier with edgealex metadata; batch None = dynamic batch axis."""
    from onnx import TensorProto, helper, numpy_helper

    from edgealex.modelinfo import ModelInfo, attach
    from edgealex.preprocess import Preprocess

    rng = np.random.default_rng(seed)
    n = batch if batch else "N"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, len(LABELS)])
    w = numpy_helper.from_array(rng.standard_normal((3 * size * size, len(LABELS))).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(len(LABELS), np.float32), "B")
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [inp], [out], [w, b]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    attach(model, ModelInfo("alexnet", list(LABELS), Preprocess(input_size=size, resize=0), batch=batch))
    onnx.save(model, str(path))
    return str(path)


def invoke(args):
    # edgealex.log keeps the stderr it was configured with; CliRunner swaps stderr per call, so drop
    # the handler and let the app's callback configure a fresh one on this call's stream.
    from edgealex.log import logger

    logger.handlers[:] = [h for h in logger.handlers if not getattr(h, "_edgealex", False)]
    return CliRunner().invoke(app, args)


def results_in(folder):
    return [load_result(p) for p in sorted(glob.glob(os.path.join(str(folder), "*.json")))]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_engine_mode_batch_sweep_writes_results_and_traces(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx", batch=None)
    out = tmp_path / "res"
    r = invoke(["bench", model, "--batch", "1,4", "--iterations", "20", "--warmup-iters", "2", "--power", "auto",
                "-o", str(out)])
    assert r.exit_code == 0, r.output
    runs = results_in(out)
    assert [d["batch"] for d in runs] == [1, 4] or sorted(d["batch"] for d in runs) == [1, 4]
    for d in runs:
        assert d["status"] == "finished" and d["schema"] == 1 and d["mode"] == "engine"
        assert [h["status"] for h in d["status_history"]] == ["started", "measuring", "finished"]
        assert d["latency_ms"]["count"] == 20
        assert d["throughput"]["frames"] == 20 * d["batch"]
        assert d["throughput"]["fps"] == pytest.approx(20 * d["batch"] / d["throughput"]["window_s"])
        assert d["engine"]["precision"] == "fp32" and d["engine"]["backend"] == "ort"
        assert d["environment"]["versions"]["onnxruntime"]
        rows = read_csv(os.path.join(str(out), d["files"]["trace"]))
        assert len(rows) == 20 and list(rows[0]) == list(TRACE_FIELDS)
        lat = np.array([float(x["latencyMs"]) for x in rows])
        span = np.array([float(x["endMs"]) - float(x["startMs"]) for x in rows])
        assert np.allclose(lat, span, atol=2e-4)
        assert d["latency_ms"]["p50_ms"] == pytest.approx(np.percentile(lat, 50), abs=1e-3)
        power = d["power"]
        if power.get("meter", {}).get("meter") == "none":  # the usual CI/dev machine: no sensor
            assert power["available"] is False
            assert power["display"].startswith("n/a (no sensor readable: ")
            assert "power_w" not in power and power.get("avg_power_w") is None  # never 0 W
    assert "n/a" in r.output and "results:" in r.output


def test_csv_meter_log_gives_energy_over_the_window(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    log = tmp_path / "meter.csv"
    now = time.time()
    # constant 5 W at 20 Hz from 30 s before to 60 s after now: energy = 5 W x window, net of idle = 0
    log.write_text("timestamp,watts\n" + "".join(f"{now + i * 0.05:.3f},5.0\n" for i in range(-600, 1200)))
    out = tmp_path / "res"
    r = invoke(["bench", model, "--duration", "0.3", "--warmup", "0.05", "--idle", "0.3",
                "--power", "csv:" + str(log), "-o", str(out)])
    assert r.exit_code == 0, r.output
    (d,) = results_in(out)
    p = d["power"]
    assert p["available"] is True and p["meter"]["meter"] == "csv"
    window = d["throughput"]["window_s"]
    assert p["window_s"] == pytest.approx(window)
    assert p["energy_j"] == pytest.approx(5.0 * window, rel=1e-9)
    assert p["avg_power_w"] == pytest.approx(5.0)
    assert p["mj_per_frame_gross"] == pytest.approx(5000.0 * window / d["throughput"]["frames"])
    assert p["frames_per_joule"] == pytest.approx(d["throughput"]["frames"] / (5.0 * window))
    assert p["idle"]["power_w"] == pytest.approx(5.0)
    assert p["idle"]["end_s"] < 0  # the idle window lies before the measured window
    assert p["mj_per_frame_net"] == pytest.approx(0.0, abs=1e-6)
    samples = read_csv(os.path.join(str(out), d["files"]["power"]))
    t = np.array([float(s["t_s"]) for s in samples])
    assert t.min() < p["idle"]["start_s"] and t.max() > window  # idle, window and context are in the CSV


def test_compare_mode_with_bare_ort_baseline(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "res"
    from test_runtime_models import write_folder

    pytest.importorskip("cv2")
    write_folder(tmp_path / "eval", 2)
    r = invoke(["bench", model, "--mode", "compare", "--baselines", "ort", "--iterations", "10",
                "--warmup-iters", "1", "--power", "none", "--eval-images", str(tmp_path / "eval"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    runs = {d["label"]: d for d in results_in(out)}
    assert set(runs) == {"tiny", "onnxruntime-bare-fp32"}
    assert runs["tiny"]["accuracy"]["images"] == 10 and runs["tiny"]["accuracy"]["agreement_vs_first"] == 1.0
    assert runs["tiny"]["compare"]["fps_ratio"] == pytest.approx(1.0)
    bare = runs["onnxruntime-bare-fp32"]
    assert bare["compare"]["baseline_run"] == runs["tiny"]["run_id"]
    assert bare["compare"]["fps_ratio"] == pytest.approx(bare["throughput"]["fps"] / runs["tiny"]["throughput"]["fps"])
    assert bare["accuracy"]["agreement_vs_first"] == 1.0  # the same model run bare
    assert bare["power"]["display"] == "n/a (power measurement disabled (--power none))"


def test_compare_mode_pytorch_baselines(tmp_path, alexnet_onnx):
    pytest.importorskip("torch")
    out = tmp_path / "res"
    r = invoke(["bench", alexnet_onnx, "--mode", "compare", "--baselines", "torch,torch-int8", "--iterations", "2",
                "--warmup-iters", "1", "--power", "none", "-o", str(out)])
    assert r.exit_code == 0, r.output
    runs = {d["label"]: d for d in results_in(out)}
    assert set(runs) == {"alexnet", "pytorch-eager-fp32", "pytorch-int8-dynamic"}
    assert runs["pytorch-int8-dynamic"]["engine"]["precision"] == "int8-dynamic"
    assert "random init" in runs["pytorch-eager-fp32"]["engine"]["note"]
    for d in runs.values():
        assert d["latency_ms"]["count"] == 2
        # no labelled images given: no accuracy or agreement figure at all (issue 17 item 1)
        assert d["accuracy"]["measured"] is False and "agreement_vs_first" not in d["accuracy"]
    assert r.output.count("not measured") == 3


def test_loop_mode_reports_pipeline_and_stages(tmp_path):
    pytest.importorskip("cv2")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "res"
    r = invoke(["bench", model, "--mode", "loop", "--source", "synthetic://?fps=0", "--iterations", "12",
                "--warmup-iters", "1", "--power", "none", "-o", str(out)])
    assert r.exit_code == 0, r.output
    (d,) = results_in(out)
    assert d["loop"]["frames"] == 12 and d["throughput"]["frames"] == 12
    assert d["throughput"]["pipeline_fps"] and d["throughput"]["engine_fps"]
    assert d["engine_latency_ms"]["count"] == 12
    rows = read_csv(os.path.join(str(out), d["files"]["trace"]))
    assert len(rows) == 12
    assert {"latencyMs", "endToEndMs", "captureMs", "preprocessMs", "queueMs", "postprocessMs"} <= set(rows[0])


def test_static_batch_mismatch_and_missing_engine_are_one_line_errors(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx", batch=1)
    r = invoke(["bench", model, "--batch", "4", "--iterations", "2", "--power", "none", "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "static batch of 1" in r.output and "Traceback" not in r.output
    r = invoke(["bench", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "does not exist" in r.output


def _start_long_run(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "res"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([PYTHON, "-m", "edgealex", "bench", model, "--duration", "120", "--warmup", "0.1",
                             "--power", "none", "-o", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 60
    while time.time() < deadline:
        found = glob.glob(os.path.join(str(out), "*.json"))
        if found:
            with open(found[0]) as handle:
                text = handle.read()
            # empty until the first record replaces it: the run id is reserved by creating the file
            # (edgealex.bench.result.unique_run_id, O_EXCL)
            if text.strip() and json.loads(text)["status"] == "measuring":
                return proc, found[0]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the run never reached 'measuring': " + proc.stderr.read().decode()[-2000:])


def test_killed_run_leaves_a_readable_measuring_record(tmp_path):
    proc, path = _start_long_run(tmp_path)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    d = load_result(path)
    assert d["status"] == "measuring"
    assert d["engine"]["name"] == "tiny.onnx" and d["config"]["duration_s"] == 120
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp-")]  # no half-written file


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_is_marked_failed(tmp_path, sig):
    """Ctrl-C, and SIGTERM as systemd or `docker stop` send it: the result must not stay at
    'measuring' for ever."""
    proc, path = _start_long_run(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    d = load_result(path)
    assert d["status"] == "failed" and d["error"]["type"] == "KeyboardInterrupt"


def trtexec_times(path, n=10, warm=2):
    """A trtexec 8.x --exportTimes trace: n queries of which `warm` start before 200 ms."""
    rows, t = [], 150.0
    for i in range(n):
        lat = 1.0 + 0.1 * i
        h2d0 = t
        rows.append({"startEnqMs": h2d0, "endEnqMs": h2d0 + 0.05, "startH2dMs": h2d0, "endH2dMs": h2d0 + 0.1,
                     "startComputeMs": h2d0 + 0.1, "endComputeMs": h2d0 + lat - 0.1, "startD2hMs": h2d0 + lat - 0.1,
                     "endD2hMs": h2d0 + lat, "h2dMs": 0.1, "computeMs": lat - 0.2, "d2hMs": 0.1, "latencyMs": lat,
                     "endToEndMs": lat})
        t += 30.0 if i < warm else lat
    path.write_text(json.dumps(rows))
    return rows


def test_import_trtexec_export_times(tmp_path):
    times = tmp_path / "times.json"
    rows = trtexec_times(times)
    out = tmp_path / "res"
    r = invoke(["bench", "--import-trtexec", str(times), "--batch", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    (d,) = results_in(out)
    kept = [x for x in rows if x["startComputeMs"] >= 200.0]
    assert len(kept) == 8 and d["throughput"]["warmup_iterations"] == 2
    window_ms = kept[-1]["endD2hMs"] - kept[0]["startH2dMs"]
    assert d["throughput"]["fps"] == pytest.approx(2 * 8 / (window_ms / 1e3))
    assert d["latency_ms"]["p50_ms"] == pytest.approx(np.percentile([x["latencyMs"] for x in kept], 50))
    assert d["mode"] == "trtexec" and d["power"]["available"] is False
    trace = read_csv(os.path.join(str(out), d["files"]["trace"]))
    assert len(trace) == 8 and {"startComputeMs", "computeMs", "latencyMs", "endToEndMs"} <= set(trace[0])


def test_import_rejects_a_file_that_is_not_a_trace(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a trace"}')
    r = invoke(["bench", "--import-trtexec", str(bad), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "--exportTimes" in r.output


def test_measure_matches_a_bare_loop_iteration_count(tmp_path):
    """The harness calls infer exactly `iterations` times in the window (plus the warm-up)."""
    from edgealex.bench.harness import measure, synthetic_batch
    from edgealex.runtime.registry import load_runner

    model = tiny_onnx(tmp_path / "tiny.onnx")
    with load_runner(model) as runner:
        calls = []
        original = runner.infer_impl
        runner.infer_impl = lambda x: calls.append(1) or original(x)
        m = measure(runner, synthetic_batch(runner.input_spec, 1), warmup_iters=3, iterations=7)
    assert m.starts.size == 7 and len(calls) == 3 + 7
    assert (m.ends > m.starts).all() and (m.starts[1:] >= m.ends[:-1]).all()


def test_matrix_configurations_per_target():
    from edgealex.bench.matrix import matrix_configs
    from edgealex.target import load_target

    assert matrix_configs(load_target("cpu")) == [("fp32", None, None), ("int8", None, "native"),
                                                  ("int8", None, "qdq")]
    xavier = matrix_configs(load_target("agx-xavier"))
    assert ("fp32", None, None) in xavier and ("fp32", 0, None) not in xavier  # DLA runs FP16/INT8 only
    assert {c for c in xavier if c[1] is not None} == {("fp16", 0, None), ("fp16", 1, None), ("int8", 0, None),
                                                       ("int8", 1, None)}
    assert [c for c in matrix_configs(load_target("nano")) if c[1] is not None] == []  # no DLA on the Nano


def noise_calibration(tmp_path, per_class=8):
    """A tiny ONNX (``tmp_path/tiny.onnx``) and its real `edgealex calibrate` output
    (``tmp_path/calib``) on noise images of the first two labels; returns (model, CalibrationResult)."""
    cv2 = pytest.importorskip("cv2")
    from edgealex.calib.pipeline import calibrate

    model = tiny_onnx(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(0)
    for label in LABELS[:2]:
        os.makedirs(str(tmp_path / "images" / label))
        for i in range(per_class):
            cv2.imwrite(str(tmp_path / "images" / label / f"{i}.png"),
                        rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    return model, calibrate(model, str(tmp_path / "images"), str(tmp_path / "calib"), min_agreement=0.0,
                            progress=False)


def test_matrix_on_the_cpu_target_builds_fp32_and_both_int8_layouts(tmp_path):
    model, _ = noise_calibration(tmp_path)
    out = tmp_path / "res"
    args = ["bench", "--matrix", "--onnx", model, "--target", "cpu", "--iterations", "5", "--warmup-iters", "1",
            "--power", "none", "-o", str(out)]
    r = invoke(args)  # no --calib: FP32 only, INT8 skipped with the reason
    assert r.exit_code == 0, r.output
    assert "INT8 needs --calib" in r.output
    assert len(results_in(out)) == 1
    r = invoke(args + ["--calib", str(tmp_path / "calib")])
    assert r.exit_code == 0, r.output
    runs = results_in(out)
    names = sorted(d["engine"]["name"] for d in runs)
    assert len(runs) == 4  # the first FP32 run, then FP32 (reused engine) + INT8 native + INT8 Q/DQ
    assert sum(".qdq-int8-" in n for n in names) == 1 and sum("-int8-" in n and ".qdq" not in n for n in names) == 1
    assert len(glob.glob(os.path.join(str(out), "engines", "*fp32*.onnx"))) == 1  # reused, not rebuilt


def test_accuracy_and_agreement_come_from_labelled_images_only(tmp_path):
    """Issue 17 item 1: accuracy on real labelled images with their count; a wrongly filed image
    lowers it by exactly its share; a folder without classes is refused before anything runs."""
    import shutil

    pytest.importorskip("cv2")
    from test_runtime_models import ort_engine, write_folder

    engine = ort_engine(tmp_path)
    write_folder(tmp_path / "eval", 4)  # 20 solid images the colour classifier gets right
    shutil.move(str(tmp_path / "eval" / "scratch" / "000.png"), str(tmp_path / "eval" / "stain" / "moved.png"))
    out = tmp_path / "res"
    r = invoke(["bench", engine, "--iterations", "3", "--warmup-iters", "1", "--power", "none",
                "--eval-images", str(tmp_path / "eval"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    (d,) = results_in(out)
    assert d["accuracy"]["measured"] is True and d["accuracy"]["images"] == 20
    assert d["accuracy"]["top1_accuracy"] == pytest.approx(19 / 20)
    assert "95.0% of 20 img" in r.output
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(str(tmp_path / "eval" / "ok" / "000.png"), str(flat / "a.png"))
    r = invoke(["bench", engine, "--iterations", "3", "--power", "none", "--idle", "5", "--eval-images", str(flat),
                "-o", str(tmp_path / "res2")])
    assert r.exit_code == 1 and "has no class sub-folders" in r.output
    assert not glob.glob(str(tmp_path / "res2" / "*.json"))  # refused before the idle window and any run


def test_static_batch_mismatch_is_refused_before_the_idle_window(tmp_path):
    """Issue 17: the static-batch error comes first, not after --idle seconds of waiting."""
    model = tiny_onnx(tmp_path / "tiny.onnx", batch=1)
    log = tmp_path / "meter.csv"
    log.write_text(f"timestamp,watts\n{time.time():.3f},5.0\n")
    r = invoke(["bench", model, "--batch", "4", "--idle", "5", "--iterations", "2", "--power", "csv:" + str(log),
                "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "static batch of 1" in r.output
    assert "idle baseline" not in r.output  # the idle window never started
    assert not glob.glob(str(tmp_path / "o" / "*.json"))


def test_matrix_refuses_an_image_folder_for_ort_int8_up_front(tmp_path):
    """Issue 17: `bench --matrix --calib IMAGES` on the CPU target used to skip INT8 silently and exit 0."""
    from test_runtime_models import write_folder

    pytest.importorskip("cv2")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    write_folder(tmp_path / "imgs", 1)
    r = invoke(["bench", "--matrix", "--onnx", model, "--target", "cpu", "--calib", str(tmp_path / "imgs"),
                "--iterations", "2", "--power", "none", "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "is an image folder" in r.output and "edgealex calibrate" in r.output
    assert not os.path.isdir(str(tmp_path / "o" / "engines")) or not os.listdir(str(tmp_path / "o" / "engines"))


def test_matrix_error_states_each_reason_once():
    from edgealex.bench.matrix import group_reasons

    skipped = [("x fp32 on gpu", "TensorRT is not installed"), ("x fp16 on gpu", "TensorRT is not installed"),
               ("x int8 on gpu", "INT8 needs --calib"), ("x fp16 on dla0", "TensorRT is not installed")]
    text = group_reasons(skipped)
    assert text.count("TensorRT is not installed") == 1
    assert text == ("x fp32 on gpu, x fp16 on gpu, x fp16 on dla0: TensorRT is not installed; "
                    "x int8 on gpu: INT8 needs --calib")


def test_run_ids_are_reserved_so_two_benches_in_one_second_do_not_collide(tmp_path):
    """Two `bench` processes started in the same second on the same engine used to pick the same
    result name (the check looked for the JSON, which is written a moment later): the name is now
    reserved by creating the file, across processes."""
    import subprocess
    import sys

    from edgealex.bench.result import unique_run_id

    stem = "model-fp32-cpu-b1-20261130-101500"
    first = unique_run_id(tmp_path, stem)
    code = f"from edgealex.bench.result import unique_run_id; print(unique_run_id({str(tmp_path)!r}, {stem!r}))"
    second = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True,
                            check=True).stdout.strip()
    assert (first, second) == (stem, stem + "-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [stem + "-2.json", stem + ".json"]


def test_torch_weights_of_another_model_are_warned_about(tmp_path):
    """Issue 17 follow-up B: --torch-weights that provably hold another model than the engine's
    (another checkpoint, another random init, another architecture) give one warning line and a
    note in the baseline's result; the engine's own checkpoint or ONNX gives neither."""
    pytest.importorskip("torch")
    from edgealex.export.onnx import export_onnx
    from edgealex.models.alexnet import build_model, save_checkpoint
    from edgealex.preprocess import Preprocess

    small = {"conv": [8, 8, 8, 8, 8], "fc": [16, 16]}  # a few-kB AlexNet (widths like a pruned one)
    ckpts = []
    for seed in (0, 1):
        path = str(tmp_path / f"ck{seed}.pt")
        save_checkpoint(path, build_model("alexnet", num_classes=5, seed=seed, widths=small), LABELS,
                        Preprocess(input_size=224, resize=256))
        ckpts.append(path)
    engine = str(tmp_path / "engine.onnx")
    export_onnx(engine, weights=ckpts[0], parity_samples=1)
    other_onnx = str(tmp_path / "other.onnx")
    export_onnx(other_onnx, weights=ckpts[1], parity_samples=1)
    v1 = str(tmp_path / "v1.onnx")
    export_onnx(v1, arch="alexnet-v1", labels=LABELS, parity_samples=1)

    def bench(weights, out):
        r = invoke(["bench", engine, "--mode", "compare", "--baselines", "torch,torch-int8", "--torch-weights",
                    weights, "--iterations", "1", "--warmup-iters", "1", "--power", "none", "-o", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
        return r.output, {d["label"]: d for d in results_in(tmp_path / out)}

    for n, weights in enumerate((ckpts[0], engine)):  # the engine's own weights: silent
        output, runs = bench(weights, f"same{n}")
        assert "not the engine's model" not in output
        assert runs["pytorch-eager-fp32"]["engine"]["weights_mismatch"] is None
    for n, (weights, why) in enumerate(((ckpts[1], "is not the checkpoint the engine's ONNX was exported from"),
                                        (other_onnx, "it was exported from checkpoint sha256"),
                                        (v1, "its architecture is alexnet-v1, the engine's is alexnet"))):
        output, runs = bench(weights, f"other{n}")
        assert output.count("is not the engine's model") == 1 and why in output, output
        for label in ("pytorch-eager-fp32", "pytorch-int8-dynamic"):
            assert why in runs[label]["engine"]["weights_mismatch"]
            assert "NOT the engine's model" in runs[label]["engine"]["note"]


def test_options_that_would_be_ignored_are_refused_in_every_mode(tmp_path):
    """Issue 17 follow-up C/F: --calib without --matrix, an unknown --baselines name and a missing
    --torch-weights are one-line errors (exit 1) in engine mode too, before anything is measured;
    the missing checkpoint's Note names --torch-weights."""
    model = tiny_onnx(tmp_path / "tiny.onnx")
    base = ["bench", model, "--iterations", "1", "--warmup-iters", "1", "--power", "none", "-o", str(tmp_path / "r")]
    cases = ((["--calib", str(tmp_path)], "is only used with --matrix"),
             (["--baselines", "torch,foo"], "unknown baseline(s) foo"),
             (["--torch-weights", str(tmp_path / "missing.pt")], "the checkpoint does not exist"))
    for extra, what in cases:
        r = invoke(base + extra)
        assert r.exit_code == 1 and what in r.output and "Traceback" not in r.output, r.output
        assert r.output.count("\nNote: ") == 1
    assert "Note: check the --torch-weights path" in invoke(base + cases[2][0]).output
    assert not glob.glob(str(tmp_path / "r" / "*.json"))


def test_a_checkpoint_or_a_quantized_onnx_where_it_does_not_belong_names_the_fix(tmp_path):
    """Issue 17 follow-up F: `bench model.pt` and `run model.pt` point to `edgealex export` (the rule
    `build model.pt` uses); --torch-weights with an INT8 (Q/DQ) ONNX says it is a quantized model."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("cv2")
    weights = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, str(weights))
    for args in (["bench", str(weights), "--iterations", "1", "--power", "none", "--idle", "30", "-o",
                  str(tmp_path / "r")],
                 ["run", str(weights), "--source", "synthetic://?fps=0", "--max-frames", "1"]):
        r = invoke(args)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "is a PyTorch checkpoint, not an ONNX model or an engine" in r.output
        assert f"edgealex export --weights {weights} -o model.onnx" in r.output
        assert "unknown artifact type" not in r.output
    model, result = noise_calibration(tmp_path, per_class=6)
    r = invoke(["bench", model, "--mode", "compare", "--baselines", "torch", "--torch-weights", result.qdq_onnx,
                "--iterations", "1", "--power", "none", "-o", str(tmp_path / "r")])
    assert r.exit_code == 1 and "is a quantized (INT8) model" in r.output, r.output
    assert "Note: pass the FP32 ONNX it was calibrated from, or the edgealex checkpoint (.pt)" in r.output
    assert "BatchNorm" not in r.output
