"""The Deployment's container, as kustomize builds it, run on this machine: its command (tini, python,
main.py and its arguments) in a fresh PID namespace (`unshare --pid --fork --mount-proc`, as a
container runtime does), its environment from the built ConfigMap and Secret, and its preStop hook.

Only what is host-specific is replaced: the interpreter and main.py by the harness' ComfyUI 0.3.75,
the port, and the volumes' mount paths by the harness' folders. The harness adds its usual test
arguments (--cpu, the pack's folder, an in-memory database).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


from tests.harness.required import missing
from tests.harness.server import ComfyServer

POD_PORT = "8188"


def need_pid_namespaces() -> str:
    """unshare's path; a PID namespace needs root (CAP_SYS_ADMIN). With CI=true a missing piece fails."""
    problems = []
    unshare, tini = shutil.which("unshare"), shutil.which("tini")
    if unshare is None:
        problems.append("unshare (util-linux) is not installed")
    if tini is None:
        problems.append("tini is not installed (scripts/setup_env.sh installs Debian's tini as root)")
    if os.geteuid() != 0:
        problems.append("the PID namespace drill runs as root (unshare --pid needs CAP_SYS_ADMIN)")
    if problems:
        missing("; ".join(problems))
    return unshare


def container(documents) -> dict:
    (deployment,) = [d for _, d in documents if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def pod_environment(documents) -> dict:
    """The container's variables: envFrom the built ConfigMap, the token from the built Secret."""
    import base64
    by_name = {(d["kind"], d["metadata"]["name"]): d for _, d in documents}
    env = {}
    spec = container(documents)
    for source in spec.get("envFrom", []):
        env.update(by_name[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for var in spec.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            env[var["name"]] = base64.b64decode(by_name[("Secret", ref["name"])]["data"][ref["key"]]).decode()
    return env


class PodServer(ComfyServer):
    """A ComfyServer whose process is the Deployment's container command in its own PID namespace."""

    def __init__(self, base_dir, documents, env: dict, name: str):
        super().__init__(base_dir, name=name, env=env)
        self.unshare = need_pid_namespaces()
        self.pod = container(documents)
        mounts = {m["name"]: m["mountPath"] for m in self.pod.get("volumeMounts", [])}
        self.paths = {mounts["user"]: str(self.folders.user), mounts["output"]: str(self.folders.output)}

    def _command(self, port: int) -> list:
        f = self.folders
        swap = {"python": sys.executable, "main.py": str(self.comfyui_dir / "main.py"), POD_PORT: str(port),
                **self.paths}
        command = [swap.get(word, word) for word in self.pod["command"]]
        return [self.unshare, "--pid", "--fork", "--mount-proc", "--kill-child", *command,
                "--cpu", "--extra-model-paths-config", str(f.extra_model_paths),
                "--database-url", "sqlite:///:memory:", "--disable-api-nodes",
                "--temp-directory", str(f.temp), "--input-directory", str(f.input)]

    def namespace_init(self) -> int:
        """The PID (in this namespace) of the container's PID 1: unshare's only child."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def init_command(self) -> str:
        return Path(f"/proc/{self.namespace_init()}/cmdline").read_bytes().split(b"\0")[0].decode()

    def sigterm(self) -> float:
        """SIGTERM to the container's PID 1, as the kubelet's runtime sends it; returns when."""
        os.kill(self.namespace_init(), signal.SIGTERM)
        return time.monotonic()

    def wait_exit(self, timeout: float):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def run_pre_stop(documents, url: str, token: str) -> subprocess.Popen:
    """The preStop hook's command as written, against `url`, with the token as the Secret holds it."""
    command = container(documents)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "python"
    env = {**os.environ, "GUARD_URL": url, "GPU_GUARD_TOKEN": token}
    return subprocess.Popen([sys.executable, *command[1:]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
