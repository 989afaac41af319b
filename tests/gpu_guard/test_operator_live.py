"""On a real ComfyUI: liveness sees a stuck worker, SIGTERM drains before the process ends."""
import signal
import time

import pytest

from tests.gpu_guard.blocking_node import blocking_workflow, install_blocking_node
from tests.gpu_guard.conftest import guard_env, start_guarded_server
from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow, wait_until
from tests.harness.probe_file import ProbeFile

pytestmark = pytest.mark.comfyui

LIVE_MAX_RUN_S = 2.0
TOKEN = "operator-token-for-the-live-drill"


@pytest.fixture(scope="module")
def block_drill(tmp_path_factory):
    """A server with the blocking test node, live_max_run_s 2 s and a 60 s drain on SIGTERM."""
    base = tmp_path_factory.mktemp("guard_live")
    probe = ProbeFile(base / "probe.json")
    probe.write_ratio(0.10)
    install_blocking_node(base / "server")
    env = guard_env(probe, GPU_GUARD_LIVE_MAX_RUN_S=str(LIVE_MAX_RUN_S), GPU_GUARD_DRAIN_ON_SIGTERM_S="60",
                    GPU_GUARD_TOKEN=TOKEN)
    server = start_guarded_server(base / "server", "gpu_guard_live", env)
    drill = GuardDrill(server, probe)
    drill.base = base
    yield drill
    (base / "release").touch()
    server.stop()


def live(drill):
    response = drill.client.get("/gpu_guard/live")
    return response.status_code, response.json()


def test_liveness_fails_while_a_node_blocks_the_worker_and_readiness_still_follows_the_guard(block_drill):
    drill = block_drill
    release = drill.base / "release-live"
    status, body = live(drill)
    assert status == 200 and body["live"] and "waiting" in body["reason"]
    prompt_id = drill.client.post_prompt(blocking_workflow(release, seed=1))
    wait_until(lambda: drill.client.queue()["queue_running"], what="the blocking prompt to run")
    assert live(drill)[0] == 200  # running, not yet past live_max_run_s
    status, body = wait_until(lambda: (lambda answer: answer if answer[0] == 503 else None)(live(drill)),
                              timeout=LIVE_MAX_RUN_S + 5, what="liveness to fail")
    assert not body["live"] and f"prompt {prompt_id} has run for" in body["reason"]
    assert "live_max_run_s=2" in body["reason"]
    assert set(body) == {"live", "reason"}  # no config in the answer
    # the HTTP server answers and readiness reflects the guard, not the worker
    assert drill.client.get("/gpu_guard/ready").status_code == 200
    drill.pause()
    assert drill.client.get("/gpu_guard/ready").json()["reason"].startswith("paused")
    assert live(drill)[0] == 503
    drill.resume()
    release.touch()
    drill.client.wait_history(prompt_id, timeout=30)
    wait_until(lambda: live(drill)[0] == 200, what="liveness to recover once the node returned")


def test_with_a_token_set_the_operator_routes_need_it_and_live_and_ready_do_not(block_drill):
    client = block_drill.client
    for path in ("/gpu_guard/pause", "/gpu_guard/drain", "/gpu_guard/resume"):
        refused = client.post(path, {})
        assert refused.status_code == 403 and "needs the token" in refused.json()["errors"][0], path
        wrong = client.post(path, {}, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 403, path
    assert client.get_json("/gpu_guard/operator")["can_change"] is False
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/gpu_guard/operator", headers=auth).json()["can_change"] is True
    assert client.post("/gpu_guard/pause", {"reason": "token drill"}, headers=auth).json()["by"] == "127.0.0.1 (token)"
    assert client.get("/gpu_guard/live").status_code == 200  # no token needed
    assert client.get("/gpu_guard/ready").json()["reason"].startswith("paused: paused by the operator")
    assert client.post("/gpu_guard/resume", {}, headers=auth).json()["state"] == "running"
    assert client.get("/gpu_guard/ready").status_code == 200


def test_sigterm_drains_the_queue_then_the_process_ends(block_drill):
    """Runs last in this module: the server ends."""
    drill = block_drill
    server = drill.client
    release = drill.base / "release-sigterm"
    server.post_prompt(blocking_workflow(release, seed=2))
    wait_until(lambda: server.queue()["queue_running"], what="the blocking prompt to run")
    [server.post_prompt(tiny_workflow(500 + i)) for i in range(3)]
    executed_before = server.log_text().count("Prompt executed in")
    server.process.send_signal(signal.SIGTERM)
    # (a 503 Response is falsy: wait for its body)
    ready = wait_until(lambda: (lambda r: r.json() if r.status_code == 503 else None)(server.get("/gpu_guard/ready")),
                       what="readiness 503 after SIGTERM")
    assert ready["reason"] == "draining: 4 prompts left; new prompts are refused"
    status = drill.status()
    assert status["drain"]["by"] == "SIGTERM" and status["drain"]["left"] == 4
    refused = server.post_prompt_raw(tiny_workflow(900))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "draining" in refused.json()["error"]["message"]
    time.sleep(0.5)
    assert server.process.poll() is None, "the process ended before its queue was drained"
    release.touch()
    code = server.process.wait(30)
    assert code == -signal.SIGTERM
    log = server.log_text()
    assert log.count("Prompt executed in") == executed_before + 4, "not every queued prompt ran before the end"
    assert "VRAM guard: drained; ending the process" in log
