"""Energy integration over exact windows: trapezoid with interpolated edges, counters, idle."""

import numpy as np
import pytest

from edgealex.bench.energy import (counter_delta, counter_to_power, integrate_counter, integrate_power, per_frame,
                                   unwrap_counter)


def test_constant_power_window_between_samples():
    t = np.arange(0, 10.01, 0.1)
    w = integrate_power(t, np.full_like(t, 5.0), 2.25, 7.75)
    assert w["energy_j"] == pytest.approx(27.5, abs=1e-12)
    assert w["avg_power_w"] == pytest.approx(5.0)
    assert w["window_s"] == pytest.approx(5.5)
    assert w["extrapolated_s"] == 0.0
    assert w["samples_in_window"] == 55  # 2.3 ... 7.7


def test_ramp_is_integrated_exactly():
    t = np.arange(0.0, 11.0)  # 1 Hz
    p = 2.0 * t  # P = 2t  ->  E = t^2
    w = integrate_power(t, p, 1.5, 4.5)
    assert w["energy_j"] == pytest.approx(4.5 ** 2 - 1.5 ** 2, abs=1e-12)  # 18 J


def test_irregular_sampling_of_a_linear_signal():
    t = np.array([0.0, 0.3, 1.1, 1.15, 2.9, 4.0, 7.3])
    p = 3.0 + t
    a, b = 0.2, 5.0
    expected = 3.0 * (b - a) + (b ** 2 - a ** 2) / 2.0
    assert integrate_power(t, p, a, b)["energy_j"] == pytest.approx(expected, abs=1e-12)


def test_window_edges_between_samples_use_interpolated_power():
    # A triangle 0 -> 10 W -> 0 sampled at 1 Hz; the window [0.5, 1.5] must see P(0.5) = P(1.5) = 5 W,
    # not the nearest samples (0 W) and not the whole 0..2 s span.
    t = np.array([0.0, 1.0, 2.0])
    p = np.array([0.0, 10.0, 0.0])
    w = integrate_power(t, p, 0.5, 1.5)
    assert w["energy_j"] == pytest.approx(7.5, abs=1e-12)
    assert w["samples_in_window"] == 1


def test_unsorted_samples_are_sorted_and_window_inside_one_interval():
    t = np.array([2.0, 0.0, 1.0])
    p = np.array([4.0, 0.0, 2.0])  # P = 2t
    assert integrate_power(t, p, 1.25, 1.75)["energy_j"] == pytest.approx(1.75 ** 2 - 1.25 ** 2)


def test_window_beyond_the_samples_is_held_and_reported():
    t = np.array([1.0, 2.0])
    p = np.array([4.0, 4.0])
    w = integrate_power(t, p, 0.0, 3.0)
    assert w["energy_j"] == pytest.approx(12.0)
    assert w["extrapolated_s"] == pytest.approx(2.0)


def test_no_samples_and_reversed_window():
    assert integrate_power([], [], 0.0, 1.0) is None
    with pytest.raises(ValueError):
        integrate_power([0.0, 1.0], [1.0, 1.0], 1.0, 0.0)


def test_counter_wraparound_unwraps_and_interpolates_edges():
    # counter range 100 J: readings 90, 95, (wrap) 2, 7 at t = 0, 1, 2, 3 -> 5 J/s throughout
    t = [0.0, 1.0, 2.0, 3.0]
    raw = [90.0, 95.0, 2.0, 7.0]
    assert unwrap_counter(raw, 100.0).tolist() == [90.0, 95.0, 102.0, 107.0]
    assert integrate_counter(t, raw, 0.0, 3.0, max_range_j=100.0)["energy_j"] == pytest.approx(17.0)
    w = integrate_counter(t, raw, 0.5, 2.5, max_range_j=100.0)
    assert w["energy_j"] == pytest.approx(12.0)
    assert w["avg_power_w"] == pytest.approx(6.0)
    assert counter_delta(95.0, 2.0, 100.0) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        unwrap_counter(raw)  # a decrease without a known range is a reset, not energy


def test_counter_to_power_for_plots():
    mid, watts = counter_to_power([0.0, 1.0, 3.0], [0.0, 2.0, 8.0])
    assert mid.tolist() == [0.5, 2.0]
    assert watts.tolist() == [2.0, 3.0]


def test_idle_subtraction_and_per_frame_figures():
    t = np.arange(0, 10.01, 0.1)
    w = integrate_power(t, np.full_like(t, 5.0), 2.25, 7.75)  # 27.5 J over 5.5 s
    e = per_frame(w, frames=110, idle_power_w=2.0)
    assert e["mj_per_frame_gross"] == pytest.approx(250.0)
    assert e["idle_energy_j"] == pytest.approx(11.0)
    assert e["net_energy_j"] == pytest.approx(16.5)
    assert e["net_power_w"] == pytest.approx(3.0)
    assert e["mj_per_frame_net"] == pytest.approx(150.0)
    assert e["frames_per_joule"] == pytest.approx(4.0)
    gross_only = per_frame(w, frames=110, idle_power_w=None)
    assert gross_only["mj_per_frame_net"] is None and gross_only["mj_per_frame_gross"] == pytest.approx(250.0)
