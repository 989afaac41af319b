"""Prometheus metrics of one guard, in a registry of its own (never the process-global one)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .probes import Reading

STATES = ("running", "paused", "off")


class GuardMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.state = Enum("gpu_guard_state", "Guard state", states=list(STATES), registry=r)
        self.ratio = Gauge("gpu_guard_used_ratio", "Used memory ratio as the guard measures it", registry=r)
        self.used = Gauge("gpu_guard_used_bytes", "Used device memory", registry=r)
        self.total = Gauge("gpu_guard_total_bytes", "Total device memory", registry=r)
        self.reclaimable = Gauge("gpu_guard_reclaimable_bytes", "Reserved but unused by this process's torch",
                                 registry=r)
        self.held = Gauge("gpu_guard_held", "Prompts held now", registry=r)
        self.transitions = Counter("gpu_guard_transitions", "State transitions", ["to"], registry=r)
        self.held_total = Counter("gpu_guard_held_prompts", "Prompts that were held", registry=r)
        self.admitted = Counter("gpu_guard_admitted_prompts", "Prompts let run", ["lane"], registry=r)
        self.failed = Counter("gpu_guard_failed_prompts", "Prompts failed by the hold timeout", registry=r)
        self.rejected = Counter("gpu_guard_rejected_prompts", "Submissions answered 429", registry=r)
        self.sensor_errors = Counter("gpu_guard_sensor_errors", "Failed readings", registry=r)
        self.free_requests = Counter("gpu_guard_free_requests", "Times ComfyUI was asked to free memory",
                                     registry=r)
        self.hold_wait = Histogram("gpu_guard_hold_wait_seconds", "Time prompts spent held", registry=r,
                                   buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))

        self._admitted_by_lane: dict = {}

    def admitted_in(self, lane: str):
        """The admitted counter of one lane (cached: labels() costs a lock and a lookup per call)."""
        child = self._admitted_by_lane.get(lane)
        if child is None:
            child = self._admitted_by_lane[lane] = self.admitted.labels(lane)
        return child

    def observe_reading(self, reading: Reading) -> None:
        self.ratio.set(reading.ratio)
        self.used.set(reading.used_bytes)
        self.total.set(reading.total_bytes)
        self.reclaimable.set(reading.reclaimable_bytes)

    def text(self) -> tuple:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
