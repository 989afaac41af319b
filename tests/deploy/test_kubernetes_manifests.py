"""deploy/kubernetes, as kustomize builds it, validates offline, and a broken object fails the same checks."""
import re

import pytest

from gpu_guard.metrics import GuardMetrics
from gpu_guard.operator_token import header_problem
from tests.deploy.kube_manifests import (OVERLAYS, all_errors, build, changed, deployment_refs, metric_names,
                                         schema_errors, secret_value)


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request):
    return request.param, build(request.param)


@pytest.fixture(scope="module")
def keda():
    return build("keda")


def test_every_built_object_validates_and_the_objects_fit_together(built):
    overlay, documents = built
    kinds = sorted(d["kind"] for _, d in documents)
    scaler = {"keda": ["ScaledObject"], "hpa": ["ConfigMap", "HorizontalPodAutoscaler"]}[overlay]
    assert kinds == sorted(["ConfigMap", "Deployment", "PersistentVolumeClaim", "PersistentVolumeClaim",
                            "PodDisruptionBudget", "PodMonitor", "Secret", "Service", *scaler])
    assert all_errors(documents) == []


def test_the_pod_reads_the_generated_settings_and_token_by_their_built_names(keda):
    refs = deployment_refs(keda)
    assert {kind for kind, _ in refs} == {"ConfigMap", "Secret"}
    for kind, name in refs:  # kustomize appends a content hash, and rewrites the references to it
        assert re.fullmatch(r"gpu-guard-(settings|token)-[a-z0-9]{10}", name), name
    (settings,) = [d for _, d in keda if d["kind"] == "ConfigMap"]
    for name in ("GPU_GUARD_MAX_HELD", "GPU_GUARD_PAUSE_AT", "GPU_GUARD_RESUME_AT", "GPU_GUARD_DRAIN_ON_SIGTERM_S"):
        assert name in settings["data"]


def test_the_built_secret_keeps_the_newline_and_is_a_token_the_server_takes(keda):
    token = secret_value(keda, "gpu-guard-token", "token")
    assert token.endswith("\n")  # as kustomize builds it from token.txt: the server must strip it
    assert header_problem(token.strip()) is None


def test_the_autoscalers_read_metrics_the_guard_exports(built):
    _, documents = built
    exported = {metric.name for metric in GuardMetrics().registry.collect()}
    assert metric_names(documents) == {"gpu_guard_pending_prompts"} and metric_names(documents) <= exported


def test_the_scaled_object_scales_between_one_and_eight_on_the_hpa_alone(keda):
    (scaled,) = [d for _, d in keda if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["minReplicaCount"] == 1
    # at minReplicaCount 1 these only govern scaling to and from 0: set, they would mislead
    (trigger,) = scaled["spec"]["triggers"]
    assert "activationThreshold" not in trigger["metadata"] and "cooldownPeriod" not in scaled["spec"]


def test_the_grace_period_outlasts_the_longest_job_and_the_sigterm_drain(keda):
    (deployment,) = [d for _, d in keda if d["kind"] == "Deployment"]
    (settings,) = [d for _, d in keda if d["kind"] == "ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > float(settings["data"]["GPU_GUARD_LIVE_MAX_RUN_S"])
    assert grace > float(settings["data"]["GPU_GUARD_DRAIN_ON_SIGTERM_S"])
    assert pod["containers"][0]["livenessProbe"]["terminationGracePeriodSeconds"] < grace


def _container(document):
    return document["spec"]["template"]["spec"]["containers"][0]


BROKEN = [
    pytest.param("Deployment", lambda d: _container(d)["readinessProbe"]["httpGet"].pop("path"),
                 "readinessProbe path is None; the guard answers /gpu_guard/ready", id="readiness-path-missing"),
    pytest.param("Deployment", lambda d: _container(d)["livenessProbe"]["httpGet"].update(port="web"),
                 "livenessProbe port 'web' is not a container port ['http']", id="liveness-wrong-port-name"),
    pytest.param("Service", lambda d: d["spec"]["ports"][0].update(targetPort="web"),
                 "targetPort 'web' is not a container port ['http']", id="service-wrong-port-name"),
    pytest.param("Deployment", lambda d: d["spec"].update(replicas="two"),
                 "Deployment spec/replicas: 'two' is not of type 'integer'", id="schema-type"),
    pytest.param("Deployment", lambda d: _container(d)["readinessProbe"].update(httpget={}),
                 "Additional properties are not allowed ('httpget' was unexpected)", id="schema-unknown-field"),
    pytest.param("Deployment", lambda d: _container(d).update(command=["python", "main.py"]),
                 "does not start with an init process", id="python-as-pid-1"),
    pytest.param("Deployment", lambda d: _container(d)["readinessProbe"].update(failureThreshold=1),
                 "the readinessProbe takes the pod out on one stall", id="readiness-one-stall"),
    pytest.param("Deployment", lambda d: _container(d)["livenessProbe"].pop("terminationGracePeriodSeconds"),
                 "a liveness kill waits the pod's whole grace period", id="liveness-grace"),
    pytest.param("Deployment", lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=1),
                 "needs a spare GPU", id="surge-needs-a-gpu"),
    pytest.param("Deployment", lambda d: _container(d)["env"][0]["valueFrom"]["secretKeyRef"].update(
        name="gpu-guard-token"), "the pod reads Secret 'gpu-guard-token', which the build does not contain",
                 id="unhashed-secret-name"),
    pytest.param("Deployment", lambda d: d["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"].update(
        claimName="models"), "claims 'models', which the build does not contain", id="missing-claim"),
    pytest.param("PodMonitor", lambda d: d["spec"]["podMetricsEndpoints"][0].update(path="/metrics"),
                 "the guard serves /gpu_guard/metrics", id="podmonitor-path"),
    pytest.param("PodMonitor", lambda d: d["spec"].update(podTargetLabel=["x"]),
                 "Additional properties are not allowed ('podTargetLabel' was unexpected)", id="podmonitor-schema"),
    pytest.param("ScaledObject", lambda d: d["spec"].pop("triggers"),
                 "ScaledObject spec: 'triggers' is a required property", id="keda-no-triggers"),
    pytest.param("ScaledObject", lambda d: d["spec"].update(cooldownPeriod="10m"),
                 "ScaledObject spec/cooldownPeriod: '10m' is not of type 'integer'", id="keda-type"),
    pytest.param("ScaledObject", lambda d: d["spec"]["scaleTargetRef"].update(name="comfy"),
                 "ScaledObject targets", id="keda-wrong-target"),
    pytest.param("PodDisruptionBudget",
                 lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "other"}),
                 "PodDisruptionBudget's selector does not match", id="pdb-selector"),
]


@pytest.mark.parametrize("kind, edit, message", BROKEN)
def test_a_broken_object_fails_validation(keda, kind, edit, message):
    errors = all_errors(changed(keda, kind, edit))
    assert any(message in error for error in errors), errors


def test_a_broken_hpa_fails_validation():
    documents = build("hpa")
    errors = all_errors(changed(documents, "HorizontalPodAutoscaler",
                                lambda d: d["spec"]["metrics"][0]["pods"].pop("metric")))
    assert any("'metric' is a required property" in error for error in errors), errors


def test_the_scaled_object_schema_is_the_vendored_crd_and_rejects_unknown_fields(keda):
    ((name, scaled),) = [(n, d) for n, d in keda if d["kind"] == "ScaledObject"]
    broken = dict(scaled, spec=dict(scaled["spec"], minReplicas=1))  # HPA's spelling, not KEDA's
    assert schema_errors(name, scaled) == []
    assert schema_errors(name, broken) == [
        f"{name}: ScaledObject spec: Additional properties are not allowed ('minReplicas' was unexpected)"]
