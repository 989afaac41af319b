"""On a real ComfyUI: drain and the operator's pause/resume over HTTP, as the routes contract says."""
import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui


@pytest.fixture
def ops(drill):
    """The drill server; the test's drain and operator pause are ended afterwards."""
    yield drill
    drill.client.post("/gpu_guard/drain", {"cancel": True})
    drill.client.post("/gpu_guard/resume", {})


def ready(drill):
    response = drill.client.get("/gpu_guard/ready")
    return response.status_code, response.json()["reason"]


def test_drain_lets_ten_queued_prompts_finish_refuses_new_ones_and_is_not_ready_throughout(ops):
    client = ops.client
    assert client.post("/gpu_guard/pause", {"reason": "queue up"}).status_code == 200
    queued = [client.post_prompt(tiny_workflow(3000 + i)) for i in range(10)]
    wait_until(lambda: len(ops.held_ids()) == 10, what="10 held prompts")
    answer = client.post("/gpu_guard/drain", {"by": "drill", "reason": "scale in"})
    assert answer.status_code == 200
    assert answer.json()["draining"] and answer.json()["left"] == 10 and answer.json()["by"] == "drill"
    refused = client.post_prompt_raw(tiny_workflow(3999))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    assert "draining (by drill)" in refused.json()["error"]["message"]
    assert client.post("/gpu_guard/resume", {}).status_code == 200
    samples = []
    while client.queue()["queue_pending"] or client.queue()["queue_running"]:
        samples.append(ready(ops))
    samples.append(ready(ops))
    assert samples and all(code == 503 and reason.startswith("draining:") for code, reason in samples), samples
    for prompt_id in queued:
        assert client.history(prompt_id)["status"]["status_str"] == "success"
    drain = ops.status()["drain"]
    assert drain["left"] == 0 and drain["by"] == "drill" and drain["reason"] == "scale in"
    assert client.post_prompt_raw(tiny_workflow(3998)).status_code == 429  # drained, still refusing
    cancelled = client.post("/gpu_guard/drain", {"cancel": True}).json()
    assert cancelled == {"draining": False, "ended": {"by": "drill", "reason": "scale in",
                                                      "at": drain["at"]}}
    assert ready(ops)[0] == 200
    client.wait_history(client.post_prompt(tiny_workflow(3997)), timeout=30)


def test_operator_pause_holds_prompts_visibly_and_resume_releases_them_in_order(ops):
    client = ops.client
    answer = client.post("/api/gpu_guard/pause", {"by": "alice", "reason": "driver upgrade"})
    assert answer.status_code == 200 and answer.json()["by"] == "alice"
    status = ops.status()
    assert status["state"] == "paused" and status["operator_pause"]["reason"] == "driver upgrade"
    # still ready: it holds new prompts (docs/scale_out.md, readiness that sheds load without outages)
    assert ready(ops) == (200, "paused: paused by the operator (alice: driver upgrade); new prompts are held")
    queued = [client.post_prompt(tiny_workflow(3100 + i)) for i in range(3)]
    wait_until(lambda: ops.held_ids() == queued, what="the three prompts held in order")
    assert ops.pending_ids() == queued  # still queued and visible in ComfyUI's own queue
    ops.read_ratio(0.10)  # memory is fine: the operator's hold is independent of it
    assert ops.status()["state"] == "paused" and not client.queue()["queue_running"]
    resumed = client.post("/gpu_guard/resume", {"by": "alice"}).json()
    assert resumed["paused"] is False and resumed["ended"]["by"] == "alice" and resumed["state"] == "running"
    for prompt_id in queued:
        client.wait_history(prompt_id, timeout=30)
    assert ops.history_order(queued) == queued
    assert ops.status()["operator_pause"] is None


def test_operator_routes_follow_the_config_access_rules(ops):
    client = ops.client
    for path in ("/gpu_guard/pause", "/gpu_guard/drain", "/gpu_guard/resume"):
        relayed = client.post(path, {}, headers={"X-Forwarded-For": "203.0.113.7"})
        assert relayed.status_code == 403, path
        assert "came through a proxy (X-Forwarded-For)" in relayed.json()["errors"][0]
        form = client.http.post(client.url + path, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10)
        assert form.status_code == 415, path
        bad = client.post(path, {"reason": 5})
        assert (bad.status_code, bad.json()["errors"]) == (400, ["reason must be text of at most 200 characters"])
    status = ops.status()
    assert status["state"] == "running" and status["drain"] is None and status["operator_pause"] is None


def test_live_and_ready_need_no_token_and_show_no_config(ops):
    for path in ("/gpu_guard/live", "/api/gpu_guard/live", "/gpu_guard/ready"):
        response = ops.client.get(path, headers={"X-Forwarded-For": "203.0.113.7"})
        assert response.status_code == 200, path
        assert set(response.json()) in ({"live", "reason"}, {"ready", "reason"})


def test_the_operator_route_says_who_may_pause(ops):
    assert ops.client.get_json("/gpu_guard/operator") == {"can_change": True, "why_not": None}
    relayed = ops.client.get("/gpu_guard/operator", headers={"X-Forwarded-For": "203.0.113.7"}).json()
    assert relayed["can_change"] is False and "came through a proxy (X-Forwarded-For)" in relayed["why_not"]
