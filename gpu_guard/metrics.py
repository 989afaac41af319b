"""Prometheus metrics of one guard, in a registry of its own (never the process-global one).

Names follow Prometheus conventions: base units in the name (_bytes, _ratio, _seconds), _total for
counters. Both memory figures are exported: the device's used memory (what nvidia-smi says) and the
pressure the guard acts on, with the reclaimable part by kind.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .probes import Reading

STATES = ("running", "paused", "off")
OOM_OUTCOMES = ("rescued", "recovered", "exhausted", "off")


class GuardMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.state = Enum("gpu_guard_state", "Guard state", states=list(STATES), registry=r)
        self.device_used = Gauge("gpu_guard_device_used_bytes", "Used device memory, all processes (as nvidia-smi)",
                                 registry=r)
        self.device_total = Gauge("gpu_guard_device_total_bytes", "Total device memory", registry=r)
        self.device_ratio = Gauge("gpu_guard_device_used_ratio", "Used fraction of the device", registry=r)
        self.pressure = Gauge("gpu_guard_pressure_bytes", "Device used minus what this ComfyUI can reclaim by "
                              "itself (its torch cache and idle models): what the guard acts on", registry=r)
        self.ratio = Gauge("gpu_guard_pressure_ratio", "Pressure as a fraction of the device; pauses at "
                           "pause_at, resumes below resume_at", registry=r)
        self.reclaimable = Gauge("gpu_guard_reclaimable_bytes", "Memory this ComfyUI can release by itself",
                                 ["kind"], registry=r)
        self.pause_at = Gauge("gpu_guard_pause_at_ratio", "Pressure ratio at which the guard pauses", registry=r)
        self.resume_at = Gauge("gpu_guard_resume_at_ratio", "Pressure ratio below which the guard resumes",
                               registry=r)
        self.max_held = Gauge("gpu_guard_max_held_prompts", "Hold queue bound (0 = unbounded)", registry=r)
        self.held = Gauge("gpu_guard_held_prompts", "Prompts held now", registry=r)
        self.pending = Gauge("gpu_guard_pending_prompts", "Prompts queued and not running, held ones included",
                             registry=r)
        self.unguarded = Gauge("gpu_guard_unguarded", "1 while the queue hook has fallen back to ComfyUI's own "
                               "get (prompts run unguarded)", registry=r)
        self.operator_paused = Gauge("gpu_guard_operator_paused", "1 while an operator paused the guard "
                                     "(POST /gpu_guard/pause)", registry=r)
        self.draining = Gauge("gpu_guard_draining", "1 while the server drains: new prompts are refused",
                              registry=r)
        self.class_held = Gauge("gpu_guard_class_held_prompts", "Prompts held now per priority class "
                                "(\"normal\" for prompts without a class token)", ["priority_class"], registry=r)
        self.class_submissions = Counter("gpu_guard_class_submissions", "/prompt submissions per priority class "
                                         "and answer (accepted, rejected with 429)", ["priority_class", "answer"],
                                         registry=r)
        self.sensor_failing = Gauge("gpu_guard_sensor_failing", "1 while the sensor policy applies", registry=r)
        self.transitions = Counter("gpu_guard_transitions", "State transitions", ["to"], registry=r)
        self.held_total = Counter("gpu_guard_prompts_held", "Prompts that were held", registry=r)
        self.admitted = Counter("gpu_guard_admitted_prompts", "Prompts let run", ["lane"], registry=r)
        self.failed = Counter("gpu_guard_failed_prompts", "Prompts failed by the hold timeout", registry=r)
        self.rejected = Counter("gpu_guard_rejected_prompts", "Submissions answered 429", registry=r)
        self.sensor_errors = Counter("gpu_guard_sensor_errors", "Failed readings", registry=r)
        self.reclaims = Counter("gpu_guard_reclaims", "Times ComfyUI was asked to release its idle models",
                                registry=r)
        self.oom_rescues = Counter("gpu_guard_oom_rescues", "Prompts that ran out of GPU memory, by outcome: "
                                   "rescued (put back to run again), recovered (a rescued prompt then succeeded), "
                                   "exhausted (oom_retries used up: ended as an error), off (oom_rescue off)",
                                   ["outcome"], registry=r)
        self.hold_wait = Histogram("gpu_guard_hold_wait_seconds", "Time prompts spent held", registry=r,
                                   buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))

        self._torch_cache = self.reclaimable.labels("torch_cache")
        self._idle_models = self.reclaimable.labels("idle_models")
        self._admitted_by_lane: dict = {}
        # exported at 0 from the start: increase() over a counter that first appears at 1 misses that step
        for state in ("running", "paused"):
            self.transitions.labels(state)
        for lane in ("normal", "fast"):
            self.admitted_in(lane)
        for outcome in OOM_OUTCOMES:
            self.oom_rescues.labels(outcome)

    def admitted_in(self, lane: str):
        """The admitted counter of one lane (cached: labels() costs a lock and a lookup per call)."""
        child = self._admitted_by_lane.get(lane)
        if child is None:
            child = self._admitted_by_lane[lane] = self.admitted.labels(lane)
        return child

    def observe_reading(self, reading: Reading) -> None:
        self.device_used.set(reading.used_bytes)
        self.device_total.set(reading.total_bytes)
        self.device_ratio.set(reading.device_ratio)
        self.pressure.set(reading.pressure_bytes)
        self.ratio.set(reading.ratio)
        self._torch_cache.set(reading.reclaimable_bytes)
        self._idle_models.set(reading.idle_models_bytes)

    def observe_config(self, config) -> None:
        self.pause_at.set(config.pause_at)
        self.resume_at.set(config.resume_at)
        self.max_held.set(config.max_held)

    def text(self) -> tuple:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
