"""The simulated GPU (GPU_GUARD_PROBE=sim:PATH): foreign memory from the file, re-read at every reading,
plus this ComfyUI's models, the running prompt's working set and the torch-like cache it leaves."""
import json

import pytest

from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import ProbeError, SimProbe, make_probe
from gpu_guard.config import load

GIB = 1 << 30


@pytest.fixture
def sim(tmp_path):
    path = tmp_path / "device.json"

    def write(total=8 * GIB, foreign=0, **extra):
        path.write_text(json.dumps({"total_bytes": total, "foreign_bytes": foreign, **extra}))

    write()
    probe = SimProbe(str(path), wall=lambda: 5.0)
    return probe, write


def test_foreign_memory_is_re_read_at_every_reading(sim):
    probe, write = sim
    assert probe.read().used_bytes == 0
    write(foreign=3 * GIB)
    reading = probe.read()
    assert (reading.used_bytes, reading.total_bytes, reading.own_bytes) == (3 * GIB, 8 * GIB, 0)


def test_models_working_set_and_cache_follow_comfy(sim):
    probe, write = sim
    write(foreign=1 * GIB)
    models = [2 * GIB]
    probe.set_models_source(lambda: models[0])
    assert probe.read().used_bytes == 3 * GIB and probe.read().own_bytes == 2 * GIB

    probe.device.prompt_started(4 * GIB)  # the running prompt's working set
    running = probe.read()
    assert running.used_bytes == 7 * GIB and running.reclaimable_bytes == 0 and running.own_bytes == 6 * GIB

    probe.device.prompt_finished()  # the working set stays reserved, unused: reclaimable like torch's cache
    after = probe.read()
    assert after.used_bytes == 7 * GIB and after.reclaimable_bytes == 4 * GIB
    assert after.pressure_bytes == 3 * GIB

    probe.device.prompt_started(1 * GIB)  # the next prompt reuses the cache: the device does not grow
    reused = probe.read()
    assert reused.used_bytes == 7 * GIB and reused.reclaimable_bytes == 3 * GIB
    probe.device.prompt_finished()

    probe.device.cache_emptied()  # ComfyUI's soft_empty_cache
    assert probe.read().used_bytes == 3 * GIB and probe.read().reclaimable_bytes == 0
    models[0] = 0  # ComfyUI unloaded its model
    assert probe.read().used_bytes == 1 * GIB


def test_an_over_committed_device_reads_full(sim):
    probe, write = sim
    write(total=2 * GIB, foreign=int(1.5 * GIB))
    probe.device.prompt_started(1 * GIB)
    reading = probe.read()
    assert reading.used_bytes == 2 * GIB and reading.own_bytes == int(0.5 * GIB)
    probe.device.prompt_finished()  # foreign memory keeps its share: the cache cannot hide it
    assert probe.read().pressure_bytes == int(1.5 * GIB)


@pytest.mark.parametrize("content, message", [
    ({"total_bytes": 8}, "lacks foreign_bytes"),
    ({"total_bytes": 0, "foreign_bytes": 0}, "total_bytes must be > 0"),
    ({"total_bytes": 8, "foreign_bytes": -1}, "must not be negative"),
    ({"total_bytes": 8, "foreign_bytes": "a lot"}, "whole number of bytes"),
])
def test_bad_files_name_the_problem_and_the_fix(sim, tmp_path, content, message):
    probe, _ = sim
    (tmp_path / "device.json").write_text(json.dumps(content))
    with pytest.raises(ProbeError, match=message) as raised:
        probe.read()
    assert str(tmp_path / "device.json") in str(raised.value)


def test_a_failing_models_source_is_a_sensor_error(sim):
    probe, _ = sim
    probe.set_models_source(lambda: 1 // 0)
    with pytest.raises(ProbeError, match="loaded models could not be measured"):
        probe.read()


def test_the_setting_builds_it_and_says_it_is_a_drill_tool(tmp_path):
    spec = f"sim:{tmp_path / 'device.json'}"
    assert load(None, {"GPU_GUARD_PROBE": spec}).config.probe == spec
    probe, note = make_probe(spec, compute_device="cpu")
    assert isinstance(probe, SimProbe) and "drill tool" in note


def test_a_running_prompts_working_set_is_not_pressure(sim):
    """The guard splits the reading: while the worker runs a prompt, everything this process holds
    but its cache is the prompt's (no pause); between prompts the cache and idle models are freeable."""
    probe, write = sim
    write(total=2 * GIB, foreign=int(0.6 * 2 * GIB))
    guard = Guard(GuardConfig(probe="sim:x"), probe)
    guard.worker_waiting()
    guard.poll_once()
    assert guard.state == "running"
    guard.worker_took("heavy")
    probe.device.prompt_started(int(0.35 * 2 * GIB))  # the device reads 0.95
    guard.poll_once()
    reading = guard.reading
    assert reading.device_ratio > 0.85 and reading.ratio == pytest.approx(0.60, abs=1e-6)
    assert reading.as_dict()["running_prompt_bytes"] == int(0.35 * 2 * GIB)
    assert guard.state == "running" and guard.status()["transitions"] == []
    probe.device.prompt_finished()
    guard.worker_waiting()
    guard.poll_once()
    assert guard.state == "running" and guard.reading.reclaimable_bytes == int(0.35 * 2 * GIB)
    probe.device.cache_emptied()
    write(total=2 * GIB, foreign=int(0.9 * 2 * GIB))  # foreign pressure still pauses
    guard.poll_once()
    assert guard.state == "paused"


def test_a_replaced_file_of_the_same_size_is_read_again(tmp_path):
    """The probe parses the file again only when it changed; an atomic replace is always a change."""
    import os

    from gpu_guard.probes import FileProbe
    path = tmp_path / "probe.json"
    probe = FileProbe(str(path))
    for used in (1_000, 2_000, 3_000):  # same length every time
        tmp = tmp_path / "probe.json.tmp"
        tmp.write_text(json.dumps({"used_bytes": used, "total_bytes": 9_000}))
        os.replace(tmp, path)
        assert probe.read().used_bytes == used
