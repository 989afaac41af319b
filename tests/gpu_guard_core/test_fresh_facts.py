"""Decisions on the facts at the moment of decision: a reading taken in get, readings applied in the
order they were taken, the reclaim re-armed whenever the gate opens, the unguarded flag kept visible."""
import threading

import pytest

from gpu_guard import QueueEntry
from gpu_guard.guard import UNGUARDED_HEALTHY_S
from gpu_guard.pending import as_pending

ENTRY = QueueEntry("p", 1, {})


def test_the_decision_takes_its_own_reading(make_guard, at_ratio, probe_file):
    """The poll thread last read 0.95 (paused); the memory is back at 0.10 when the worker decides."""
    guard = make_guard()
    assert at_ratio(guard, 0.95) == "paused"
    probe_file.write(ratio=0.10)  # no poll in between
    result = guard.decide_pass(ENTRY, lambda: as_pending([ENTRY]))
    assert result.run == "p" and guard.state == "running"
    assert guard.reading.ratio == pytest.approx(0.10)


def test_an_older_reading_never_overwrites_a_newer_one(make_guard, probe_file):
    guard = make_guard()
    probe_file.write(ratio=0.95)
    older = guard._readings.take()
    probe_file.write(ratio=0.10)
    guard.poll_once()  # taken later, applied first
    with guard._lock:
        guard._observe(*older)  # the slow one arrives last
    assert guard.state == "running" and guard.reading.ratio == pytest.approx(0.10)


def test_the_reclaim_is_asked_again_after_an_operator_pause(make_guard, at_ratio):
    guard = make_guard()
    at_ratio(guard, 0.2)
    guard.operator_pause("ops")
    guard.note_pending([ENTRY])
    assert guard.should_request_free()
    guard.operator_resume("ops")
    at_ratio(guard, 0.95)  # a memory pause: a new hold episode
    guard.note_pending([ENTRY])
    assert guard.should_request_free(), "the new episode may ask ComfyUI to release its idle models"


def test_unguarded_stays_visible_until_healthy_for_a_while(make_guard, clock):
    guard = make_guard()
    guard.note_unguarded("RuntimeError: bug")
    clock.advance(UNGUARDED_HEALTHY_S - 1)
    guard.note_guarded()
    assert guard.status()["unguarded"]["active"] and "UNGUARDED" in guard.ready()[1]
    assert b"gpu_guard_unguarded 1.0" in guard.metrics_text()[0]
    clock.advance(1)
    guard.note_guarded()
    assert not guard.status()["unguarded"]["active"]
    assert b"gpu_guard_unguarded 0.0" in guard.metrics_text()[0]


def test_status_events_arrive_in_the_order_of_the_changes(make_guard, at_ratio):
    """A slow listener on the first change must not let the second change's status overtake it."""
    guard = make_guard()
    at_ratio(guard, 0.2)
    first_entered, release, states = threading.Event(), threading.Event(), []

    def listener(name, payload):
        if name != "gpu_guard.status":
            return
        if not first_entered.is_set():
            first_entered.set()
            release.wait(5)
        states.append(payload["state"])

    guard.subscribe(listener)
    pauser = threading.Thread(target=guard.operator_pause, args=("ops",))
    pauser.start()
    assert first_entered.wait(5)
    guard.operator_resume("ops")  # a newer change while the first status is still being delivered
    release.set()
    pauser.join(5)
    pause = threading.Event()
    for _ in range(100):
        if len(states) >= 2:
            break
        pause.wait(0.05)
    assert states[-1] == "running", f"the last status delivered must be the current one, got {states}"
    assert states == ["paused", "running"]


def test_estimators_never_run_under_the_guards_lock(make_guard, at_ratio):
    from gpu_guard import estimators
    calls = []
    guard = make_guard()

    def estimator(inputs, prompt):
        calls.append(guard._lock._is_owned())
        return 1

    estimators.register("LockProbeNode", estimator)
    try:
        at_ratio(guard, 0.95)
        entry = QueueEntry("e", 1, {"1": {"class_type": "LockProbeNode", "inputs": {}}})
        guard.note_pending([entry])
        guard.decide_pass(entry, lambda: as_pending([entry]))
        guard.status()
        assert not any(calls), "an estimator ran while the guard's lock was held"
        guard.estimate_held()  # the poll thread's job
        guard.status()
        assert calls and not any(calls), "an estimator ran while the guard's lock was held"
        assert guard.status()["held"][0]["estimated_bytes"] == 1
    finally:
        estimators.unregister("LockProbeNode")
