"""A warm model cache is not pressure: ComfyUI evicts its idle models by itself when the next prompt
needs the room, so the guard acts on device used minus those models (real ComfyUI, file probe).

The device is 2 GiB; the person workflow loads the tiny DDColor model (about 220 MB, fp32) and
ComfyUI keeps it loaded on its compute device afterwards.
"""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gpu_guard.guard_drill import wait_until
from tests.nodes.comfy_io import api_workflow, as_shipped, node_of

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

DEVICE_BYTES = 2 << 30
UNLOAD_LINE = "Unloading PatchableDDColor"


def person_workflow(server, prefix="warm_cache"):
    workflow = as_shipped(server, api_workflow("person"), server.checkpoint_name)
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] = prefix
    return workflow


def test_a_warm_model_cache_neither_pauses_nor_gets_unloaded(drill):
    server = drill.client
    if not server.checkpoint_name:
        pytest.skip("no synthetic DDColor checkpoint could be made, so no model can be loaded")
    drill.read_ratio(0.30, total_bytes=DEVICE_BYTES)  # above the model size: nothing capped
    ran = server.post_prompt(person_workflow(server))
    assert server.wait_history(ran, timeout=300)["status"]["status_str"] == "success"
    status = wait_until(lambda: (lambda s: s if s["reading"]["reclaimable"]["idle_models_bytes"] > 0 else None)(
        drill.status()), what="the guard to see the loaded model")
    idle = status["reading"]["reclaimable"]["idle_models_bytes"]
    assert 200e6 < idle < 240e6, f"the tiny model in fp32 is about 220 MB, the guard sees {idle}"
    transitions_before = len(status["transitions"])
    log_from = len(server.log_text())

    # The device reads 90 % used, but 10 % of it is ComfyUI's own idle model: pressure about 80 %.
    status = drill.read_ratio(0.90, total_bytes=DEVICE_BYTES)
    reading = status["reading"]
    assert status["state"] == "running"
    assert reading["device_ratio"] == pytest.approx(0.90, abs=1e-6)
    assert reading["ratio"] == pytest.approx(0.90 - idle / DEVICE_BYTES, abs=1e-6)
    # the next job of the same kind (a prompt that drops the model from ComfyUI's cache would free its
    # memory with it, which a file probe cannot show)
    started = server.post_prompt(person_workflow(server, prefix="warm_cache_again"))
    assert server.wait_history(started, timeout=120)["status"]["status_str"] == "success"
    status = drill.status()
    assert len(status["transitions"]) == transitions_before, "no pause is recorded"
    assert status["reading"]["reclaimable"]["idle_models_bytes"] == idle, "the model stays loaded"
    assert UNLOAD_LINE not in server.log_text()[log_from:]
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(server.get("/gpu_guard/metrics").text)
               for s in family.samples}
    assert metrics[("gpu_guard_device_used_bytes", ())] == round(0.9 * DEVICE_BYTES)
    assert metrics[("gpu_guard_reclaimable_bytes", (("kind", "idle_models"),))] == idle
    assert metrics[("gpu_guard_pressure_bytes", ())] == round(0.9 * DEVICE_BYTES) - idle

    # Pressure reaches the pause mark once the reading minus the idle model is 85 %: about 96 % used.
    pause_used = 0.85 + idle / DEVICE_BYTES + 0.001
    assert drill.read_ratio(pause_used, total_bytes=DEVICE_BYTES)["state"] == "paused"
    # ... and it resumes once the pressure is below 75 %.
    assert drill.read_ratio(0.75 + idle / DEVICE_BYTES + 0.001, total_bytes=DEVICE_BYTES)["state"] == "paused"
    assert drill.read_ratio(0.75 + idle / DEVICE_BYTES - 0.002, total_bytes=DEVICE_BYTES)["state"] == "running"
