"""Hysteresis seen through a real ComfyUI's /gpu_guard/status, readings from the probe file."""
import pytest

pytestmark = pytest.mark.comfyui


def transitions(status):
    return [(t["from"], t["to"]) for t in status["transitions"]]


def test_pause_at_085_stays_paused_at_075_resumes_at_0749(drill):
    assert drill.read_ratio(0.849)["state"] == "running"
    status = drill.read_ratio(0.85)
    assert status["state"] == "paused"
    last = status["transitions"][-1]
    assert (last["from"], last["to"]) == ("running", "paused")
    assert last["ratio"] == pytest.approx(0.85)

    status = drill.read_ratio(0.75)
    assert status["state"] == "paused", "0.75 is not below resume_at 0.75: the guard must stay paused"

    status = drill.read_ratio(0.749)
    assert status["state"] == "running"
    last = status["transitions"][-1]
    assert (last["from"], last["to"]) == ("paused", "running")
    assert last["ratio"] == pytest.approx(0.749)


@pytest.mark.parametrize("start_state, start_ratio", [("running", 0.50), ("paused", 0.95)])
def test_readings_between_thresholds_cause_no_transition(drill, start_state, start_ratio):
    assert drill.read_ratio(start_ratio)["state"] == start_state
    before = transitions(drill.status())
    for ratio in (0.76, 0.84, 0.80, 0.76, 0.84, 0.77, 0.83, 0.76, 0.84):
        status = drill.read_ratio(ratio)  # waits until the guard has taken this very reading
        assert status["state"] == start_state
    assert transitions(drill.status()) == before


def test_status_shows_thresholds_probe_and_reading_history(drill):
    drill.read_ratio(0.42)
    status = drill.status()
    assert status["thresholds"] == {"pause_at": 0.85, "resume_at": 0.75}
    assert status["probe"]["ok"] is True
    assert status["probe"]["name"].startswith("file")
    assert status["reading"]["total_bytes"] == 10_000_000_000
    assert status["reading"]["used_bytes"] == 4_200_000_000
    assert any(abs(ratio - 0.42) < 1e-9 for _t, ratio in status["history"])


def test_api_prefixed_routes_answer_the_same(drill):
    plain = drill.client.get_json("/gpu_guard/config")
    prefixed = drill.client.get_json("/api/gpu_guard/config")
    assert plain == prefixed
    assert drill.client.get_json("/api/gpu_guard/status")["state"] == "running"
