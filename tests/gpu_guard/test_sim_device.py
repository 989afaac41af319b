"""Drills on a real ComfyUI whose guard reads the simulated GPU (GPU_GUARD_PROBE=sim:PATH): the device
follows ComfyUI's loaded models, the running prompt's working set (its VRAM_ESTIMATE) and the cache it
leaves, so these drills see the dynamics a static probe file hides. The poll interval is the default."""
import threading
import time

import pytest

from tests.gpu_guard.blocking_node import install_blocking_node, sleep_node
from tests.gpu_guard.conftest import DEFAULT_SETTINGS, start_guarded_server
from tests.gpu_guard.guard_drill import GuardDrill, ddcolor_workflow, wait_until
from tests.harness.probe_file import ProbeFile
from tests.nodes.comfy_io import api_workflow, as_shipped, node_of

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

DEVICE_BYTES = 2 << 30
UNLOAD_LINE = "Unloading PatchableDDColor"  # ComfyUI's DEBUG line when it unloads our model
NEXT_PROMPT_WITHIN_S = 0.1
RESUME_WITHIN_S = 0.2
# After execution_success ComfyUI's worker saves the history and collects garbage (at most every 10 s)
# before it asks the queue again; on a busy 2-core host that alone took up to about a second.
COMFY_AFTER_PROMPT_S = 1.5


@pytest.fixture(scope="module")
def sim_drill(tmp_path_factory, synthetic_checkpoint):
    base = tmp_path_factory.mktemp("guard_sim")
    probe = ProbeFile(base / "device.json")
    probe.write_sim(DEVICE_BYTES, 0)
    install_blocking_node(base / "server")
    server = start_guarded_server(base / "server", "gpu_guard_sim", {"GPU_GUARD_PROBE": probe.sim_spec},
                                  extra_args=("--verbose", "DEBUG"), checkpoint=synthetic_checkpoint)
    if not server.checkpoint_name:
        server.stop()
        pytest.skip("no synthetic DDColor checkpoint could be made, so no model can be loaded")
    yield GuardDrill(server, probe)
    server.stop()


@pytest.fixture
def sim(sim_drill):
    sim_drill.probe.write_sim(DEVICE_BYTES, 0)
    sim_drill.set_config(**DEFAULT_SETTINGS)
    sim_drill.wait_state("running")
    sim_drill.wait_idle()
    yield sim_drill
    sim_drill.client.post("/queue", {"clear": True})
    sim_drill.probe.write_sim(DEVICE_BYTES, 0)


def set_foreign(drill, ratio):
    drill.probe.write_sim(DEVICE_BYTES, round(ratio * DEVICE_BYTES))


def building(server, prefix):
    workflow = as_shipped(server, api_workflow("building"), server.checkpoint_name)
    node_of(workflow, "DDColorColorize")["inputs"]["size"] = 1024
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] = prefix
    return workflow


def message_ms(entry, name):
    return next(data["timestamp"] for event, data in entry["status"]["messages"] if event == name)


class Sampler:
    """Samples /gpu_guard/status and /gpu_guard/ready every 50 ms on a thread while a prompt runs."""

    def __init__(self, drill):
        self.drill, self.samples, self._stop = drill, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            status = self.drill.status()
            ready = self.drill.client.get("/gpu_guard/ready").status_code
            self.samples.append((status["state"], status["reading"], ready))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def start_gap_s(drill, prefix):
    """Runs two building prompts back to back; the seconds from the first's end to the second's start
    (ComfyUI collects garbage in between, at most every 10 s, which can take a second on its own)."""
    server = drill.client
    first = server.post_prompt(building(server, prefix + "_a"))
    wait_until(lambda: server.queue()["queue_running"], timeout=60, what="the first prompt to run")
    second = server.post_prompt(building(server, prefix + "_b"))
    a, b = server.wait_history(first, timeout=600), server.wait_history(second, timeout=600)
    assert a["status"]["status_str"] == "success" and b["status"]["status_str"] == "success"
    return (message_ms(b, "execution_start") - message_ms(a, "execution_success")) / 1000, a, b


def test_a_prompts_working_set_is_never_pressure_and_the_next_prompt_starts_at_once(sim):
    server = sim.client
    set_foreign(sim, 0.60)
    before = sim.status()
    log_from = len(server.log_text())
    with Sampler(sim) as sampler:
        gap_s, a, b = start_gap_s(sim, "sim_ws")
    peak = max(reading["device_ratio"] for _, reading, _ in sampler.samples)
    assert peak > 0.85, f"the working set should take the device over 0.85, peak {peak}"
    assert {state for state, _, _ in sampler.samples} == {"running"}
    assert {ready for _, _, ready in sampler.samples} == {200}
    after = sim.status()
    assert after["transitions"] == before["transitions"], "no pause, no resume"
    assert after["adapter"]["free_requests"] == before["adapter"]["free_requests"], "no unload_models asked"
    assert UNLOAD_LINE not in server.log_text()[log_from:]
    # the last reading may have been taken while the prompt ran (its models are the prompt's then): the
    # next idle reading, within a poll interval, shows the model still loaded
    wait_until(lambda: sim.status()["reading"]["reclaimable"]["idle_models_bytes"] > 0, timeout=5,
               what="the model to show as loaded and idle")
    handover_s = after["adapter"]["last_handover_s"]
    print(f"\nworking set drill: device peak {peak:.3f}; the worker took the next prompt {handover_s * 1000:.1f} ms "
          f"after it came back from the first ({gap_s * 1000:.0f} ms from the first's execution_success to the "
          f"second's execution_start, ComfyUI's own garbage collection included)")
    assert handover_s < NEXT_PROMPT_WITHIN_S


def test_foreign_pressure_while_idle_pauses_and_resumes_within_200_ms(sim):
    set_foreign(sim, 0.90)
    sim.wait_state("paused")
    written_at = time.time()
    set_foreign(sim, 0.70)
    status = sim.wait_state("running")
    resumed_at = status["transitions"][-1]["at"]
    print(f"\nforeign pressure drill: resumed {(resumed_at - written_at) * 1000:.0f} ms after the memory dropped")
    assert status["transitions"][-1]["to"] == "running" and resumed_at - written_at < RESUME_WITHIN_S


def test_idle_unload_counts_from_the_end_of_a_prompt(sim):
    server = sim.client
    sim.set_config(idle_unload_s=2)

    def prompt(seed):
        gray = {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": seed}}
        workflow = ddcolor_workflow(server.checkpoint_name, gray)
        workflow["9"] = sleep_node(1.5, seed)
        return server.wait_history(server.post_prompt(workflow), timeout=120)

    unloads = sim.status()["adapter"]["idle_unloads"]
    last = None
    for seed in range(3):  # one at a time, 1 s apart: each would be unloaded before if counted from its start
        last = prompt(0x101010 * (seed + 1))
        assert last["status"]["status_str"] == "success"
        time.sleep(1.0)
        assert sim.status()["adapter"]["idle_unloads"] == unloads, "no unload between prompts"
    ended_at = message_ms(last, "execution_success") / 1000
    wait_until(lambda: sim.status()["adapter"]["idle_unloads"] == unloads + 1, timeout=10, what="the idle unload")
    unloaded_at = time.time()
    events = server.get_json("/gpu_guard/events?kind=reclaim")["events"]
    at = [e["at"] for e in events if e.get("action") == "idle_unload"][-1]
    print(f"\nidle unload drill: unloaded {at - ended_at:.2f} s after the last prompt ended (idle_unload_s=2)")
    assert 2.0 <= at - ended_at < 2.0 + COMFY_AFTER_PROMPT_S and unloaded_at - ended_at < 4.0
    time.sleep(1.0)
    assert sim.status()["adapter"]["idle_unloads"] == unloads + 1, "one unload"
