"""On a real ComfyUI: the event log in the user directory, GET /gpu_guard/events paging through it
across rotation and a restart, the day counters in status and metrics, bad settings refused."""
import json

import pytest

from tests.gpu_guard.guard_drill import GuardDrill, wait_until

pytestmark = pytest.mark.comfyui


def all_events(client, page_size, **query):
    seen, cursor, pages = [], 0, 0
    while True:
        answer = client.get("/gpu_guard/events", params={"since": cursor, "limit": page_size, **query})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += page["events"]
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            return seen, pages


def cycles(drill, count):
    for _ in range(count):
        drill.pause()
        drill.resume()


def test_event_log_pages_rotates_and_survives_a_restart(comfy_factory):
    server = comfy_factory(env={"GPU_GUARD_POLL_S": "0.05"})
    drill = GuardDrill(server, server.probe)
    log_path = server.folders.user / "gpu_guard_events.jsonl"
    cycles(drill, 3)
    wait_until(lambda: len(all_events(server, 50, kind="pause,resume")[0]) == 6, what="6 events in the log")
    status = drill.status()
    assert status["today"]["pauses"] == 3 and status["today"]["paused_s"] > 0
    assert status["ops"]["event_log"]["path"] == str(log_path)
    assert "gpu_guard_pauses_today 3.0" in server.get("/gpu_guard/metrics").text
    first = all_events(server, 50)[0]
    pause = next(e for e in first if e["kind"] == "pause")
    assert pause["reading"]["used_bytes"] == 9_500_000_000 and pause["reason"] and pause["time"].endswith("Z")
    assert (pause["from"], pause["to"]) == ("running", "paused")

    server.restart()
    drill = GuardDrill(server, server.probe)
    assert drill.status()["today"]["pauses"] == 3, "the day's counters are rebuilt from the log"
    cycles(drill, 1)
    wait_until(lambda: drill.status()["today"]["pauses"] == 4, what="the fourth pause counted")
    after, _ = all_events(server, 50)
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1)), "one sequence across the restart"
    assert [e["kind"] for e in after if e["kind"] in ("pause", "resume")] == ["pause", "resume"] * 4

    drill.set_config(event_log_max_bytes=3 * 1500, event_log_files=3)
    cycles(drill, 8)
    last_seq = wait_until(lambda: (lambda p: p["last_seq"] if p["last_seq"] > after[-1]["seq"] + 16 else None)(
        server.get_json("/gpu_guard/events?limit=1")), what="the cycles in the log")
    assert (server.folders.user / "gpu_guard_events.jsonl.2").exists()
    assert not (server.folders.user / "gpu_guard_events.jsonl.3").exists()
    assert sum(p.stat().st_size for p in server.folders.user.glob("gpu_guard_events.jsonl*")) <= 4500
    paged, pages = all_events(server, 2)
    seqs = [e["seq"] for e in paged]
    assert pages > 2 and seqs == list(range(seqs[0], last_seq + 1)) and seqs[0] > 1, "the newest, in order"
    only, _ = all_events(server, 100, kind="resume")
    assert only and {e["kind"] for e in only} == {"resume"}


def test_bad_query_and_bad_settings_are_refused_naming_them(comfy_factory):
    server = comfy_factory(env={"GPU_GUARD_POLL_S": "0.05"})
    for query, named in (("since=abc", "since must be an integer"), ("limit=0", "limit must be in [1, 1000]"),
                         ("kind=pause,nap", "kind nap is not an event kind")):
        answer = server.get(f"/gpu_guard/events?{query}")
        assert answer.status_code == 400 and named in answer.json()["errors"][0], answer.text

    config_file = server.folders.user / "gpu_guard.json"
    before = config_file.read_text() if config_file.exists() else None
    for body, named in (
            ({"max_held": 5, "webhooks": [{"format": "teams", "url": "https://example.org/x"}]},
             "webhooks[0].format must be one of"),
            ({"max_held": 5, "webhooks": [{"format": "slack", "url": "file:///etc/passwd"}]},
             "webhooks[0].url must be an http:// or https:// URL"),
            ({"max_held": 5, "webhooks": [{"format": "json", "url": "https://example.org/x"}]},
             "needs a secret")):
        answer = server.post("/gpu_guard/config", body)
        assert answer.status_code == 400 and named in " ".join(answer.json()["errors"]), answer.text
    assert server.get_json("/gpu_guard/config")["max_held"] == 0
    assert (config_file.read_text() if config_file.exists() else None) == before

    ok = server.post("/gpu_guard/config", {"webhooks": [{"name": "chat", "format": "slack",
                                                         "url": "https://hooks.slack.com/services/T/B/SECRETPART"}]})
    assert ok.status_code == 200, ok.text
    for route in ("/gpu_guard/config", "/gpu_guard/status", "/gpu_guard/events"):
        text = server.get(route).text
        assert "SECRETPART" not in text, (route, text[text.find("SECRETPART") - 300:][:400])
    assert server.get_json("/gpu_guard/config")["webhooks"][0]["url"] == "https://hooks.slack.com/…"
    assert json.loads(config_file.read_text())["webhooks"][0]["url"].endswith("SECRETPART")


def test_the_pack_sends_a_signed_alert_and_its_resolve_when_the_sensor_fails(comfy_factory):
    import base64

    from tests.ops.receiver import Receiver

    secret = "whsec_" + base64.b64encode(b"comfyui-ops-test-secret-32-bytes").decode()
    with Receiver() as receiver:
        target = [{"name": "oncall", "format": "json", "url": receiver.url + "/hook", "secret_env": "GPU_GUARD_HOOK_OPS_SECRET"}]
        server = comfy_factory(env={"GPU_GUARD_POLL_S": "0.05", "GPU_GUARD_WEBHOOKS": json.dumps(target),
                                    "GPU_GUARD_HOOK_OPS_SECRET": secret})
        server.probe.write_text("not json")
        firing = receiver.wait_for(1, timeout=30)[0]
        server.probe.write_low()
        resolved = receiver.wait_for(2, timeout=30)[1]
    from standardwebhooks.webhooks import Webhook  # the spec's reference library verifies, not our own code

    for request, status in ((firing, "firing"), (resolved, "resolved")):
        Webhook(secret).verify(request.body, dict(request.headers), json_parse=False)
        payload = request.json()
        assert payload["type"] == f"gpu_guard.alert.{status}" and payload["data"]["rule"] == "sensor_failing"
    assert "the memory sensor failed 3 readings in a row" in firing.json()["data"]["text"]
    assert resolved.json()["data"]["text"] == "the memory sensor reads again"
    alerts = server.get_json("/gpu_guard/events?kind=alert")["events"]
    assert [(e["rule"], e["status"]) for e in alerts] == [("sensor_failing", "firing"), ("sensor_failing", "resolved")]
    assert secret not in server.get("/gpu_guard/config").text + server.get("/gpu_guard/status").text
