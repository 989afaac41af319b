"""Offline checks of deploy/kubernetes: schemas, and what schemas cannot see.

- Core kinds against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: unknown fields
  fail), KEDA's ScaledObject against the CRD schema vendored in tests/deploy/schemas.
- References between the objects: probe paths are the guard's routes, probe and Service ports name
  a container port, selectors match the pod labels, autoscalers target the Deployment, the
  metric they scale on is one the guard exports, kustomization files exist.
Every check returns messages (empty: fine), so a test can show that a broken manifest fails.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE_DIR = REPO / "deploy" / "kubernetes"
KEDA_CRD = Path(__file__).resolve().parent / "schemas" / "keda.sh_scaledobjects.yaml"
KUBERNETES_VERSION = "1.37.0"
READY_PATH, LIVE_PATH = "/gpu_guard/ready", "/gpu_guard/live"
KUSTOMIZATION = "Kustomization"


def load_documents(folder: Path = KUBE_DIR) -> list:
    """[(path relative to folder, document)] for every YAML document under folder."""
    documents = []
    for path in sorted(folder.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append((str(path.relative_to(folder)), document))
    return documents


def keda_schema() -> dict:
    """The CRD's v1alpha1 schema, strict as the API server's field validation (kubectl's default):
    a field the schema does not list is an error, not silently pruned."""
    crd = yaml.safe_load(KEDA_CRD.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
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
    if kind == KUSTOMIZATION:
        return []  # not an API object; checked by kustomization_errors
    if kind == "ScaledObject":
        validator = jsonschema.Draft7Validator(keda_schema())
        return [f"{name}: ScaledObject {'/'.join(map(str, e.path))}: {e.message}"
                for e in validator.iter_errors(document)]
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


def kustomization_errors(folder: Path = KUBE_DIR) -> list:
    errors = []
    for path in sorted(folder.rglob("kustomization.yaml")):
        here = path.parent
        k = yaml.safe_load(path.read_text(encoding="utf-8"))
        listed = list(k.get("resources", []))
        for generator in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            listed += generator.get("envs", []) + [f.split("=", 1)[-1] for f in generator.get("files", [])]
        for entry in listed:
            if not (here / entry).exists():
                errors.append(f"{path.relative_to(folder)}: {entry} does not exist")
    return errors


def generated_names(folder: Path = KUBE_DIR) -> set:
    names = set()
    for path in folder.rglob("kustomization.yaml"):
        k = yaml.safe_load(path.read_text(encoding="utf-8"))
        names.update(g["name"] for g in k.get("configMapGenerator", []) + k.get("secretGenerator", []))
    return names


def deployment_refs(documents) -> set:
    """ConfigMap and Secret names the Deployment reads."""
    (_, deployment), = _of_kind(documents, "Deployment")
    refs = set()
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            refs.update(v["name"] for k, v in source.items() if k in ("configMapRef", "secretRef"))
        for var in container.get("env", []):
            for k in ("configMapKeyRef", "secretKeyRef"):
                if k in var.get("valueFrom", {}):
                    refs.add(var["valueFrom"][k]["name"])
    return refs


def all_errors(documents) -> list:
    errors = []
    for name, document in documents:
        errors += schema_errors(name, document)
    return errors + reference_errors(documents)


def changed(documents, name: str, kind: str, edit) -> list:
    """A deep copy of documents with `edit(document)` applied to the one of `kind` in file `name`."""
    documents = copy.deepcopy(documents)
    for doc_name, document in documents:
        if doc_name == name and document.get("kind") == kind:
            edit(document)
    return documents
