"""The load-balancer drill: two real ComfyUI servers with the pack behind Debian's HAProxy, with the
example config in deploy/haproxy (health check GET /gpu_guard/ready and the guard's agent check, both
every 500 ms; fall 1, rise 2).

- pausing one through its probe file (0.9 >= pause_at 0.85) keeps it in rotation (it can still hold)
  but its agent drops its weight to 1 %: new prompts prefer the other (at least 90 % of 50), and the
  few that reach it are held and run on resume;
- with only one server in rotation, paused: a prompt through HAProxy is held (200, in /queue), never
  a 503 from HAProxy;
- a full hold queue takes a server out of rotation within one check interval;
- draining one lets it finish its queue while the other takes the load;
- every prompt sent through HAProxy, also while it switches, finishes on exactly one server;
- without GPU_GUARD_TOKEN, POST /gpu_guard/pause through HAProxy is refused (forwardfor).
Figures are printed and kept in test-artifacts/scale_out/haproxy_drill.json.
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
from tests.harness.events import EventStream
from tests.harness.probe_file import ProbeFile
from tests.harness.server import free_port
from tests.scale_out.haproxy_server import HAProxy, haproxy_or_skip

pytestmark = pytest.mark.comfyui

CHECK_INTERVAL_S = 0.5
NAMES = ("comfyui1", "comfyui2")
FULL_WEIGHT, PAUSED_WEIGHT = 100, 1  # weight 100 in the config; the agent's "up 100%" / "up 1%"
PREFERENCE_PROMPTS = 50


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    haproxy_or_skip()
    base = tmp_path_factory.mktemp("haproxy_drill")
    drills, agents = {}, {}
    try:
        for name in NAMES:
            probe = ProbeFile(base / f"{name}-probe.json")
            probe.write_ratio(0.10)
            agents[name] = free_port()
            server = start_guarded_server(base / name, f"haproxy_{name}",
                                          guard_env(probe, GPU_GUARD_LB_AGENT_PORT=str(agents[name])))
            drills[name] = GuardDrill(server, probe)
        proxy = HAProxy(base, {name: f"127.0.0.1:{d.client.port}" for name, d in drills.items()},
                        check_interval=f"{int(CHECK_INTERVAL_S * 1000)}ms", agent_ports=agents).start()
        try:
            wait_until(lambda: proxy.server_states() == {name: "UP" for name in NAMES}, timeout=20,
                       what="both servers UP in HAProxy")
            wait_until(lambda: proxy.server_weights() == {name: FULL_WEIGHT for name in NAMES}, timeout=20,
                       what="both agents at full weight")
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


def test_haproxy_prefers_running_servers_drops_full_ones_and_loses_no_prompt(cluster):
    proxy, drills = cluster
    one, two = (drills[name] for name in NAMES)
    submit = Submitter(proxy)
    figures = {"check_interval_s": CHECK_INTERVAL_S}

    # 1. both in rotation at full weight: round robin spreads the prompts
    spread = [submit.post() for _ in range(10)]
    for drill in drills.values():
        drill.wait_idle()
    figures["both_up"] = {name: len(ids) for name, ids in where(drills, spread).items()}
    assert figures["both_up"] == {"comfyui1": 5, "comfyui2": 5}

    # 2. pause comfyui1 through its probe file while prompts keep coming: it stays in rotation (ready,
    #    it can hold), and its agent drops its weight
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
        wait_until(lambda: proxy.server_weights()["comfyui1"] == PAUSED_WEIGHT, timeout=5, interval=0.01,
                   what="the agent to lower comfyui1's weight")
        figures["probe_to_low_weight_s"] = round(time.monotonic() - paused_at, 3)
        time.sleep(0.5)
    finally:
        stop.set()
        poster.join()
    assert not errors, errors
    ready = one.client.get("/gpu_guard/ready")
    assert ready.status_code == 200 and ready.json()["reason"].startswith("paused: ")
    assert proxy.server_states()["comfyui1"] == "UP"

    # 3. while comfyui1 is paused, new prompts prefer comfyui2; those that reach comfyui1 are held
    one_had = len(where(drills, submit.sent)["comfyui1"])
    while_paused = [submit.post() for _ in range(PREFERENCE_PROMPTS)]
    figures["one_paused"] = {name: len(ids) for name, ids in where(drills, while_paused).items()}
    assert figures["one_paused"]["comfyui2"] >= 0.9 * PREFERENCE_PROMPTS, figures
    assert sum(figures["one_paused"].values()) == PREFERENCE_PROMPTS
    figures["held_on_comfyui1_while_paused"] = len(one.held_ids())

    # 4. resume comfyui1: its held prompts run, it gets its full weight back
    one.probe.write_ratio(0.10)
    wait_until(lambda: proxy.server_weights()["comfyui1"] == FULL_WEIGHT, timeout=10, what="comfyui1 full weight")
    one.wait_idle()
    assert len(where(drills, submit.sent)["comfyui1"]) >= one_had

    # 5. a full hold queue is the one pause that leaves rotation: comfyui1 cannot take another prompt
    one.set_config(max_held=1)
    one.client.post("/gpu_guard/pause", {"by": "drill"})
    held = one.client.post_prompt(tiny_workflow(40000))
    full_at = time.monotonic()
    wait_until(lambda: one.client.get("/gpu_guard/ready").status_code == 503, timeout=5, interval=0.005,
               what="comfyui1 not ready with its hold queue full")
    not_ready_at = time.monotonic()
    wait_until(lambda: proxy.server_states()["comfyui1"] == "DOWN", timeout=5, interval=0.01,
               what="HAProxy to take comfyui1 out")
    down_at = time.monotonic()
    figures["full_to_not_ready_s"] = round(not_ready_at - full_at, 3)
    figures["not_ready_to_out_of_rotation_s"] = round(down_at - not_ready_at, 3)
    # one check interval, plus the check's own round trip and this poll's 10 ms
    assert down_at - not_ready_at <= CHECK_INTERVAL_S + 0.15, figures
    while_full = [submit.post() for _ in range(10)]
    figures["one_full"] = {name: len(ids) for name, ids in where(drills, while_full).items()}
    assert figures["one_full"] == {"comfyui1": 0, "comfyui2": 10}
    one.set_config(max_held=0)
    assert one.client.post("/gpu_guard/resume", {"by": "drill"}).status_code == 200
    one.client.wait_history(held, timeout=30)
    wait_until(lambda: proxy.server_states()["comfyui1"] == "UP", timeout=10, what="comfyui1 back UP")

    # 6. drain comfyui2 with a backlog of its own: it finishes it while comfyui1 takes the load
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

    # 7. nothing lost: every prompt sent through HAProxy finished, on exactly one server
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


def test_the_only_server_in_rotation_paused_holds_prompts_instead_of_a_503(cluster):
    proxy, drills = cluster
    one = drills["comfyui1"]
    proxy.command("disable server comfyui_servers/comfyui2")  # one server behind HAProxy
    try:
        wait_until(lambda: proxy.server_states()["comfyui2"] == "MAINT", what="comfyui2 in maintenance")
        # the operator's pause: it runs nothing in the fast lane, so every prompt stays held
        assert one.client.post("/gpu_guard/pause", {"by": "drill"}).status_code == 200
        one.wait_state("paused")
        time.sleep(3 * CHECK_INTERVAL_S)  # several checks see the pause
        answers = [requests.post(proxy.url + "/prompt", json={"prompt": tiny_workflow(50000 + i)}, timeout=30)
                   for i in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:200] for a in answers]
        pending = {item[1] for item in one.client.queue()["queue_pending"]}
        held = [a.json()["prompt_id"] for a in answers]
        assert set(held) <= pending and set(held) <= set(one.held_ids()), (
            where(drills, held), proxy.server_states(), proxy.server_weights())
        assert proxy.server_states()["comfyui1"] == "UP"
        assert one.client.post("/gpu_guard/resume", {"by": "drill"}).status_code == 200
        for prompt_id in held:
            assert one.client.wait_history(prompt_id, timeout=30)["status"]["status_str"] == "success"
    finally:
        one.client.post("/gpu_guard/resume", {"by": "drill"})
        proxy.command("enable server comfyui_servers/comfyui2")
        wait_until(lambda: proxy.server_states()["comfyui2"] == "UP", timeout=10, what="comfyui2 back UP")


def test_without_a_token_the_guard_refuses_writes_that_come_through_haproxy(cluster):
    proxy, drills = cluster
    through = requests.post(proxy.url + "/gpu_guard/pause", json={"by": "anyone"}, timeout=10)
    assert through.status_code == 403, through.text
    assert "X-Forwarded-For" in through.json()["errors"][0]
    for drill in drills.values():
        assert drill.status()["operator_pause"] is None
    # the same request straight from loopback (no proxy header) is the operator's own
    one = drills["comfyui1"]
    assert one.client.post("/gpu_guard/pause", {"by": "drill"}).status_code == 200
    assert one.client.post("/gpu_guard/resume", {"by": "drill"}).status_code == 200


def test_a_cookie_pinned_tab_sees_its_prompt_run_on_its_paused_server(cluster):
    """Websocket affinity: the tab's socket and its prompts carry HAProxy's cookie, so both reach
    one server. A pause keeps that server in rotation, so the prompt is held where the socket is,
    and the tab gets its execution_success on resume (a readiness flip would send the prompt to the
    other server, whose progress this socket never sees)."""
    proxy, drills = cluster
    tab = requests.Session()
    assert tab.get(proxy.url + "/system_stats", timeout=10).status_code == 200
    pinned = tab.cookies.get("COMFYUI_SERVER")
    assert pinned in drills, tab.cookies
    server = drills[pinned]
    client_id = "tab-" + pinned
    events = EventStream(f"ws://127.0.0.1:{proxy.port}/ws", client_id, cookie=f"COMFYUI_SERVER={pinned}")
    try:
        assert server.client.post("/gpu_guard/pause", {"by": "drill"}).status_code == 200
        time.sleep(3 * CHECK_INTERVAL_S)  # several checks and agent answers see the pause
        answer = tab.post(proxy.url + "/prompt", json={"prompt": tiny_workflow(60000), "client_id": client_id},
                          timeout=30)
        assert answer.status_code == 200, answer.text
        prompt_id = answer.json()["prompt_id"]
        assert prompt_id in server.held_ids()  # held on the tab's own server, the paused one
        mark = events.mark()
        assert server.client.post("/gpu_guard/resume", {"by": "drill"}).status_code == 200
        assert events.wait_for_prompt_end(prompt_id, timeout=60, since=mark).type == "execution_success"
    finally:
        server.client.post("/gpu_guard/resume", {"by": "drill"})
        events.close()
