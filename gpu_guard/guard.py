"""The guard's facade: the one object the ComfyUI adapter talks to.

It ties together the probe, the hysteresis monitor (fed by a background poll thread), the admission
policy, the settings and the metrics. Nothing here imports ComfyUI; the adapter feeds it the queue's
entries and acts on its verdicts (see docs/gpu_guard_core_api.md).

Thread safety: every public method may be called from any thread (ComfyUI's worker thread, the
aiohttp loop, the poll thread). Event callbacks run on the thread that caused the change, after the
guard's lock is released, and must not block.
"""
from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from . import config as config_module
from .config import GuardConfig
from .metrics import GuardMetrics
from .monitor import PAUSED, RUNNING, Monitor, Transition
from .policy import (FAIL, HOLD, LANE_FAST, LANE_NORMAL, RUN, Admission, HeldPrompt, Policy, QueueEntry,
                     Verdict)
from .probes import ProbeError, make_probe

__all__ = ["Admission", "FAIL", "Guard", "HOLD", "LANE_FAST", "LANE_NORMAL", "QueueEntry", "RUN", "Verdict"]

log = logging.getLogger("gpu_guard")

OFF = "off"


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
        self.metrics = GuardMetrics()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._free_asked = False
        self._pending: Sequence[QueueEntry] = ()  # the adapter's last pending list, for the next pause
        self._subscribers: list = []
        self._events: list = []  # collected under the lock, delivered after it is released
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.metrics.state.state(self.state)
        if probe_note:
            log.warning("VRAM guard probe: %s", probe_note)

    @classmethod
    def from_environment(cls, config_file: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
                         device_index: Optional[int] = None) -> "Guard":
        """Settings from defaults < config_file (JSON) < environment; never raises for bad values
        (each bad setting is logged loudly and falls back to its default)."""
        source = config_module.load(config_file, environ)
        probe, note = make_probe(source.config.probe, device_index)
        return cls(source.config, probe, note, pinned=source.pinned, config_file=config_file, token=source.token)

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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poll thread must outlive any bug
                log.exception("VRAM guard poll failed unexpectedly")

    def poll_once(self) -> None:
        """Take one reading now and update the state (what the poll thread does every poll_s)."""
        if self._probe is None:
            return
        reading, error = None, None
        try:
            reading = self._probe.read()
        except ProbeError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a sensor bug counts as a sensor failure
            error = f"{type(e).__name__}: {e}"
        with self._lock:
            was_closed = self._gate_closed()
            if error is None:
                self.metrics.observe_reading(reading)
                transition = self._monitor.observe(reading)
            else:
                self.metrics.sensor_errors.inc()
                transition = self._monitor.observe_failure(error, self._wall())
                if self._monitor.consecutive_failures == self.config.sensor_failures:
                    self._alert("sensor_failing", f"sensor failed {self.config.sensor_failures} polls in a row: "
                                f"{error}; policy {self.config.sensor_policy}")
            if transition:
                self._on_transition(transition)
            self._after_change(was_closed)
            self._check_overdue()
            if self._policy.held:  # a fresh reading may open the fast lane for a held prompt
                self._bump()
        self._deliver()

    # -- state ---------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """"running" | "paused" | "off"."""
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
        last = self._monitor.transitions[-1] if self._monitor.transitions else None
        return last.reason if last else "paused"

    # -- the queue hook --------------------------------------------------------------------------------

    def decide(self, entry: QueueEntry) -> Verdict:
        """Decide for one pending entry. Call it for the queue's entries in priority order and run the
        first RUN; a FAIL entry must be removed from the queue and recorded as failed with the message."""
        with self._lock:
            verdict, left, joined = self._policy.decide(
                entry, self._monotonic(), self._gate_closed(), self._monitor.reading,
                by_pressure=not self._monitor.sensor_failing)
            if verdict.kind == RUN:
                self.metrics.admitted_in(verdict.lane).inc()
            elif verdict.kind == FAIL:
                self.metrics.failed.inc()
                log.warning("VRAM guard failed prompt %s: %s", entry.prompt_id, verdict.message)
            if verdict.lane == LANE_FAST:
                log.info("VRAM guard fast lane: prompt %s (estimate %d bytes) runs while paused",
                         entry.prompt_id, verdict.estimated_bytes)
            self._held_changed(left=[left] if left else [], joined=[joined] if joined else [])
        self._deliver()
        return verdict

    def note_pending(self, entries: Sequence[QueueEntry]) -> None:
        """Tell the guard the whole pending list (priority order) so it can track the held set,
        positions and waited times; emits "gpu_guard.held" when the set or order changes."""
        with self._lock:
            self._pending = entries
            if self._gate_closed():
                changed, left, joined = self._policy.sync(entries, self._monotonic())
                self._held_changed(left, joined, changed)
        self._deliver()

    def admission(self, held_count: int) -> Admission:
        """Accept or reject a /prompt submission given the number of prompts held now."""
        with self._lock:
            answer = self._policy.admission(held_count, self._gate_closed(), self._why_closed())
            if not answer.accept:
                self.metrics.rejected.inc()
            return answer

    def should_request_free(self) -> bool:
        """True once per hold episode: the adapter, when nothing runs and ComfyUI has models loaded,
        asks ComfyUI to free its memory and then calls request_poll()."""
        with self._lock:
            if (not self.config.free_on_hold or self._free_asked or not self._gate_closed()
                    or self._monitor.sensor_failing or not self._policy.held):
                return False
            self._free_asked = True
            self.metrics.free_requests.inc()
            log.info("VRAM guard: prompts held while idle; asking ComfyUI to release its memory")
            return True

    # -- reporting -------------------------------------------------------------------------------------

    def status(self) -> dict:
        """The status object of the HTTP contract (docs/ARCHITECTURE.md)."""
        with self._lock:
            m = self._monitor
            return {
                "state": self.state,
                "probe": {"name": self._probe.name if self._probe else "off", "ok": m.error is None,
                          "error": m.error, "error_count": m.error_count,
                          "consecutive_failures": m.consecutive_failures, "failing": m.sensor_failing,
                          "policy": self.config.sensor_policy, "note": self._probe_note},
                "reading": m.reading.as_dict() if m.reading else None,
                "thresholds": {"pause_at": self.config.pause_at, "resume_at": self.config.resume_at},
                "held": self._policy.held_list(self._monotonic()),
                "transitions": [t.as_dict() for t in m.transitions],
                "history": m.history(),
                "config": self.config_view(),
            }

    def ready(self) -> tuple:
        """(ok, reason): False while paused or failing closed."""
        with self._lock:
            state = self.state
            if state == OFF:
                return True, "guard off: " + (self._probe_note or "disabled by the enabled setting")
            if state == PAUSED:
                return False, "paused: " + self._why_closed()
            if self._monitor.sensor_failing:
                return True, f"running unguarded: sensor failing ({self._monitor.error}), policy open"
            return True, "running"

    def metrics_text(self) -> tuple:
        """(body bytes, content type) in Prometheus text format from the guard's own registry."""
        with self._lock:
            self.metrics.held.set(len(self._policy.held))
        return self.metrics.text()

    # -- settings --------------------------------------------------------------------------------------

    def config_view(self) -> dict:
        """Current settings plus "pinned": names fixed by environment variables (the token is never shown)."""
        view = self.config.as_dict()
        view["pinned"] = sorted(self.pinned)
        view["token_set"] = self._token is not None
        return view

    # Serialises update_config (validate, write, apply) so that no concurrent change is lost or applied
    # unvalidated; the guard's own lock is not held while the file is written. One guard per process.
    _config_updates = threading.Lock()

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
            transition = self._monitor.configure(new.pause_at, new.resume_at, new.sensor_failures,
                                                 new.sensor_policy, at=self._wall())
            if transition:
                self._on_transition(transition)
            log.info("VRAM guard settings changed: %s", {k: getattr(new, k) for k in partial})
            self._after_change(was_closed)
            self._bump()
            self._events.append(("gpu_guard.status", None))

    def check_token(self, token: Optional[str]) -> bool:
        """True when a token is configured and matches (constant-time)."""
        if not self._token or not token:
            return False
        return hmac.compare_digest(self._token.encode(), str(token).encode())

    # -- change notification ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str, dict], None]) -> Callable[[], None]:
        """callback(event, payload) for "gpu_guard.status", "gpu_guard.held", "gpu_guard.alert";
        returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

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

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _on_transition(self, transition: Transition) -> None:
        self.metrics.transitions.labels(transition.after).inc()
        if transition.after == RUNNING:
            self._free_asked = False  # a new hold episode may ask again
        self._events.append(("gpu_guard.status", None))
        self._bump()

    def _after_change(self, was_closed: bool) -> None:
        """Keep metrics and the held set in step with the gate after a transition or a settings change."""
        self.metrics.state.state(self.state)
        if was_closed and not self._gate_closed():
            self._held_changed(left=self._policy.release_all(), joined=[])
        elif not was_closed and self._gate_closed() and self._pending:
            # the prompts already waiting are held from now on, before the worker looks again
            _, left, joined = self._policy.sync(self._pending, self._monotonic())
            self._held_changed(left, joined, changed=True)
        if was_closed != self._gate_closed():
            self._events.append(("gpu_guard.status", None))
            self._bump()

    def _held_changed(self, left: Sequence[HeldPrompt], joined: Sequence[HeldPrompt], changed: bool = False):
        if not (changed or left or joined):
            return  # the common case while holding: keep the worker's hook cheap
        now = self._monotonic()
        for held in left:
            self.metrics.hold_wait.observe(max(0.0, now - held.since))
        self.metrics.held_total.inc(len(joined))
        self.metrics.held.set(len(self._policy.held))
        self._events.append(("gpu_guard.held", None))
        self._bump()

    def _check_overdue(self) -> None:
        now = self._monotonic()
        for held in self._policy.overdue(now):
            self._alert("held_too_long", f"prompt {held.prompt_id} held for {now - held.since:.0f} s "
                        f"waiting for GPU memory below {self.config.resume_at * 100:.0f} %",
                        prompt_id=held.prompt_id)

    def _alert(self, kind: str, message: str, **extra) -> None:
        log.warning("VRAM guard alert (%s): %s", kind, message)
        self._events.append(("gpu_guard.alert", {"kind": kind, "message": message, **extra}))

    def _deliver(self) -> None:
        """Send the collected events, outside the lock; payloads are built once per batch."""
        if not self._events:  # unlocked peek: events are appended by the thread that delivers them
            return
        with self._lock:
            events, self._events = self._events, []
            if not events:
                return
            subscribers = list(self._subscribers)
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
            for callback in subscribers:
                try:
                    callback(name, payload)
                except Exception:  # noqa: BLE001 - a listener never breaks the guard
                    log.exception("VRAM guard event listener failed on %s", name)
