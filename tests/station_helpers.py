"""Helpers for the station sink tests: free loopback ports, a real Mosquitto broker, an MQTT
subscriber that records what it receives, and the tiny colour-classifier engine."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port():
    """A TCP port nothing listens on at the moment (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """Mosquitto on a free loopback port with a throwaway config (facts §3.3); persistence on, so a
    subscriber's session and its queued messages survive a stop/start of the broker."""

    def __init__(self, folder):
        if MOSQUITTO is None:
            pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto; .ci/run installs it)")
        self.folder = str(folder)
        self.port = free_port()
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        with open(self.conf, "w") as handle:
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                # as root mosquitto switches to the user "mosquitto", who cannot write the test's folder
                handle.write("user root\n")
            handle.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                         f"persistence_location {self.folder}/\nlog_dest file {self.folder}/mosquitto.log\nlog_type all\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.port), "mosquitto did not start"
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.proc = None


class Subscriber:
    """A paho client (API 2) with a persistent session, recording (topic, payload) in order."""

    def __init__(self, port, topic, client_id="edgealex-test-sub"):
        import paho.mqtt.client as mqtt

        self.messages = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p=None: self.subscribed.set()
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(20), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload.decode("utf-8"), bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def verdicts(self, topic):
        return [json.loads(payload) for t, payload, _ in list(self.messages) if t == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
