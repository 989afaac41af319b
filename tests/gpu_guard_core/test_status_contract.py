"""The status object and event payloads match the HTTP/websocket contract in docs/ARCHITECTURE.md."""
import json

from gpu_guard import QueueEntry


def test_status_has_the_contract_shape_and_is_json(make_guard, at_ratio):
    guard = make_guard()
    events = []
    guard.subscribe(lambda name, payload: events.append((name, payload)))
    at_ratio(guard, 0.9)
    guard.note_pending([QueueEntry("p1", 3, {}, "client-a")])
    status = json.loads(json.dumps(guard.status()))
    assert status["state"] == "paused"
    assert {"name", "ok", "error", "error_count", "consecutive_failures"} <= set(status["probe"])
    assert set(status["reading"]) == {"used_bytes", "total_bytes", "device_ratio", "pressure_bytes", "ratio",
                                      "reclaimable_bytes", "reclaimable", "running_prompt_bytes", "at"}
    assert set(status["reading"]["reclaimable"]) == {"torch_cache_bytes", "idle_models_bytes"}
    assert status["pending"] == 1
    assert status["hold_episode"]["held_count"] == 1
    assert status["unguarded"] == {"active": False, "since": None, "error": None, "count": 0}
    assert status["thresholds"] == {"pause_at": 0.85, "resume_at": 0.75}
    (held,) = status["held"]
    assert set(held) == {"prompt_id", "number", "position", "waited_s", "client_id", "estimated_bytes",
                         "need_source", "learned_bytes", "priority_class"}
    assert held["priority_class"] == "normal"
    (transition,) = status["transitions"]
    assert set(transition) == {"at", "from", "to", "ratio", "reason"}
    assert status["history"] == [[status["reading"]["at"], 0.9]]
    assert status["config"]["pause_at"] == 0.85 and status["config"]["pinned"] == []
    assert guard.wait_events()
    names = [name for name, _ in events]
    assert "gpu_guard.status" in names and "gpu_guard.held" in names
    status_event = next(p for n, p in events if n == "gpu_guard.status")
    assert status_event["state"] == "paused"
    held_event = next(p for n, p in events if n == "gpu_guard.held")
    assert set(held_event) == {"held"} and held_event["held"][0]["prompt_id"] == "p1"
    json.dumps(events)


def test_unsubscribe_stops_the_events(make_guard, at_ratio):
    guard = make_guard()
    events = []
    unsubscribe = guard.subscribe(lambda name, payload: events.append(name))
    unsubscribe()
    at_ratio(guard, 0.9)
    assert guard.wait_events()
    assert events == []


def test_ready_follows_the_state(make_guard, at_ratio):
    guard = make_guard()
    at_ratio(guard, 0.2)
    assert guard.ready() == (True, "running")
    at_ratio(guard, 0.9)
    # a pause that can still hold is ready: the prompts wait here instead of failing elsewhere
    assert guard.ready() == (True, "paused: ratio 90.0 % >= pause_at 85.0 %; new prompts are held")
    guard.update_config({"ready_strict": True})
    assert guard.ready() == (False, "paused: ratio 90.0 % >= pause_at 85.0 %; ready_strict")
    guard.update_config({"ready_strict": False})


def test_a_held_prompt_says_its_estimate_is_pending_until_it_is_made(make_guard, at_ratio):
    # the estimate is made by the poll thread outside the lock: in between, "unknown" would be a lie
    guard = make_guard()
    at_ratio(guard, 0.9)
    guard.note_pending([QueueEntry("p1", 3, {"1": {"class_type": "NoEstimator", "inputs": {}}})])
    (held,) = guard.status()["held"]
    assert (held["estimated_bytes"], held["need_source"]) == (None, "pending")
    assert guard.estimate_held() == 1
    (held,) = guard.status()["held"]
    assert (held["estimated_bytes"], held["need_source"]) == (None, "unknown")
