"""The ScaledObject's query, exactly as built, evaluated on a real Prometheus that scrapes a real
ComfyUI the way the built PodMonitor tells the Prometheus Operator to: the Operator's relabeling for
a PodMonitor (selector keep, port keep, namespace/container/pod, podTargetLabels, job) applied to the
target's Kubernetes metadata, which a static target carries here since there is no cluster. With
three prompts held by an operator's pause, the query returns 3 (an empty result would count as 0
and the Deployment would never scale)."""
from __future__ import annotations

import re

import pytest
import requests
import yaml

from tests.deploy.kube_manifests import build
from tests.gpu_guard.conftest import guard_env, start_guarded_server
from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow, wait_until
from tests.harness.probe_file import ProbeFile
from tests.ops.prometheus_servers import start_prometheus

pytestmark = pytest.mark.comfyui

NAMESPACE, POD = "gpu", "comfyui-7d9f8b6c5-x2x9q"
SCRAPE_INTERVAL = "1s"  # the PodMonitor's 15s, shortened so the test waits little; labels do not depend on it


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def operator_scrape_config(monitor: dict, pod: dict, address: str) -> dict:
    """The scrape job the Operator generates for `monitor` (pkg/prometheus/promcfg.go), with the pod's
    metadata on a static target in place of Kubernetes service discovery."""
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    container = pod["spec"]["containers"][0]
    (port,) = [p for p in container["ports"] if p["name"] == endpoint["port"]]
    meta = {f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in pod["metadata"]["labels"].items()}
    meta.update({"__meta_kubernetes_namespace": NAMESPACE, "__meta_kubernetes_pod_name": POD,
                 "__meta_kubernetes_pod_container_name": container["name"],
                 "__meta_kubernetes_pod_container_port_name": port["name"]})
    relabel = [{"action": "keep", "source_labels": [f"__meta_kubernetes_pod_label_{_sanitize(k)}"], "regex": v}
               for k, v in sorted(monitor["spec"]["selector"]["matchLabels"].items())]
    relabel += [{"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "regex": endpoint["port"]},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}]
    relabel += [{"source_labels": [f"__meta_kubernetes_pod_label_{_sanitize(label)}"],
                 "target_label": _sanitize(label), "regex": "(.+)", "replacement": "${1}"}
                for label in monitor["spec"].get("podTargetLabels", [])]
    relabel += [{"target_label": "job", "replacement": f"{NAMESPACE}/{monitor['metadata']['name']}"},
                {"target_label": "endpoint", "replacement": endpoint["port"]}]
    return {"job_name": f"podMonitor/{NAMESPACE}/{monitor['metadata']['name']}/0",
            "scrape_interval": SCRAPE_INTERVAL, "metrics_path": endpoint["path"],
            "static_configs": [{"targets": [address], "labels": meta}], "relabel_configs": relabel}


def evaluate(prometheus, query: str):
    answer = requests.get(prometheus.url + "/api/v1/query", params={"query": query}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_the_scaled_object_query_counts_the_held_prompts_on_a_real_prometheus(tmp_path):
    documents = build("keda")
    by_kind = {d["kind"]: d for _, d in documents}
    (trigger,) = by_kind["ScaledObject"]["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.10)
    server = start_guarded_server(tmp_path / "server", "keda_query", guard_env(probe))
    drill = GuardDrill(server, probe)
    try:
        config = {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
                  "scrape_configs": [operator_scrape_config(by_kind["PodMonitor"], by_kind["Deployment"]["spec"]
                                                            ["template"], f"127.0.0.1:{server.port}")]}
        prometheus = start_prometheus(tmp_path / "prom", yaml.safe_dump(config))
        try:
            wait_until(lambda: evaluate(prometheus, query), timeout=30, interval=0.2, what="the query to match a series")
            assert float(evaluate(prometheus, query)[0]["value"][1]) == 0
            drill.pause()
            held = [server.post_prompt(tiny_workflow(8000 + i)) for i in range(3)]
            wait_until(lambda: drill.held_ids() == held, what="three prompts held")
            value = wait_until(lambda: (lambda r: r and float(r[0]["value"][1]) == 3 and r)(evaluate(prometheus, query)),
                               timeout=30, interval=0.2, what="the ScaledObject's query to return 3")
            print(f"\n{query} = {value[0]['value'][1]}")
            (series,) = evaluate(prometheus, "gpu_guard_pending_prompts")
            assert series["metric"]["pod"] == POD and series["metric"]["namespace"] == NAMESPACE
            # the query the ScaledObject used before (job="comfyui") matches nothing the Operator scrapes
            assert evaluate(prometheus, 'sum(gpu_guard_pending_prompts{job="comfyui"})') == []
            drill.resume()
            for prompt_id in held:
                server.wait_history(prompt_id, timeout=60)
        finally:
            prometheus.stop()
    finally:
        server.stop()
