"""End to end on loopback: Debian's Prometheus scrapes a real ComfyUI with the pack (file probe), the
pause alert fires in /api/v1/alerts, Debian's Alertmanager delivers it to a webhook receiver, and it
resolves after the reading drops; every Grafana panel's query returns a series from that Prometheus."""
import json

import pytest
import yaml

from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow, wait_until
from tests.ops.prometheus_servers import (DASHBOARD, alerts_named, binary, prometheus_config,
                                         rules_with_wait, start_alertmanager, start_prometheus)
from tests.ops.receiver import Receiver

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

PAUSE_ALERT = "GpuGuardPaused"
PAUSE_FOR = "2s"  # the shipped rule waits 5m; the test keeps the expression and shortens only the wait


def dashboard_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def as_prometheus_query(expr):
    """Grafana's variables as the dashboard's defaults resolve them: all instances, a 1-minute rate window."""
    return expr.replace("$instance", ".+").replace("$__rate_interval", "1m")


def alertmanager_config(receiver_url):
    return yaml.safe_dump({
        "route": {"receiver": "loopback", "group_by": ["alertname", "instance"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "loopback", "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}]})


def query(prometheus, expr):
    answer = prometheus.get_json("/api/v1/query", query=expr)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def value(prometheus, expr):
    """The single value of an instant query (None while it has no series yet)."""
    result = query(prometheus, expr)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def notifications(receiver):
    return [r.json() for r in receiver.requests if r.path == "/alertmanager"]


def test_dashboard_is_checked_json_with_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert dashboard["panels"] and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() and t["refId"] for t in panel["targets"]), panel["title"]
    wanted = ("gpu_guard_device_used_ratio", "gpu_guard_pressure_ratio", "gpu_guard_pause_at_ratio",
              "gpu_guard_resume_at_ratio", "gpu_guard_state", "gpu_guard_held_prompts", "gpu_guard_pending_prompts",
              "gpu_guard_rejected_prompts_total", 'gpu_guard_admitted_prompts_total', "gpu_guard_hold_wait_seconds_bucket",
              "gpu_guard_pauses_today", "gpu_guard_sensor_errors_total")
    every_query = " ".join(expr for _, expr in dashboard_queries())
    assert all(name in every_query for name in wanted), [n for n in wanted if n not in every_query]


def test_pause_alert_fires_and_resolves_through_prometheus_and_alertmanager(comfy_factory, tmp_path):
    for name in ("prometheus", "prometheus-alertmanager"):
        binary(name)
    with Receiver(script=[200]) as receiver:
        pack_target = [{"name": "pack-chat", "format": "slack", "url": receiver.url + "/pack"}]
        server = comfy_factory(env={"GPU_GUARD_POLL_S": "0.05", "GPU_GUARD_WEBHOOKS": json.dumps(pack_target)})
        drill = GuardDrill(server, server.probe)
        alertmanager = start_alertmanager(tmp_path / "am", alertmanager_config(receiver.url + "/alertmanager"))
        try:
            prometheus = start_prometheus(tmp_path / "prom", prometheus_config(
                rules_with_wait(tmp_path, PAUSE_ALERT, PAUSE_FOR), server.url, alertmanager.port))
            try:
                wait_until(lambda: query(prometheus, 'up{job="comfyui"} == 1') and query(prometheus, "gpu_guard_state"),
                           timeout=30, interval=0.2, what="Prometheus scraping ComfyUI")
                assert alerts_named(prometheus, PAUSE_ALERT) == []

                drill.set_config(max_held=3)
                drill.pause()
                held = [server.post_prompt(tiny_workflow(7 + i)) for i in range(3)]
                refused = [server.post_prompt_raw(tiny_workflow(20 + i)).status_code for i in range(2)]
                assert refused == [429, 429]
                # the numbers the drill produced, as Prometheus has them
                wait_until(lambda: value(prometheus, "gpu_guard_held_prompts") == 3, timeout=20, interval=0.2,
                           what="Prometheus to see 3 held prompts")
                wait_until(lambda: value(prometheus, "sum(gpu_guard_rejected_prompts_total)") == 2, timeout=20,
                           interval=0.2, what="Prometheus to count 2 prompts answered 429")
                (alert,) = wait_until(lambda: [a for a in alerts_named(prometheus, PAUSE_ALERT) if a["state"] == "firing"],
                                      timeout=30, interval=0.2, what="the pause alert firing in /api/v1/alerts")
                assert alert["labels"]["job"] == "comfyui" and alert["labels"]["severity"] == "warning"
                firing = wait_until(lambda: [n for n in notifications(receiver) if n["status"] == "firing"],
                                    timeout=30, interval=0.2, what="Alertmanager to deliver the pause alert")[0]
                assert firing["version"] == "4" and firing["receiver"] == "loopback"
                assert firing["groupLabels"] == {"alertname": PAUSE_ALERT, "instance": alert["labels"]["instance"]}
                (sent,) = firing["alerts"]
                assert sent["status"] == "firing" and sent["labels"]["alertname"] == PAUSE_ALERT
                assert "holds prompts" in sent["annotations"]["summary"] and sent["startsAt"]

                drill.resume()
                for prompt_id in held:
                    assert server.wait_history(prompt_id, timeout=60)["status"]["status_str"] == "success"
                wait_until(lambda: alerts_named(prometheus, PAUSE_ALERT) == [], timeout=30, interval=0.2,
                           what="the pause alert to leave /api/v1/alerts")
                resolved = wait_until(lambda: [n for n in notifications(receiver) if n["status"] == "resolved"],
                                      timeout=30, interval=0.2, what="Alertmanager to deliver the resolve")[0]
                assert resolved["alerts"][0]["labels"]["alertname"] == PAUSE_ALERT
                assert resolved["alerts"][0]["endsAt"] > resolved["alerts"][0]["startsAt"]

                wait_until(lambda: value(prometheus, "sum(gpu_guard_hold_wait_seconds_count)") == 3, timeout=20,
                           interval=0.2, what="the 3 hold waits in Prometheus")
                assert value(prometheus, "gpu_guard_held_prompts") == 0
                empty = [(title, expr) for title, expr in dashboard_queries()
                         if not query(prometheus, as_prometheus_query(expr))]
                assert empty == [], f"dashboard queries without a series: {empty}"
                assert value(prometheus, "gpu_guard_pauses_today") == 1
                assert value(prometheus, 'sum(gpu_guard_events_total{kind="rejected"})') == 2
            finally:
                prometheus.stop()
        finally:
            alertmanager.stop()
