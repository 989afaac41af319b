"""Sensor faults: the server keeps answering, the sensor policy is followed, errors are counted."""
import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui

FAULTS = {
    "missing": (lambda probe: probe.remove(), "does not exist"),
    "not JSON": (lambda probe: probe.write_text("{used: lots"), "is not JSON"),
    "used > total": (lambda probe: probe.write(12, 10), "exceeds total_bytes"),
    "negative": (lambda probe: probe.write(-5, 10), "must not be negative"),
    # 1e400 parses as infinity: the probe's int() raises OverflowError, not a probe error
    "exception": (lambda probe: probe.write_text('{"used_bytes": 1e400, "total_bytes": 10}'), "OverflowError"),
}


def wait_failing(drill, error_count_before):
    return wait_until(lambda: (lambda s: s if s["probe"]["failing"] and
                               s["probe"]["error_count"] >= error_count_before + 3 else None)(drill.status()),
                      what="the sensor to be declared failing")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fail_open_admits_prompts_and_shows_the_error(drill, fault):
    drill.set_config(sensor_policy="open", sensor_failures=3)
    drill.pause()
    held = drill.client.post_prompt(tiny_workflow(6000))
    before = drill.status()["probe"]["error_count"]
    make_fault, error_text = FAULTS[fault]
    make_fault(drill.probe)

    status = wait_failing(drill, before)
    assert error_text in status["probe"]["error"]
    assert status["probe"]["ok"] is False
    status = drill.wait_state("running")  # fail-open lets the held prompt through
    assert "failing open" in status["transitions"][-1]["reason"]
    assert drill.client.wait_history(held, timeout=30)["status"]["status_str"] == "success"
    assert drill.client.get("/system_stats").status_code == 200
    metrics = drill.client.get("/gpu_guard/metrics").text
    assert "gpu_guard_sensor_errors_total" in metrics
    ready = drill.client.get("/gpu_guard/ready").json()
    assert ready["ready"] is True and "sensor failing" in ready["reason"]

    drill.probe.write_ratio(0.1)
    recovered = wait_until(lambda: (lambda s: s if s["probe"]["ok"] else None)(drill.status()),
                           what="the sensor to recover")
    assert recovered["probe"]["consecutive_failures"] == 0
    assert recovered["probe"]["error_count"] >= before + 3


@pytest.mark.parametrize("fault", ["missing", "exception"])
def test_fail_closed_holds_prompts_until_the_sensor_recovers(drill, fault):
    drill.set_config(sensor_policy="closed", sensor_failures=3)
    before = drill.status()["probe"]["error_count"]
    make_fault, error_text = FAULTS[fault]
    make_fault(drill.probe)

    status = wait_failing(drill, before)
    assert error_text in status["probe"]["error"]
    status = drill.wait_state("paused")
    assert "failing closed" in status["transitions"][-1]["reason"]
    assert drill.client.get("/gpu_guard/ready").status_code == 503
    pid = drill.client.post_prompt(tiny_workflow(6100))
    wait_until(lambda: drill.held_ids() == [pid], what="the prompt to be held")
    assert drill.client.history(pid) is None

    drill.probe.write_ratio(0.1)
    drill.wait_state("running")
    assert drill.client.wait_history(pid, timeout=30)["status"]["status_str"] == "success"
