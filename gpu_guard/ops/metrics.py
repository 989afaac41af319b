"""Prometheus metrics of the operations layer, in a registry of its own (appended to the guard's)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from .alert_rules import FIRING, RESOLVED, RULE_NAMES


class OpsMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.pauses_today = Gauge("gpu_guard_pauses_today", "Pauses that started today (server's local day)",
                                  registry=r)
        self.paused_seconds_today = Gauge("gpu_guard_paused_seconds_today",
                                          "Seconds paused today (server's local day)", registry=r)
        self.events = Counter("gpu_guard_events", "Operational events, by kind", ["kind"], registry=r)
        self.event_log_errors = Counter("gpu_guard_event_log_write_errors", "Event log lines that could not "
                                        "be written", registry=r)
        self.alert_firing = Gauge("gpu_guard_alert_firing", "1 while a webhook alert rule's condition holds",
                                  ["rule"], registry=r)
        self.notifications = Counter("gpu_guard_alert_notifications", "Alert notifications sent to the "
                                     "webhook targets", ["rule", "status"], registry=r)
        self.deliveries = Counter("gpu_guard_webhook_deliveries", "Messages a webhook target accepted",
                                  ["target"], registry=r)
        self.retries = Counter("gpu_guard_webhook_retries", "Failed webhook attempts that were retried",
                               ["target"], registry=r)
        self.dead_letters = Counter("gpu_guard_webhook_dead_letters", "Webhook messages given up on",
                                    ["target"], registry=r)
        for rule in RULE_NAMES:
            self.alert_firing.labels(rule).set(0)
            for status in (FIRING, RESOLVED):
                self.notifications.labels(rule, status)

    def touch_target(self, name: str) -> None:
        """Export a target's counters at 0 from the start, so rate() and alerts see them."""
        self.deliveries.labels(name)
        self.retries.labels(name)
        self.dead_letters.labels(name)

    def delivered(self, name: str) -> None:
        self.deliveries.labels(name).inc()

    def retried(self, name: str) -> None:
        self.retries.labels(name).inc()

    def dead_letter(self, name: str) -> None:
        self.dead_letters.labels(name).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
