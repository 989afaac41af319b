"""The measure: used ratio as ComfyUI sees pressure (torch's reserved-but-unused memory counts as free)."""
import pytest

from gpu_guard.probes import ProbeError, Reading, pressure_ratio, torch_reclaimable_bytes


def test_ratio_without_reclaimable_memory():
    assert pressure_ratio(85, 100) == pytest.approx(0.85)


def test_reclaimable_memory_counts_as_free():
    # 90 used, of which torch holds 20 in its cache unused: ComfyUI sees 70 % pressure.
    assert pressure_ratio(90, 100, 20) == pytest.approx(0.70)


def test_ratio_is_clamped_to_the_unit_interval():
    assert pressure_ratio(10, 100, 50) == 0.0
    assert pressure_ratio(120, 100) == 1.0


def test_zero_total_is_a_probe_error():
    with pytest.raises(ProbeError, match="total memory must be > 0"):
        pressure_ratio(0, 0)


def test_torch_reclaimable_is_reserved_minus_active():
    stats = {"reserved_bytes.all.current": 6 << 30, "active_bytes.all.current": 4 << 30,
             "allocated_bytes.all.current": 3 << 30}
    assert torch_reclaimable_bytes(stats) == 2 << 30


def test_torch_reclaimable_without_stats_is_zero():
    assert torch_reclaimable_bytes({}) == 0


def test_reading_free_bytes_include_reclaimable():
    reading = Reading(used_bytes=90, total_bytes=100, reclaimable_bytes=20, at=0.0)
    assert reading.free_bytes == 30
    assert reading.ratio == pytest.approx(0.70)
    assert reading.as_dict()["ratio"] == pytest.approx(0.70)


def test_idle_models_do_not_count_as_pressure():
    gib = 1 << 30
    reading = Reading(used_bytes=90 * gib, total_bytes=100 * gib, reclaimable_bytes=4 * gib, at=0.0,
                      idle_models_bytes=6 * gib)
    assert reading.pressure_bytes == 80 * gib
    assert reading.ratio == pytest.approx(0.80)
    assert reading.device_ratio == pytest.approx(0.90)
    assert reading.free_bytes == 20 * gib
    shown = reading.as_dict()
    assert shown["reclaimable"] == {"torch_cache_bytes": 4 * gib, "idle_models_bytes": 6 * gib}
    assert shown["reclaimable_bytes"] == 10 * gib and shown["pressure_bytes"] == 80 * gib


def test_the_guard_counts_idle_models_at_each_reading(make_guard, probe_file):
    gib = 1 << 30
    guard = make_guard()
    idle = [0]
    guard.set_idle_models_source(lambda: idle[0])
    probe_file.write(used_bytes=90 * gib, total_bytes=100 * gib)
    guard.poll_once()
    assert guard.state == "paused"  # 90 % and nothing of it is ComfyUI's own
    idle[0] = 20 * gib  # ComfyUI loaded a model that is now idle
    guard.poll_once()
    assert guard.state == "running" and guard.reading.ratio == pytest.approx(0.70)


def test_idle_models_never_exceed_what_the_device_uses(make_guard, probe_file):
    gib = 1 << 30
    guard = make_guard()
    guard.set_idle_models_source(lambda: 50 * gib)  # e.g. the file probe says less than is loaded
    probe_file.write(used_bytes=10 * gib, total_bytes=100 * gib, reclaimable_bytes=2 * gib)
    guard.poll_once()
    assert guard.reading.idle_models_bytes == 8 * gib and guard.reading.pressure_bytes == 0


def test_a_failing_idle_models_source_counts_them_as_pressure(make_guard, probe_file, caplog):
    def broken():
        raise RuntimeError("model list changed")

    guard = make_guard()
    guard.set_idle_models_source(broken)
    probe_file.write(ratio=0.9)
    guard.poll_once()
    guard.poll_once()
    assert guard.state == "paused" and guard.reading.idle_models_bytes == 0
    assert caplog.text.count("could not measure ComfyUI's idle models") == 1
