"""The operations layer of one guard: event log, day counters, alert rules and webhook delivery.

The guard calls `handle(event)` on whatever thread caused the event; it only puts the event in a
queue. One ops thread takes events from there, writes them to the log, updates the counters and
evaluates the rules (also every `tick_s` without events, for rules that depend on time); each
webhook target has its own sender thread. So neither ComfyUI's worker, the poll thread nor the
event loop ever waits for a disk or a network.

A flood must not erase history: 429s (`rejected`) within REJECTED_LINE_S share one log line with a
`count` (the rules and metrics still see each one), and the pause, resume and alert records are also
written to a small log of their own (`gpu_guard_pause_history.jsonl`), which the restart rebuilds
the day's counters, the 24 h pause window and the alerts from. No other kind is written there, so no
flood of other events can push the day's pauses out.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from typing import Any, Callable, Optional

from .alert_rules import DAY_S, RULE_NAMES, RuleSet
from .day_counters import DayCounters, local_day_start, next_day_start
from .event_log import EventLog
from .metrics import OpsMetrics
from .webhook_sender import TargetSender, http_post
from ..waits import DELIVERY_CHECK_S, FLUSH_WAIT_S, SLOW_FLUSH_WAIT_S, STOP_WAIT_S

log = logging.getLogger("gpu_guard.ops")

ALERT_KIND = "alert"  # the log also records every notification sent (and restores rule state from it)
HISTORY_KINDS = ("pause", "resume", ALERT_KIND)  # what the restart rebuilds state from
HISTORY_FILE_NAME = "gpu_guard_pause_history.jsonl"
# The history log's cap: a pause and a resume line are ~300 bytes, so this keeps thousands of pauses,
# far more than a day holds unless the guard flaps (and then the 24 h rule fires anyway)
HISTORY_MAX_BYTES, HISTORY_FILES = 2 * 1024 * 1024, 2
# 429s within this span share one log line (with a count): short enough that /gpu_guard/events shows a
# burst within seconds, long enough that a flood of 100,000 costs a handful of lines
REJECTED_LINE_S = 5.0


def history_path(log_path: str) -> str:
    """gpu_guard_events.jsonl -> gpu_guard_pause_history.jsonl beside it (gpu_guard_events.cuda-1.jsonl ->
    gpu_guard_pause_history.cuda-1.jsonl: a second ComfyUI on the same directory keeps its own)."""
    folder, name = os.path.split(log_path)
    stem, dot, rest = name.partition(".")
    return os.path.join(folder, HISTORY_FILE_NAME.split(".")[0] + (dot + rest if rest else ".jsonl"))


class _Flush:
    def __init__(self):
        self.done = threading.Event()


class OpsService:
    def __init__(self, settings: Callable[[], Any], log_path: Optional[str], *,
                 snapshot: Callable[[], dict] = dict, source: Optional[str] = None,
                 shown_value: Callable[[str, Any], Any] = lambda name, value: value,
                 wall: Callable[[], float] = time.time, day_start: Callable[[float], float] = local_day_start,
                 next_start: Callable[[float], float] = next_day_start, tick_s: float = 1.0,
                 backoff_s: float = 1.0, post: Callable = http_post, sender_options: Optional[dict] = None):
        self._settings, self._snapshot, self._shown_value = settings, snapshot, shown_value
        self.source = source or socket.gethostname()
        self._wall, self._tick_s, self._backoff_s, self._post = wall, tick_s, backoff_s, post
        self._sender_options = dict(sender_options or {})  # e.g. address_check, for tests
        self.metrics = OpsMetrics()
        self.counters = DayCounters(day_start, next_start)
        self._day_start = day_start
        self.rules = RuleSet(settings)
        s = settings()
        self.event_log = EventLog(log_path, s.event_log_max_bytes, s.event_log_files) if log_path else None
        self.history_log = EventLog(history_path(log_path), HISTORY_MAX_BYTES, HISTORY_FILES) if log_path else None
        self._rejected_line: Optional[dict] = None  # the 429s of the current span, not yet written
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._senders: dict = {}
        self._targets: tuple = ()
        self._lock = threading.Lock()  # senders and rule state, read by status()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._apply_settings()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpu-guard-ops", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            sender.stop(timeout)
        self._write_rejected_line()  # the ops thread has stopped: the last span's 429s are written now
        for log_file in (self.event_log, self.history_log):
            if log_file is not None:
                log_file.close()

    def _restore(self) -> None:
        """Rebuild today's counters, the 24 h pause window and the alerts' state from the log."""
        if self.event_log is None:
            return
        now = self._wall()
        since = min(self._day_start(now), now - DAY_S)
        records = self.history_log.replay(since, HISTORY_KINDS)
        if not records and self.history_log.last_record() is None:  # a log from before the history file
            records = self.event_log.replay(since, HISTORY_KINDS)
        for record in records:
            at = float(record["at"])
            if record["kind"] == "pause":
                self.counters.pause(at)
                if at > now - DAY_S:
                    self.rules.observe(record)
            elif record["kind"] == "resume":
                self.counters.resume(at)
            else:
                self.rules.restore(record.get("rule"), record.get("status"), at)
        last = self.event_log.last_record()
        if last is not None and self.counters.snapshot(now)["paused_now"]:
            self.counters.resume(float(last.get("at") or now))  # stopped while paused: count up to its last event

    # -- intake (any thread, never blocks) -----------------------------------------------------------------

    def handle(self, event: dict) -> None:
        """The guard's event subscriber."""
        self._inbox.put(event)

    def flush(self, timeout: float = FLUSH_WAIT_S) -> bool:
        """Wait until every event handed in so far is processed and the rules evaluated (for tests and
        drills)."""
        marker = _Flush()
        self._inbox.put(marker)
        return marker.done.wait(timeout)

    def wait_deliveries(self, timeout: float = SLOW_FLUSH_WAIT_S) -> bool:
        """Wait until every sender's queue is empty and nothing is in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                senders = list(self._senders.values())
            if all(s.idle() for s in senders):
                return True
            time.sleep(DELIVERY_CHECK_S)
        return False

    # -- the ops thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        self._safely(self._restore)  # here, not in start(): reading the log never delays ComfyUI's start-up
        while not self._stop.is_set():
            batch = self._next_batch()
            for item in batch:
                if isinstance(item, dict):
                    self._safely(self._process, item)
            # a 429 line is written once its span is over: nothing waits (the thread has caught up) and no
            # 429 came for a whole span; or when a flush asks for everything
            line = self._rejected_line
            if line is not None and (any(isinstance(item, _Flush) for item in batch) or (
                    self._inbox.empty() and self._wall() - line["last_at"] >= REJECTED_LINE_S)):
                self._safely(self._write_rejected_line)
            # rules once per batch: a burst of 429s costs one status snapshot, not one per event
            self._safely(self._apply_settings)
            self._safely(self._evaluate)
            for item in batch:
                if isinstance(item, _Flush):
                    item.done.set()

    def _next_batch(self, most: int = 1000) -> list:
        """What arrived (waiting up to tick_s for the first item), at most `most` items."""
        try:
            batch = [self._inbox.get(timeout=self._tick_s)]
        except queue.Empty:
            return []
        while len(batch) < most:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    @staticmethod
    def _safely(action, *args) -> None:
        try:
            action(*args)
        except Exception:  # noqa: BLE001 - the ops thread outlives any bug
            log.exception("VRAM guard operations: processing failed unexpectedly")

    def _process(self, event: dict) -> None:
        record = dict(event)
        record.setdefault("at", self._wall())
        kind = str(record.get("kind", "unknown"))
        if kind == "config_change" and isinstance(record.get("changed"), dict):
            record["changed"] = {k: self._shown_value(k, v) for k, v in record["changed"].items()}
        if kind == "rejected":
            self._add_rejected(record)
        else:
            self._write_rejected_line()  # the log keeps the order: the 429s before this event come first
            self._write(record)
        self.metrics.events.labels(kind).inc()
        at = float(record["at"])
        if kind == "pause":
            self.counters.pause(at)
        elif kind == "resume":
            self.counters.resume(at)
        with self._lock:
            self.rules.observe(record)

    def _add_rejected(self, record: dict) -> None:
        line = self._rejected_line
        if line is not None and float(record["at"]) - line["at"] >= REJECTED_LINE_S:
            self._write_rejected_line()
            line = None
        if line is None:
            self._rejected_line = {**record, "count": 1, "last_at": record["at"]}
        else:  # the latest figures, the first time, and how many
            line.update({k: v for k, v in record.items() if k not in ("at", "reason")}, count=line["count"] + 1,
                        last_at=record["at"])
            line["reason"] = f"{line['count']} prompts answered 429 (the hold queue is full)"

    def _write_rejected_line(self) -> None:
        line, self._rejected_line = self._rejected_line, None
        if line is not None:
            self._write(line)

    def _write(self, record: dict) -> None:
        if self.event_log is None or not self.event_log.enabled:
            return
        if self.event_log.append(record) is None:
            self.metrics.event_log_errors.inc()
        if record.get("kind") in HISTORY_KINDS:
            self.history_log.append(record)  # errors are counted by the log itself (write_errors)

    def _evaluate(self) -> None:
        try:
            snapshot = self._snapshot() or {}
        except Exception:  # noqa: BLE001 - a broken snapshot must not stop the other rules
            log.exception("VRAM guard operations: the status snapshot failed")
            snapshot = {}
        with self._lock:
            notifications = self.rules.evaluate(self._wall(), snapshot)
            firing = set(self.rules.firing())
            senders = list(self._senders.values())
        for rule in RULE_NAMES:
            self.metrics.alert_firing.labels(rule).set(1 if rule in firing else 0)
        for n in notifications:
            self.metrics.notifications.labels(n.rule, n.status).inc()
            log.warning("VRAM guard alert %s %s: %s", n.rule, n.status, n.text)
            self._write({"kind": ALERT_KIND, "at": n.at, "reading": None, "reason": n.text, "rule": n.rule,
                         "status": n.status, "id": n.id})
            for sender in senders:
                if sender.wants(n.rule):
                    sender.submit(n)

    def _apply_settings(self) -> None:
        s = self._settings()
        if self.event_log is not None:
            self.event_log.configure(s.event_log_max_bytes, s.event_log_files)
        targets = tuple(s.webhooks)
        if targets == self._targets:
            return
        with self._lock:
            old, self._senders = self._senders, {}
            for target in targets:
                keep = old.get(target["name"])
                if keep is not None and keep.target == target:
                    self._senders[target["name"]] = old.pop(target["name"])
                else:
                    self._senders[target["name"]] = TargetSender(
                        target, self.metrics, self.source,
                        retries=lambda: self._settings().webhook_retries,
                        timeout_s=lambda: self._settings().webhook_timeout_s,
                        backoff_s=self._backoff_s, post=self._post, wall=self._wall,
                        allow_hosts=lambda: getattr(self._settings(), "webhook_allow_hosts", ()),
                        **self._sender_options)
            self._targets = targets
        for sender in old.values():
            sender.stop(0.5)

    # -- reporting -------------------------------------------------------------------------------------

    def today(self) -> dict:
        return self.counters.snapshot(self._wall())

    def status(self) -> dict:
        """`today` and `ops` for the guard's status object."""
        with self._lock:
            alerts = {"firing": self.rules.firing(), "suppressed_by_cooldown": self.rules.suppressed,
                      "restored_unconfirmed": self.rules.unconfirmed()}
            webhooks = [s.view() for s in self._senders.values()]
        event_log = {"enabled": False}
        if self.event_log is not None:
            event_log = {"enabled": self.event_log.enabled, "path": self.event_log.path,
                         "bytes": self.event_log.size_bytes(), "write_errors": self.event_log.write_errors,
                         "last_error": self.event_log.last_error}
        return {"today": self.today(), "ops": {"alerts": alerts, "webhooks": webhooks, "event_log": event_log}}

    def metrics_text(self) -> bytes:
        today = self.today()
        self.metrics.pauses_today.set(today["pauses"])
        self.metrics.paused_seconds_today.set(today["paused_s"])
        return self.metrics.text()

    def events(self, since: int = 0, kinds=None, limit: int = 100) -> dict:
        """A page of the event log (see EventLog.query)."""
        if self.event_log is None or not self.event_log.enabled:
            return {"events": [], "next": since, "more": False, "last_seq": 0,
                    "note": "the event log is off (event_log_max_bytes = 0 or no user directory)"}
        return self.event_log.query(since, kinds, limit)
