"""The issue's done-when command: `edgealex run ENGINE --source synthetic:// --sink http://...
--sink mqtt://.../line1/station3 --sink verdicts.jsonl` serves the page, publishes and logs, and
stops cleanly on Ctrl-C with the delivery latencies in its summary."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, default_sigint
from station_helpers import Broker, Subscriber, free_port
from test_runtime_models import ort_engine

pytest.importorskip("paho.mqtt.client")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")


def test_done_when_command(tmp_path):
    engine = ort_engine(tmp_path)
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, "line1/station3/#")
    http_port = free_port()
    log = tmp_path / "verdicts.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgealex", "run", engine, "--source", "synthetic://", "--sink",
         f"http://127.0.0.1:{http_port}", "--sink", f"mqtt://127.0.0.1:{broker.port}/line1/station3", "--sink",
         str(log), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=REPO),
        preexec_fn=default_sigint)
    try:
        assert sub.wait_for(lambda m: sum(t == "line1/station3/verdict" for t, _, _ in m) >= 10, 60), \
            proc.stderr.read() if proc.poll() is not None else "no verdicts"
        deadline = time.time() + 60
        status = {}
        while time.time() < deadline and not status.get("frames"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/status.json", timeout=10) as response:
                    status = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        assert status["frames"] > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as response:
            assert b"edgealex station" in response.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        broker.stop()
    assert proc.returncode == 0 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "interrupted"
    assert set(summary["delivery_ms"]) == {"verdict", "http", "mqtt"}
    assert summary["delivery_ms"]["mqtt"]["count"] == summary["frames"]
    mqtt = summary["outputs"][f"mqtt://127.0.0.1:{broker.port}/line1/station3"]
    assert mqtt["sent"] == summary["frames"] and mqtt["dropped"] == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == summary["frames"] + 1 and lines[-1]["record"] == "delivery_ms"
    assert all("verdict" in line["latency_ms"] for line in lines[:-1])
    assert "live view on http://127.0.0.1:" in err
