"""Latency statistics agree with numpy."""

import numpy as np
import pytest

from edgealex.bench.stats import latency_stats, summarize


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_latency_stats_match_numpy(n):
    rng = np.random.default_rng(n)
    values = rng.lognormal(mean=1.0, sigma=0.4, size=n) * 3.0
    s = latency_stats(values.tolist())
    assert s["count"] == n
    assert s["min_ms"] == pytest.approx(values.min())
    assert s["max_ms"] == pytest.approx(values.max())
    assert s["mean_ms"] == pytest.approx(values.mean())
    assert s["std_ms"] == pytest.approx(values.std())
    assert s["cv"] == pytest.approx(values.std() / values.mean())
    for q in (50, 90, 95, 99):
        assert s[f"p{q}_ms"] == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_empty_and_throughput():
    assert latency_stats([])["p99_ms"] is None
    out = summarize([10.0] * 50, frames=200, window_s=0.5, batch=4)
    assert out["throughput"]["fps"] == pytest.approx(400.0)
    assert out["throughput"]["iterations_per_s"] == pytest.approx(100.0)
    assert out["latency_ms"]["p50_ms"] == pytest.approx(10.0)
