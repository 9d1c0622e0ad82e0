#!/usr/bin/env bash
# The device side on a real old CPython - 3.6 (the Jetson Nano's JetPack 4.6) or 3.8 (JetPack 5) - with the
# dependency versions pip picks there: edgealex's wheel installed from wheels only (as the Jetson quickstart
# says), then doctor, build (FP32 and INT8), run, bench --mode compare, dla-check, deploy deepstream/triton,
# selftest end to end (its run step serves the HTTP live view), and
# below 3.8 the one-line refusal of every workstation command. Needs CI's venv active (it builds the wheel
# and the tiny test model). Usage: .ci/device_python.sh PYTHON   (run by .ci/run for each one it finds)
set -euo pipefail
PYTHON="$1"
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" . >/dev/null 2>&1
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q -U "pip<22"  # pip 21.3.1: the last for 3.6; reads manylinux2014 tags
WHEEL=$(ls "$WORK"/dist/edgealex-*.whl)
"$WORK/venv/bin/python" -m pip install -q --only-binary=:all: "$WHEEL[ort,opencv]"
echo "py: $("$WORK/venv/bin/python" --version 2>&1), $("$WORK/venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -i -E '^(numpy|typer|click|onnxruntime|onnx|opencv-python-headless|dataclasses)==' | tr '\n' ' ')"
EA="$WORK/venv/bin/edgealex"
cd "$WORK"
# a tiny real classifier (onnx.helper) with edgealex metadata, and a calibration folder, made by CI's Python
PYTHONPATH="$REPO:$REPO/tests" python -c "
from build_helpers import tiny_classifier, calibration_output
tiny_classifier('tiny.onnx'); calibration_output('calib', 'tiny.onnx', qdq=True, ort_native=True)" 2>/dev/null
"$EA" --help >/dev/null
"$EA" -q targets >/dev/null
"$EA" -q doctor >/dev/null
"$EA" -q build tiny.onnx --precision int8 --calib calib -o engines >/dev/null
"$EA" -q run tiny.onnx --max-frames 20 --sink verdicts.jsonl --sink annotated.mp4 >/dev/null
test "$(wc -l < verdicts.jsonl)" -eq 20
"$EA" -q bench engines/*.onnx tiny.onnx --mode compare --duration 0.5 --warmup 0.2 -o bench >/dev/null
"$EA" -q dla-check tiny.onnx --target agx-xavier >/dev/null
"$EA" -q build tiny.onnx --target nano --print-trtexec >/dev/null
"$EA" -q deploy deepstream tiny.onnx --target nano -o deepstream >/dev/null
"$EA" -q deploy triton tiny.onnx -o model_repository >/dev/null
"$EA" -q selftest tiny.onnx --calib calib --seconds 2 --bench-seconds 0.5 --idle 0.2 -o selftest >/dev/null
"$WORK/venv/bin/python" - <<'PY'
import glob, json, tarfile
bundle, = [d for d in glob.glob("selftest/selftest-*") if not d.endswith(".tar.gz")]
data = json.load(open(bundle + "/selftest.json"))
status = {s["name"]: s["status"] for s in data["steps"]}
assert data["ok"] and status["build fp32"] == status["build int8"] == status["run"] == status["bench"] == "pass", status
assert status["report"] == "skip"  # no matplotlib in this venv (none for the Nano's Python 3.6 on aarch64)
import sys
tarfile.open(bundle + ".tar.gz").getnames()
print("py{}.{}: selftest".format(*sys.version_info[:2]), ", ".join("{} {}".format(k, v) for k, v in status.items()))
PY
OLD=$("$WORK/venv/bin/python" -c 'import sys; print(int(sys.version_info < (3, 8)))')
[ "$OLD" = 1 ] || { echo "py: device side ok on $("$WORK/venv/bin/python" --version 2>&1)"; exit 0; }
for cmd in "export -o x.onnx" "calibrate tiny.onnx --images calib" "train --data d" "demo"; do
  # shellcheck disable=SC2086
  if "$EA" -q $cmd 2>err.txt; then echo "py: edgealex $cmd ran on Python 3.6"; exit 1; fi
  grep -q "needs Python 3.8 or newer; this is Python 3.6" err.txt || { cat err.txt; exit 1; }
  test "$(wc -l < err.txt)" -eq 2
done
echo "py: device side ok on $("$WORK/venv/bin/python" --version 2>&1); workstation commands refused in one line"
