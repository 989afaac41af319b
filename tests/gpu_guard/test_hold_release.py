"""Prompts submitted while paused wait inside ComfyUI's own queue and run in its order on resume."""
import time

import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui


def submit(drill, color, **fields):
    return drill.client.post_prompt(tiny_workflow(color), **fields)


def test_held_prompts_stay_pending_then_run_in_priority_order_front_included(drill):
    drill.pause()
    a = submit(drill, 1)
    b = submit(drill, 2)
    c = submit(drill, 3, front=True)  # ComfyUI gives it a negative number: it goes first
    d = submit(drill, 4)
    e = submit(drill, 5, front=True)
    expected = [e, c, a, b, d]

    time.sleep(0.5)  # ten polls: nothing may start while paused
    queue = drill.client.queue()
    assert queue["queue_running"] == []
    assert drill.pending_ids() == expected
    assert wait_until(lambda: drill.held_ids() == expected and drill.held_ids(), what="the held set") == expected
    held = drill.status()["held"]
    assert sorted((h["position"], h["prompt_id"]) for h in held) == list(enumerate(expected, start=1))
    assert all(h["waited_s"] >= 0 for h in held)
    for pid in expected:
        assert drill.client.history(pid) is None

    drill.resume()
    for pid in expected:
        assert drill.client.wait_history(pid, timeout=60)["status"]["status_str"] == "success"
    assert drill.history_order(expected) == expected
    assert drill.status()["held"] == []


def test_delete_and_clear_of_held_prompts(drill):
    drill.pause()
    keep = submit(drill, 11)
    gone = submit(drill, 12)
    assert drill.pending_ids() == [keep, gone]

    assert drill.client.post("/queue", {"delete": [gone]}).status_code == 200
    assert drill.pending_ids() == [keep]
    wait_until(lambda: drill.held_ids() == [keep], what="the deleted prompt to leave the held set")

    extra = [submit(drill, 13), submit(drill, 14)]
    assert drill.pending_ids() == [keep, *extra]
    assert drill.client.post("/api/queue", {"clear": True}).status_code == 200
    assert drill.pending_ids() == []
    wait_until(lambda: drill.status()["held"] == [], what="an empty held set after clear")

    drill.resume()
    time.sleep(0.5)
    for pid in (keep, gone, *extra):
        assert drill.client.history(pid) is None, "a deleted prompt must never run"


def test_interrupt_while_held_keeps_the_server_and_the_held_prompts_working(drill):
    drill.pause()
    held = [submit(drill, 21), submit(drill, 22)]
    drill.client.interrupt()  # nothing runs: ComfyUI sets its interrupt flag only
    drill.client.interrupt(prompt_id=held[0])  # a held prompt is not running: ComfyUI skips it
    assert drill.pending_ids() == held
    assert drill.status()["state"] == "paused"

    drill.resume()
    for pid in held:
        # ComfyUI clears the interrupt flag when a prompt starts, so held prompts run normally
        assert drill.client.wait_history(pid, timeout=60)["status"]["status_str"] == "success"


def slow_workflow(steps=6, side=1536):
    """A prompt that runs for a while on the CPU: repeated wide blurs of a large image."""
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": side, "height": side, "batch_size": 1, "color": 7}}}
    for step in range(steps):
        graph[str(step + 2)] = {"class_type": "ImageBlur",
                                "inputs": {"image": [str(step + 1), 0], "blur_radius": 31, "sigma": 10.0}}
    graph["99"] = {"class_type": "PreviewImage", "inputs": {"images": [str(steps + 1), 0]}}
    return graph


def test_interrupting_the_running_prompt_leaves_the_held_ones_held(drill):
    running = drill.client.post_prompt(slow_workflow())
    wait_until(lambda: drill.client.queue()["queue_running"], what="the slow prompt to start")
    drill.pause()
    held = submit(drill, 41)
    drill.client.interrupt()
    entry = drill.client.wait_history(running, timeout=60)
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [event for event, _data in entry["status"]["messages"]]
    time.sleep(0.3)
    assert drill.pending_ids() == [held], "the interrupt must not release or drop held prompts"
    assert drill.held_ids() == [held]

    drill.resume()
    assert drill.client.wait_history(held, timeout=60)["status"]["status_str"] == "success"


def test_prompts_run_straight_away_while_running(drill):
    pid = submit(drill, 31)
    assert drill.client.wait_history(pid, timeout=30)["status"]["status_str"] == "success"
