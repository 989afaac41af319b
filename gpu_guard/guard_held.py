"""The held set: while paused, the prompts queued in ComfyUI's heap, derived from it under the queue's
own lock (first-seen times and estimates are all the guard keeps), their cost estimates (made outside
every lock) and the rate-limited "gpu_guard.held" event."""
from __future__ import annotations

from typing import Sequence

from . import learned_peaks
from .policy import HeldPrompt

# "gpu_guard.held" goes out at most this often; the last state wins (a burst of puts is one event).
HELD_EVENT_INTERVAL_S = 0.25


class HeldSet:
    """A part of Guard (gpu_guard.guard): it runs on the guard's state and under its lock."""

    def note_pending(self, pending) -> None:
        """For a guard with no queue attached (tests, simple callers): the pending prompts are now
        `pending` (a gpu_guard.pending view or a list of QueueEntry)."""
        if not hasattr(self._queue, "note"):
            raise TypeError("note_pending is for a guard without an attached queue; this guard derives "
                            "its held set from the queue given to attach_queue")
        with self._queue.lock:
            self._queue.note(pending)
            self.queue_changed()

    def queue_changed(self) -> None:
        """The queue changed (a put, pop, delete or clear); the caller holds the queue's lock. Running,
        nothing is held and nothing is kept. While paused the held set follows at once when the
        "gpu_guard.held" rate limit (HELD_EVENT_INTERVAL_S) allows, else at the next decision pass,
        poll, status read or flush: a burst of puts costs a flag per put, not a sync (and never a sort)."""
        if not self._gate_closed():
            # read without our lock: every change that closes the gate holds the queue's lock, as our
            # caller does, and syncs the held set with the queue as it then is
            return
        with self._lock:
            if not self._gate_closed():
                return
            self._held_stale = True
            if self._monotonic() - self._held_event_at >= HELD_EVENT_INTERVAL_S:
                self._sync_held()
            else:
                self._held_event_due = True
        self._deliver()

    def estimate_held(self) -> int:
        """Estimate the held prompts that have no estimate yet, outside every lock (estimators are
        third-party code); the poll thread does it, woken when prompts join the held set. Returns how
        many were estimated."""
        with self._lock:
            todo = self._policy.needs_estimate()
        if not todo:
            return 0
        # the learned peak when there is one, else the nodes' estimate
        done = [(prompt_id, learned_peaks.need_of(prompt)) for prompt_id, prompt in todo]
        with self._lock:
            for prompt_id, (need, source) in done:
                self._policy.set_estimate(prompt_id, need, source)
            self._bump()  # a known cost may open the fast lane: the worker looks again
        return len(done)

    def flush_events(self) -> None:
        """Send a "gpu_guard.held" event that was held back by the rate limit, once it is due."""
        if not self._held_event_due:
            return
        with self._queue.lock, self._lock:
            self._sync_held()
            self._emit_held_if_due(self._monotonic())
        self._deliver()

    def _sync_held(self, view=None, urgent: bool = False) -> None:
        """Bring the held set up to the queue (gate closed only); the queue's lock is held. `view`: the
        caller's view of the queue, else the attached queue's."""
        if not self._held_stale or not self._gate_closed():
            return
        self._held_stale = False
        pending = (view or self._queue.view)()
        changed, left, joined = self._policy.sync(pending.ids(), pending.entries, self._monotonic())
        self._held_changed(left, joined, changed, urgent=urgent)

    def _held_changed(self, left: Sequence[HeldPrompt], joined: Sequence[HeldPrompt], changed: bool = False,
                      urgent: bool = False):
        if not (changed or left or joined):
            return  # the common case while holding: keep the worker's hook cheap
        now = self._monotonic()
        waits = [max(0.0, now - held.since) for held in left]
        for wait in waits:
            self.metrics.hold_wait.observe(wait)
        self.metrics.held_total.inc(len(joined))
        if joined:
            self._poller.wake()  # the poll thread estimates the newcomers
        self.metrics.held.set(len(self._policy.held))
        for kind, fields in self._episode.update(len(joined), waits, len(self._policy.held), now):
            self._op(kind, "prompts held while GPU memory pressure is high" if kind == "hold_start"
                     else "no prompt is held any more", **fields)
        self._held_event_due = True
        if urgent:
            self._held_event_at = float("-inf")
        self._emit_held_if_due(now)
        self._bump()

    def _emit_held_if_due(self, now: float) -> None:
        if self._held_event_due and now - self._held_event_at >= HELD_EVENT_INTERVAL_S:
            self._held_event_due = False
            self._held_event_at = now
            self._events.append(("gpu_guard.held", None))

    def _check_overdue(self) -> None:
        now = self._monotonic()
        for held in self._policy.overdue(now):
            self._alert("held_too_long", f"prompt {held.prompt_id} held for {now - held.since:.0f} s "
                        f"waiting for GPU memory pressure below {self.config.resume_at * 100:.0f} %",
                        prompt_id=held.prompt_id)
