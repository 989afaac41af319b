"""Boundaries and flapping of the hysteresis monitor, driven through the guard and the file probe."""
import logging

from gpu_guard.monitor import Monitor
from gpu_guard.probes import Reading



def test_boundaries_085_pauses_075_stays_paused_0749_resumes(make_guard, probe_file, at_ratio):
    guard = make_guard()
    assert at_ratio(guard, 0.5) == "running"
    assert at_ratio(guard, 0.8499) == "running"
    assert at_ratio(guard, 0.85) == "paused"
    assert at_ratio(guard, 0.75) == "paused"
    assert at_ratio(guard, 0.749) == "running"
    assert [(t["from"], t["to"]) for t in guard.status()["transitions"]] == [("running", "paused"),
                                                                             ("paused", "running")]


def test_oscillation_inside_the_band_never_transitions(make_guard, probe_file, at_ratio):
    guard = make_guard()
    for ratio in [0.76, 0.84] * 20:
        assert at_ratio(guard, ratio) == "running"
    at_ratio(guard, 0.9)
    for ratio in [0.76, 0.84] * 20:
        assert at_ratio(guard, ratio) == "paused"
    assert len(guard.status()["transitions"]) == 1


def test_reclaimable_memory_does_not_keep_the_guard_paused(make_guard, probe_file, at_ratio):
    guard = make_guard()
    at_ratio(guard, 0.9)
    # Still 90 % used on the device, but 20 % of it is this process's unused torch cache.
    probe_file.write(used_bytes=90, total_bytes=100, reclaimable_bytes=20)
    guard.poll_once()
    assert guard.state == "running"


def test_transition_is_logged_with_time_and_reading(make_guard, probe_file, caplog, at_ratio):
    guard = make_guard()
    with caplog.at_level(logging.WARNING, logger="gpu_guard"):
        at_ratio(guard, 0.9)
    line = next(r.getMessage() for r in caplog.records if "running -> paused" in r.getMessage())
    assert "ratio 90.0 % >= pause_at 85.0 %" in line and "used 96636764160 of 107374182400 bytes" in line
    assert "T" in line.split(" at ")[1][:20]  # ISO time stamp
    transition = guard.status()["transitions"][0]
    assert transition["ratio"] == 0.9 and transition["at"] == guard.reading.at


def test_thresholds_changed_at_runtime_apply_at_the_next_poll(make_guard, probe_file, at_ratio):
    guard = make_guard()
    assert at_ratio(guard, 0.7) == "running"
    assert guard.update_config({"pause_at": 0.65, "resume_at": 0.5})[1] == []
    guard.poll_once()
    assert guard.state == "paused"


def test_history_keeps_the_last_ten_minutes(make_guard, probe_file, clock, at_ratio):
    guard = make_guard()
    for _ in range(700):
        at_ratio(guard, 0.3)
        clock.advance(1.0)
    history = guard.status()["history"]
    assert history[-1][0] - history[0][0] <= 600
    assert len(history) >= 590
    assert history[-1][1] == 0.3


def test_fast_polling_still_covers_ten_minutes_and_keeps_peaks():
    monitor = Monitor()
    for i in range(12_000):  # ten minutes at 20 readings a second
        used = 50 if i != 6000 else 80
        monitor.observe(Reading(used, 100, 0, 1000.0 + i * 0.05))
    history = monitor.history()
    assert len(history) <= 1202
    assert history[-1][0] - history[0][0] >= 590
    assert max(ratio for _, ratio in history) == 0.8  # a one-reading spike is not averaged away


def test_history_ends_with_the_latest_reading_even_after_a_higher_one():
    monitor = Monitor()
    monitor.observe(Reading(90, 100, 0, 1000.0))
    monitor.observe(Reading(42, 100, 0, 1000.1))  # the same half second
    assert monitor.history() == [[1000.0, 0.9], [1000.1, 0.42]]
    monitor.observe(Reading(50, 100, 0, 1000.6))
    assert monitor.history() == [[1000.0, 0.9], [1000.6, 0.5]]
