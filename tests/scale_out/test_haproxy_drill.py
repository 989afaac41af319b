"""The load-balancer drill: two real ComfyUI servers with the pack behind Debian's HAProxy, with the
example config in deploy/haproxy (health check GET /gpu_guard/ready every 500 ms, fall 1, rise 2).

- pausing one through its probe file (0.9 >= pause_at 0.85) takes it out of rotation within one
  check interval, and new prompts go to the other;
- draining one lets it finish its queue while the other takes the load;
- every prompt sent through HAProxy, also while it switches, finishes on exactly one server.
Figures (pause -> out of rotation, prompts per server) are printed and kept in
test-artifacts/scale_out/haproxy_drill.json.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.gpu_guard.conftest import guard_env, start_guarded_server
from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow, wait_until
from tests.harness.artifacts import artifact_dir
from tests.harness.probe_file import ProbeFile
from tests.scale_out.haproxy_server import HAProxy, haproxy_or_skip

pytestmark = pytest.mark.comfyui

CHECK_INTERVAL_S = 0.5
NAMES = ("comfyui1", "comfyui2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    haproxy_or_skip()
    base = tmp_path_factory.mktemp("haproxy_drill")
    drills = {}
    try:
        for name in NAMES:
            probe = ProbeFile(base / f"{name}-probe.json")
            probe.write_ratio(0.10)
            server = start_guarded_server(base / name, f"haproxy_{name}", guard_env(probe))
            drills[name] = GuardDrill(server, probe)
        proxy = HAProxy(base, {name: f"127.0.0.1:{d.client.port}" for name, d in drills.items()},
                        check_interval=f"{int(CHECK_INTERVAL_S * 1000)}ms").start()
        try:
            wait_until(lambda: proxy.server_states() == {name: "UP" for name in NAMES}, timeout=20,
                       what="both servers UP in HAProxy")
            yield proxy, drills
        finally:
            proxy.stop()
    finally:
        for drill in drills.values():
            drill.client.stop()


class Submitter:
    """Posts prompts through HAProxy (no cookie: round robin) and remembers every answer."""

    def __init__(self, proxy):
        self.url = proxy.url + "/prompt"
        self.sent, self.refused = [], []
        self._color = 20000
        self._lock = threading.Lock()

    def post(self) -> str:
        with self._lock:
            self._color += 1
            color = self._color
        response = requests.post(self.url, json={"prompt": tiny_workflow(color)}, timeout=60)
        if response.status_code != 200:
            self.refused.append((response.status_code, response.text[:300]))
            raise AssertionError(f"HAProxy answered {response.status_code}: {response.text[:300]}")
        prompt_id = response.json()["prompt_id"]
        with self._lock:
            self.sent.append(prompt_id)
        return prompt_id


def where(drills, prompt_ids) -> dict:
    """{server name: [prompt ids it has in its history or queue]}"""
    found = {}
    for name, drill in drills.items():
        queue = drill.client.queue()
        known = set(drill.client.get_json("/history")) | {item[1] for item in
                                                          queue["queue_pending"] + queue["queue_running"]}
        found[name] = [pid for pid in prompt_ids if pid in known]
    return found


def test_haproxy_follows_the_guard_readiness_and_loses_no_prompt(cluster):
    proxy, drills = cluster
    one, two = (drills[name] for name in NAMES)
    submit = Submitter(proxy)
    figures = {"check_interval_s": CHECK_INTERVAL_S}

    # 1. both in rotation: round robin spreads the prompts
    spread = [submit.post() for _ in range(10)]
    for drill in drills.values():
        drill.wait_idle()
    figures["both_up"] = {name: len(ids) for name, ids in where(drills, spread).items()}
    assert figures["both_up"] == {"comfyui1": 5, "comfyui2": 5}

    # 2. pause comfyui1 through its probe file while prompts keep coming
    stop = threading.Event()
    errors = []

    def keep_posting():
        while not stop.is_set():
            try:
                submit.post()
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            time.sleep(0.05)

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        time.sleep(0.3)
        paused_at = time.monotonic()
        one.probe.write_ratio(0.90)
        wait_until(lambda: one.client.get("/gpu_guard/ready").status_code == 503, timeout=5, interval=0.005,
                   what="comfyui1 not ready")
        not_ready_at = time.monotonic()
        wait_until(lambda: proxy.server_states()["comfyui1"] == "DOWN", timeout=5, interval=0.01,
                   what="HAProxy to take comfyui1 out")
        down_at = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        poster.join()
    assert not errors, errors
    figures["probe_to_not_ready_s"] = round(not_ready_at - paused_at, 3)
    figures["not_ready_to_out_of_rotation_s"] = round(down_at - not_ready_at, 3)
    figures["probe_to_out_of_rotation_s"] = round(down_at - paused_at, 3)
    # one check interval, plus the check's own round trip and this poll's 10 ms
    assert down_at - not_ready_at <= CHECK_INTERVAL_S + 0.15, figures

    # 3. while comfyui1 is out, every new prompt goes to comfyui2
    one_had = len(where(drills, submit.sent)["comfyui1"])
    while_out = [submit.post() for _ in range(10)]
    figures["one_out"] = {name: len(ids) for name, ids in where(drills, while_out).items()}
    assert figures["one_out"] == {"comfyui1": 0, "comfyui2": 10}
    held_on_one = one.held_ids()  # prompts that reached comfyui1 before the check saw it: held, not lost
    figures["held_on_comfyui1_during_the_switch"] = len(held_on_one)

    # 4. resume comfyui1: its held prompts run, it comes back into rotation
    one.probe.write_ratio(0.10)
    wait_until(lambda: proxy.server_states()["comfyui1"] == "UP", timeout=10, what="comfyui1 back UP")
    one.wait_idle()
    assert len(where(drills, submit.sent)["comfyui1"]) == one_had

    # 5. drain comfyui2 with a backlog of its own: it finishes it while comfyui1 takes the load
    assert two.client.post("/gpu_guard/pause", {"by": "drill"}).status_code == 200
    backlog = [two.client.post_prompt(tiny_workflow(30000 + i)) for i in range(5)]
    drain = two.client.post("/gpu_guard/drain", {"by": "drill", "reason": "scale in"}).json()
    assert drain["left"] == 5
    wait_until(lambda: proxy.server_states()["comfyui2"] == "DOWN", timeout=5, what="HAProxy to take comfyui2 out")
    assert two.client.post("/gpu_guard/resume", {"by": "drill"}).status_code == 200
    while_draining = [submit.post() for _ in range(10)]
    two.wait_idle()
    figures["one_draining"] = {name: len(ids) for name, ids in where(drills, while_draining).items()}
    assert figures["one_draining"] == {"comfyui1": 10, "comfyui2": 0}
    assert two.status()["drain"]["left"] == 0
    for prompt_id in backlog:
        assert two.client.history(prompt_id)["status"]["status_str"] == "success"
    assert two.client.post("/gpu_guard/drain", {"cancel": True}).status_code == 200
    wait_until(lambda: proxy.server_states()["comfyui2"] == "UP", timeout=10, what="comfyui2 back UP")

    # 6. nothing lost: every prompt sent through HAProxy finished, on exactly one server
    one.wait_idle()
    placed = where(drills, submit.sent)
    assert sorted(placed["comfyui1"] + placed["comfyui2"]) == sorted(submit.sent)
    assert not set(placed["comfyui1"]) & set(placed["comfyui2"])
    for name, drill in drills.items():
        for prompt_id in placed[name]:
            assert drill.client.history(prompt_id)["status"]["status_str"] == "success", (name, prompt_id)
    figures["prompts_per_server"] = {name: len(ids) for name, ids in placed.items()}
    figures["prompts_sent"] = len(submit.sent)
    figures["refused"] = len(submit.refused)
    (artifact_dir("scale_out") / "haproxy_drill.json").write_text(json.dumps(figures, indent=2))
    print("\nHAProxy drill:", json.dumps(figures, indent=2))
