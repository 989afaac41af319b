"""Counters the rules and the dashboard read exist at 0 from the start: increase() over a counter that
appears at 1 misses that first step (the first pause of a day would not count towards GpuGuardManyPauses,
a server that never fast-laned would show no fast-lane series)."""
from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import make_probe


def test_labelled_counters_are_exported_at_zero_before_their_first_event():
    probe, note = make_probe("off")
    text = Guard(GuardConfig(), probe, note).metrics_text()[0].decode()
    for line in ('gpu_guard_transitions_total{to="paused"} 0.0', 'gpu_guard_transitions_total{to="running"} 0.0',
                 'gpu_guard_admitted_prompts_total{lane="normal"} 0.0',
                 'gpu_guard_admitted_prompts_total{lane="fast"} 0.0'):
        assert line in text, line
