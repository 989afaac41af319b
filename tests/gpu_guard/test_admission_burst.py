"""/prompt admission while paused with a bounded hold queue: 429 with Retry-After, race-free."""

import pytest

from tests.gpu_guard.guard_drill import post_burst, tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui


def test_burst_of_50_with_max_held_10_holds_exactly_10_and_answers_40_with_429(drill):
    drill.set_config(max_held=10, retry_after_s=7)
    drill.pause()
    answers = post_burst(drill, 50)  # /prompt and /api/prompt: both spellings are guarded

    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert (len(accepted), len(refused)) == (10, 40), sorted(a.status_code for a in answers)
    for answer in refused:
        assert answer.headers["Retry-After"] == "7"
        body = answer.json()
        assert body["node_errors"] == {}
        assert body["error"]["type"] == "gpu_guard_busy"
        assert body["error"]["extra_info"] == {"retry_after_s": 7}
        assert "max_held=10" in body["error"]["message"]
    accepted_ids = sorted(a.json()["prompt_id"] for a in accepted)
    assert sorted(drill.pending_ids()) == accepted_ids
    wait_until(lambda: sorted(drill.held_ids()) == accepted_ids, what="10 held prompts in the status")
    assert drill.status()["adapter"]["rejected_prompts"] >= 40

    # once memory frees up, all ten run and nothing else does
    drill.resume()
    for pid in accepted_ids:
        assert drill.client.wait_history(pid, timeout=60)["status"]["status_str"] == "success"


def test_no_429_while_running_even_above_max_held(drill):
    drill.set_config(max_held=1)
    for i in range(3):
        response = drill.client.post_prompt_raw(tiny_workflow(2000 + i))
        assert response.status_code == 200, response.text


def test_unbounded_hold_queue_never_answers_429(drill):
    drill.set_config(max_held=0)
    drill.pause()
    ids = [drill.client.post_prompt(tiny_workflow(3000 + i)) for i in range(12)]
    assert sorted(drill.pending_ids()) == sorted(ids)


def test_invalid_prompt_while_paused_gets_comfyuis_own_400_and_frees_its_place(drill):
    drill.set_config(max_held=1)
    drill.pause()
    bad = drill.client.post_prompt_raw({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] != "gpu_guard_busy"
    # the refused submission did not keep its reservation: one place is still free
    assert drill.client.post_prompt_raw(tiny_workflow(4000)).status_code == 200
    assert drill.client.post_prompt_raw(tiny_workflow(4001)).status_code == 429
