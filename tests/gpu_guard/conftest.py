"""Fixtures for the VRAM guard's ComfyUI tests: a real ComfyUI whose guard reads a probe file.

The guard polls every 50 ms here so that the tests wait little; each test starts from a running
guard with the default thresholds and an empty queue.
"""
from __future__ import annotations

import os

import pytest

from gpu_guard import Guard
from gpu_guard.comfy.queue_hook import QueueHook
from tests.gpu_guard.guard_drill import GuardDrill
from tests.gpu_guard.stand_in_queue import StandInPromptQueue
from tests.harness.probe_file import ProbeFile
from tests.harness.comfyui_install import InstallError, ensure_comfyui
from tests.harness.server import ComfyServer
from tests.harness.weights import place_checkpoint

FAST_POLL_S = "0.05"
DEFAULT_SETTINGS = dict(pause_at=0.85, resume_at=0.75, max_held=0, retry_after_s=10, hold_timeout_s=0,
                        hold_timeout_action="keep", fast_lane=True, fast_lane_max_overtake_s=60,
                        sensor_failures=3, sensor_policy="open", free_on_hold=True, idle_unload_s=0)


def guard_env(probe: ProbeFile, **extra) -> dict:
    env = {"GPU_GUARD_PROBE": f"file:{probe.path}", "GPU_GUARD_POLL_S": FAST_POLL_S}
    env.update(extra)
    return env


def start_guarded_server(base_dir, name: str, env: dict, extra_args=(), checkpoint=None) -> ComfyServer:
    if os.environ.get("COMFYUI_URL"):
        pytest.skip("the VRAM guard drills write the probe file of a server they start; "
                    "COMFYUI_URL points at a server this suite does not own")
    try:
        ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")
    server = ComfyServer(base_dir, name=name, env=env, extra_args=tuple(extra_args))
    server.checkpoint_name = None
    if checkpoint is not None:
        server.checkpoint_name = place_checkpoint(checkpoint, server.models_dir).name
    return server.start()


@pytest.fixture(scope="session")
def guard_server(tmp_path_factory, synthetic_checkpoint):
    """One ComfyUI for the guard drills (started once; the tests reset the guard between them).
    DEBUG logging shows ComfyUI unloading models; a synthetic DDColor checkpoint gives it one to load."""
    base = tmp_path_factory.mktemp("guard_comfy")
    probe = ProbeFile(base / "probe.json")
    probe.write_ratio(0.10)
    server = start_guarded_server(base / "server", "gpu_guard", guard_env(probe),
                                  extra_args=("--verbose", "DEBUG"), checkpoint=synthetic_checkpoint)
    yield GuardDrill(server, probe)
    server.stop()


@pytest.fixture
def drill(guard_server):
    """The drill server, running, with default settings and an empty queue."""
    guard_server.probe.write_ratio(0.10)
    guard_server.set_config(**DEFAULT_SETTINGS)
    guard_server.wait_state("running")
    guard_server.wait_idle()
    guard_server.unload_models()  # a model left by another test would lower the pressure
    yield guard_server
    # leave nothing held for the next test
    guard_server.client.post("/queue", {"clear": True})
    guard_server.probe.write_ratio(0.10)


@pytest.fixture
def rig(tmp_path):
    """(guard, queue, hook, probe, models): the guard polls every 50 ms; `models` is what the hook sees
    as ComfyUI's loaded models."""
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.1)
    guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": f"file:{probe.path}", "GPU_GUARD_POLL_S": "0.05"})
    guard.start()
    queue = StandInPromptQueue()
    models = []
    hook = QueueHook(guard, queue, lambda: models, hold_wait_s=0.05)
    hook.install()
    yield guard, queue, hook, probe, models
    guard.stop()
