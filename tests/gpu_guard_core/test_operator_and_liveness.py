"""Operator pause/resume and drain in the core guard, and the worker's liveness verdict."""
import threading

from gpu_guard import QueueEntry
from gpu_guard.pending import as_pending
from gpu_guard.policy import LANE_NORMAL, RUN


def entry(pid, number):
    return QueueEntry(pid, number, {}, "client")


def test_operator_pause_holds_like_a_memory_pause_and_resume_releases(make_guard, at_ratio):
    guard = make_guard(max_held=2)
    at_ratio(guard, 0.2)
    guard.operator_pause("ops@example", "driver upgrade")
    assert guard.state == "paused"
    guard.note_pending([entry("a", 1), entry("b", 2)])
    result = guard.decide_pass(entry("a", 1), lambda: as_pending([entry("a", 1), entry("b", 2)]))
    assert result.run is None
    status = guard.status()
    assert [h["prompt_id"] for h in status["held"]] == ["a", "b"]
    assert status["operator_pause"]["by"] == "ops@example"
    assert status["operator_pause"]["reason"] == "driver upgrade"
    assert status["operator_pause"]["at"] > 0
    ok, reason = guard.ready()
    assert not ok and "paused by the operator (ops@example: driver upgrade)" in reason
    assert "hold queue full (2 held, max_held=2)" in reason
    refusal = guard.admission(2)
    assert not refusal.accept and "paused by the operator" in refusal.message
    assert guard.operator_resume("ops@example")["by"] == "ops@example"
    assert guard.state == "running" and guard.status()["operator_pause"] is None
    assert guard.decide_pass(entry("a", 1), lambda: as_pending([])).verdict.kind == RUN


def test_operator_pause_is_independent_of_the_memory_state(make_guard, at_ratio):
    guard = make_guard()
    guard.operator_pause("ops")
    at_ratio(guard, 0.2)  # memory says run
    assert guard.state == "paused"
    at_ratio(guard, 0.95)
    guard.operator_resume("ops")
    assert guard.state == "paused"  # the memory pause still applies
    assert guard.ready()[1].startswith("paused: ratio 95.0 %")
    at_ratio(guard, 0.2)
    assert guard.state == "running"


def test_operator_pause_runs_nothing_in_the_fast_lane(make_guard, at_ratio):
    from gpu_guard import estimators
    estimators.register("TinyNode", lambda inputs, prompt: 1)
    try:
        guard = make_guard()
        at_ratio(guard, 0.2)
        tiny = QueueEntry("t", 1, {"1": {"class_type": "TinyNode", "inputs": {}}}, None)
        guard.note_pending([tiny])  # the queue: the held set derives from it when the gate closes
        guard.operator_pause("ops")
        result = guard.decide_pass(tiny, lambda: as_pending([tiny]))
        assert result.run is None
        guard.operator_resume("ops")
        at_ratio(guard, 0.9)
        at_ratio(guard, 0.8)  # a memory pause under pause_at: the same prompt runs in the fast lane
        assert guard.estimate_held() == 1  # the poll thread's job: its cost is known once estimated
        result = guard.decide_pass(tiny, lambda: as_pending([tiny]))
        assert result.run == "t" and result.verdict.lane == "fast"
    finally:
        estimators.unregister("TinyNode")


def test_drain_refuses_new_prompts_and_counts_what_is_left(make_guard, at_ratio):
    guard = make_guard(retry_after_s=7)
    at_ratio(guard, 0.2)
    guard.note_pending([entry("a", 1), entry("b", 2), entry("c", 3)])
    guard.worker_waiting()
    guard.worker_took("x")  # one running
    record = guard.drain("SIGTERM", "pod stopping")
    assert record["left"] == 4 and record["by"] == "SIGTERM"
    refusal = guard.admission(0)
    assert not refusal.accept and refusal.retry_after_s == 7 and "draining" in refusal.message
    ok, reason = guard.ready()
    assert not ok and reason == "draining: 4 prompts left; new prompts are refused"
    # queued prompts still run while draining
    assert guard.decide_pass(entry("a", 1), lambda: as_pending([])).verdict.lane == LANE_NORMAL
    guard.note_pending([])
    guard.worker_waiting()
    assert guard.drain_left() == 0 and guard.status()["drain"]["left"] == 0
    assert guard.cancel_drain("ops")["by"] == "SIGTERM"
    assert guard.admission(0).accept and guard.ready()[0] and guard.drain_left() is None


def test_operator_events_and_metrics(make_guard, at_ratio):
    guard = make_guard()
    kinds = []
    guard.subscribe_events(lambda event: kinds.append((event["kind"], event.get("by"))))
    guard.operator_pause("alice")
    guard.operator_pause("bob")  # already paused: the first record stands
    assert guard.status()["operator_pause"]["by"] == "alice"
    guard.operator_resume("carol")
    guard.drain("dave")
    text = guard.metrics_text()[0].decode()
    assert "gpu_guard_draining 1.0" in text and "gpu_guard_operator_paused 0.0" in text
    assert guard.wait_events()
    assert kinds == [("operator_pause", "alice"), ("operator_resume", "carol"), ("drain", "dave")]


def test_liveness_follows_the_worker(make_guard, clock):
    guard = make_guard(live_max_run_s=30)
    ok, reason = guard.live()
    assert not ok and "has not asked the queue" in reason
    guard.worker_waiting()
    clock.advance(5000)  # waiting for ever is fine: nothing is queued
    assert guard.live()[0]
    guard.worker_took("p1")
    clock.advance(29)
    assert guard.live()[0]
    clock.advance(2)
    ok, reason = guard.live()
    assert not ok and "prompt p1 has run for 31 s" in reason and "live_max_run_s=30" in reason
    assert guard.status()["worker"]["alive"] is False
    guard.worker_waiting()  # it finished
    assert guard.live()[0]


def test_liveness_fails_when_the_worker_thread_died(make_guard):
    guard = make_guard()
    worker = threading.Thread(target=guard.worker_waiting, name="prompt_worker")
    worker.start()
    worker.join()
    ok, reason = guard.live()
    assert not ok and reason == "the worker thread 'prompt_worker' has died"
