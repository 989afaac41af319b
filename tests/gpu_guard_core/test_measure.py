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
