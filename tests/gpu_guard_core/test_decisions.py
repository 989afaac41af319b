"""Per-prompt decisions: hold while paused, held set tracking, release on resume, hold timeout, admission."""
import pytest

from gpu_guard import FAIL, HOLD, LANE_NORMAL, RUN, QueueEntry

UNKNOWN_GRAPH = {"1": {"class_type": "SomeSamplerWithoutEstimate", "inputs": {}}}


def entry(n, prompt_id=None, graph=UNKNOWN_GRAPH):
    return QueueEntry(prompt_id or f"p{n}", n, graph, client_id=f"c{n}")


@pytest.fixture
def paused(make_guard, at_ratio):
    def make(**settings):
        guard = make_guard(**settings)
        assert at_ratio(guard, 0.9) == "paused"
        return guard

    return make


def test_running_guard_runs_everything(make_guard, at_ratio):
    guard = make_guard()
    at_ratio(guard, 0.5)
    verdict = guard.decide(entry(1))
    assert (verdict.kind, verdict.lane) == (RUN, LANE_NORMAL)
    assert guard.status()["held"] == []


def test_paused_guard_holds_and_tracks_positions_and_waits(paused, clock):
    guard = paused()
    guard.note_pending([entry(1), entry(2)])
    clock.advance(5)
    guard.note_pending([entry(-1, "front"), entry(1), entry(2)])  # a front-of-queue prompt arrives
    clock.advance(2)
    assert guard.decide(entry(-1, "front")).kind == HOLD
    held = guard.status()["held"]
    assert [(h["prompt_id"], h["position"], h["waited_s"]) for h in held] == [
        ("front", 1, 2.0), ("p1", 2, 7.0), ("p2", 3, 7.0)]
    assert held[1]["client_id"] == "c1" and held[1]["number"] == 1 and held[1]["estimated_bytes"] is None


def test_held_event_only_when_the_set_or_order_changes(paused, clock):
    guard = paused()
    events = []
    guard.subscribe(lambda name, payload: events.append((name, payload)))
    guard.note_pending([entry(1), entry(2)])
    clock.advance(0.3)  # past the rate limit of the held event
    guard.note_pending([entry(1), entry(2)])
    clock.advance(0.3)
    guard.note_pending([entry(2)])  # p1 deleted from the queue
    assert guard.wait_events()
    held_events = [p for n, p in events if n == "gpu_guard.held"]
    assert [[h["prompt_id"] for h in p["held"]] for p in held_events] == [["p1", "p2"], ["p2"]]


def test_held_events_are_coalesced_and_the_last_state_wins(paused, clock):
    guard = paused()
    events = []
    guard.subscribe(lambda name, payload: events.append((name, payload)))
    for n in range(1, 51):  # a burst of puts within one rate-limit interval
        guard.note_pending([entry(i) for i in range(1, n + 1)])
        clock.advance(0.001)
    assert guard.wait_events()
    held_events = [p for n, p in events if n == "gpu_guard.held"]
    assert len(held_events) == 1 and len(held_events[0]["held"]) == 1  # the first put went out at once
    assert [h["prompt_id"] for h in guard.status()["held"]][-1] == "p50"  # the held set itself is current
    guard.flush_events()
    assert guard.wait_events()
    assert len([p for n, p in events if n == "gpu_guard.held"]) == 1  # not due yet
    clock.advance(0.25)
    guard.flush_events()
    assert guard.wait_events()
    held_events = [p for n, p in events if n == "gpu_guard.held"]
    assert len(held_events) == 2 and len(held_events[1]["held"]) == 50


def test_resume_releases_the_held_set_and_observes_the_wait(paused, at_ratio, clock):
    guard = paused()
    guard.note_pending([entry(1), entry(2)])
    clock.advance(12)
    events = []
    guard.subscribe(lambda name, payload: events.append(name))
    assert at_ratio(guard, 0.5) == "running"
    assert guard.status()["held"] == []
    assert guard.wait_events()
    assert "gpu_guard.held" in events and "gpu_guard.status" in events
    assert guard.decide(entry(1)).kind == RUN
    histogram = guard.metrics.hold_wait
    assert histogram._sum.get() == pytest.approx(24.0)


def test_decide_without_note_pending_still_tracks_the_prompt(paused):
    guard = paused()
    assert guard.decide(entry(7)).kind == HOLD
    assert [h["prompt_id"] for h in guard.status()["held"]] == ["p7"]


def test_hold_timeout_fail_ends_the_prompt_with_a_message(paused, clock):
    guard = paused(hold_timeout_s=30, hold_timeout_action="fail")
    guard.note_pending([entry(1)])
    clock.advance(29.9)
    assert guard.decide(entry(1)).kind == HOLD
    clock.advance(0.2)
    verdict = guard.decide(entry(1))
    assert verdict.kind == FAIL
    assert verdict.message.startswith("waited 30 s for GPU memory pressure above 85 %")
    assert guard.status()["held"] == []
    assert guard.metrics.failed._value.get() == 1


def test_hold_timeout_keep_holds_and_alerts_once(paused, clock):
    guard = paused(hold_timeout_s=30, hold_timeout_action="keep", alert_held_s=0)
    alerts = []
    guard.subscribe(lambda name, payload: name == "gpu_guard.alert" and alerts.append(payload))
    guard.note_pending([entry(1)])
    clock.advance(31)
    for _ in range(3):
        guard.note_pending([entry(1)])
        assert guard.decide(entry(1)).kind == HOLD
        guard.poll_once()  # the poll thread watches the held set's age
    assert guard.wait_events()
    assert len(alerts) == 1 and alerts[0]["kind"] == "held_too_long" and alerts[0]["prompt_id"] == "p1"


def test_alert_when_held_longer_than_the_threshold(paused, clock, caplog):
    guard = paused(alert_held_s=60)
    guard.note_pending([entry(1)])
    clock.advance(59)
    guard.poll_once()
    assert "held for" not in caplog.text
    clock.advance(2)
    guard.poll_once()  # the poll thread checks too, not only the worker
    assert "prompt p1 held for 61 s" in caplog.text


def test_admission_rejects_only_when_paused_and_full(make_guard, at_ratio):
    guard = make_guard(max_held=10, retry_after_s=7)
    at_ratio(guard, 0.5)
    assert guard.admission(50).accept
    at_ratio(guard, 0.9)
    assert guard.admission(9).accept
    answer = guard.admission(10)
    assert not answer.accept and answer.retry_after_s == 7
    assert "max_held=10" in answer.message and "ratio 90.0 % >= pause_at 85.0 %" in answer.message
    body = answer.error_body()
    assert body["error"]["type"] == "gpu_guard_busy" and body["node_errors"] == {}
    assert body["error"]["extra_info"] == {"retry_after_s": 7}
    assert guard.metrics.rejected._value.get() == 1


def test_unbounded_hold_queue_never_rejects(paused):
    assert paused(max_held=0).admission(10_000).accept


def test_free_is_requested_once_per_hold_episode(paused, at_ratio):
    guard = paused()
    assert not guard.should_request_free()  # nothing held yet
    guard.note_pending([entry(1)])
    assert guard.should_request_free()
    assert not guard.should_request_free()
    at_ratio(guard, 0.5)
    at_ratio(guard, 0.9)
    guard.note_pending([entry(2)])
    assert guard.should_request_free()  # a new episode
    assert guard.metrics.reclaims._value.get() == 2


def test_reclaim_is_asked_again_after_a_prompt_ran_in_the_episode(paused, at_ratio, clock):
    from gpu_guard import estimators

    estimators.register("TestZeroCost", lambda inputs, prompt: 0)
    try:
        guard = paused()
        guard.note_pending([entry(1)])
        assert guard.should_request_free()
        clock.advance(30)
        assert not guard.should_request_free()  # nothing ran since: no second reclaim
        at_ratio(guard, 0.8)  # still paused (hysteresis), room for a zero-cost prompt
        cheap = entry(2, graph={"1": {"class_type": "TestZeroCost", "inputs": {}}})
        assert guard.decide(cheap).lane == "fast"
        assert guard.should_request_free()  # a prompt ran during the episode
        at_ratio(guard, 0.8)
        assert guard.decide(entry(3, graph=cheap.prompt)).lane == "fast"
        clock.advance(4)
        assert not guard.should_request_free()  # rate limit: within 5 s of the last reclaim
        clock.advance(1)
        assert guard.should_request_free()
        assert not guard.should_request_free()
    finally:
        estimators.unregister("TestZeroCost")


def test_a_pass_is_decided_against_one_reading_of_the_gate(paused, probe_file):
    from gpu_guard.pending import EntryList

    guard = paused()
    queued = [entry(1, "front"), entry(2, "behind")]

    def pending_while_the_memory_drops():
        # the view is taken inside the pass, after the gate was read: resume right then
        probe_file.write(ratio=0.1)
        guard.poll_once()
        return EntryList(queued)

    result = guard.decide_pass(queued[0], pending_while_the_memory_drops)
    assert guard.state == "running"
    assert result.run is None, "a pass that began closed runs nothing in the normal lane"
    assert guard.decide_pass(queued[0], lambda: EntryList(queued)).run == "front"


def test_decide_keeps_the_prompts_it_held_queued(make_guard, at_ratio):
    """decide(entry) queues entry in the guard's noted queue: a second decide does not drop the first."""
    guard = make_guard()
    at_ratio(guard, 0.95)
    assert guard.decide(QueueEntry("a", 1, {})).kind == HOLD
    assert guard.decide(QueueEntry("b", 2, {})).kind == HOLD
    status = guard.status()
    assert sorted(h["prompt_id"] for h in status["held"]) == ["a", "b"] and status["pending"] == 2
    assert status["hold_episode"]["held_count"] == 2  # a left and came back would count 3


def test_decide_is_refused_with_a_queue_attached(make_guard):
    import threading
    from gpu_guard.pending import EntryList
    guard = make_guard()
    guard.attach_queue(threading.RLock(), lambda: EntryList([]))
    with pytest.raises(TypeError, match="decide_pass"):
        guard.decide(QueueEntry("a", 1, {}))
