"""Faults inside the queue hook never strand a popped prompt or kill ComfyUI's worker thread (which has
no handler in 0.3.75): ComfyUI's own get runs the prompt and "unguarded" stays visible."""
from tests.gpu_guard.hook_rig import item


def test_a_failing_before_get_falls_back_to_comfyuis_get(rig):
    guard, queue, hook, _probe, _models = rig

    def broken_restore():
        raise RuntimeError("journal restore failed")

    hook.before_get = broken_restore
    queue.put(item(1, "a"))
    popped, _number = queue.get(timeout=1.0)
    assert popped[1] == "a" and hook.stats()["hook_errors"] == 1
    assert guard.status()["unguarded"]["active"]


def test_a_failing_note_guarded_still_hands_out_the_popped_prompt(rig, monkeypatch):
    guard, queue, hook, _probe, _models = rig

    def broken():
        raise RuntimeError("bug while reporting")

    monkeypatch.setattr(guard, "note_guarded", broken)
    queue.put(item(1, "a"))
    queue.put(item(2, "b"))
    popped, _number = queue.get(timeout=1.0)
    assert popped[1] == "a", "the prompt popped by the guard reaches the worker"
    assert [i[1] for i in queue.queue] == ["b"] and list(queue.currently_running.values())[0][1] == "a"
    assert hook.stats()["hook_errors"] == 1


def test_a_failing_prompt_listener_does_not_stop_the_worker(rig):
    _guard, queue, hook, _probe, _models = rig

    def broken(*args):
        raise RuntimeError("listener bug")

    hook.on_prompt_start = hook.on_prompt_end = broken
    queue.put(item(1, "a"))
    queue.put(item(2, "b"))
    assert queue.get(timeout=1.0)[0][1] == "a"
    assert queue.get(timeout=1.0)[0][1] == "b"
    assert hook.stats()["hook_errors"] == 3


def test_idle_unload_counts_from_the_end_of_the_prompt(rig):
    """A prompt that runs longer than idle_unload_s is not unloaded the moment it ends."""
    import time

    guard, queue, _hook, _probe, models = rig
    models.append(object())  # ComfyUI has a model loaded
    assert guard.update_config({"idle_unload_s": 1.0})[1] == []
    queue.put(item(1, "long"))
    (_item, number) = queue.get(timeout=1.0)
    time.sleep(1.2)  # the prompt runs longer than idle_unload_s
    queue.task_done(number, {}, queue.ExecutionStatus("success", True, []))
    assert queue.get(timeout=0.2) is None
    assert "unload_models" not in queue.flags, "unloaded right after the prompt ended"
    deadline = time.monotonic() + 5
    while "unload_models" not in queue.flags and time.monotonic() < deadline:
        queue.get(timeout=0.25)
    assert queue.flags.get("unload_models"), "unloaded idle_unload_s after the prompt ended"
