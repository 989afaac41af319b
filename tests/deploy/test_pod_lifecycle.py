"""The Deployment's pod, as kustomize builds it, run for real: its container command in a fresh PID
namespace (the process a container runtime starts), its token from the built Secret, its preStop hook
as written.

- SIGTERM to the container's PID 1 with an empty queue: the process exits within 5 s.
- With a prompt running: it exits after that prompt, not before.
- The built Secret's token (newline and all) authenticates, and the preStop hook drains the server
  and waits for the running prompt, but stops waiting once /gpu_guard/live says the worker is stuck.
"""
from __future__ import annotations

import copy
import time

import pytest

from tests.deploy.kube_manifests import build, secret_value
from tests.deploy.pod_command import PodServer, pod_environment, run_pre_stop
from tests.gpu_guard.blocking_node import blocking_workflow, install_blocking_node
from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui

EMPTY_QUEUE_EXIT_S = 5.0  # the bound: an idle pod frees its GPU at once
LIVE_MAX_RUN_S = 3  # the stuck-worker case: /live fails after this


@pytest.fixture(scope="module")
def keda():
    return build("keda")


def start_pod(tmp_path, documents, name, **overrides):
    install_blocking_node(tmp_path / name)
    env = {**pod_environment(documents), **overrides}
    return PodServer(tmp_path / name, documents, env, name=f"pod_{name}").start()


def executed(server) -> int:
    return server.log_text().count("Prompt executed in")


def test_the_built_token_authenticates_prestop_drains_and_sigterm_ends_the_idle_pod(tmp_path, keda):
    token = secret_value(keda, "gpu-guard-token", "token")
    assert token.endswith("\n")
    pod = start_pod(tmp_path, keda, "prestop")
    try:
        assert pod.init_command() == "tini"
        auth = {"Authorization": "Bearer " + token.strip()}
        assert pod.get("/gpu_guard/operator", headers=auth).json()["can_change"] is True
        assert pod.get("/gpu_guard/operator").json()["can_change"] is False
        assert "GPU_GUARD_TOKEN is not set" not in pod.log_text()

        release = tmp_path / "release-prestop"
        running = pod.post_prompt(blocking_workflow(release, seed=1))
        wait_until(lambda: pod.queue()["queue_running"], what="the blocking prompt to run")
        hook = run_pre_stop(keda, pod.url, token)
        drain = wait_until(lambda: pod.get_json("/gpu_guard/status")["drain"], what="the preStop drain")
        assert drain["by"] == "preStop" and drain["left"] == 1
        assert pod.post_prompt_raw(tiny_workflow(1)).status_code == 429
        time.sleep(3)
        assert hook.poll() is None, "preStop returned while a prompt was still running"
        release.touch()
        out, _ = hook.communicate(timeout=30)
        assert hook.returncode == 0, out
        assert pod.history(running)["status"]["status_str"] == "success"
        assert pod.get_json("/gpu_guard/status")["drain"]["left"] == 0

        sent = pod.sigterm()
        code = pod.wait_exit(EMPTY_QUEUE_EXIT_S)
        assert code is not None, f"the pod did not end within {EMPTY_QUEUE_EXIT_S} s of SIGTERM"
        print(f"\nidle pod: SIGTERM -> exit {time.monotonic() - sent:.2f} s, status {code}")
    finally:
        (tmp_path / "release-prestop").touch()
        pod.stop()


def test_sigterm_with_a_prompt_running_ends_the_pod_after_it_and_prestop_stops_at_a_stuck_worker(tmp_path, keda):
    token = secret_value(keda, "gpu-guard-token", "token")
    pod = start_pod(tmp_path, keda, "running", GPU_GUARD_LIVE_MAX_RUN_S=str(LIVE_MAX_RUN_S))
    release = tmp_path / "release-running"
    try:
        running = pod.post_prompt(blocking_workflow(release, seed=2))
        wait_until(lambda: pod.queue()["queue_running"], what="the blocking prompt to run")
        wait_until(lambda: pod.get("/gpu_guard/live").status_code == 503, timeout=LIVE_MAX_RUN_S + 10,
                   what="liveness to fail on the stuck worker")
        hook = run_pre_stop(keda, pod.url, token)
        out, _ = hook.communicate(timeout=20)  # it must not wait for a queue that never drains
        assert hook.returncode == 0, out
        assert pod.get_json("/gpu_guard/status")["drain"]["left"] == 1

        before = executed(pod)
        pod.sigterm()
        assert pod.wait_exit(3) is None, "the pod ended while its prompt was still running"
        release.touch()
        code = pod.wait_exit(30)
        assert code is not None, f"the pod did not end after its running prompt finished; its log ends:\n{pod.log_text()[-4000:]}"
        assert executed(pod) == before + 1, f"the running prompt {running} did not finish before the end"
        assert "VRAM guard: drained; ending the process" in pod.log_text()
    finally:
        release.touch()
        pod.stop()


def test_without_tini_the_drain_still_ends_python_as_pid_1(tmp_path, keda):
    """An image run without tini (python as PID 1): the kernel drops a default-action SIGTERM there,
    so the drain ends the process with exit status 143 itself."""
    documents = copy.deepcopy(keda)
    pod_spec = [d for _, d in documents if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
    command = pod_spec["containers"][0]["command"]
    assert command[:2] == ["tini", "--"]
    pod_spec["containers"][0]["command"] = command[2:]
    pod = start_pod(tmp_path, documents, "no_tini")
    try:
        assert pod.init_command() != "tini"
        pod.sigterm()
        code = pod.wait_exit(EMPTY_QUEUE_EXIT_S)
        assert code == 143, f"python as PID 1 did not end within {EMPTY_QUEUE_EXIT_S} s of SIGTERM ({code})"
    finally:
        pod.stop()
