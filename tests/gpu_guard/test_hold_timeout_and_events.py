"""Hold timeout with action fail ends the prompt in /history as an error; websocket events."""
import re
import uuid

import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until
from tests.harness.events import EventStream

pytestmark = pytest.mark.comfyui


def test_hold_timeout_fail_puts_an_error_with_the_wait_into_history(drill):
    drill.set_config(hold_timeout_s=0.5, hold_timeout_action="fail")
    drill.pause()
    client_id = uuid.uuid4().hex
    with EventStream(drill.client.ws_url, client_id) as events:
        pid = drill.client.post_prompt(tiny_workflow(5000), client_id=client_id)
        entry = drill.client.wait_history(pid, timeout=30)
        error_event = events.wait_for("execution_error", lambda d: d.get("prompt_id") == pid, timeout=10)

    status = entry["status"]
    assert status["status_str"] == "error"
    assert status["completed"] is False
    kinds = [event for event, _data in status["messages"]]
    assert kinds == ["execution_start", "execution_error"]
    error = status["messages"][1][1]
    assert error["prompt_id"] == pid
    assert re.search(r"waited \d+ s for GPU memory pressure above 85 %", error["exception_message"]), error
    assert error["exception_type"] == "gpu_guard.HoldTimeout"
    assert entry["outputs"] == {}
    assert error_event.data["exception_message"] == error["exception_message"]
    # the prompt in history is ComfyUI's tuple without the sensitive part, like a prompt that ran
    assert entry["prompt"][1] == pid and len(entry["prompt"]) == 5
    assert drill.pending_ids() == []
    assert drill.status()["adapter"]["failed_prompts"] >= 1


def test_hold_timeout_keep_keeps_holding(drill):
    drill.set_config(hold_timeout_s=0.3, hold_timeout_action="keep")
    drill.pause()
    pid = drill.client.post_prompt(tiny_workflow(5100))
    wait_until(lambda: any(h["waited_s"] > 0.6 for h in drill.status()["held"]), what="a long hold")
    assert drill.pending_ids() == [pid]
    assert drill.client.history(pid) is None
    drill.resume()
    assert drill.client.wait_history(pid, timeout=30)["status"]["status_str"] == "success"


def test_websocket_status_on_every_transition_and_held_on_every_change(drill):
    with EventStream(drill.client.ws_url, uuid.uuid4().hex) as events:
        start = events.mark()
        drill.pause()
        paused = events.wait_for("gpu_guard.status", lambda d: d["state"] == "paused", since=start, timeout=10)
        assert paused.data["transitions"][-1]["to"] == "paused"

        first = drill.client.post_prompt(tiny_workflow(5200))
        events.wait_for("gpu_guard.held", lambda d: [h["prompt_id"] for h in d["held"]] == [first], timeout=10)
        second = drill.client.post_prompt(tiny_workflow(5201), front=True)
        events.wait_for("gpu_guard.held", lambda d: [h["prompt_id"] for h in d["held"]] == [second, first],
                        timeout=10)
        drill.client.post("/queue", {"delete": [second]})
        events.wait_for("gpu_guard.held", lambda d: [h["prompt_id"] for h in d["held"]] == [first], timeout=10)

        mark = events.mark()
        drill.resume()
        events.wait_for("gpu_guard.status", lambda d: d["state"] == "running", since=mark, timeout=10)
        events.wait_for("gpu_guard.held", lambda d: d["held"] == [], since=mark, timeout=10)
        assert drill.client.wait_history(first, timeout=30)["status"]["status_str"] == "success"

        states = [e.data["state"] for e in events.events[start:] if e.type == "gpu_guard.status"]
        changes = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        assert changes == ["paused", "running"]
