"""The neighbours registry wired to a guard and a PromptQueue (the stand-in with ComfyUI's locking):
a release request sets unload_models only while the worker is idle with nothing queued, and the
asker's view exists only while prompts are held by memory."""
import threading
import time

from gpu_guard.comfy.neighbour_glue import mine_of, pressure_of, release_when_idle
from tests.gpu_guard.hook_rig import item, wait_state


def test_a_release_request_is_honoured_only_by_an_idle_worker(rig):
    _guard, queue, hook, _probe, models = rig
    assert not release_when_idle(hook, queue, lambda: models)  # nothing loaded: nothing to release
    models.append(object())
    queue.currently_running[0] = item(1, "running")
    assert not release_when_idle(hook, queue, lambda: models) and queue.flags == {}
    queue.currently_running.clear()
    queue.put(item(2, "queued"))
    assert not release_when_idle(hook, queue, lambda: models) and queue.flags == {}
    assert queue.get(timeout=1.0)[0][1] == "queued"
    queue.currently_running.clear()

    results = []
    worker = threading.Thread(target=lambda: results.append(queue.get(timeout=30.0)))
    worker.start()  # idle, waiting in the guarded get as ComfyUI's worker does between prompts
    time.sleep(0.1)
    assert release_when_idle(hook, queue, lambda: models)
    worker.join(5)
    assert not worker.is_alive() and results == [None], "the idle worker must return to unload"
    assert queue.flags == {"unload_models": True}  # unload only: the execution cache stays


def test_the_asker_view_exists_only_while_prompts_are_held_by_memory(rig):
    guard, queue, _hook, probe, _models = rig
    assert pressure_of(guard) is None  # running
    probe.write_ratio(0.9)
    wait_state(guard, "paused")
    assert pressure_of(guard) is None  # paused, but nothing held
    queue.put(item(1, "held"))
    deadline = time.monotonic() + 5
    while not guard.status()["held"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pressure = pressure_of(guard)
    assert pressure.holding and abs(pressure.pressure_bytes / pressure.total_bytes - 0.9) < 1e-6
    assert pressure.resume_at == guard.config.resume_at
    guard.operator_pause("ops")
    assert pressure_of(guard) is None  # an operator's pause is not what a neighbour can relieve
    guard.operator_resume("ops")


def test_what_this_guard_publishes(rig):
    guard, queue, _hook, _probe, _models = rig
    mine = mine_of(guard, queue)
    assert not mine.busy and mine.pending == 0
    queue.put(item(1, "a"))
    assert queue.get(timeout=1.0) is not None
    assert mine_of(guard, queue).busy
