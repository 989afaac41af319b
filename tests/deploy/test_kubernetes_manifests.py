"""deploy/kubernetes validates offline, and a broken manifest fails the same checks."""
import pytest

from gpu_guard.metrics import GuardMetrics
from tests.deploy.kube_manifests import (KUBE_DIR, all_errors, changed, deployment_refs, generated_names,
                                         kustomization_errors, load_documents, metric_names, schema_errors)

DEPLOYMENT, SCALED, HPA = "base/deployment.yaml", "keda/scaledobject.yaml", "hpa/hpa.yaml"


@pytest.fixture(scope="module")
def documents():
    return load_documents()


def test_every_manifest_validates_and_the_objects_fit_together(documents):
    kinds = sorted(d["kind"] for _, d in documents)
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Kustomization", "Kustomization",
                     "Kustomization", "PodDisruptionBudget", "ScaledObject", "Service"]
    assert all_errors(documents) == []
    assert kustomization_errors() == []


def test_the_deployment_reads_the_generated_settings_and_token(documents):
    assert deployment_refs(documents) == generated_names() == {"gpu-guard-settings", "gpu-guard-token"}
    settings = (KUBE_DIR / "base" / "settings.env").read_text()
    for name in ("GPU_GUARD_MAX_HELD", "GPU_GUARD_PAUSE_AT", "GPU_GUARD_RESUME_AT", "GPU_GUARD_DRAIN_ON_SIGTERM_S"):
        assert f"\n{name}=" in settings


def test_the_autoscalers_read_metrics_the_guard_exports(documents):
    exported = {metric.name for metric in GuardMetrics().registry.collect()}
    assert metric_names(documents) == {"gpu_guard_pending_prompts"} and metric_names(documents) <= exported
    (scaled,) = [d for name, d in documents if name == SCALED]
    (trigger,) = scaled["spec"]["triggers"]
    assert float(trigger["metadata"]["activationThreshold"]) > 0 and scaled["spec"]["cooldownPeriod"] > 0


def test_the_grace_period_outlasts_the_longest_job_and_the_sigterm_drain(documents):
    (deployment,) = [d for name, d in documents if name == DEPLOYMENT]
    settings = dict(line.split("=", 1) for line in (KUBE_DIR / "base" / "settings.env").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(settings["GPU_GUARD_LIVE_MAX_RUN_S"]) and grace > float(settings["GPU_GUARD_DRAIN_ON_SIGTERM_S"])


def _container(document):
    return document["spec"]["template"]["spec"]["containers"][0]


BROKEN = [
    pytest.param(DEPLOYMENT, "Deployment", lambda d: _container(d)["readinessProbe"]["httpGet"].pop("path"),
                 "readinessProbe path is None; the guard answers /gpu_guard/ready", id="readiness-path-missing"),
    pytest.param(DEPLOYMENT, "Deployment", lambda d: _container(d)["livenessProbe"]["httpGet"].update(port="web"),
                 "livenessProbe port 'web' is not a container port ['http']", id="liveness-wrong-port-name"),
    pytest.param("base/service.yaml", "Service", lambda d: d["spec"]["ports"][0].update(targetPort="web"),
                 "targetPort 'web' is not a container port ['http']", id="service-wrong-port-name"),
    pytest.param(DEPLOYMENT, "Deployment", lambda d: d["spec"].update(replicas="two"),
                 "Deployment spec/replicas: 'two' is not of type 'integer'", id="schema-type"),
    pytest.param(DEPLOYMENT, "Deployment", lambda d: _container(d)["readinessProbe"].update(httpget={}),
                 "Additional properties are not allowed ('httpget' was unexpected)", id="schema-unknown-field"),
    pytest.param(SCALED, "ScaledObject", lambda d: d["spec"].pop("triggers"),
                 "ScaledObject spec: 'triggers' is a required property", id="keda-no-triggers"),
    pytest.param(SCALED, "ScaledObject", lambda d: d["spec"].update(cooldownPeriod="10m"),
                 "ScaledObject spec/cooldownPeriod: '10m' is not of type 'integer'", id="keda-type"),
    pytest.param(SCALED, "ScaledObject", lambda d: d["spec"]["scaleTargetRef"].update(name="comfy"),
                 "ScaledObject targets", id="keda-wrong-target"),
    pytest.param(HPA, "HorizontalPodAutoscaler", lambda d: d["spec"]["metrics"][0]["pods"].pop("metric"),
                 "'metric' is a required property", id="hpa-schema"),
    pytest.param("base/pdb.yaml", "PodDisruptionBudget",
                 lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "other"}),
                 "PodDisruptionBudget's selector does not match", id="pdb-selector"),
]


@pytest.mark.parametrize("name, kind, edit, message", BROKEN)
def test_a_broken_manifest_fails_validation(documents, name, kind, edit, message):
    errors = all_errors(changed(documents, name, kind, edit))
    assert any(message in error for error in errors), errors


def test_the_scaled_object_schema_is_the_vendored_crd_and_rejects_unknown_fields(documents):
    (scaled,) = [d for name, d in documents if name == SCALED]
    broken = dict(scaled, spec=dict(scaled["spec"], minReplicas=1))  # HPA's spelling, not KEDA's
    assert schema_errors(SCALED, scaled) == []
    assert schema_errors(SCALED, broken) == [
        f"{SCALED}: ScaledObject spec: Additional properties are not allowed ('minReplicas' was unexpected)"]
