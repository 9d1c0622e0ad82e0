"""`edgealex selftest` on this CPU machine: the ONNX Runtime path end to end into one bundle."""

import glob
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest
from build_helpers import calibration_output, tiny_classifier
from conftest import PYTHON, REPO, default_sigint

from edgealex._optional import available
from edgealex.selftest import build_plan, default_sinks
from edgealex.target import load_target


def _selftest(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run([PYTHON, "-m", "edgealex", "selftest"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, cwd=str(tmp_path), timeout=300)


def _bundle(out):
    bundles = [d for d in os.listdir(out) if d.startswith("selftest-cpu-") and os.path.isdir(os.path.join(out, d))]
    assert len(bundles) == 1, os.listdir(out)
    return os.path.join(out, bundles[0])


def test_selftest_writes_the_bundle_with_every_step(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    calib = calibration_output(tmp_path / "calib", model, qdq=True, ort_native=True)
    out = tmp_path / "out"
    proc = _selftest(tmp_path, model, "--calib", calib, "--seconds", "1.5", "--bench-seconds", "0.5", "--idle",
                     "0.2", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = json.loads(proc.stdout)
    bundle = _bundle(str(out))
    assert printed["bundle"] == bundle and printed["ok"] is True
    data = json.load(open(os.path.join(bundle, "selftest.json")))
    steps = {s["name"]: s for s in data["steps"]}
    assert list(steps) == ["doctor", "build fp32", "build int8", "run", "bench", "report"]
    plots = available("matplotlib")  # absent in CI's dependency-floors environment (no report extra)
    assert all(s["status"] == "pass" for n, s in steps.items() if n != "report"), steps
    if plots:
        assert steps["report"]["status"] == "pass"
        assert os.path.isfile(os.path.join(bundle, "report", "report.html"))
    else:
        assert steps["report"]["status"] == "skip" and "edgealex report bench/" in steps["report"]["detail"]
    assert data["target"] == "cpu" and data["source"] == "synthetic://"
    # every step's files are in the bundle
    for step in steps.values():
        for rel in step["outputs"]:
            assert os.path.isfile(os.path.join(bundle, rel)), rel
    assert json.load(open(os.path.join(bundle, "doctor.json")))["target"] == "cpu"
    engines = sorted(os.listdir(os.path.join(bundle, "engines")))
    assert any("-fp32-" in e and e.endswith(".onnx") for e in engines)
    assert any("-int8-" in e and e.endswith(".onnx") for e in engines)
    verdicts = open(os.path.join(bundle, "run", "verdicts.jsonl")).read().splitlines()
    assert len(verdicts) > 0 and {"top_class", "defect", "truth"} <= set(json.loads(verdicts[0]))
    assert os.path.getsize(os.path.join(bundle, "run", "annotated.mp4")) > 0
    run = json.load(open(os.path.join(bundle, "run", "summary.json")))
    assert run["frames"] > 0 and ["display://", "no $DISPLAY (headless)"] in run["sinks_skipped"]
    assert "http://127.0.0.1:0" in run["sinks"]  # the live view served on a free loopback port
    assert "display:// (no $DISPLAY (headless))" in steps["run"]["detail"]
    results = [f for f in os.listdir(os.path.join(bundle, "bench")) if f.endswith(".json")]
    assert len(results) >= 2  # one per engine
    first = json.load(open(os.path.join(bundle, "bench", sorted(results)[0])))
    assert "nvpmodel" in first["environment"] and "jetson_clocks" in first["environment"]
    assert "power reader:" in steps["bench"]["detail"] and "idle window 0.2 s" in steps["bench"]["detail"]
    assert "| build int8 | pass |" in open(os.path.join(bundle, "selftest.md")).read()
    # the archive holds the same folder
    archive = printed["archive"]
    assert archive == bundle + ".tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    base = os.path.basename(bundle)
    for rel in ("selftest.json", "selftest.md", "doctor.json", "run/verdicts.jsonl") + (
            ("report/report.html",) if plots else ()):
        assert f"{base}/{rel}" in names
    # ...but not the engines (an AlexNet bundle with them was 211 MB: no bug tracker takes that) nor the
    # annotated video; their sidecars travel, and selftest.json/md say what stayed behind and why
    engine_files = [e for e in engines if not e.endswith(".json")]
    for rel in [f"engines/{e}" for e in engine_files] + ["run/annotated.mp4"]:
        assert f"{base}/{rel}" not in names, rel
        assert os.path.isfile(os.path.join(bundle, rel))  # still in the folder
    assert {f"{base}/engines/{e}.json" for e in engine_files} <= names
    assert f"{base}/run/annotated.mp4.json" in names
    left = {item["path"]: item for item in data["left_out_of_archive"]}
    assert set(left) == {f"engines/{e}" for e in engine_files} | {"run/annotated.mp4"}
    assert left["run/annotated.mp4"]["bytes"] == os.path.getsize(os.path.join(bundle, "run", "annotated.mp4"))
    assert "`run/annotated.mp4`" in open(os.path.join(bundle, "selftest.md")).read()


def test_selftest_records_failures_and_skips_and_exits_1(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "out"
    broken = tmp_path / "broken.mp4"  # exists (so it passes the up-front check) but no decoder can open it
    broken.write_bytes(b"\x00not a video\x00" * 64)
    proc = _selftest(tmp_path, model, "--source", str(broken), "--seconds", "1",
                     "--bench-seconds", "0.3", "--idle", "0", "--no-archive", "-o", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    bundle = _bundle(str(out))
    steps = {s["name"]: s for s in json.load(open(os.path.join(bundle, "selftest.json")))["steps"]}
    assert steps["run"]["status"] == "fail" and "broken.mp4" in steps["run"]["detail"]
    assert steps["build int8"]["status"] == "skip" and "--calib" in steps["build int8"]["detail"]
    assert steps["bench"]["status"] == "pass"  # a failed run does not stop the bench
    assert not os.path.exists(bundle + ".tar.gz")
    assert "FAIL  run" in proc.stdout and "selftest FAIL" in proc.stdout


def test_selftest_refuses_a_missing_model_in_one_line(tmp_path):
    proc = _selftest(tmp_path, str(tmp_path / "nope.onnx"), "-o", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].endswith("nope.onnx | the ONNX model does not exist.")
    assert not [d for d in os.listdir(tmp_path) if d.startswith("selftest-")]


@pytest.mark.parametrize("source, message", [
    ("nosuch://x", "nosuch://x | unsupported source scheme 'nosuch://'."),
    ("missing.mp4", "missing.mp4 | the source file does not exist."),
    ("synthetic://?defect_rate=abc", "option defect_rate='abc' is not a valid float."),
    ("--sink=nosuch://x", "nosuch://x | unsupported sink."),
    ("--sink=gpio://abc", "gpio://abc | 'abc' is not a pin number."),
])
def test_selftest_refuses_a_bad_source_before_building_anything(tmp_path, source, message):
    # a typo in --source (or --sink) used to surface only in the run step, after doctor and every engine
    # build (minutes on a Nano); it is bad input: one line, exit 1, no bundle.
    model = tiny_classifier(tmp_path / "tiny.onnx")
    option = [source] if source.startswith("--sink=") else ["--source", source]
    proc = _selftest(tmp_path, model, *option, "-o", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].endswith(message), proc.stderr
    assert "selftest: doctor" not in proc.stderr
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_a_run_step_without_a_single_verdict_fails(tmp_path):
    # --seconds counts from loading the engine: 1 ms ends the loop before its first frame (a 230 MB
    # AlexNet with --seconds 3 did the same). That step used to PASS with "0 frames, 0 errors".
    model = tiny_classifier(tmp_path / "tiny.onnx")
    proc = _selftest(tmp_path, model, "--seconds", "0.001", "--bench-seconds", "0.2", "--idle", "0",
                     "--no-archive", "-o", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.load(open(os.path.join(_bundle(str(tmp_path / "out")),
                                                              "selftest.json")))["steps"]}
    assert steps["run"]["status"] == "fail", steps["run"]
    assert steps["run"]["detail"].startswith("no frame reached a verdict (stopped by duration;")
    assert steps["bench"]["status"] == "pass"


def test_selftest_refuses_unusable_calib_before_building_anything(tmp_path):
    model = tiny_classifier(tmp_path / "tiny.onnx")
    junk = tmp_path / "junk.cache"
    junk.write_text("junk\n")
    for calib, message in ((str(junk), "is not a 'TRT-<version>-<algorithm>' header."),
                           (str(tmp_path / "nope"), "nope | the --calib path does not exist.")):
        proc = _selftest(tmp_path, model, "--calib", calib, "-o", str(tmp_path / "out"))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "selftest: doctor" not in proc.stderr
        assert proc.stderr.splitlines()[0].endswith(message), proc.stderr
        assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")
    # on a board without fast INT8 (the Nano) --calib is not used, so it is not checked either
    proc = _selftest(tmp_path, model, "--calib", str(junk), "--target", "nano", "--seconds", "0.5",
                     "--bench-seconds", "0.2", "--idle", "0", "--no-archive", "-o", str(tmp_path / "nano"))
    steps = {s["name"]: s for s in json.load(open(os.path.join(
        glob.glob(str(tmp_path / "nano" / "selftest-nano-*"))[0], "selftest.json")))["steps"]}
    assert steps["build int8"]["status"] == "skip" and "no fast INT8" in steps["build int8"]["detail"]


def test_a_full_disk_at_the_archive_still_shows_every_step_then_the_error(tmp_path):
    # A disk that fills up while the archive is written used to replace the whole step table on the
    # terminal with one error line, so the user did not see what had passed or failed. The disk here
    # has exactly the inodes a first run of the same self-test used without its archive.
    from test_data_safety import tmpfs

    model = tiny_classifier(tmp_path / "tiny.onnx")
    args = ["--seconds", "0.5", "--bench-seconds", "0.2", "--idle", "0"]
    with tmpfs(tmp_path / "roomy", "64m,nr_inodes=4000") as roomy:
        proc = _selftest(tmp_path, model, *args, "--no-archive", "-o", roomy)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        stat = os.statvfs(roomy)
        used = stat.f_files - stat.f_ffree
    with tmpfs(tmp_path / "tight", f"64m,nr_inodes={used}") as tight:
        proc = _selftest(tmp_path, model, *args, "-o", tight)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout.startswith("PASS  doctor"), proc.stdout
        assert "PASS  run" in proc.stdout and "PASS  bench" in proc.stdout and "selftest FAIL: " in proc.stdout
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
        assert errors[0].endswith(".tar.gz | could not write the self-test archive: the disk is full (ENOSPC); "
                                  "nothing half-written was left, the previous version, if any, is unchanged."), errors
        assert not [n for n in os.listdir(tight) if n.endswith(".tar.gz")]
        assert json.load(open(os.path.join(_bundle(tight), "selftest.json")))["ok"] is True


def test_build_plan_per_board():
    nano = build_plan(load_target("nano"))
    assert ("fp16", None, None) in nano
    int8 = [p for p in nano if p[0] == "int8"]
    assert int8 and "no fast INT8" in int8[0][2]
    xavier = build_plan(load_target("agx-xavier"), calib="calib/")
    assert ("fp16", 0, None) in xavier and ("fp16", 1, None) in xavier and ("int8", 1, None) in xavier
    no_calib = dict(((p, c), r) for p, c, r in build_plan(load_target("agx-xavier")))
    assert "--calib" in no_calib[("int8", None)] and "--calib" in no_calib[("int8", 0)]


def test_default_sinks(tmp_path):
    sinks, skipped = default_sinks(str(tmp_path), environ={})
    assert "null://" in sinks and "http://127.0.0.1:0" in sinks and "display://" not in sinks
    assert [s for s, _ in skipped] == ["display://", "mqtt://", "gpio://"]
    assert "--sink mqtt://" in dict(skipped)["mqtt://"] and "--sink gpio://" in dict(skipped)["gpio://"]
    sinks, skipped = default_sinks(str(tmp_path), environ={"DISPLAY": ":0"}, extra=["mqtt://127.0.0.1:1883/q"])
    assert "display://" in sinks and sinks[-1] == "mqtt://127.0.0.1:1883/q"
    assert [s for s, _ in skipped] == ["gpio://"]


def test_sigterm_during_the_run_step_stops_the_selftest_and_keeps_the_bundle(tmp_path):
    """A real SIGTERM while the loop runs: the run ends cleanly, no later step starts, the bundle records
    what ran (interrupted) and the archive is written; exit status 1."""
    model = tiny_classifier(tmp_path / "tiny.onnx")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([PYTHON, "-m", "edgealex", "selftest", model, "--seconds", "300", "--idle", "0",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, cwd=str(tmp_path), preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        verdicts = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = glob.glob(os.path.join(str(out), "selftest-cpu-*", "run", "verdicts.jsonl"))
            if found and os.path.getsize(found[0]) > 0:
                verdicts = found[0]
                break
            time.sleep(0.1)
        assert verdicts, "the run step never wrote a verdict"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in stderr
    bundle = _bundle(str(out))
    data = json.load(open(os.path.join(bundle, "selftest.json")))
    assert data["interrupted"] is True
    names = [s["name"] for s in data["steps"]]
    assert names[-1] == "run" and "bench" not in names
    assert data["steps"][-1]["status"] == "fail" and data["steps"][-1]["detail"].startswith("interrupted")
    assert os.path.isfile(bundle + ".tar.gz")
