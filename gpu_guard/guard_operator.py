"""Operator actions on the guard: pause, resume, drain, and the "unguarded" flag an operator clears."""
from __future__ import annotations

import logging
from typing import Optional

from .policy import Admission

log = logging.getLogger("gpu_guard")

# "unguarded" stays set this long after the last hook failure (or until an operator clears it): longer
# than any scrape interval and alert `for:` window, so a failure that healed at once is still seen.
UNGUARDED_HEALTHY_S = 600.0


class OperatorActions:
    """A part of Guard (gpu_guard.guard): it runs on the guard's state and under its lock."""

    def operator_pause(self, by: str, reason: str = "") -> dict:
        """Hold every prompt as a memory pause does, until operator_resume; returns the pause record."""
        with self._queue.lock, self._lock:
            was_closed = self._gate_closed()
            if self._operator.pause(by, reason, self._wall()):
                log.warning("VRAM guard paused by the operator (%s)%s", by, f": {reason}" if reason else "")
                self.metrics.operator_paused.set(1)
                self._op("operator_pause", reason, by=by)
                self._after_change(was_closed)
                self._events.append(("gpu_guard.status", None))
                self._bump()
            record = dict(self._operator.paused)
        self._deliver()
        return record

    def operator_resume(self, by: str) -> Optional[dict]:
        """End an operator pause (the memory state still applies); returns the ended record or None."""
        with self._queue.lock, self._lock:
            was_closed = self._gate_closed()
            ended = self._operator.resume()
            if ended is not None:
                log.warning("VRAM guard resumed by the operator (%s)", by)
                self.metrics.operator_paused.set(0)
                self._op("operator_resume", f"paused by {ended['by']} since {ended['at']:.0f}", by=by)
                self._after_change(was_closed)
                self._events.append(("gpu_guard.status", None))
                self._bump()
        self._deliver()
        return ended

    def drain(self, by: str, reason: str = "") -> dict:
        """Refuse new prompts (429, readiness 503) and let the queued ones finish; returns the drain
        record with "left"."""
        with self._queue.lock, self._lock:
            if self._operator.drain(by, reason, self._wall()):
                log.warning("VRAM guard draining (%s): %d prompts left", by, self._drain_left())
                self.metrics.draining.set(1)
                self._op("drain", reason, by=by, left=self._drain_left())
                self._events.append(("gpu_guard.status", None))
                self._bump()
            record = dict(self._operator.draining, left=self._drain_left())
        self._deliver()
        return record

    def cancel_drain(self, by: str) -> Optional[dict]:
        with self._queue.lock, self._lock:
            ended = self._operator.cancel_drain()
            if ended is not None:
                log.warning("VRAM guard drain cancelled (%s)", by)
                self.metrics.draining.set(0)
                self._op("drain_cancel", f"draining since {ended['at']:.0f}", by=by)
                self._events.append(("gpu_guard.status", None))
                self._bump()
        self._deliver()
        return ended

    def drain_left(self) -> Optional[int]:
        """Prompts left (queued + running) while draining, else None."""
        with self._queue.lock, self._lock:
            return self._drain_left() if self._operator.draining is not None else None

    def _drain_left(self) -> int:
        return len(self._queue.view()) + (1 if self._worker.busy else 0)

    def _drain_refusal(self) -> Admission:
        d = self._operator.draining
        retry = self.config.retry_after_s
        return Admission(False, retry, f"this server is draining (by {d['by']}) and takes no new prompts; "
                         f"send the prompt to another server or retry in {retry} s")

    def note_unguarded(self, error: str) -> None:
        """The queue hook failed and ComfyUI's own get dispatched a prompt without the guard."""
        with self._queue.lock, self._lock:
            state = self._unguarded
            if not state["active"]:
                state.update(active=True, since=self._wall())
                self._events.append(("gpu_guard.status", None))
                self._bump()
            state["error"] = error
            state["count"] += 1
            self._unguarded_at = self._monotonic()
            self.metrics.unguarded.set(1)
            self._op("unguarded", f"the queue hook failed; ComfyUI's own get ran instead: {error}", error=error)
        self._deliver()

    def note_guarded(self) -> None:
        """A guarded dispatch: the flag clears once the hook has been healthy UNGUARDED_HEALTHY_S since
        its last failure (cheap when nothing failed)."""
        if not self._unguarded["active"] or self._monotonic() - self._unguarded_at < UNGUARDED_HEALTHY_S:
            return
        self.clear_unguarded(None)

    def clear_unguarded(self, by: Optional[str]) -> Optional[dict]:
        """End the "unguarded" state (an operator who has seen it, or `by` None: healthy for a while);
        returns the ended record or None."""
        with self._queue.lock, self._lock:
            if not self._unguarded["active"]:
                return None
            ended = dict(self._unguarded)
            self._unguarded.update(active=False, since=None)
            self.metrics.unguarded.set(0)
            log.warning("VRAM guard: the unguarded state was cleared (%s)", by or
                        f"no hook failure for {UNGUARDED_HEALTHY_S:.0f} s")
            self._events.append(("gpu_guard.status", None))
            self._bump()
        self._deliver()
        return ended
