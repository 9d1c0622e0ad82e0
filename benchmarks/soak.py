"""Soak: `edgealex run` for 30 minutes on a looped RTSP stream that freezes and resumes.

A real GStreamer RTSP server on loopback (tests/rtsp_server.py, run by Debian's python3; it loops
a live test pattern for ever) feeds ``edgealex run`` with a JSONL and an annotated-video sink and
``--stall-timeout 2``. Every ``--freeze-every`` seconds the server is frozen with SIGSTOP for
``--freeze-for`` seconds and resumed with SIGCONT. Measured:

- RSS of the run process (``/proc/PID/status`` VmRSS every 2 s): growth from the 60 s mark to the
  end and to the maximum (target: <= 5 %);
- every freeze has a logged gap: a disconnect event in the JSONL and a gap in the summary that
  overlaps it (target: all);
- every line of the JSONL parses, verdicts are in order, the video is complete and readable.

The engine is a tiny ONNX Runtime classifier (GlobalAveragePool + Gemm, built with onnx.helper):
the soak is about the loop, the sinks and the reconnects, not the network's speed.

    nice -n 10 python benchmarks/soak.py                      # 30 min, writes benchmarks/results/soak.{json,md}
    python benchmarks/soak.py --minutes 2 --freeze-every 30 --out /tmp/soak   # a short check

Not a test: nothing here asserts; the numbers are for the record.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from _common import LOAD_NOTE, machine, write_results  # noqa: E402
from rtsp_helpers import RtspServer, probe_rtsp_server  # noqa: E402

LABELS = ["ok", "scratch", "stain", "crack", "hole"]


def tiny_engine(folder):
    """An ORT engine (ONNX + EngineRecord sidecar) of a 5-class colour classifier on 32x32 input."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgealex.engine import EngineRecord, write_record
    from edgealex.modelinfo import ModelInfo, attach, read_model_info
    from edgealex.preprocess import Preprocess

    path = os.path.join(folder, "colour.onnx")
    weights = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8], [-8, -8, -8]], dtype=np.float32)
    bias = np.array([6, 0, 0, 0, 0], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1)], "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    attach(model, ModelInfo("colour", LABELS, Preprocess(input_size=32, resize=36), batch=1, opset=13))
    onnx.save(model, path)
    info = read_model_info(path)
    write_record(path, EngineRecord(backend="ort", precision="fp32", device="cpu", target="cpu", model=info.to_dict(),
                                    onnx_sha256="0" * 64, input_shape=[1, 3, 32, 32], builder="ort",
                                    backend_version="soak", runtime_options={"providers": ["cpu"],
                                                                             "intra_op_num_threads": 1}))
    return path


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--freeze-every", type=float, default=180.0, help="seconds between freezes")
    parser.add_argument("--freeze-for", type=float, default=20.0, help="seconds each freeze lasts")
    parser.add_argument("--stall-timeout", type=float, default=2.0)
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--work", default=None, help="folder for the engine, log and video (default: a temp dir)")
    args = parser.parse_args(argv)
    ok, why = probe_rtsp_server()
    if not ok:
        sys.exit("soak: " + why)
    work = args.work or tempfile.mkdtemp(prefix="edgealex-soak-")
    os.makedirs(work, exist_ok=True)
    engine = tiny_engine(work)
    log, video = os.path.join(work, "soak.jsonl"), os.path.join(work, "soak.mp4")
    width, height = (int(v) for v in args.size.split("x"))
    duration_s = args.minutes * 60.0
    server = RtspServer(width, height, args.fps)
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "edgealex", "run", engine, "--source", server.url + "?backoff=0.5&max_backoff=4",
           "--sink", log, "--sink", video, "--stall-timeout", str(args.stall_timeout),
           "--duration", str(duration_s), "--json"]
    print("soak:", " ".join(cmd), flush=True)
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    freezes, rss = [], []
    next_freeze = started + args.freeze_every
    try:
        while proc.poll() is None:
            now = time.time()
            value = rss_kib(proc.pid)
            if value:
                rss.append((round(now - started, 1), value))
            if now >= next_freeze and now + args.freeze_for < started + duration_s - 10:
                server.freeze()
                frozen_at = time.time()
                time.sleep(args.freeze_for)
                server.resume()
                freezes.append({"start": round(frozen_at, 3), "end": round(time.time(), 3)})
                print(f"soak: froze the server at +{frozen_at - started:.0f} s for {args.freeze_for:.0f} s", flush=True)
                next_freeze += args.freeze_every
                continue
            time.sleep(2.0)
        out, err = proc.communicate()
    finally:
        server.stop()
        if proc.poll() is None:
            proc.kill()
    wall_s = time.time() - started
    summary = json.loads(out) if proc.returncode == 0 and out.strip() else None

    # The log: every line parses; verdicts in order; events.
    lines = bad = 0
    verdicts, events = [], []
    with open(log, encoding="utf-8") as handle:
        for text in handle:
            lines += 1
            try:
                record = json.loads(text)
            except ValueError:
                bad += 1
                continue
            (verdicts if "frame" in record else events).append(record)
    frames = [v["frame"] for v in verdicts]
    in_order = frames == sorted(frames)
    disconnects = [e for e in events if e["event"] == "disconnect"]
    reconnects = [e for e in events if e["event"] == "reconnect"]
    gaps = (summary or {}).get("gaps", [])
    logged = []
    for freeze in freezes:  # a freeze is logged when a gap overlaps it and a disconnect event names its start
        gap = next((g for g in gaps if g["start"] <= freeze["end"] and g["start"] + g["length_s"] >= freeze["start"]),
                   None)
        event = gap is not None and any(abs(e["gap_start"] - gap["start"]) < 1e-3 for e in disconnects)
        logged.append({"freeze": freeze, "gap": gap, "disconnect_event_in_jsonl": bool(event)})
    import cv2

    cap = cv2.VideoCapture(video)
    video_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()

    # From the 60 s mark to the end of --duration (later samples are the process shutting down).
    base = next((kib for t, kib in rss if t >= 60.0), None)
    after = [kib for t, kib in rss if 60.0 <= t <= duration_s]
    growth_end = (after[-1] - base) / base if base and after else None
    growth_max = (max(after) - base) / base if base and after else None
    result = {
        "benchmark": "soak", "machine": machine(), "load_note": LOAD_NOTE,
        "settings": {"minutes": args.minutes, "freeze_every_s": args.freeze_every, "freeze_for_s": args.freeze_for,
                     "stall_timeout_s": args.stall_timeout, "size": args.size, "fps": args.fps,
                     "sinks": ["jsonl", "mp4"], "command": cmd},
        "exit_code": proc.returncode, "stderr_tail": err[-3000:], "wall_s": round(wall_s, 1),
        "rss_kib": {"at_60s": base, "end": after[-1] if after else None, "max_after_60s": max(after) if after else None,
                    "growth_end": growth_end, "growth_max": growth_max, "samples": rss[::5]},
        "jsonl": {"lines": lines, "unparseable": bad, "verdicts": len(verdicts), "verdicts_in_order": in_order,
                  "disconnect_events": len(disconnects), "reconnect_events": len(reconnects)},
        "freezes": len(freezes), "freezes_logged": sum(1 for item in logged if item["gap"] and
                                                       item["disconnect_event_in_jsonl"]),
        "freeze_detail": logged, "video_frames": video_frames,
        "summary": {k: (summary or {}).get(k) for k in ("frames", "reconnects", "reconnect_gap_s", "stopped_by",
                                                          "pipeline_fps", "dropped", "errors")},
    }
    md = [
        "# Soak: 30 min `edgealex run` on a freezing RTSP stream",
        "",
        f"Machine: {result['machine']['cpu_model']}, {result['machine'].get('cpu_isa') or 'ISA not recorded'}, "
        f"{result['machine']['cpu_count']} vCPU), load average at the end {result['machine']['loadavg']}; "
        "shared with other jobs; started with `nice -n 10`. "
        + LOAD_NOTE + ".",
        "",
        f"Source: GStreamer RTSP server on loopback, {args.size} @ {args.fps} fps JPEG/RTP, frozen (SIGSTOP) every "
        f"{args.freeze_every:.0f} s for {args.freeze_for:.0f} s. `edgealex run --stall-timeout {args.stall_timeout:g}` "
        "with a JSONL and an MP4 sink, tiny ORT classifier.",
        "",
        "| check | target | result |",
        "|---|---|---|",
        f"| exit code | 0 | {proc.returncode} |",
        f"| RSS growth 60 s -> end | <= 5 % | {_pct(growth_end)} ({base} -> {after[-1] if after else '-'} KiB) |",
        f"| RSS growth 60 s -> max | <= 5 % | {_pct(growth_max)} (max {max(after) if after else '-'} KiB) |",
        f"| freezes with a logged gap (summary gap + JSONL disconnect) | all | {result['freezes_logged']} of {len(freezes)} |",
        f"| JSONL lines that parse | all | {lines - bad} of {lines} |",
        f"| verdicts in order | yes | {'yes' if in_order else 'no'} ({len(verdicts)} verdicts) |",
        f"| reconnects (summary) | = freezes | {result['summary']['reconnects']} |",
        f"| video frames (container count) | = verdicts | {video_frames} |",
        "",
        f"Wall time {wall_s:.0f} s; pipeline fps {result['summary']['pipeline_fps']}; gaps total "
        f"{result['summary']['reconnect_gap_s']} s.",
        "",
    ]
    write_results(args.out, "soak", result, "\n".join(md))
    return 0


def _pct(value):
    return "-" if value is None else f"{100 * value:+.2f} %"


if __name__ == "__main__":
    sys.exit(main())
