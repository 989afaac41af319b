"""The guard's facade: the one object the ComfyUI adapter talks to.

It ties together the probe, the hysteresis monitor (fed by a background poll thread), the admission
policy, the settings and the metrics. Nothing here imports ComfyUI; the adapter feeds it the queue's
entries and acts on its verdicts (see docs/gpu_guard_core_api.md).

Thread safety: every public method may be called from any thread (ComfyUI's worker thread, the
aiohttp loop, the poll thread). Event callbacks run on the event stream's one delivery thread, in the
order of the changes (see event_stream), and must not block for long.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping, Optional

from . import config as config_module
from .config import GuardConfig
from .episodes import HoldEpisode
from .event_stream import EventStream
from .guard_held import HELD_EVENT_INTERVAL_S, HeldSet
from .guard_notify import Notifications
from .guard_operator import UNGUARDED_HEALTHY_S, OperatorActions
from .guard_reporting import OFF, Reporting
from .guard_settings import Settings
from .metrics import GuardMetrics
from .monitor import PAUSED, Monitor, Transition
from .operator_hold import OperatorHold
from .poll_thread import PollThread
from .priority import NORMAL, Lanes, aged_normal_before
from .pending import EntryList, NotedQueue, Pending, QueueSource
from .policy import (FAIL, HOLD, LANE_FAST, LANE_NORMAL, RUN, RUN_NORMAL, Admission, PassResult,
                     Policy, QueueEntry, Verdict)
from .probes import Reading, make_probe
from .readings import Readings
from .worker_watch import WorkerWatch
from .waits import STOP_WAIT_S

__all__ = ["Admission", "FAIL", "Guard", "HOLD", "LANE_FAST", "LANE_NORMAL", "OFF", "PassResult", "QueueEntry", "RUN",
           "UNGUARDED_HEALTHY_S", "Verdict"]

log = logging.getLogger("gpu_guard")

# While paused, readings come at least this often: the resume is what users wait for.
PAUSED_POLL_S = 0.1
# After a prompt ran during a hold episode, the reclaim may be asked again, but not more often than this.
RECLAIM_REARM_S = 5.0


class Guard(HeldSet, Reporting, OperatorActions, Settings, Notifications):
    """VRAM guard facade; see docs/gpu_guard_core_api.md. Its reports, operator actions, settings and
    notifications and the held set live in the modules of the mixins, by name (guard_reporting,
    guard_operator, guard_settings, guard_notify, guard_held)."""

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
        self._admitted_normal = self.metrics.admitted_in(LANE_NORMAL)  # counted at every dispatch
        self._lock = threading.RLock()
        # Serialises update_config (validate, write, apply) so that no concurrent change is lost or
        # applied unvalidated; the guard's own lock is not held while the file is written.
        self._config_updates = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._readings = Readings(probe, lambda: self._worker.busy)
        self._reclaim_at: Optional[float] = None  # monotonic time of this episode's last reclaim
        self._ran_since_reclaim = False
        # The queue the held set derives from, viewed under the queue's own lock (taken before ours):
        # ComfyUI's heap once the adapter attaches it, else what note_pending last said.
        self._queue = NotedQueue()
        self._held_stale = False  # the queue changed while paused and the held set has not looked yet
        self._episode = HoldEpisode()
        self._held_event_at = float("-inf")
        self._held_event_due = False
        self._unguarded = {"active": False, "since": None, "error": None, "count": 0}
        self._unguarded_at = float("-inf")  # monotonic time of the last hook failure
        self.events = EventStream()
        self._events: list = []  # collected under the lock, published (built, in order) before it is released
        self._poller = PollThread(self.poll_once, self._after_poll, self.poll_interval, self._held_event_in)
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
        """`idle_models()` -> bytes held by this ComfyUI's loaded models on the guarded device, asked at
        each reading: between prompts they are evictable by ComfyUI itself and are not pressure."""
        self._readings.set_models_source(idle_models)

    def set_reclaimable_source(self, kind: str, source: Optional[Callable[[Reading], int]]) -> None:
        """`source(reading)` -> further bytes on the device that can be freed on request (e.g. other
        processes' idle models), asked at each reading taken while the worker is idle and subtracted
        from the pressure; shown as reclaimable.<kind>_bytes. None removes the source."""
        self._readings.set_reclaimable_source(kind, source)

    def attach_queue(self, lock=None, view: Optional[Callable[[], Pending]] = None) -> None:
        """Derive the held set from the adapter's queue (gpu_guard.pending.QueueSource); no arguments:
        detach it, back to what note_pending says."""
        self._queue = NotedQueue() if lock is None else QueueSource(lock, view)

    @property
    def probe(self):
        """The sensor (None when the guard is off)."""
        return self._probe

    # -- poll thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Take a first reading now, then poll on a background daemon thread. Idempotent."""
        if self._probe is None or self._poller.alive:
            return
        self.poll_once()
        self._poller.start()
        log.info("VRAM guard started: probe %s, pause at %.2f, resume below %.2f, poll every %g s",
                 self._probe.name, self.config.pause_at, self.config.resume_at, self.config.poll_s)

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop the poll thread. Idempotent."""
        self._poller.stop(timeout)

    def request_poll(self) -> None:
        """Wake the poll thread so it measures now (e.g. after ComfyUI released its memory)."""
        self._poller.wake()

    def poll_interval(self) -> float:
        """poll_s, or at most PAUSED_POLL_S while paused (probe reads cost microseconds)."""
        poll_s = self.config.poll_s
        return min(poll_s, PAUSED_POLL_S) if self._gate_closed() else poll_s

    def _held_event_in(self) -> float:
        if not self._held_event_due:
            return float("inf")
        return self._held_event_at + HELD_EVENT_INTERVAL_S - self._monotonic()

    def _after_poll(self) -> None:
        self.estimate_held()
        self.flush_events()

    def poll_once(self) -> None:
        """Take one reading now and update the state (what the poll thread does every poll interval)."""
        if self._probe is None:
            return
        # Under the queue's lock, as the worker reads at dispatch: the two readings never cross, so this
        # one is never dropped as older (it draws the sparkline and the gauges), and a reading that
        # closes the gate holds the prompts queued at that moment.
        with self._queue.lock:
            taken = self._readings.take()
            with self._lock:
                self._observe(*taken)
        self._deliver()

    def _observe(self, seq: int, reading: Optional[Reading], error: Optional[str], decision: bool = False) -> None:
        """Apply one reading (lock held). One taken earlier than the last applied one is dropped: the
        poll thread and the worker read concurrently, and the newer fact wins. A `decision` reading
        (the worker's, at dispatch) that changes nothing stops after the hysteresis: the gauges and the
        held set's age are the poll thread's job, and a dispatch must stay cheap."""
        if not self._readings.accept(seq):
            return
        was_closed = self._gate_closed()
        was_failing = self._monitor.sensor_failing
        if decision and error is None and not was_failing:
            transition = self._monitor.observe(reading, record=False)
            if transition is None:
                return
            self.metrics.observe_reading(reading)
        elif error is None:
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
        """The verdict for `entry` from one worker pass (decide_pass, the queue hook's one path) with
        `entry` at the head of the queue and the prompts noted pending behind it; for tests and simple
        callers. `entry` joins the noted queue; a prompt the pass runs or fails leaves it, as ComfyUI's
        pop would take it. A guard with a queue attached decides through decide_pass only."""
        if not hasattr(self._queue, "note"):
            raise TypeError("decide is for a guard without an attached queue; the queue hook uses decide_pass")
        with self._queue.lock, self._lock:
            pending = self._queue.view()
            others = [e for e in pending.entries(set(pending.ids())) if e.prompt_id != entry.prompt_id]
            view = EntryList([entry, *others])
            self._queue.note(view)
            self._held_stale = True
            self._sync_held()
        self.estimate_held()  # outside the lock, as the poll thread does for newly held prompts
        result = self.decide_pass(entry, lambda: view)
        gone = {prompt_id for prompt_id, _ in result.fails} | ({result.run} if result.run else set())
        if gone:
            self.note_pending([e for e in (entry, *others) if e.prompt_id not in gone])
        if result.run == entry.prompt_id:
            return result.verdict
        failed = next((verdict for prompt_id, verdict in result.fails if prompt_id == entry.prompt_id), None)
        if failed is not None:
            return failed
        held = self._policy.held.get(entry.prompt_id)
        return Verdict(HOLD, estimated_bytes=held.estimated_bytes if held else None)

    def decide_pass(self, first: QueueEntry, pending: Callable[[], Pending]) -> PassResult:
        """One decision pass of the worker, against one reading of the gate: with the gate open the
        heap's first prompt runs; with it closed, prompts past the hold timeout fail and at most one
        held prompt runs in the fast lane. `pending()` views the whole queue (gpu_guard.pending); it is
        called with the gate closed, or when a priority-class prompt heads the queue and aging is on,
        while the caller still holds the queue's mutex. The gate is judged on a reading taken now (a
        probe read costs microseconds): the worker just finished a prompt or woke for a new one, and a
        reading from before that moment would still count the finished prompt's memory."""
        taken = self._readings.take() if self._probe is not None else None
        with self._lock:
            if taken is not None:
                self._observe(*taken, decision=True)
            if not self._gate_closed():
                self._admitted_normal.inc()
                if first.priority_class is not None and self.config.priority_max_wait_s > 0:
                    aged = aged_normal_before(first, pending(), self._wall(), self.config.priority_max_wait_s)
                    if aged is not None:
                        return PassResult(aged.prompt_id, RUN_NORMAL)
                return PassResult(first.prompt_id, RUN_NORMAL)
            self._held_stale = True
            self._sync_held(pending)
            result, left = self._policy.closed_pass(self._monotonic(), self._monitor.reading,
                                                    by_pressure=self._by_pressure())
            for prompt_id, verdict in result.fails:
                self._count_verdict(prompt_id, verdict)
            if result.run is not None:
                self._count_verdict(result.run, result.verdict)
            self._held_changed(left=left, joined=[])
        self._deliver()
        return result

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
        with self._queue.lock, self._lock:
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

    def note_idle_unload(self, idle_s: float, requested: bool = False) -> None:
        """The adapter released ComfyUI's idle models after idle_unload_s without a prompt (or because
        it was asked to, `requested`)."""
        with self._lock:
            self.metrics.reclaims.inc()
            reason = "asked to release them while idle" if requested else \
                f"no prompt for {idle_s:.0f} s (idle_unload_s={self.config.idle_unload_s:g})"
            log.info("VRAM guard: released ComfyUI's idle models: %s", reason)
            self._op("reclaim", reason, action="requested_unload" if requested else "idle_unload")
        self._deliver()

    def note_oom(self, outcome: str, reason: str, **fields) -> None:
        """A prompt ran out of GPU memory (gpu_guard.comfy.oom_hook): counted by outcome
        (metrics.OOM_OUTCOMES) and recorded as an "oom_rescue" operational event."""
        with self._lock:
            self.metrics.oom_rescues.labels(outcome).inc()
            log.warning("VRAM guard OOM rescue (%s): %s", outcome, reason)
            self._op("oom_rescue", reason, outcome=outcome, **fields)
            self._bump()
        self._deliver()

    # -- the worker, as the queue hook sees it (called on ComfyUI's worker thread) -----------------------

    def worker_waiting(self) -> None:
        self._worker.waiting()

    def worker_took(self, prompt_id: str) -> None:
        self._worker.took(prompt_id)

    # -- internals (called with the lock held) ---------------------------------------------------------

    def _by_pressure(self) -> bool:
        """The fast lane may run prompts by their estimate: not with a failing sensor, and not while an
        operator paused the guard (maintenance)."""
        return not self._monitor.sensor_failing and self._operator.paused is None

    def _hold_queue_full(self) -> str:
        held, bound = self._policy.held_by_class().get(None, 0), self.config.max_held
        return f"; hold queue full ({held} held, max_held={bound})" if bound and held >= bound else ""

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
        self._op("pause" if transition.after == PAUSED else "resume", transition.reason,
                 **{"from": transition.before, "to": transition.after, "ratio": transition.ratio})
        self._events.append(("gpu_guard.status", None))
        self._bump()

    def _after_change(self, was_closed: bool) -> None:
        """Keep metrics and the held set in step with the gate after a transition or a settings change."""
        self.metrics.state.state(self.state)
        self.metrics.observe_config(self.config)
        if was_closed and not self._gate_closed():
            self._reclaim_at = None  # the episode is over, whatever closed the gate: the next may ask again
            self._held_changed(left=self._policy.release_all(), joined=[], urgent=True)
        elif not was_closed and self._gate_closed():
            # the prompts already waiting are held from now on, before the worker looks again
            self._held_stale = True
            self._sync_held(urgent=True)
        if was_closed != self._gate_closed():
            self._events.append(("gpu_guard.status", None))
            self._bump()
