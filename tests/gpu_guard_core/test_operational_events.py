"""Operational events (Guard.subscribe_events): one per transition, hold episode, 429, hold-timeout
failure, reclaim, sensor failure, config change, fast-lane run and unguarded dispatch."""
import json

import pytest

from gpu_guard import QueueEntry, estimators

UNKNOWN = {"1": {"class_type": "NodeWithoutEstimator", "inputs": {}}}
FREE = {"1": {"class_type": "TestFreeNode", "inputs": {}}}


@pytest.fixture
def events(make_guard):
    estimators.register("TestFreeNode", lambda inputs, prompt: 0)
    seen = []

    def make(**settings):
        guard = make_guard(**settings)
        guard.subscribe_events(seen.append)
        return guard

    yield make, seen
    estimators.unregister("TestFreeNode")


def kinds(seen):
    return [e["kind"] for e in seen]


def test_a_hold_episode_from_pause_to_resume(events, at_ratio, clock):
    make, seen = events
    guard = make()
    at_ratio(guard, 0.9)
    guard.note_pending([QueueEntry("a", 1, UNKNOWN), QueueEntry("b", 2, UNKNOWN)])
    clock.advance(4)
    guard.note_pending([QueueEntry("b", 2, UNKNOWN)])  # a deleted after 4 s
    clock.advance(3)
    at_ratio(guard, 0.5)
    assert guard.wait_events()
    assert kinds(seen) == ["pause", "hold_start", "resume", "hold_end"]
    pause, start, resume, end = seen
    assert pause["from"] == "running" and pause["to"] == "paused" and pause["reading"]["ratio"] == 0.9
    assert "pause_at" in pause["reason"] and isinstance(pause["at"], float)
    assert start["held"] == 2
    assert resume["reading"]["ratio"] == 0.5
    assert end["held_count"] == 2 and end["longest_wait_s"] == 7.0 and end["duration_s"] == 7.0
    json.dumps(seen)


def test_429_timeout_reclaim_fast_lane_and_config(events, at_ratio, clock):
    make, seen = events
    guard = make(max_held=1, hold_timeout_s=10, hold_timeout_action="fail")
    at_ratio(guard, 0.9)
    guard.note_pending([QueueEntry("a", 1, UNKNOWN)])
    assert not guard.admission(1).accept
    assert guard.should_request_free()
    clock.advance(11)
    assert guard.decide(QueueEntry("a", 1, UNKNOWN)).kind == "fail"
    at_ratio(guard, 0.8)  # paused still (hysteresis), room under the mark
    assert guard.decide(QueueEntry("f", 2, FREE)).lane == "fast"
    guard.update_config({"max_held": 5})
    assert guard.wait_events()
    by_kind = {e["kind"]: e for e in seen}
    assert by_kind["rejected"]["held"] == 1 and by_kind["rejected"]["max_held"] == 1
    assert by_kind["rejected"]["retry_after_s"] == 10
    assert by_kind["reclaim"]["action"] == "unload_models"
    assert by_kind["hold_timeout"]["prompt_id"] == "a" and "waited 11 s" in by_kind["hold_timeout"]["reason"]
    assert by_kind["fast_lane"]["prompt_id"] == "f" and by_kind["fast_lane"]["estimated_bytes"] == 0
    assert by_kind["config_change"]["changed"] == {"max_held": 5}


def test_sensor_failure_and_recovery(events, at_ratio, probe_file):
    make, seen = events
    guard = make(sensor_failures=2)
    at_ratio(guard, 0.2)
    probe_file.remove()
    guard.poll_once()
    guard.poll_once()
    guard.poll_once()
    at_ratio(guard, 0.2)
    assert guard.wait_events()
    assert kinds(seen) == ["sensor_failure", "sensor_recovered"]
    assert seen[0]["consecutive"] == 2 and "does not exist" in seen[0]["error"]


def test_unguarded_dispatch(events):
    make, seen = events
    guard = make()
    guard.note_unguarded("RuntimeError: bug")
    assert guard.wait_events()
    assert kinds(seen) == ["unguarded"] and seen[0]["error"] == "RuntimeError: bug"

