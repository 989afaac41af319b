"""Sensor faults: each kind is counted and shown, and the fail-open / fail-closed policy is followed."""
import logging

import pytest

from gpu_guard.guard import Guard
from gpu_guard.config import GuardConfig

FAULTS = {
    "missing": lambda f: f.remove(),
    "not json": lambda f: f.write_raw("{oops"),
    "used > total": lambda f: f.write(used_bytes=200, total_bytes=100),
    "negative": lambda f: f.write(used_bytes=-5, total_bytes=100),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_fail_open_after_n_polls_admits_with_a_loud_warning(make_guard, probe_file, fault, caplog, at_ratio):
    guard = make_guard(sensor_failures=3, sensor_policy="open")
    at_ratio(guard, 0.95)
    assert guard.state == "paused"
    FAULTS[fault](probe_file)
    with caplog.at_level(logging.WARNING, logger="gpu_guard"):
        guard.poll_once()
        guard.poll_once()
        assert guard.state == "paused"  # two failures: the last state stands
        guard.poll_once()
    assert guard.state == "running"
    assert any("ADMITTING EVERY PROMPT UNGUARDED" in r.getMessage() for r in caplog.records)
    probe = guard.status()["probe"]
    assert probe["ok"] is False and probe["error_count"] == 3 and probe["consecutive_failures"] == 3
    assert probe["error"] and probe_file.path in probe["error"]
    assert guard.ready()[0] is True and "sensor failing" in guard.ready()[1]
    assert guard.status()["transitions"][-1]["reason"].endswith("failing open")


@pytest.mark.parametrize("fault", FAULTS)
def test_fail_closed_after_n_polls_holds(make_guard, probe_file, fault, at_ratio):
    guard = make_guard(sensor_failures=2, sensor_policy="closed")
    at_ratio(guard, 0.2)
    FAULTS[fault](probe_file)
    guard.poll_once()
    assert guard.state == "running"
    guard.poll_once()
    assert guard.state == "paused"
    ok, reason = guard.ready()
    assert not ok and "failing closed" in reason
    assert guard.metrics.sensor_errors._value.get() == 2


def test_an_exception_inside_the_probe_is_a_sensor_failure(clock):
    class Exploding:
        name = "exploding"

        def read(self):
            raise RuntimeError("driver went away")

    guard = Guard(GuardConfig(sensor_failures=1, sensor_policy="closed"), Exploding(),
                  monotonic=clock.monotonic, wall=clock.wall)
    guard.poll_once()
    assert guard.state == "paused"
    assert guard.status()["probe"]["error"] == "RuntimeError: driver went away"


def test_recovery_applies_the_hysteresis_again(make_guard, probe_file, at_ratio):
    guard = make_guard(sensor_failures=1, sensor_policy="closed")
    probe_file.remove()
    guard.poll_once()
    assert guard.state == "paused"
    assert at_ratio(guard, 0.8) == "paused"  # inside the band: stays paused
    assert guard.status()["probe"]["ok"] is True
    assert guard.status()["probe"]["consecutive_failures"] == 0
    assert at_ratio(guard, 0.5) == "running"
    assert guard.status()["probe"]["error_count"] == 1


def test_switching_policy_while_failing_applies_at_once(make_guard, probe_file):
    guard = make_guard(sensor_failures=1, sensor_policy="open")
    probe_file.remove()
    guard.poll_once()
    assert guard.state == "running"
    assert guard.update_config({"sensor_policy": "closed"})[1] == []
    assert guard.state == "paused"


def test_sensor_failing_raises_one_alert_event(make_guard, probe_file):
    guard = make_guard(sensor_failures=2)
    events = []
    guard.subscribe(lambda name, payload: events.append((name, payload)))
    probe_file.remove()
    for _ in range(5):
        guard.poll_once()
    assert guard.wait_events()
    alerts = [p for n, p in events if n == "gpu_guard.alert"]
    assert len(alerts) == 1 and alerts[0]["kind"] == "sensor_failing"
    assert "does not exist" in alerts[0]["message"]
