"""The guard's facade: the one object the ComfyUI adapter talks to.

It ties together the probe, the hysteresis monitor (fed by a background poll thread), the admission
policy, the settings and the metrics. Nothing here imports ComfyUI; the adapter feeds it the queue's
entries and acts on its verdicts (see docs/gpu_guard_core_api.md).

Thread safety: every public method may be called from any thread (ComfyUI's worker thread, the
aiohttp loop, the poll thread). Event callbacks run on the thread that caused the change, after the
guard's lock is released, and must not block.
"""
from __future__ import annotations

import dataclasses
import hmac
import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from . import config as config_module
from .config import GuardConfig
from .episodes import HoldEpisode
from .metrics import GuardMetrics
from .monitor import PAUSED, RUNNING, Monitor, Transition
from .operator_hold import OperatorHold
from .priority import NORMAL, Lanes
from .priority import enforced as priority_enforced
from .pack_version import VERSION as PACK_VERSION
from .pending import NOTHING_PENDING, Pending, as_pending
from .policy import (FAIL, HOLD, LANE_FAST, LANE_NORMAL, RUN, RUN_NORMAL, Admission, HeldPrompt, PassResult,
                     Policy, QueueEntry, Verdict)
from .probes import ProbeError, Reading, make_probe
from .worker_watch import WorkerWatch

__all__ = ["Admission", "FAIL", "Guard", "HOLD", "LANE_FAST", "LANE_NORMAL", "PassResult", "QueueEntry", "RUN",
           "Verdict"]

log = logging.getLogger("gpu_guard")

OFF = "off"

# While paused, readings come at least this often: the resume is what users wait for.
PAUSED_POLL_S = 0.1
# "gpu_guard.held" goes out at most this often; the last state wins (a burst of puts is one event).
HELD_EVENT_INTERVAL_S = 0.25
# After a prompt ran during a hold episode, the reclaim may be asked again, but not more often than this.
RECLAIM_REARM_S = 5.0


class Guard:
    """VRAM guard facade; see docs/gpu_guard_core_api.md."""

    def __init__(self, config: GuardConfig, probe, probe_note: Optional[str] = None, *,
                 pinned: frozenset = frozenset(), config_file: Optional[str] = None, token: Optional[str] = None,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.config = config
        self.pinned = frozenset(pinned)
        self.config_file = config_file
        self._token = token
        self._probe = probe
        self._probe_note = probe_note
        self._monotonic, self._wall = monotonic, wall
        self._monitor = Monitor(config.pause_at, config.resume_at, config.sensor_failures, config.sensor_policy)
        self._policy = Policy(config)
        self._operator = OperatorHold()  # operator pause and drain, independent of the memory state
        self.lanes = Lanes(config.priority_classes)  # priority classes (VIP lanes)
        self._worker = WorkerWatch(monotonic)  # liveness: the queue hook reports ComfyUI's worker
        self.metrics = GuardMetrics()
        self._lock = threading.RLock()
        # Serialises update_config (validate, write, apply) so that no concurrent change is lost or
        # applied unvalidated; the guard's own lock is not held while the file is written.
        self._config_updates = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._idle_models: Callable[[], int] = lambda: 0
        self._idle_models_failed = False
        self._reclaim_at: Optional[float] = None  # monotonic time of this episode's last reclaim
        self._ran_since_reclaim = False
        self._pending: Pending = NOTHING_PENDING  # the adapter's last view of the queue
        self._pending_dirty = False  # the held set has not seen the last view yet
        self._episode = HoldEpisode()
        self._held_event_at = float("-inf")
        self._held_event_due = False
        self._unguarded = {"active": False, "since": None, "error": None, "count": 0}
        self._subscribers: list = []
        self._event_subscribers: list = []
        self._events: list = []  # collected under the lock, delivered after it is released
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.metrics.state.state(self.state)
        self.metrics.observe_config(config)
        if probe_note:
            log.warning("VRAM guard probe: %s", probe_note)

    @classmethod
    def from_environment(cls, config_file: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
                         device_index: Optional[int] = None, compute_device: Optional[str] = None) -> "Guard":
        """Settings from defaults < config_file (JSON) < environment; never raises for bad values
        (each bad setting is logged loudly and falls back to its default). `compute_device`: the type of
        ComfyUI's torch device (see make_probe)."""
        source = config_module.load(config_file, environ)
        probe, note = make_probe(source.config.probe, device_index, compute_device=compute_device)
        return cls(source.config, probe, note, pinned=source.pinned, config_file=config_file, token=source.token)

    def set_idle_models_source(self, idle_models: Callable[[], int]) -> None:
        """`idle_models()` -> bytes held by this ComfyUI's loaded models on the guarded device. Called at
        each reading; the guard decides only while the worker is idle, so every loaded model is evictable
        by ComfyUI itself and does not count as pressure."""
        self._idle_models = idle_models

    # -- poll thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Take a first reading now, then poll on a background daemon thread. Idempotent."""
        if self._probe is None or (self._thread and self._thread.is_alive()):
            return
        self._stop.clear()
        self.poll_once()
        self._thread = threading.Thread(target=self._run, name="gpu-guard-poll", daemon=True)
        self._thread.start()
        log.info("VRAM guard started: probe %s, pause at %.2f, resume below %.2f, poll every %g s",
                 self._probe.name, self.config.pause_at, self.config.resume_at, self.config.poll_s)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the poll thread. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None

    def request_poll(self) -> None:
        """Wake the poll thread so it measures now (e.g. after ComfyUI released its memory)."""
        self._wake.set()

    def poll_interval(self) -> float:
        """poll_s, or at most PAUSED_POLL_S while paused (probe reads cost microseconds)."""
        poll_s = self.config.poll_s
        return min(poll_s, PAUSED_POLL_S) if self._gate_closed() else poll_s

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_interval()
        while not self._stop.is_set():
            wait = max(0.0, next_poll - time.monotonic())
            if self._held_event_due:
                wait = min(wait, max(0.0, self._held_event_at + HELD_EVENT_INTERVAL_S - self._monotonic()))
            woken = self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if woken or time.monotonic() >= next_poll:
                    self.poll_once()
                    next_poll = time.monotonic() + self.poll_interval()
                self.flush_events()
            except Exception:  # noqa: BLE001 - the poll thread must outlive any bug
                log.exception("VRAM guard poll failed unexpectedly")

    def _measure(self) -> Reading:
        reading = self._probe.read()
        try:
            idle = int(self._idle_models() or 0)
            self._idle_models_failed = False
        except Exception:  # noqa: BLE001 - the reading stands without the refinement
            if not self._idle_models_failed:
                log.exception("VRAM guard: could not measure ComfyUI's idle models; counting them as pressure")
            self._idle_models_failed, idle = True, 0
        idle = max(0, min(idle, reading.used_bytes - reading.reclaimable_bytes))
        return dataclasses.replace(reading, idle_models_bytes=idle) if idle else reading

    def poll_once(self) -> None:
        """Take one reading now and update the state (what the poll thread does every poll interval)."""
        if self._probe is None:
            return
        reading, error = None, None
        try:
            reading = self._measure()
        except ProbeError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a sensor bug counts as a sensor failure
            error = f"{type(e).__name__}: {e}"
        with self._lock:
            was_closed = self._gate_closed()
            was_failing = self._monitor.sensor_failing
            if error is None:
                self.metrics.observe_reading(reading)
                transition = self._monitor.observe(reading)
                if was_failing:
                    self._op("sensor_recovered", "the sensor reads again")
            else:
                self.metrics.sensor_errors.inc()
                transition = self._monitor.observe_failure(error, self._wall())
                if self._monitor.consecutive_failures == self.config.sensor_failures:
                    message = (f"sensor failed {self.config.sensor_failures} polls in a row: {error}; "
                               f"policy {self.config.sensor_policy}")
                    self._alert("sensor_failing", message)
                    self._op("sensor_failure", message, error=error,
                             consecutive=self._monitor.consecutive_failures)
            self.metrics.sensor_failing.set(1 if self._monitor.sensor_failing else 0)
            if transition:
                self._on_transition(transition)
            self._after_change(was_closed)
            self._sync_held()
            self._check_overdue()
            if self._policy.held:  # a fresh reading may open the fast lane for a held prompt
                self._bump()
        self._deliver()

    def flush_events(self) -> None:
        """Send a "gpu_guard.held" event that was held back by the rate limit, once it is due."""
        if not self._held_event_due:
            return
        with self._lock:
            self._sync_held()
            self._emit_held_if_due(self._monotonic())
        self._deliver()

    # -- state ---------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """"running" | "paused" | "off" ("paused" also while an operator paused the guard)."""
        if self._operator.paused is not None:
            return PAUSED
        if self._probe is None or not self.config.enabled:
            return OFF
        return self._monitor.state

    @property
    def reading(self):
        """The last good Reading, or None."""
        return self._monitor.reading

    def _gate_closed(self) -> bool:
        return self.state == PAUSED

    def _why_closed(self) -> str:
        if self._operator.paused is not None:
            return self._operator.why_paused()
        last = self._monitor.transitions[-1] if self._monitor.transitions else None
        return last.reason if last else "paused"

    # -- the queue hook --------------------------------------------------------------------------------

    def decide(self, entry: QueueEntry) -> Verdict:
        """Decide for one entry on its own (tests, simple callers). The queue hook uses decide_pass."""
        with self._lock:
            now = self._monotonic()
            verdict, left, joined = self._policy.decide(
                entry, now, self._gate_closed(), self._monitor.reading, by_pressure=self._by_pressure())
            self._count_verdict(entry.prompt_id, verdict)
            self._held_changed(left=[left] if left else [], joined=[joined] if joined else [])
        self._deliver()
        return verdict

    def decide_pass(self, first: QueueEntry, pending: Callable[[], Pending]) -> PassResult:
        """One decision pass of the worker, against one reading of the gate: with the gate open the
        heap's first prompt runs; with it closed, prompts past the hold timeout fail and at most one
        held prompt runs in the fast lane. `pending()` views the whole queue (gpu_guard.pending); it is
        called with the gate closed, or when a priority-class prompt heads the queue and aging is on,
        while the caller still holds the queue's mutex."""
        with self._lock:
            if not self._gate_closed():
                self.metrics.admitted_in(LANE_NORMAL).inc()
                if first.priority_class is not None and self.config.priority_max_wait_s > 0:
                    aged = self._aged_normal_before(first, pending())
                    if aged is not None:
                        return PassResult(aged.prompt_id, RUN_NORMAL)
                return PassResult(first.prompt_id, RUN_NORMAL)
            self._pending, self._pending_dirty = pending(), True
            self._sync_held()
            result, left = self._policy.closed_pass(self._monotonic(), self._monitor.reading,
                                                    by_pressure=self._by_pressure())
            for prompt_id, verdict in result.fails:
                self._count_verdict(prompt_id, verdict)
            if result.run is not None:
                self._count_verdict(result.run, result.verdict)
            self._held_changed(left=left, joined=[])
        self._deliver()
        return result

    def note_pending(self, pending) -> None:
        """Tell the guard the pending prompts (a gpu_guard.pending view or a list of QueueEntry) at
        every queue change, so it can track the held set, positions and waited times. While paused the
        held set follows at once when the "gpu_guard.held" rate limit (HELD_EVENT_INTERVAL_S) allows,
        else at the next decision pass, poll, status read or flush: a burst of puts costs a stored view
        per put, not a sync (and never a sort)."""
        with self._lock:
            self._pending, self._pending_dirty = as_pending(pending), True
            if self._gate_closed():
                if self._monotonic() - self._held_event_at >= HELD_EVENT_INTERVAL_S:
                    self._sync_held()
                else:
                    self._held_event_due = True
        self._deliver()

    def admission(self, held_count: int, priority_class: Optional[dict] = None) -> Admission:
        """Accept or reject a /prompt submission given the number of prompts held now in its lane
        (`priority_class`: the class its token gave it, see priority_class_for; None = normal)."""
        lane = priority_class["name"] if priority_class else NORMAL
        with self._lock:
            if self._operator.draining is not None:
                answer = self._drain_refusal()
            else:
                answer = self._policy.admission(held_count, self._gate_closed(), self._why_closed(),
                                                priority_class)
            self.metrics.class_submissions.labels(lane, "accepted" if answer.accept else "rejected").inc()
            if not answer.accept:
                self.metrics.rejected.inc()
                bound = priority_class["max_held"] if priority_class else self.config.max_held
                self._op("rejected", answer.message, held=held_count, max_held=bound, priority_class=lane,
                         retry_after_s=answer.retry_after_s)
        self._deliver()
        return answer

    def should_request_free(self) -> bool:
        """True when the adapter, with nothing running, should ask ComfyUI to release its idle models:
        once per hold episode, and again after a prompt ran during it (at most every RECLAIM_REARM_S)."""
        with self._lock:
            if not self.config.free_on_hold or not self._gate_closed() or self._monitor.sensor_failing:
                return False
            now = self._monotonic()
            if self._reclaim_at is not None and not (self._ran_since_reclaim
                                                     and now - self._reclaim_at >= RECLAIM_REARM_S):
                return False
            self._sync_held()
            if not self._policy.held:
                return False
            self._reclaim_at, self._ran_since_reclaim = now, False
            self.metrics.reclaims.inc()
            log.info("VRAM guard: prompts held while idle; asking ComfyUI to release its idle models")
            self._op("reclaim", "prompts held and nothing running: released ComfyUI's idle models",
                     action="unload_models")
        self._deliver()
        return True

    def note_idle_unload(self, idle_s: float) -> None:
        """The adapter released ComfyUI's idle models after idle_unload_s without a prompt."""
        with self._lock:
            self.metrics.reclaims.inc()
            log.info("VRAM guard: no prompt for %.0f s; released ComfyUI's idle models (idle_unload_s)", idle_s)
            self._op("reclaim", f"no prompt for {idle_s:.0f} s (idle_unload_s={self.config.idle_unload_s:g})",
                     action="idle_unload")
        self._deliver()

    def note_unguarded(self, error: str) -> None:
        """The queue hook failed and ComfyUI's own get dispatched a prompt without the guard."""
        with self._lock:
            state = self._unguarded
            if not state["active"]:
                state.update(active=True, since=self._wall())
                self._events.append(("gpu_guard.status", None))
                self._bump()
            state["error"] = error
            state["count"] += 1
            self.metrics.unguarded.set(1)
            self._op("unguarded", f"the queue hook failed; ComfyUI's own get ran instead: {error}", error=error)
        self._deliver()

    def note_guarded(self) -> None:
        """The queue hook works again after a fallback (cheap when nothing failed)."""
        if not self._unguarded["active"]:
            return
        with self._lock:
            self._unguarded.update(active=False, since=None)
            self.metrics.unguarded.set(0)
            self._events.append(("gpu_guard.status", None))
            self._bump()
        self._deliver()

    # -- reporting -------------------------------------------------------------------------------------

    def status(self) -> dict:
        """The status object of the HTTP contract (docs/ARCHITECTURE.md)."""
        with self._lock:
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
                "pending": len(self._pending),
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
        with self._lock:
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

    # -- the worker, as the queue hook sees it (called on ComfyUI's worker thread) -----------------------

    def worker_waiting(self) -> None:
        self._worker.waiting()

    def worker_took(self, prompt_id: str) -> None:
        self._worker.took(prompt_id)

    # -- operator: pause, resume, drain ----------------------------------------------------------------

    def operator_pause(self, by: str, reason: str = "") -> dict:
        """Hold every prompt as a memory pause does, until operator_resume; returns the pause record."""
        with self._lock:
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
        with self._lock:
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
        with self._lock:
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
        with self._lock:
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
        with self._lock:
            return self._drain_left() if self._operator.draining is not None else None

    def metrics_text(self) -> tuple:
        """(body bytes, content type) in Prometheus text format from the guard's own registry."""
        with self._lock:
            self._sync_held()
            self.metrics.held.set(len(self._policy.held))
            self.metrics.pending.set(len(self._pending))
            held = self._policy.held_by_class()
            for name in [*self.lanes.names(), None]:
                self.metrics.class_held.labels(name or NORMAL).set(held.get(name, 0))
        return self.metrics.text()

    # -- settings --------------------------------------------------------------------------------------

    def config_view(self) -> dict:
        """Current settings plus "pinned": names fixed by environment variables (the token is never shown)."""
        view = config_module.public_view(self.config)
        view["pinned"] = sorted(self.pinned)
        view["token_set"] = self.token_set
        return view

    def update_config(self, partial: Mapping[str, Any]) -> tuple:
        """Validate and apply a partial update; persist it to the config file. Returns (config_view, errors);
        with errors nothing is applied. Blocks on the file write: call it off the event loop."""
        with self._config_updates:
            with self._lock:
                new, errors = config_module.validate_update(self.config, partial, self.pinned)
                if errors:
                    return self.config_view(), errors
            if self.config_file:
                try:
                    config_module.persist(self.config_file, {k: getattr(new, k) for k in partial})
                except (OSError, ValueError) as e:
                    return self.config_view(), [f"could not save the settings to {self.config_file} ({e}); "
                                                "nothing was changed - check the file and its folder"]
            self._apply_config(new, partial)
        self._wake.set()  # a new poll_s applies now
        self._deliver()
        return self.config_view(), []

    def _apply_config(self, new: GuardConfig, partial: Mapping[str, Any]) -> None:
        with self._lock:
            was_closed = self._gate_closed()
            self.config = self._policy.config = new
            self.lanes.update(new.priority_classes)
            transition = self._monitor.configure(new.pause_at, new.resume_at, new.sensor_failures,
                                                 new.sensor_policy, at=self._wall())
            if transition:
                self._on_transition(transition)
            changed = {k: config_module.shown_value(k, getattr(new, k)) for k in partial}
            log.info("VRAM guard settings changed: %s", changed)
            self._op("config_change", "settings changed: " + ", ".join(sorted(changed)), changed=changed)
            self._after_change(was_closed)
            self._bump()
            self._events.append(("gpu_guard.status", None))

    @property
    def token_set(self) -> bool:
        """Whether GPU_GUARD_TOKEN is configured (the token itself is never shown)."""
        return self._token is not None

    def check_token(self, token: Optional[str]) -> bool:
        """True when a token is configured and matches (constant-time)."""
        if not self._token or not token:
            return False
        return hmac.compare_digest(self._token.encode(), str(token).encode())

    # -- change notification ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str, dict], None]) -> Callable[[], None]:
        """callback(event, payload) for "gpu_guard.status", "gpu_guard.held", "gpu_guard.alert";
        returns a function that unsubscribes."""
        return self._add_subscriber(self._subscribers, callback)

    def subscribe_events(self, callback: Callable[[dict], None]) -> Callable[[], None]:
        """callback(event) for every operational event (docs/gpu_guard_core_api.md: pause, resume,
        hold_start, hold_end, rejected, hold_timeout, reclaim, sensor_failure, sensor_recovered,
        config_change, fast_lane, unguarded); returns a function that unsubscribes."""
        return self._add_subscriber(self._event_subscribers, callback)

    def _add_subscriber(self, subscribers: list, callback) -> Callable[[], None]:
        with self._lock:
            subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in subscribers:
                    subscribers.remove(callback)

        return unsubscribe

    @property
    def version(self) -> int:
        """A counter bumped on every state, held-set or config change (and every reading while holding)."""
        return self._version

    def wait_for_change(self, timeout: float, since: Optional[int] = None) -> bool:
        """Block up to timeout seconds until version differs from since (default: the version now)."""
        with self._cond:
            start = self._version if since is None else since
            return self._cond.wait_for(lambda: self._version != start, timeout)

    # -- internals (called with the lock held) ---------------------------------------------------------

    def _by_pressure(self) -> bool:
        """The fast lane may run prompts by their estimate: not with a failing sensor, and not while an
        operator paused the guard (maintenance)."""
        return not self._monitor.sensor_failing and self._operator.paused is None

    def _drain_left(self) -> int:
        return len(self._pending) + (1 if self._worker.busy else 0)

    def _drain_refusal(self) -> Admission:
        d = self._operator.draining
        retry = self.config.retry_after_s
        return Admission(False, retry, f"this server is draining (by {d['by']}) and takes no new prompts; "
                         f"send the prompt to another server or retry in {retry} s")

    def _aged_normal_before(self, first: QueueEntry, pending: Pending) -> Optional[QueueEntry]:
        """The first normal prompt, when it has waited priority_max_wait_s and came before `first` (a
        class prompt): aging, so that it is not overtaken any more. Scans the queue: only when a class
        prompt heads it."""
        entries = pending.entries(set(pending.ids()))
        normal = [e for e in entries if e.priority_class is None]
        if not normal:
            return None
        head = min(normal, key=lambda e: (e.number, e.prompt_id))
        if head.created_at is None or self._wall() - head.created_at < self.config.priority_max_wait_s:
            return None
        if first.created_at is not None and first.created_at < head.created_at:
            return None  # the class prompt was there first: it overtakes nobody
        return head

    def _hold_queue_full(self) -> str:
        held, bound = self._policy.held_by_class().get(None, 0), self.config.max_held
        return f"; hold queue full ({held} held, max_held={bound})" if bound and held >= bound else ""

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _count_verdict(self, prompt_id: str, verdict: Verdict) -> None:
        if verdict.kind == RUN:
            self.metrics.admitted_in(verdict.lane).inc()
            if self._gate_closed():
                self._ran_since_reclaim = True
        elif verdict.kind == FAIL:
            self.metrics.failed.inc()
            log.warning("VRAM guard failed prompt %s: %s", prompt_id, verdict.message)
            self._op("hold_timeout", verdict.message, prompt_id=prompt_id)
        if verdict.lane == LANE_FAST:
            log.info("VRAM guard fast lane: prompt %s (estimate %d bytes) runs while paused",
                     prompt_id, verdict.estimated_bytes)
            self._op("fast_lane", f"estimate {verdict.estimated_bytes} bytes keeps the pressure under "
                     f"pause_at", prompt_id=prompt_id, estimated_bytes=verdict.estimated_bytes)

    def _on_transition(self, transition: Transition) -> None:
        self.metrics.transitions.labels(transition.after).inc()
        if transition.after == RUNNING:
            self._reclaim_at = None  # a new hold episode may ask again
        self._op("pause" if transition.after == PAUSED else "resume", transition.reason,
                 **{"from": transition.before, "to": transition.after, "ratio": transition.ratio})
        self._events.append(("gpu_guard.status", None))
        self._bump()

    def _after_change(self, was_closed: bool) -> None:
        """Keep metrics and the held set in step with the gate after a transition or a settings change."""
        self.metrics.state.state(self.state)
        self.metrics.observe_config(self.config)
        if was_closed and not self._gate_closed():
            self._held_changed(left=self._policy.release_all(), joined=[], urgent=True)
        elif not was_closed and self._gate_closed():
            # the prompts already waiting are held from now on, before the worker looks again
            self._pending_dirty = True
            self._sync_held(urgent=True)
        if was_closed != self._gate_closed():
            self._events.append(("gpu_guard.status", None))
            self._bump()

    def _sync_held(self, urgent: bool = False) -> None:
        """Bring the held set up to the adapter's last view of the queue (gate closed only)."""
        if not self._pending_dirty or not self._gate_closed():
            return
        self._pending_dirty = False
        pending = self._pending
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

    def _alert(self, kind: str, message: str, **extra) -> None:
        log.warning("VRAM guard alert (%s): %s", kind, message)
        self._events.append(("gpu_guard.alert", {"kind": kind, "message": message, **extra}))

    def _op(self, kind: str, reason: Optional[str], **fields) -> None:
        """Queue one operational event for subscribe_events (built now: it records this moment)."""
        if not self._event_subscribers:
            return
        reading = self._monitor.reading
        self._events.append(("gpu_guard.event", {"kind": kind, "at": self._wall(), "reason": reason or "",
                                                 "reading": reading.as_dict() if reading else None, **fields}))

    def _deliver(self) -> None:
        """Send the collected events, outside the lock; payloads are built once per batch."""
        if not self._events:  # unlocked peek: events are appended by the thread that delivers them
            return
        with self._lock:
            events, self._events = self._events, []
            if not events:
                return
            subscribers, event_subscribers = list(self._subscribers), list(self._event_subscribers)
            payloads, seen = [], set()
            for name, payload in events:
                if payload is None:
                    if name in seen:
                        continue  # one status / held event per batch is enough: it carries the latest
                    seen.add(name)
                    payload = self.status() if name == "gpu_guard.status" else \
                        {"held": self._policy.held_list(self._monotonic())}
                payloads.append((name, payload))
        for name, payload in payloads:
            targets = event_subscribers if name == "gpu_guard.event" else subscribers
            for callback in targets:
                try:
                    callback(payload) if name == "gpu_guard.event" else callback(name, payload)
                except Exception:  # noqa: BLE001 - a listener never breaks the guard
                    log.exception("VRAM guard event listener failed on %s", name)
