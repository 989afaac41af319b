"""Held prompts' client ids are capabilities (a client id opens that client's websocket): the status
and the websocket events name one only to its own client and to operators."""
import time

import requests

from gpu_guard import Guard, QueueEntry
from gpu_guard.comfy.events import forward_guard_events
from tests.gpu_guard.route_server import RouteServer
from tests.harness.probe_file import ProbeFile

TOKEN = "privacy-test-token"


def paused_guard(tmp_path):
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.95)
    guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": probe.spec, "GPU_GUARD_TOKEN": TOKEN})
    guard.poll_once()
    guard.note_pending([QueueEntry("a", 1, {}, "client-a"), QueueEntry("b", 2, {}, "client-b")])
    return guard


def held_ids(body):
    return {h["prompt_id"]: h["client_id"] for h in body["held"]}


def test_the_status_names_only_the_askers_own_client_id(tmp_path):
    guard = paused_guard(tmp_path)
    with RouteServer(guard) as server:
        anonymous = requests.get(server.url + "/gpu_guard/status", timeout=10).json()
        own = requests.get(server.url + "/gpu_guard/status?client_id=client-a", timeout=10).json()
        operator = requests.get(server.url + "/gpu_guard/status", timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert held_ids(anonymous) == {"a": None, "b": None}
    assert held_ids(own) == {"a": "client-a", "b": None}
    assert held_ids(operator) == {"a": "client-a", "b": "client-b"}


def test_websocket_events_name_each_client_only_to_itself(tmp_path):
    guard = paused_guard(tmp_path)
    sent = []
    server = type("Server", (), {"send_sync": lambda self, event, data, sid=None: sent.append((event, data, sid))})()
    forward_guard_events(guard, server)
    guard.note_pending([QueueEntry("a", 1, {}, "client-a"), QueueEntry("b", 2, {}, "client-b"),
                        QueueEntry("c", 3, {}, "client-a")])
    guard.update_config({"max_held": 5})  # a status event too
    deadline = time.monotonic() + 5
    while not any(sid == "client-b" for _, _, sid in sent) and time.monotonic() < deadline:
        time.sleep(0.02)  # delivered by the event thread
    for event, data, sid in sent:
        if "held" not in data:
            continue
        named = {h["client_id"] for h in data["held"]} - {None}
        assert named <= ({sid} if sid else set()), f"{event} to {sid} names {named}"
    assert any(sid == "client-b" for _, _, sid in sent) and any(sid is None for _, _, sid in sent)


class RecordingWatch:
    """Stands in for the NeighbourWatch (its views are tested in tests/gpu_guard_core/test_neighbours.py):
    records which view the route asked for."""

    def __init__(self):
        self.asked = []

    def status(self, identities=True):
        self.asked.append(identities)
        return {"identities": identities}


def test_the_neighbours_are_named_only_to_operators(tmp_path):
    guard, watch = paused_guard(tmp_path), RecordingWatch()
    with RouteServer(guard, neighbours=watch) as server:
        anonymous = requests.get(server.url + "/gpu_guard/status", timeout=10).json()
        operator = requests.get(server.url + "/gpu_guard/status", timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert anonymous["neighbours"] == {"identities": False} and operator["neighbours"] == {"identities": True}
