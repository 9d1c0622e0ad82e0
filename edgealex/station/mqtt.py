"""``--sink mqtt://HOST:PORT/TOPIC``: verdicts to the plant over MQTT (paho-mqtt, extra ``mqtt``).

Messages (``TOPIC`` is the URI's path, e.g. ``line1/station3``)::

    TOPIC/verdict   one JSON object per verdict (``?only=defect``: per defect verdict only), QoS from
                    ``?qos=`` (default 1), not retained: the frame's JSONL record (``FrameResult.to_dict``,
                    without ``latency_ms.sink``, which is only known after the sinks) plus ``seq``
                    (0, 1, 2 ... per run: a consumer sees gaps and QoS 1 duplicates) and ``verdict``
                    ("defect", "uncertain" or "ok")
    TOPIC/status    retained: {"status": "online", model, engine, threshold, defect classes, source,
                    host, since} on every (re)connection; the last will {"status": "offline"} is
                    published by the broker when the run dies without saying goodbye (SIGKILL, power,
                    network), and the sink publishes it itself on a clean stop

URI options: ``qos`` (0, 1, 2), ``only`` (``defect`` or ``all``), ``buffer`` (messages held while the
broker is unreachable, default 1000; beyond that the oldest is dropped and counted), ``client_id``
(default ``edgealex-<host>-<pid>``), ``keepalive`` (s, default 30), ``drain_s`` (how long the end of
the run waits for the last acknowledgements, default 5). ``mqtt://user:password@host/...`` logs in.

Never blocking the loop: ``write`` serialises the record and appends it to a bounded deque (the
loop's only cost, ~20 us); a publisher thread hands messages to paho only while connected, at most
``WINDOW`` unacknowledged at a time; paho's own network thread (``loop_start``) reconnects in the
background with a backoff of 1-8 s and re-sends unacknowledged QoS >= 1 messages after a
reconnection (paho ``_messages_reconnect_reset_out``), so a broker restart loses nothing that fits
in ``buffer + WINDOW``; at QoS 1 a consumer may see a message twice (``seq`` tells).

paho-mqtt versions (facts: PAHO ``docs/migrations.rst``, ``ChangeLog.txt``): 2.x requires the
callback API version as the first argument of ``Client`` (2.2 needs Python >= 3.9, 2.0/2.1 >= 3.7);
Python 3.6 (Jetson Nano) gets 1.6.1, which has no ``CallbackAPIVersion`` and the older callback
signatures. Both are supported; the API is detected with ``hasattr(client, "CallbackAPIVersion")``.
"""

import collections
import json
import os
import socket
import threading
import time
from urllib.parse import unquote

from edgealex._optional import require
from edgealex.camera.sink import FrameSink, verdict_kind
from edgealex.errors import EdgeAlexError
from edgealex.validate import check_float
from edgealex.log import logger
from edgealex.station import DeliveryLog, capture_start, option, port_of, redacted, split_uri

OPTIONS = ("qos", "only", "buffer", "client_id", "keepalive", "drain_s")
EXAMPLE = "mqtt://127.0.0.1:1883/line1/station3?qos=1"
DEFAULT_PORT = 1883
WINDOW = 100  # messages handed to paho and not yet acknowledged
MQTT_ERR_SUCCESS = 0
MQTT_ERR_NO_CONN = 4
MQTT_ERR_QUEUE_SIZE = 15


class MqttSink(FrameSink):
    """MQTT publisher of verdicts (see the module docstring).

    Args:
        host (str): broker address.
        port (int): broker port. Defaults to 1883.
        topic (str): base topic, e.g. "line1/station3" (no wildcards).
        qos (int): 0, 1 or 2 for verdicts. Defaults to 1.
        only (str): "all" or "defect". Defaults to "all".
        buffer (int): messages kept while the broker is unreachable. Defaults to 1000.
        client_id (str): MQTT client id. Defaults to "edgealex-<host>-<pid>".
        keepalive (int): seconds. Defaults to 30.
        drain_s (float): how long the end of the run waits for acknowledgements. Defaults to 5.
        username (str), password (str): broker login. Defaults to None.
        callback_api (int): 1 or 2 to force paho's callback API (2.x only); None detects it.
    """

    delivery_name = "mqtt"

    def __init__(self, host, port=DEFAULT_PORT, topic="edgealex", qos=1, only="all", buffer=1000, client_id=None,
                 keepalive=30, drain_s=5.0, username=None, password=None, uri=None, callback_api=None):
        self.host = host
        self.port = int(port)
        self.topic = topic.strip("/")
        self.verdict_topic = self.topic + "/verdict"
        self.status_topic = self.topic + "/status"
        self.qos = int(qos)
        self.only = only
        self.buffer = int(buffer)
        self.client_id = client_id or f"edgealex-{socket.gethostname()}-{os.getpid()}"
        self.keepalive = int(keepalive)
        self.drain_s = check_float("mqtt sink drain_s", drain_s, low=0, example="2")
        self.username, self.password = username, password
        self.callback_api = callback_api
        self.uri = uri or f"mqtt://{host}:{port}/{self.topic}"
        self._delivery = DeliveryLog()
        self.deliveries_ms = self._delivery.deliveries_ms
        self._client = None
        self._queue = collections.deque()
        self._cond = threading.Condition()
        self._pending = {}  # mid -> capture start (perf_counter s), waiting for the acknowledgement
        self._early = {}  # mid -> ack time, for acknowledgements that beat publish() returning
        self._status_mids = set()  # status messages, published from the network thread: not verdicts
        self._connected = False
        self._stop = False
        self._publisher = None
        self._seq = 0
        self._status = None
        self.api = None
        self.counters = {"sent": 0, "dropped": 0, "unsent_at_exit": 0, "connections": 0, "disconnects": 0,
                         "connect_failures": 0}

    @classmethod
    def from_uri(cls, uri):
        """Parse ``mqtt://[user:password@]HOST[:PORT]/TOPIC[?qos=1&only=defect&buffer=1000]``.

        Raises:
            EdgeAlexError: no topic, a wildcard, an unknown option or a value out of range.
        """
        parts, opts = split_uri(uri, OPTIONS, EXAMPLE)
        topic = parts.path.strip("/")
        if not parts.hostname:
            raise EdgeAlexError(uri, "no broker address", "e.g. " + EXAMPLE)
        if not topic:
            raise EdgeAlexError(uri, "no topic: verdicts go to TOPIC/verdict, the station status to TOPIC/status",
                                "e.g. " + EXAMPLE)
        if "+" in topic or "#" in str(uri):  # '#' starts a URL fragment: look at the whole text
            raise EdgeAlexError(uri, "a topic to publish to cannot hold the wildcards + or #", "e.g. " + EXAMPLE)
        only = opts.get("only", "all")
        if only not in ("all", "defect"):
            raise EdgeAlexError(uri, f"only={only} is not 'all' or 'defect'", "e.g. ?only=defect")
        return cls(parts.hostname, port_of(uri, parts, DEFAULT_PORT, EXAMPLE), topic,
                   qos=option(uri, opts, "qos", int, 1, 0, 2), only=only,
                   buffer=option(uri, opts, "buffer", int, 1000, 1, 10000000),
                   client_id=opts.get("client_id") or None,
                   keepalive=option(uri, opts, "keepalive", int, 30, 5, 3600),
                   drain_s=option(uri, opts, "drain_s", float, 5.0, 0.0, 600.0),
                   # urlsplit leaves them percent-encoded: a password with '@', ':' or '/' can only be written so
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   uri=redacted(uri, parts))

    # -- FrameSink ------------------------------------------------------------------------------
    def open(self, context):
        mqtt = require("paho.mqtt.client", "the MQTT sink (mqtt://)")
        context = context or {}
        engine = context.get("engine") or {}
        self._status = json.dumps({
            "status": "online", "model": engine.get("model") or context.get("engine_path"),
            "engine": {k: engine.get(k) for k in ("backend", "precision", "device", "target", "sha256") if k in engine},
            "engine_path": context.get("engine_path"), "threshold": context.get("threshold"),
            "defect_classes": context.get("defect_classes"), "source": (context.get("source") or {}).get("uri"),
            "host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, separators=(",", ":"))
        self._client = client = self._make_client(mqtt)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.will_set(self.status_topic, json.dumps({"status": "offline", "reason": "connection lost"}), qos=1,
                        retain=True)
        client.max_queued_messages_set(0)  # bounded here, by buffer + WINDOW
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        self._stop = False
        try:
            client.connect_async(self.host, self.port, self.keepalive)
        except (OSError, ValueError) as exc:
            raise EdgeAlexError(self.uri, f"cannot use the broker address ({exc})", "e.g. " + EXAMPLE)
        client.loop_start()
        self._publisher = threading.Thread(target=self._publish_worker, name="edgealex-mqtt", daemon=True)
        self._publisher.start()
        logger.info("MQTT: verdicts to %s on %s:%d (QoS %d%s), status on %s", self.verdict_topic, self.host,
                    self.port, self.qos, ", defects only" if self.only == "defect" else "", self.status_topic)

    def _make_client(self, mqtt):
        version = getattr(mqtt, "CallbackAPIVersion", None)
        if version is None:  # paho-mqtt 1.x (Python 3.6): v1 callbacks only
            self.api = 1
            client = mqtt.Client(client_id=self.client_id, clean_session=True)
        else:
            self.api = int(self.callback_api or 2)
            client = mqtt.Client(version.VERSION2 if self.api == 2 else version.VERSION1, client_id=self.client_id,
                                 clean_session=True)
        if self.api == 2:
            client.on_connect = lambda c, u, flags, rc, props=None: self._on_connect(rc)
            client.on_disconnect = lambda c, u, flags, rc, props=None: self._on_disconnect(rc)
            client.on_publish = lambda c, u, mid, rc=None, props=None: self._on_publish(mid)
        else:
            client.on_connect = lambda c, u, flags, rc: self._on_connect(rc)
            client.on_disconnect = lambda c, u, rc: self._on_disconnect(rc)
            client.on_publish = lambda c, u, mid: self._on_publish(mid)
        client.on_connect_fail = lambda c, u: self._on_connect_fail()  # same signature in 1.6 and 2.x
        return client

    def write(self, item):
        result = item.result
        if self.only == "defect" and not result.defect:
            return
        record = result.to_dict()
        record["latency_ms"].pop("sink", None)
        record["seq"] = self._seq
        record["verdict"] = verdict_kind(result)
        self._seq += 1
        payload = json.dumps(record, separators=(",", ":"))
        with self._cond:
            if len(self._queue) >= self.buffer:
                self._queue.popleft()  # the oldest goes: the plant gets the newest verdicts first
                self.counters["dropped"] += 1
            self._queue.append((payload, capture_start(item.frame)))
            self._cond.notify()

    def finish(self):
        """Wait up to ``drain_s`` for queued messages to be acknowledged (a run shorter than the
        first connection still gets its messages out; when the first attempt to reach the broker
        failed and none succeeded, no wait); the sink's counters.

        Returns:
            dict: ``sent`` (acknowledged; at QoS 0 written to the socket), ``dropped`` (buffer
            overflow, QoS 0 while disconnected, or still unsent when the run ended), ``unsent_at_exit``,
            ``connections``, ``disconnects``, ``qos``, ``paho_api``.
        """
        deadline = time.monotonic() + self.drain_s
        try:
            with self._cond:
                while (self._queue or self._pending) and time.monotonic() < deadline:
                    if not self.counters["connections"] and self.counters["connect_failures"]:
                        break  # the broker was never reached: nothing will be acknowledged, do not hold up the end
                    self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, count what is left
            logger.warning("MQTT: stopped waiting for the broker's acknowledgements")
        with self._cond:
            unsent = len(self._queue) + len(self._pending)
        counts = dict(self.counters)
        counts["unsent_at_exit"] = unsent
        counts["dropped"] += unsent
        counts.update({"qos": self.qos, "paho_api": self.api})
        return counts

    def close(self, summary=None):
        client, self._client = self._client, None
        if client is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._publisher is not None:
            self._publisher.join(5.0)
        if self._connected:  # a clean stop: say so (the will is only sent on an unclean loss)
            info = client.publish(self.status_topic, json.dumps({"status": "offline", "reason": "run ended"}), qos=1,
                                  retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError, TypeError):  # 1.6 has no timeout argument / not queued
                pass
        client.disconnect()
        client.loop_stop()

    # -- threads --------------------------------------------------------------------------------
    def _publish_worker(self):
        warn_at = time.monotonic() + 5.0
        while True:
            with self._cond:
                while not self._stop and not (self._queue and self._connected and len(self._pending) < WINDOW):
                    self._cond.wait(0.5)
                    if warn_at is not None and not self.counters["connections"] and time.monotonic() > warn_at:
                        warn_at = None
                        logger.warning("MQTT: cannot reach %s:%d yet; buffering up to %d verdicts and retrying",
                                       self.host, self.port, self.buffer)
                if self._stop:
                    return
                payload, started = self._queue.popleft()
                client = self._client
            info = client.publish(self.verdict_topic, payload, qos=self.qos)
            with self._cond:
                if info.rc == MQTT_ERR_QUEUE_SIZE or (self.qos == 0 and info.rc == MQTT_ERR_NO_CONN):
                    self.counters["dropped"] += 1
                    continue
                acked_at = self._early.pop(info.mid, None)
                if acked_at is not None:
                    self._acked(started, acked_at)
                else:
                    self._pending[info.mid] = started

    def _acked(self, started, acked_at):
        self._delivery.record(started, acked_at)
        self.counters["sent"] += 1
        self._cond.notify_all()

    def _on_connect(self, rc):
        if _failed(rc):
            logger.warning("MQTT: %s:%d refused the connection (%s)", self.host, self.port, rc)
            self._on_connect_fail()
            return
        self._client_publish_status()
        with self._cond:
            self._connected = True
            self.counters["connections"] += 1
            self._cond.notify_all()
        if self.counters["connections"] > 1:
            logger.info("MQTT: reconnected to %s:%d", self.host, self.port)

    def _on_connect_fail(self):
        with self._cond:
            self.counters["connect_failures"] += 1
            self._cond.notify_all()

    def _client_publish_status(self):
        client = self._client
        if client is not None and self._status is not None:  # on paho's network thread, like its acks
            self._status_mids.add(client.publish(self.status_topic, self._status, qos=1, retain=True).mid)

    def _on_disconnect(self, rc):
        with self._cond:
            was = self._connected
            self._connected = False
            if was:
                self.counters["disconnects"] += 1
        if was and not self._stop:
            logger.warning("MQTT: lost %s:%d (%s); buffering up to %d verdicts and reconnecting", self.host,
                           self.port, rc, self.buffer)

    def _on_publish(self, mid):
        now = time.perf_counter()
        if mid in self._status_mids:
            self._status_mids.discard(mid)
            return
        with self._cond:
            started = self._pending.pop(mid, None)
            if started is not None:
                self._acked(started, now)
            else:  # the ack beat publish() returning on the publisher thread
                self._early[mid] = now


def _failed(rc):
    failure = getattr(rc, "is_failure", None)  # paho 2.x ReasonCode
    if failure is not None:
        return bool(failure)
    return int(rc) != 0

