"""Held and idle: the guard asks ComfyUI to release its idle models (unload_models only, so ComfyUI's
execution cache stays), once per hold episode and again after a prompt ran in it, then measures again."""
import pytest

from tests.gpu_guard.guard_drill import ddcolor_workflow, tiny_workflow, wait_until

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

UNLOAD_LINE = "Unloading PatchableDDColor"  # ComfyUI's DEBUG line when it unloads our model
ASKED_LINE = "asked ComfyUI to release its idle models"


def gray_ddcolor_workflow(checkpoint_name):
    gray = {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0x808080}}
    return ddcolor_workflow(checkpoint_name, gray)


def free_requests(drill):
    return drill.status()["adapter"]["free_requests"]


def test_release_is_asked_once_per_hold_episode_and_the_guard_resumes_when_memory_drops(drill):
    server = drill.client
    if not server.checkpoint_name:
        pytest.skip("no synthetic DDColor checkpoint could be made, so no model can be loaded")
    loaded = server.post_prompt(gray_ddcolor_workflow(server.checkpoint_name))
    assert server.wait_history(loaded, timeout=120)["status"]["status_str"] == "success"
    asked_before = free_requests(drill)
    log_from = len(server.log_text())

    drill.pause()
    held = server.post_prompt(tiny_workflow(7000))
    wait_until(lambda: free_requests(drill) == asked_before + 1, what="the guard to ask ComfyUI to free memory")
    server.wait_for_log(UNLOAD_LINE, timeout=20, since=log_from)
    assert server.log_text()[log_from:].count(ASKED_LINE) == 1
    drill.read_ratio(0.95)  # a few more polls and hook rounds in the same episode ...
    drill.read_ratio(0.90)
    assert free_requests(drill) == asked_before + 1, "... ask only once per hold episode while nothing ran"
    assert server.history(held) is None

    status = drill.read_ratio(0.50)  # the probe shows the memory freed: the guard resumes
    assert status["state"] == "running"
    assert server.wait_history(held, timeout=30)["status"]["status_str"] == "success"

    # a new episode, with nothing loaded any more: the guard still asks (the neighbour may need it)
    drill.pause()
    again = server.post_prompt(tiny_workflow(7001))
    wait_until(lambda: free_requests(drill) == asked_before + 2, what="the reclaim of the new episode")
    assert server.history(again) is None
