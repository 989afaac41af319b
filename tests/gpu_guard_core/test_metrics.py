"""Prometheus metrics in the guard's own registry."""
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gpu_guard import QueueEntry

UNKNOWN = {"1": {"class_type": "NodeWithoutEstimator", "inputs": {}}}


def samples(guard):
    body, content_type = guard.metrics_text()
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_metrics_follow_the_guard(make_guard, at_ratio, probe_file, clock):
    guard = make_guard(max_held=1)
    at_ratio(guard, 0.5)
    guard.decide(QueueEntry("a", 1, UNKNOWN))
    at_ratio(guard, 0.9)
    guard.note_pending([QueueEntry("b", 2, UNKNOWN)])
    guard.admission(1)
    probe_file.remove()
    guard.poll_once()
    clock.advance(3)
    at_ratio(guard, 0.1)
    s = samples(guard)
    assert s[("gpu_guard_state", (("gpu_guard_state", "running"),))] == 1
    assert s[("gpu_guard_state", (("gpu_guard_state", "paused"),))] == 0
    assert s[("gpu_guard_pressure_ratio", ())] == 0.1
    assert s[("gpu_guard_device_used_ratio", ())] == 0.1
    assert s[("gpu_guard_device_total_bytes", ())] == 100 * (1 << 30)
    assert s[("gpu_guard_transitions_total", (("to", "paused"),))] == 1
    assert s[("gpu_guard_transitions_total", (("to", "running"),))] == 1
    assert s[("gpu_guard_admitted_prompts_total", (("lane", "normal"),))] == 1
    assert s[("gpu_guard_prompts_held_total", ())] == 1
    assert s[("gpu_guard_held_prompts", ())] == 0
    assert s[("gpu_guard_pending_prompts", ())] == 1
    assert s[("gpu_guard_pause_at_ratio", ())] == 0.85 and s[("gpu_guard_resume_at_ratio", ())] == 0.75
    assert s[("gpu_guard_unguarded", ())] == 0 and s[("gpu_guard_sensor_failing", ())] == 0
    assert s[("gpu_guard_rejected_prompts_total", ())] == 1
    assert s[("gpu_guard_sensor_errors_total", ())] == 1
    assert s[("gpu_guard_hold_wait_seconds_count", ())] == 1
    assert s[("gpu_guard_hold_wait_seconds_sum", ())] == 3.0


def test_each_guard_has_its_own_registry(make_guard, at_ratio):
    first, second = make_guard(), make_guard()
    at_ratio(first, 0.9)
    assert samples(first)[("gpu_guard_transitions_total", (("to", "paused"),))] == 1
    assert samples(second)[("gpu_guard_transitions_total", (("to", "paused"),))] == 0  # exported at 0, not shared
    assert REGISTRY.get_sample_value("gpu_guard_pressure_ratio") is None


def test_both_memory_figures_and_the_reclaimable_kinds(make_guard, probe_file):
    gib = 1 << 30
    guard = make_guard()
    guard.set_idle_models_source(lambda: 6 * gib)
    probe_file.write(used_bytes=90 * gib, total_bytes=100 * gib, reclaimable_bytes=4 * gib)
    guard.poll_once()
    s = samples(guard)
    assert s[("gpu_guard_device_used_bytes", ())] == 90 * gib
    assert s[("gpu_guard_device_used_ratio", ())] == 0.9
    assert s[("gpu_guard_reclaimable_bytes", (("kind", "torch_cache"),))] == 4 * gib
    assert s[("gpu_guard_reclaimable_bytes", (("kind", "idle_models"),))] == 6 * gib
    assert s[("gpu_guard_pressure_bytes", ())] == 80 * gib
    assert s[("gpu_guard_pressure_ratio", ())] == 0.8
