"""The inspection station: sinks that let people watch a run and machines act on it.

=====================================  ===================================================================
URI                                    sink
=====================================  ===================================================================
``http://HOST:PORT``                   live page: annotated MJPEG stream, counters, defect thumbnails,
                                       ``/status.json`` (:mod:`edgealex.station.http`)
``mqtt://HOST:PORT/TOPIC``             one JSON message per verdict on ``TOPIC/verdict``, retained
                                       ``TOPIC/status`` online/offline (:mod:`edgealex.station.mqtt`)
``gpio://PIN?pulse_ms=50``             reject pulse on a Jetson header pin per defect
                                       (:mod:`edgealex.station.gpio`)
=====================================  ===================================================================

Every station sink works off the loop's sink thread: ``write`` only hands the verdict over
(a few microseconds) and a worker thread of the sink does the slow part (encoding, network,
sleeping through a pulse), so a slow client, a dead broker or a long pulse never delays the loop.

Delivery latency: each sink records, per delivered frame, the time from the start of the frame's
capture to its delivery (HTTP: the JPEG part written to a client socket; MQTT: the broker's
PUBACK, or the socket write at QoS 0; GPIO: ``GPIO.output`` returned with the pin active), in
``deliveries_ms`` (milliseconds, ``array('d')``). :func:`edgealex.pipeline.loop.run_loop` puts
their mean/p50/p99 into the run summary (``delivery_ms``) next to capture -> verdict.

Device-side code: runs on Python 3.6 (JetPack 4.6), standard library plus the sink's own extra.
"""

import re
import time
from array import array
from urllib.parse import parse_qsl, urlsplit

from edgealex.errors import EdgeAlexError

SCHEMES = ("http", "mqtt", "gpio")


def is_station_uri(uri):
    """True when ``uri`` names a station sink (http://, mqtt://, gpio://)."""
    return str(uri).strip().lower().split("://", 1)[0] in SCHEMES and "://" in str(uri)


def open_station_sink(uri):
    """The station sink for ``uri`` (not opened yet).

    Raises:
        EdgeAlexError: malformed URI or option.
    """
    scheme = str(uri).strip().split("://", 1)[0].lower()
    if scheme == "http":
        from edgealex.station.http import HttpSink

        return HttpSink.from_uri(uri)
    if scheme == "mqtt":
        from edgealex.station.mqtt import MqttSink

        return MqttSink.from_uri(uri)
    if scheme == "gpio":
        from edgealex.station.gpio import GpioSink

        return GpioSink.from_uri(uri)
    raise EdgeAlexError(uri, "not a station sink", "use http://HOST:PORT, mqtt://HOST:PORT/TOPIC or gpio://PIN")


def split_uri(uri, allowed, example):
    """``(urlsplit result, options dict)`` of a sink URI; unknown options are refused.

    Raises:
        EdgeAlexError: a malformed address (e.g. an unclosed ``[`` of an IPv6 address), an option
            not in ``allowed``, or a repeated option.
    """
    text = str(uri).strip()
    try:
        parts = urlsplit(text)
        parts.hostname  # noqa: B018 (newer Pythons check a bracketed address here; the port: port_of)
    except ValueError as exc:
        raise EdgeAlexError(text, f"not a valid address ({exc})",
                            "write an IPv6 address in brackets, e.g. " + example.replace("127.0.0.1", "[::1]"))
    options = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in allowed:
            raise EdgeAlexError(text, f"unknown option '{key}'",
                                "options: " + ", ".join(allowed) + "; e.g. " + example)
        if key in options:
            raise EdgeAlexError(text, f"option '{key}' given twice", "give it once, e.g. " + example)
        options[key] = value
    return parts, options


def option(uri, options, key, kind, default, low=None, high=None, example=""):
    """One typed option from ``options`` (``kind`` is int, float or str), range-checked.

    Raises:
        EdgeAlexError: not a number, or outside [low, high].
    """
    if key not in options:
        return default
    raw = options[key]
    try:
        value = kind(raw)
    except ValueError:
        raise EdgeAlexError(uri, f"option {key}={raw!r} is not a valid {kind.__name__}", example or f"e.g. {key}=1")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise EdgeAlexError(uri, f"option {key}={raw} is out of range", f"use a value {bounds}")
    return value


def port_of(uri, parts, default, example="http://127.0.0.1:8080"):
    """The URI's port (``default`` when absent); ``example`` shows a good URI in the error.

    Raises:
        EdgeAlexError: not a number or outside 0..65535.
    """
    try:
        port = parts.port
    except ValueError:
        raise EdgeAlexError(uri, "the port is not a number between 0 and 65535", "e.g. " + example)
    return default if port is None else port


def redacted(uri, parts, secret_options=()):
    """``uri`` with its password and the values of ``secret_options`` replaced by ``***``: the
    name a sink goes by in the run summary, the JSONL's ``outputs`` record and error messages,
    which are shared more widely than the station itself.
    """
    text = str(uri).strip()
    if parts.password:
        text = text.replace(":" + parts.password + "@", ":***@", 1)
    for key in secret_options:
        text = re.sub(r"([?&]" + re.escape(key) + r"=)[^&#]*", r"\1***", text)
    return text


def capture_start(frame):
    """``time.perf_counter()`` value at which ``frame``'s capture began (seconds)."""
    return frame.captured_at - frame.capture_ms / 1e3


class DeliveryLog:
    """Per-frame delivery latencies of one sink (capture start -> delivered), thread-safe enough
    for one writer thread: ``array.append`` is atomic under the GIL.

    Attributes:
        deliveries_ms (array): one float per delivery, milliseconds.
    """

    def __init__(self):
        self.deliveries_ms = array("d")

    def record(self, started_at, done_at=None):
        """Record a delivery of a frame whose capture began at ``started_at`` (perf_counter s)."""
        self.deliveries_ms.append(((time.perf_counter() if done_at is None else done_at) - started_at) * 1e3)
