"""MQTT sink against a real Mosquitto broker on loopback: order and content, broker restart, last
will on SIGKILL, bounded buffer, both paho callback APIs, URI errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from station_helpers import Broker, Subscriber, free_port
from test_runtime_models import ort_engine

pytest.importorskip("paho.mqtt.client")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from edgealex.camera import open_sink, open_source  # noqa: E402
from edgealex.errors import EdgeAlexError  # noqa: E402
from edgealex.pipeline.loop import run_loop  # noqa: E402
from edgealex.station.mqtt import MqttSink  # noqa: E402


def _runner(path):
    from edgealex.runtime.registry import load_runner

    return load_runner(path)


def _lines(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _same_record(message, line):
    """An MQTT verdict carries the JSONL record (without latency_ms.sink) plus seq and verdict."""
    message = dict(message)
    message.pop("seq")
    message.pop("verdict")
    line = json.loads(json.dumps(line))
    line["latency_ms"].pop("sink", None)
    return message == line


@pytest.fixture
def broker(tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder).start()
    yield b
    b.stop()


def test_verdicts_arrive_in_order_with_the_jsonl_content(tmp_path, broker):
    sub = Subscriber(broker.port, "line1/station3/#")
    try:
        log = tmp_path / "v.jsonl"
        summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=40&seed=3"),
                           [open_sink(f"mqtt://127.0.0.1:{broker.port}/line1/station3"), open_sink(str(log))])
        assert sub.wait_for(lambda m: sum(t.endswith("/verdict") for t, _, _ in m) >= 40)
        got = sub.verdicts("line1/station3/verdict")
        lines = [line for line in _lines(log) if "frame" in line]
        assert [m["seq"] for m in got] == list(range(40))
        assert [m["frame"] for m in got] == [line["frame"] for line in lines] == list(range(40))
        assert all(_same_record(m, line) for m, line in zip(got, lines))
        assert all(m["verdict"] == ("defect" if m["defect"] else m["verdict"]) for m in got)
        out = summary.outputs[f"mqtt://127.0.0.1:{broker.port}/line1/station3"]
        assert out["sent"] == 40 and out["dropped"] == 0 and out["qos"] == 1
        assert summary.delivery_ms["mqtt"]["count"] == 40
        assert summary.delivery_ms["mqtt"]["p99"] >= summary.delivery_ms["mqtt"]["p50"] > 0
        # the JSONL ends with the delivery record, and the retained status says online, then offline
        assert _lines(log)[-1]["record"] == "delivery_ms" and _lines(log)[-1]["delivery_ms"]["mqtt"]["count"] == 40
        states = [json.loads(p)["status"] for t, p, _ in sub.messages if t == "line1/station3/status"]
        assert states[0] == "online" and states[-1] == "offline"
        online = next(json.loads(p) for t, p, _ in sub.messages if t.endswith("/status"))
        assert online["threshold"] == 0.5 and online["engine"]["backend"] == "ort" and online["model"]
    finally:
        sub.close()


def test_only_defect_and_qos0(tmp_path, broker):
    sub = Subscriber(broker.port, "l/d/#")
    try:
        log = tmp_path / "v.jsonl"
        summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=60&seed=1"),
                           [open_sink(f"mqtt://127.0.0.1:{broker.port}/l/d?only=defect&qos=0"), open_sink(str(log))])
        defects = [line for line in _lines(log) if line.get("defect")]
        assert 0 < len(defects) < 60
        assert sub.wait_for(lambda m: sum(t == "l/d/verdict" for t, _, _ in m) >= len(defects))
        got = sub.verdicts("l/d/verdict")
        assert [m["frame"] for m in got] == [line["frame"] for line in defects]
        assert all(m["defect"] and m["verdict"] == "defect" for m in got)
        assert summary.to_dict()["outputs"][f"mqtt://127.0.0.1:{broker.port}/l/d?only=defect&qos=0"]["qos"] == 0
    finally:
        sub.close()


def test_broker_restart_mid_run_loses_nothing_inside_the_buffer(tmp_path, broker):
    """The broker is stopped at frame 15 and started again at frame 45 (from the loop's own
    callback, so the order of events does not depend on timing); every verdict arrives."""
    sub = Subscriber(broker.port, "plant/s1/#")
    try:
        log = tmp_path / "v.jsonl"

        uri = f"mqtt://127.0.0.1:{broker.port}/plant/s1?buffer=500&drain_s=60"
        sink = open_sink(uri)

        def on_frame(result):
            if result.index == 0:  # connected first, so the outage below interrupts a live session
                deadline = time.monotonic() + 30
                while not sink.counters["connections"] and time.monotonic() < deadline:
                    time.sleep(0.01)
            elif result.index == 15:
                broker.stop()
            elif result.index == 45:
                broker.start()

        summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=70&seed=2"),
                           [sink, open_sink(str(log))], on_frame=on_frame)
        arrived = sub.wait_for(lambda m: len({json.loads(p)["seq"] for t, p, _ in m if t == "plant/s1/verdict"}) >= 70,
                               timeout_s=60)
        seen = {m["seq"] for m in sub.verdicts("plant/s1/verdict")}
        assert arrived, (sorted(set(range(70)) - seen), summary.outputs,
                         open(os.path.join(broker.folder, "mosquitto.log")).read()[-3000:])
        got = sub.verdicts("plant/s1/verdict")
        first_seen = []
        for m in got:  # QoS 1 is at-least-once: a re-sent message may arrive twice
            if m["seq"] not in first_seen:
                first_seen.append(m["seq"])
        assert first_seen == list(range(70))
        lines = {line["frame"]: line for line in _lines(log) if "frame" in line}
        assert all(_same_record(m, lines[m["frame"]]) for m in got)
        out = summary.outputs[uri]
        assert out["sent"] == 70 and out["dropped"] == 0 and out["connections"] >= 2 and out["disconnects"] >= 1
    finally:
        sub.close()


def test_broker_down_buffer_is_bounded_and_drops_are_counted(tmp_path):
    port = free_port()  # nothing listens there
    uri = f"mqtt://127.0.0.1:{port}/x/y?buffer=10"
    summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=30"),
                       [open_sink(uri)])
    assert summary.frames == 30
    out = summary.outputs[uri]
    assert out["sent"] == 0 and out["connections"] == 0 and out["connect_failures"] >= 1  # no drain wait then
    assert out["dropped"] == 30 and out["unsent_at_exit"] == 10  # 20 pushed out of the buffer, 10 left in it
    assert "x/y" in summary.format() or uri in summary.format()


def test_last_will_fires_when_the_run_is_killed(tmp_path, broker):
    engine = ort_engine(tmp_path)
    sub = Subscriber(broker.port, "kill/me/#")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "edgealex", "run", engine, "--source",
                             "synthetic://?fps=20&pool=1", "--sink", f"mqtt://127.0.0.1:{broker.port}/kill/me"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        assert sub.wait_for(lambda m: any(t == "kill/me/verdict" for t, _, _ in m)), proc.stderr.read1(4000) \
            if proc.poll() is not None else "no verdict"
        statuses = [json.loads(p)["status"] for t, p, _ in sub.messages if t == "kill/me/status"]
        assert statuses == ["online"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)
        assert sub.wait_for(lambda m: any(t == "kill/me/status" and json.loads(p)["status"] == "offline"
                                          for t, p, _ in m))
        will = [json.loads(p) for t, p, _ in sub.messages if t == "kill/me/status"][-1]
        assert will == {"status": "offline", "reason": "connection lost"}
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    # retained: a client connecting now learns that the station is offline
    late = Subscriber(broker.port, "kill/me/status", client_id="late-comer")
    try:
        assert late.wait_for(lambda m: bool(m))
        topic, payload, retained = late.messages[0]
        assert json.loads(payload)["status"] == "offline" and retained
    finally:
        late.close()


def test_paho_v1_callback_api(tmp_path, broker):
    """paho 2.x with CallbackAPIVersion.VERSION1: the callback signatures paho 1.6.1 (Python 3.6) uses."""
    sub = Subscriber(broker.port, "v1/api/#")
    try:
        sink = MqttSink("127.0.0.1", broker.port, "v1/api", callback_api=1)
        with pytest.warns(DeprecationWarning):
            summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=12"),
                               [sink])
        assert sink.api == 1
        assert sub.wait_for(lambda m: sum(t == "v1/api/verdict" for t, _, _ in m) >= 12)
        assert [m["seq"] for m in sub.verdicts("v1/api/verdict")] == list(range(12))
        assert summary.outputs[sink.uri]["sent"] == 12 and summary.outputs[sink.uri]["paho_api"] == 1
    finally:
        sub.close()


PAHO16 = "1.6.1"
# pip's words when the package cannot be had from here (no index reachable, offline, not on the index)
_UNREACHABLE = ("No matching distribution", "Could not find a version", "NewConnectionError", "ConnectTimeout",
                "Network is unreachable", "Temporary failure in name resolution", "Max retries exceeded",
                "ProxyError", "SSLError", "Could not fetch URL", "No module named pip")


@pytest.fixture(scope="session")
def paho16(tmp_path_factory):
    """A folder holding the real paho-mqtt 1.6.1 (the Jetson Nano's, Python 3.6), for a subprocess's
    PYTHONPATH. ``EDGEALEX_TEST_PAHO16`` names one; otherwise pip installs it (``--target``, no
    dependencies) once into a cache next to pytest's numbered temp folders, reused by later sessions.
    Skips only when pip cannot reach the package; any other pip failure fails the test."""
    given = os.environ.get("EDGEALEX_TEST_PAHO16")
    if given:
        return given
    base = tmp_path_factory.getbasetemp()
    # pytest-of-USER holds the numbered pytest-N (pruned) and is kept across sessions; a --basetemp
    # given by hand is emptied each session and its parent is not ours: cache inside it then
    root = base.parent if re.fullmatch(r"pytest-\d+", base.name) else base
    cache = root / f"paho-mqtt-{PAHO16}"
    if (cache / "paho" / "mqtt" / "client.py").is_file():
        return str(cache)
    staging = tmp_path_factory.mktemp("paho16-install")
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                          "--disable-pip-version-check", "--target", str(staging), f"paho-mqtt=={PAHO16}"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        text = out.stdout + out.stderr
        if any(word in text for word in _UNREACHABLE):
            pytest.skip(f"pip cannot reach paho-mqtt=={PAHO16}: " + text.strip().splitlines()[-1])
        pytest.fail(f"pip install paho-mqtt=={PAHO16} failed:\n{text}")
    try:
        os.rename(str(staging), str(cache))  # atomic: a parallel session sees all of it or none
    except OSError:  # another session got there first
        if not (cache / "paho" / "mqtt" / "client.py").is_file():
            return str(staging)
    return str(cache)


def test_real_paho_1_6(tmp_path, broker, paho16):
    engine = ort_engine(tmp_path)
    sub = Subscriber(broker.port, "p16/s/#")
    env = dict(os.environ, PYTHONPATH=paho16 + os.pathsep + REPO)
    code = ("import json, paho.mqtt\nfrom edgealex.pipeline.loop import run_inspection\n"
            f"s = run_inspection({engine!r}, source='synthetic://?fps=0&pool=1&count=15', "
            f"sinks=['mqtt://127.0.0.1:{broker.port}/p16/s'])\n"
            "print(json.dumps([paho.mqtt.__version__, s.outputs]))\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        version, outputs = json.loads(out.stdout.strip().splitlines()[-1])
        assert version.startswith("1.6")
        assert list(outputs.values())[0]["sent"] == 15 and list(outputs.values())[0]["paho_api"] == 1
        assert sub.wait_for(lambda m: sum(t == "p16/s/verdict" for t, _, _ in m) >= 15)
        assert [m["seq"] for m in sub.verdicts("p16/s/verdict")] == list(range(15))
    finally:
        sub.close()


@pytest.mark.parametrize("uri, what", [
    ("mqtt://127.0.0.1:1883", "no topic"),
    ("mqtt://127.0.0.1:1883/a/#", "wildcards"),
    ("mqtt://127.0.0.1:1883/a?qos=3", "out of range"),
    ("mqtt://127.0.0.1:1883/a?only=ok", "only=ok"),
    ("mqtt://127.0.0.1:1883/a?retain=1", "unknown option 'retain'"),
    ("mqtt://127.0.0.1:99999/a", "port"),
    ("mqtt://127.0.0.1:99999/a", "e.g. mqtt://"),  # the example is an MQTT one, not the live page's
    ("mqtt://[::1:1883/a", "not a valid address"),  # an unclosed IPv6 bracket was a traceback
])
def test_bad_uris_are_one_line_errors(uri, what):
    with pytest.raises(EdgeAlexError) as err:
        open_sink(uri)
    assert what in str(err.value)


def test_password_is_not_shown():
    sink = open_sink("mqtt://plant:s3cret@127.0.0.1:1883/a/b")
    assert sink.username == "plant" and sink.password == "s3cret" and "s3cret" not in sink.uri


def test_login_with_percent_encoded_user_and_password(tmp_path):
    """A password holding '@', ':' or '/' can only be written percent-encoded in the URI; the broker
    must get the decoded one (urlsplit leaves username/password encoded)."""
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.path.exists(passwd):
        pytest.skip("mosquitto_passwd is not installed (Debian package mosquitto)")
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(folder)
    subprocess.run([passwd, "-c", "-b", str(folder / "passwd"), "pl@nt", "p@ss:w/rd"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(broker.conf, encoding="utf-8") as handle:
        conf = handle.read().replace("allow_anonymous true", f"allow_anonymous false\npassword_file {folder}/passwd")
    with open(broker.conf, "w", encoding="utf-8") as handle:
        handle.write(conf)
    broker.start()
    try:
        uri = f"mqtt://pl%40nt:p%40ss%3Aw%2Frd@127.0.0.1:{broker.port}/login/test"
        sink = open_sink(uri)
        assert (sink.username, sink.password) == ("pl@nt", "p@ss:w/rd")
        assert "p%40ss" not in sink.uri and "p@ss" not in sink.uri
        summary = run_loop(_runner(ort_engine(tmp_path)), open_source("synthetic://?fps=0&pool=1&count=3"), [sink])
        out = summary.outputs[sink.uri]
        assert out["connections"] == 1 and out["sent"] == 3, out
    finally:
        broker.stop()
