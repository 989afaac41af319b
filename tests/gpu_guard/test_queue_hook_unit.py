"""The queue hook against a stand-in for ComfyUI's PromptQueue (same locking and heap contract as
execution.PromptQueue in 0.3.75), with a real Guard reading a probe file: races and fallbacks that a
live server cannot be made to show on demand."""
import heapq
import threading
import time

from gpu_guard.comfy import queue_ops
from tests.gpu_guard.hook_rig import item, next_prompt, wait_state, wait_until_read


def test_a_put_while_the_worker_waits_is_not_popped_when_paused_meanwhile(rig):
    guard, queue, _hook, probe, _models = rig
    results = []
    worker = threading.Thread(target=lambda: results.append(queue.get(timeout=2.0)))
    worker.start()  # waits for a prompt with the guard running
    time.sleep(0.1)
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(1, "a"))  # arrives while the worker is waiting inside get
    worker.join(5)
    assert results == [None], "a prompt put during the wait must be held, not popped unchecked"
    assert [i[1] for i in queue.queue] == ["a"]

    probe.write_ratio(0.1)
    wait_state(guard, "running")
    popped, _number = queue.get(timeout=1.0)
    assert popped[1] == "a"


def test_holding_returns_none_within_the_workers_timeout(rig):
    guard, queue, _hook, probe, _models = rig
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(1, "a"))
    started = time.monotonic()
    assert queue.get(timeout=0.02) is None
    assert time.monotonic() - started < 0.5
    assert queue.get(timeout=0.0) is None


def test_an_idle_worker_wakes_for_the_free_flags_as_with_comfyuis_get(rig):
    _guard, queue, _hook, _probe, _models = rig
    results = []
    worker = threading.Thread(target=lambda: results.append((queue.get(timeout=30.0), time.monotonic())))
    worker.start()  # idle: nothing queued, the worker waits as ComfyUI's does after a prompt
    time.sleep(0.1)
    flagged = time.monotonic()
    queue.set_flag("unload_models", True)  # what POST /free does
    worker.join(5)
    assert not worker.is_alive(), "the idle worker must return to handle the flags, not wait 30 s"
    (got, returned), = results
    assert got is None
    assert returned - flagged < 1.0


def test_free_flags_set_while_the_worker_was_away_are_handled_at_once(rig):
    # POST /free lands while ComfyUI's worker writes the history and collects garbage after a prompt:
    # its notify finds nobody waiting. ComfyUI's own get would then sleep its full timeout (1000 s
    # after a garbage collection) with the flags unread.
    _guard, queue, _hook, _probe, _models = rig
    queue.set_flag("free_memory", True)
    queue.set_flag("unload_models", True)
    results = []
    worker = threading.Thread(target=lambda: results.append(queue.get(timeout=30.0)))
    started = time.monotonic()
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the worker must return to handle the flags already set, not wait 30 s"
    assert results == [None] and time.monotonic() - started < 1.0


def test_priority_order_with_front_queued_prompts(rig):
    _guard, queue, _hook, _probe, _models = rig
    for entry in (item(3, "c"), item(1, "a"), item(-4, "front"), item(2, "b")):
        queue.put(entry)
    order = [queue.get(timeout=1.0)[0][1] for _ in range(4)]
    assert order == ["front", "a", "b", "c"]


def test_an_exception_inside_the_guard_falls_back_to_comfyuis_get(rig, monkeypatch):
    guard, queue, hook, probe, _models = rig
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(1, "a"))

    def broken(first, pending):
        raise RuntimeError("bug in the guard")

    monkeypatch.setattr(guard, "decide_pass", broken)
    popped, _number = queue.get(timeout=1.0)
    assert popped[1] == "a", "the worker gets the prompt as ComfyUI would have given it"
    assert hook.stats()["hook_errors"] == 1
    unguarded = guard.status()["unguarded"]
    assert unguarded["active"] and unguarded["count"] == 1 and "bug in the guard" in unguarded["error"]
    assert "UNGUARDED" in guard.ready()[1]
    assert b"gpu_guard_unguarded 1.0" in guard.metrics_text()[0]
    monkeypatch.undo()
    assert queue.get(timeout=0.05) is None  # a guarded get again (nothing queued) ...
    assert guard.status()["unguarded"]["active"], "... but a scrape must still see that prompts ran unguarded"
    assert guard.clear_unguarded("ops")["count"] == 1  # until an operator clears it
    assert not guard.status()["unguarded"]["active"]
    assert b"gpu_guard_unguarded 0.0" in guard.metrics_text()[0]


def test_a_prompt_further_back_is_popped_without_breaking_the_heap(rig):
    _guard, queue, hook, _probe, _models = rig
    for n in range(8):
        queue.put(item(n, f"p{n}"))
    target = next(i for i in queue.queue if i[1] == "p5")
    with queue.mutex:
        popped, _number = queue_ops.pop_item(queue, target, hook.original_get)
    assert popped is target
    rest = [heapq.heappop(queue.queue)[1] for _ in range(len(queue.queue))]
    assert rest == ["p0", "p1", "p2", "p3", "p4", "p6", "p7"]


def test_reclaim_asks_once_per_hold_episode_and_measures_again(rig, monkeypatch):
    guard, queue, hook, probe, _models = rig
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(1, "a"))
    polls = []
    monkeypatch.setattr(guard, "request_poll", lambda: polls.append(time.monotonic()))

    assert queue.get(timeout=0.2) is None
    # unload_models only: free_memory would also drop ComfyUI's execution cache
    assert queue.flags == {"unload_models": True}
    queue.flags.clear()  # what ComfyUI's worker does with them
    assert queue.get(timeout=0.1) is None
    assert polls, "after the worker handled the flags the guard measures again"
    for _ in range(3):
        assert queue.get(timeout=0.05) is None
    assert queue.flags == {}, "once per hold episode"
    assert hook.stats()["free_requests"] == 1


def test_no_reclaim_while_a_prompt_runs(rig):
    guard, queue, hook, probe, _models = rig
    queue.put(item(1, "running"))
    assert queue.get(timeout=0.5)[0][1] == "running"  # the worker is busy with it
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(2, "a"))
    assert queue.get(timeout=0.1) is None
    assert queue.flags == {} and hook.stats()["free_requests"] == 0


def test_a_failure_that_cannot_be_recorded_runs_the_prompt_instead(rig, monkeypatch):
    guard, queue, hook, probe, _models = rig
    guard.update_config({"hold_timeout_s": 0.05, "hold_timeout_action": "fail"})
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    queue.put(item(1, "a"))
    assert queue.get(timeout=0.02) is None  # starts the hold
    time.sleep(0.1)

    def broken_task_done(*args, **kwargs):
        raise RuntimeError("history is broken")

    monkeypatch.setattr(queue, "task_done", broken_task_done)
    popped, number = queue.get(timeout=0.5)
    assert popped[1] == "a" and number in queue.currently_running, "the prompt must not vanish"
    assert hook.stats()["hook_errors"] == 1


def test_fast_lane_runs_a_prompt_further_back_only_when_its_estimate_fits(rig):
    from gpu_guard import estimators

    guard, queue, hook, probe, _models = rig
    estimators.register("TestSmallNode", lambda inputs, prompt: 100_000_000)  # 0.1 GB
    try:
        probe.write_ratio(0.90)
        wait_state(guard, "paused")
        probe.write_ratio(0.80)  # still paused (hysteresis): 0.5 GB under the pause mark
        wait_until_read(guard, 0.80)
        unknown = (1, "unknown-cost", {"1": {"class_type": "EmptyImage", "inputs": {}}}, {}, ["1"], {})
        small = (2, "small", {"1": {"class_type": "TestSmallNode", "inputs": {}}}, {}, ["1"], {})
        queue.put(unknown)
        queue.put(small)
        popped, _number = next_prompt(queue)  # once the poll thread has estimated the held prompts
        assert popped[1] == "small", "the fast lane may pass the unknown-cost prompt at the front"
        assert [i[1] for i in queue.queue] == ["unknown-cost"]
        assert hook.stats()["fast_lane_runs"] == 1
        assert queue.get(timeout=0.1) is None, "a prompt of unknown cost is never fast-laned"
    finally:
        estimators.unregister("TestSmallNode")
