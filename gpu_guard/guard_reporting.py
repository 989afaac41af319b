"""The guard's reports: the status object, readiness, liveness and the Prometheus text."""
from __future__ import annotations

from typing import Optional

from .monitor import PAUSED
from .pack_version import VERSION as PACK_VERSION
from .priority import NORMAL
from .priority import enforced as priority_enforced

OFF = "off"


class Reporting:
    """A part of Guard (gpu_guard.guard): it runs on the guard's state and under its lock."""

    def status(self) -> dict:
        """The status object of the HTTP contract (docs/ARCHITECTURE.md)."""
        with self._queue.lock, self._lock:
            self._sync_held()
            m = self._monitor
            now = self._monotonic()
            return {
                "version": PACK_VERSION,
                "state": self.state,
                "probe": {"name": self._probe.name if self._probe else "off", "ok": m.error is None,
                          "error": m.error, "error_count": m.error_count,
                          "consecutive_failures": m.consecutive_failures, "failing": m.sensor_failing,
                          "policy": self.config.sensor_policy, "note": self._probe_note},
                "reading": m.reading.as_dict() if m.reading else None,
                "thresholds": {"pause_at": self.config.pause_at, "resume_at": self.config.resume_at},
                "held": self._policy.held_list(now),
                "pending": len(self._queue.view()),
                "hold_episode": self._episode.as_dict(now),
                "unguarded": dict(self._unguarded),
                "transitions": [t.as_dict() for t in m.transitions],
                "history": m.history(),
                "config": self.config_view(),
                "operator_pause": dict(self._operator.paused) if self._operator.paused else None,
                "drain": dict(self._operator.draining, left=self._drain_left()) if self._operator.draining
                else None,
                "worker": self._worker.as_dict(self.config.live_max_run_s),
                "priority": self._priority_status(),
            }

    def ready(self) -> tuple:
        """(ok, reason): False while the server cannot take a prompt: draining, paused with the hold
        queue full, or failing closed. A pause that can still hold is ready unless ready_strict is set
        (docs/scale_out.md: readiness that sheds load without outages)."""
        with self._queue.lock, self._lock:
            if self._operator.draining is not None:
                return False, f"draining: {self._drain_left()} prompts left; new prompts are refused"
            state = self.state
            if state == OFF:
                return True, "guard off: " + (self._probe_note or "disabled by the enabled setting")
            unguarded = (f"; prompts run UNGUARDED: the queue hook failed ({self._unguarded['error']})"
                         if self._unguarded["active"] else "")
            if state == PAUSED:
                full = self._hold_queue_full()
                reason = "paused: " + self._why_closed() + full + unguarded
                if full or self.config.ready_strict or self._monitor.failing_closed:
                    return False, reason + ("; ready_strict" if self.config.ready_strict and not full else "")
                return True, reason + "; new prompts are held"
            if unguarded:
                return True, "running" + unguarded
            if self._monitor.sensor_failing:
                return True, f"running unguarded: sensor failing ({self._monitor.error}), policy open"
            return True, "running"

    def priority_class_for(self, token: Optional[str]) -> Optional[dict]:
        """The priority class of a /prompt's bearer token, or None (the normal lane)."""
        return self.lanes.class_for_token(token)

    def _priority_status(self) -> dict:
        held = self._policy.held_by_class()
        lanes = [{"name": c["name"], "rank": rank, "max_held": c["max_held"], "held": held.get(c["name"], 0)}
                 for rank, c in enumerate(self.lanes.classes)]
        lanes.append({"name": NORMAL, "rank": len(lanes), "max_held": self.config.max_held,
                      "held": held.get(None, 0)})
        return {"enforce": priority_enforced(self.config), "max_wait_s": self.config.priority_max_wait_s,
                "classes": lanes}

    def live(self) -> tuple:
        """(ok, reason): ComfyUI's worker thread is alive and not stuck in one prompt longer than
        live_max_run_s (see worker_watch)."""
        return self._worker.verdict(self.config.live_max_run_s)

    def metrics_text(self) -> tuple:
        """(body bytes, content type) in Prometheus text format from the guard's own registry."""
        with self._queue.lock, self._lock:
            self._sync_held()
            self.metrics.held.set(len(self._policy.held))
            self.metrics.pending.set(len(self._queue.view()))
            held = self._policy.held_by_class()
            for name in [*self.lanes.names(), None]:
                self.metrics.class_held.labels(name or NORMAL).set(held.get(name, 0))
        return self.metrics.text()
