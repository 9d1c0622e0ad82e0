"""The Python 3.6 replacements on the device side behave like the 3.7+ functions they replace."""

import datetime
import time

import pytest

from edgealex.bench.power.csvmeter import parse_time
from edgealex.pipeline.loop import _thread_cpu_s


@pytest.mark.parametrize("text", [
    "2026-11-02T10:15:00.250+01:00", "2026-11-02T10:15:00Z", "2026-11-02 10:15:00", "2026-11-02T10:15",
    "2026-11-02", "2026-11-02T23:59:59.999999-05:30", "2026-11-02T10:15:00.5+0000", "2026-11-02T10:15:00+02",
])
def test_parse_time_agrees_with_fromisoformat(text):
    normalised = text[:-1] + "+00:00" if text.endswith("Z") else text
    if normalised.endswith("+0000"):
        normalised = normalised[:-5] + "+00:00"
    if normalised.endswith("+02"):
        normalised += ":00"
    stamp = datetime.datetime.fromisoformat(normalised)
    expected = stamp.timestamp()  # naive: local time, as parse_time documents
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


def test_parse_time_numbers_and_garbage():
    assert parse_time(" 1700000000.25 ") == 1700000000.25
    with pytest.raises(ValueError):
        parse_time("yesterday")
    with pytest.raises(ValueError):
        parse_time("2026-13-02")


def test_thread_cpu_clock_is_the_thread_time_clock():
    before = time.thread_time()
    ours = _thread_cpu_s()
    after = time.thread_time()
    assert before <= ours <= after
    sum(i * i for i in range(200000))  # some CPU work on this thread
    assert _thread_cpu_s() > ours
