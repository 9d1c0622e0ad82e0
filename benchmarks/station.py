"""Station sinks' cost: loop throughput with JSONL + HTTP (one viewer connected) + MQTT vs JSONL alone.

Same engine, same process, rounds interleaved (A = JSONL alone, B = JSONL + ``http://`` with one
MJPEG viewer reading the stream in another process + ``mqtt://`` to a local Mosquitto broker at
QoS 1), so background load on this shared VM hits both sides alike. The figure of merit is the
ratio B/A (target >= 0.95), as the median over rounds and as total A time / total B time.

Engine: the INT8 AlexNet that ``benchmarks/loop.py`` quantizes (random init, 5 classes, ONNX Runtime
CPU), or ``--engine PATH``. Source: unpaced ``synthetic://`` 1280x720 with its frame pool rendered
beforehand. The HTTP sink runs with its defaults (10 fps cap, 640 px wide, JPEG quality 75).

    python benchmarks/station.py                  # writes benchmarks/results/station.{json,md}
    python benchmarks/station.py --rounds 4 --frames 100 --engine engines/x.onnx

Needs mosquitto on PATH or /usr/sbin (Debian ``mosquitto``) and paho-mqtt. Not a test.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _common import LOAD_NOTE, machine, write_results  # noqa: E402
from loop import build_int8_engine, warm_source  # noqa: E402

VIEWER = r"""
import socket, sys, time
port = int(sys.argv[1])
while True:  # one MJPEG viewer: reads and discards the stream, reconnects when a round restarts the server
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        while sock.recv(262144):
            pass
        sock.close()
    except OSError:
        time.sleep(0.02)
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _broker(folder):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = os.path.join(folder, "mosquitto.conf")
    with open(conf, "w") as handle:
        if os.geteuid() == 0:
            handle.write("user root\n")
        handle.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def _round(runner, source, frames, sinks):
    from edgealex.camera import open_sink
    from edgealex.pipeline.loop import run_loop

    done = []
    cpu_start = time.process_time()
    summary = run_loop(runner, source, [open_sink(uri) for uri in sinks], max_frames=frames,
                       on_frame=lambda r: done.append(time.perf_counter()))
    summary.process_cpu_ms_per_frame = (time.process_time() - cpu_start) * 1e3 / max(1, summary.frames)
    k = max(1, len(done) // 10)
    steady = (len(done) - 1 - k) / (done[-1] - done[k]) if len(done) > k + 1 else None
    return summary, steady


def run(args):
    import edgealex

    workdir = args.workdir or tempfile.mkdtemp(prefix="edgealex-station-bench-")
    if args.engine:
        engine, made = args.engine, "given: " + os.path.basename(args.engine)
    else:
        engine, made = build_int8_engine(workdir)
    broker, mqtt_port = _broker(workdir)
    http_port = _free_port()
    viewer = subprocess.Popen([sys.executable, "-c", VIEWER, str(http_port)])
    jsonl = os.path.join(workdir, "verdicts.jsonl")
    station = [f"http://127.0.0.1:{http_port}", f"mqtt://127.0.0.1:{mqtt_port}/bench/station", jsonl]
    load_before = os.getloadavg()
    source = warm_source()
    rounds = []
    try:
        with edgealex.load(engine) as runner:
            _round(runner, source, 20, [jsonl])  # warm-up, not recorded
            for r in range(args.rounds):
                order = [("jsonl", [jsonl]), ("station", station)]
                if r % 2:
                    order.reverse()  # ABBA: neither side always runs first
                row = {"round": r}
                for name, sinks in order:
                    summary, steady = _round(runner, source, args.frames, sinks)
                    row[name] = {"fps": round(summary.pipeline_fps, 2), "steady_fps": round(steady, 2) if steady else None,
                                 "engine_fps": round(summary.engine_fps, 2), "frames": summary.frames,
                                 "wall_s": round(summary.duration_s, 3), "delivery_ms": summary.delivery_ms,
                                 "outputs": summary.outputs, "cpu_ms_per_frame": summary.cpu_ms_per_frame,
                                 "process_cpu_ms_per_frame": round(summary.process_cpu_ms_per_frame, 3)}
                row["ratio"] = round(row["station"]["fps"] / row["jsonl"]["fps"], 3)
                rounds.append(row)
                http = row["station"]["outputs"].get(station[0], {})
                print(f"round {r}: JSONL {row['jsonl']['fps']:.1f} fps, station {row['station']['fps']:.1f} fps, "
                      f"ratio {row['ratio']:.3f}; viewer got {http.get('frames_sent')} frames", flush=True)
    finally:
        source.close()
        viewer.kill()
        broker.terminate()
        broker.wait(10)
    total_a = sum(r["jsonl"]["wall_s"] for r in rounds)
    total_b = sum(r["station"]["wall_s"] for r in rounds)
    return {
        "benchmark": "station-sinks-vs-jsonl",
        "machine": machine(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "engine": {"how": made, "precision": "int8", "backend": "onnxruntime"},
        "frames_per_measurement": args.frames, "rounds": args.rounds,
        "source": "synthetic:// 1280x720, unpaced (fps=0), frame pool pre-rendered",
        "sinks": {"jsonl": ["verdicts.jsonl"], "station": ["http://127.0.0.1:PORT (defaults: 10 fps, 640 px, q75; one "
                                                           "MJPEG viewer in another process)",
                                                           "mqtt://127.0.0.1:PORT/bench/station (QoS 1, local mosquitto)",
                                                           "verdicts.jsonl"]},
        "ratio_median": round(statistics.median(r["ratio"] for r in rounds), 3),
        "cpu_ms_per_frame_median": {side: round(statistics.median(r[side]["process_cpu_ms_per_frame"] for r in rounds), 3)
                                    for side in ("jsonl", "station")},
        "ratio_of_totals": round(total_a / total_b, 3),
        "rounds_detail": rounds,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def markdown(data):
    m = data["machine"]
    lines = [
        "# Station sinks: loop throughput with JSONL + HTTP + MQTT vs JSONL alone",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} logical CPUs. Load average before/after: "
        f"{data['load_average_before'][0]} / {data['load_average_after'][0]} ({LOAD_NOTE}).",
        "",
        f"Engine: AlexNet INT8, ONNX Runtime CPU ({data['engine']['how']}). Source: {data['source']}. "
        f"{data['frames_per_measurement']} frames per measurement, {data['rounds']} rounds, A/B order alternated.",
        "Station side: " + "; ".join(data["sinks"]["station"]) + ".",
        "",
        "| round | JSONL alone fps | JSONL + HTTP + MQTT fps | ratio | viewer frames | MQTT sent / dropped "
        "| verdict p50/p99 ms | HTTP sent p50/p99 ms | MQTT acked p50/p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rounds_detail"]:
        st = r["station"]
        http = next((v for k, v in st["outputs"].items() if k.startswith("http")), {})
        mqtt = next((v for k, v in st["outputs"].items() if k.startswith("mqtt")), {})
        d = st["delivery_ms"]

        def pp(key):
            row = d.get(key) or {}
            return f"{row.get('p50')} / {row.get('p99')}"

        lines.append(f"| {r['round']} | {r['jsonl']['fps']:.1f} | {st['fps']:.1f} | {r['ratio']:.3f} | "
                     f"{http.get('frames_sent')} | {mqtt.get('sent')} / {mqtt.get('dropped')} | {pp('verdict')} | "
                     f"{pp('http')} | {pp('mqtt')} |")
    lines += ["", f"**Median ratio {data['ratio_median']:.3f}; total JSONL-alone time / total station time "
                  f"{data['ratio_of_totals']:.3f}** (target >= 0.95). CPU time of the loop's process per frame "
                  f"(median): JSONL alone {data['cpu_ms_per_frame_median']['jsonl']} ms, with the station sinks "
                  f"{data['cpu_ms_per_frame_median']['station']} ms (the viewer process is not counted), "
                  f"{_pct(data['cpu_ms_per_frame_median'])}.", "",
              "Reading: a ratio above 1 does not mean the sinks speed the loop up. With the load average above "
              "the number of CPUs (other jobs on the VM), single rounds swing by tens of percent either way; "
              "the process CPU time per frame is the steadier measure of what the sinks cost.", "",
              "Delivery latencies run from the start of a frame's capture: verdict = softmax + decision done; "
              "HTTP = the JPEG part written to the viewer's socket (only the frames the 10 fps cap encodes); "
              "MQTT = the broker's PUBACK. On an unpaced source the queue ahead of inference is full, so "
              "these include queueing; a paced camera sees the engine's latency instead.", ""]
    return "\n".join(lines)


def _pct(cpu):
    return "{:+.1f}% with the station sinks".format(100.0 * (cpu["station"] / cpu["jsonl"] - 1.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", help="engine from edgealex build (default: quantize one here)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workdir")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--render", help="only re-render the Markdown of this results JSON")
    args = parser.parse_args()
    if args.render:
        import json

        with open(args.render) as handle:
            data = json.load(handle)
        write_results(args.out, "station", data, markdown(data))
        return
    data = run(args)
    print(f"median ratio {data['ratio_median']}, ratio of totals {data['ratio_of_totals']}")
    write_results(args.out, "station", data, markdown(data))


if __name__ == "__main__":
    main()
