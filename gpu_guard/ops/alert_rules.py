"""Alert rules over the guard's events: each rule says whether its condition holds now; the RuleSet
turns condition changes into "firing" and "resolved" notifications, with a cool-down per rule.

Cool-down: a rule that fired less than `alert_cooldown_s` ago does not notify again when its
condition comes back; that quiet episode sends no "resolved" either (nothing was announced).
Thresholds are read from the settings at every evaluation, so a change applies at once.

After a restart: a rule the log shows as firing stays firing until either its condition holds again
(nothing new is sent) or `cleared` says the rule has seen, in this life, evidence that it is over
(a good sensor reading, nothing held, a whole 429 window without a burst). A rule whose state is
not rebuilt must never send "resolved" just because it starts empty; and with no false "resolved",
the cool-down cannot hide the re-fire that used to follow it.
"""
from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

FIRING, RESOLVED = "firing", "resolved"
DAY_S = 86400.0
HOUR_S = 3600.0


def _count_recent(times: deque, now: float, span_s: float) -> int:
    """How many of `times` (oldest first) fall within the last `span_s` seconds; older ones are dropped."""
    while times and times[0] <= now - span_s:
        times.popleft()
    return len(times)


@dataclass(frozen=True)
class Notification:
    rule: str
    status: str  # FIRING | RESOLVED
    title: str
    text: str
    at: float
    id: str = field(default_factory=lambda: "msg_" + uuid.uuid4().hex)
    details: dict = field(default_factory=dict)


class Rule:
    name = ""
    title = ""
    resolved = ""  # the text of the "resolved" notification

    def observe(self, event: dict) -> None:
        """Update the rule's state from one guard event."""

    def check(self, now: float, settings: Any, snapshot: dict) -> Optional[tuple]:
        """(text, details) while the condition holds, else None."""
        raise NotImplementedError

    def cleared(self, now: float, started: float, settings: Any, snapshot: dict) -> bool:
        """For a rule restored as firing whose check says None: has this life observed that the
        condition is over? True for rules rebuilt from the log or read from the live snapshot."""
        return True


class ManyPauses(Rule):
    name, title = "many_pauses", "GPU memory pauses: more than the daily budget"
    resolved = "pauses in the last 24 h are back within the daily budget"

    def __init__(self):
        self.pauses: deque = deque()

    def observe(self, event):
        if event.get("kind") == "pause":
            self.pauses.append(float(event["at"]))

    def check(self, now, settings, snapshot):
        pauses, limit = _count_recent(self.pauses, now, DAY_S), settings.alert_pauses_per_day
        if limit <= 0 or pauses <= limit:
            return None
        return (f"{pauses} pauses in the last 24 h (more than {limit}): prompts keep waiting for "
                "GPU memory - add GPU capacity or use smaller models", {"pauses_24h": pauses, "limit": limit})


class LongHold(Rule):
    name, title = "long_hold", "Prompts held for GPU memory too long"
    resolved = "the hold episode is over: prompts run again"

    def __init__(self):
        self.since: Optional[float] = None

    def observe(self, event):
        kind = event.get("kind")
        if kind == "hold_start" and self.since is None:
            self.since = float(event["at"])
        elif kind == "hold_end":
            self.since = None

    def cleared(self, now, started, settings, snapshot):
        return snapshot.get("held") == 0  # nothing held now: the episode that fired is over

    def check(self, now, settings, snapshot):
        limit = settings.alert_hold_episode_s
        if limit <= 0 or self.since is None or now - self.since <= limit:
            return None
        return (f"prompts have been held for {now - self.since:.0f} s (limit {limit:g} s) waiting for GPU memory",
                {"held_for_s": round(now - self.since, 1), "limit_s": limit, "held": snapshot.get("held")})


class SensorFailing(Rule):
    name, title = "sensor_failing", "GPU memory sensor failing"
    resolved = "the memory sensor reads again"

    def __init__(self):
        self.consecutive, self.error = 0, None

    def observe(self, event):
        kind = event.get("kind")
        if kind == "sensor_failure":
            self.consecutive = int(event.get("consecutive") or self.consecutive + 1)
            self.error = event.get("error")
        elif kind == "sensor_recovered":
            self.consecutive, self.error = 0, None

    def cleared(self, now, started, settings, snapshot):
        return snapshot.get("sensor_reads") is True  # a good reading in this life, and no error since

    def check(self, now, settings, snapshot):
        if self.consecutive < settings.sensor_failures:
            return None
        return (f"the memory sensor failed {self.consecutive} readings in a row ({self.error}); "
                f"sensor policy {settings.sensor_policy}", {"consecutive": self.consecutive, "error": self.error})


class HoldQueueFull(Rule):
    name, title = "hold_queue_full", "Hold queue nearly full"
    resolved = "the hold queue is back under its alert level"

    def check(self, now, settings, snapshot):
        held, bound, fraction = snapshot.get("held", 0), settings.max_held, settings.alert_held_fraction
        if bound <= 0 or fraction <= 0 or held <= fraction * bound:
            return None
        return (f"{held} prompts held of max_held {bound} (over {fraction:.0%}): new prompts will get 429",
                {"held": held, "max_held": bound})


class RejectBurst(Rule):
    name, title = "reject_burst", "Prompts refused with 429"
    resolved = "no more burst of 429 answers"

    def __init__(self):
        self.rejected: deque = deque()

    def observe(self, event):
        if event.get("kind") == "rejected":
            self.rejected.append(float(event["at"]))

    def cleared(self, now, started, settings, snapshot):
        return now - started >= settings.alert_rejected_window_s  # a whole window seen, without a burst

    def check(self, now, settings, snapshot):
        window, limit = settings.alert_rejected_window_s, settings.alert_rejected_burst
        rejected = _count_recent(self.rejected, now, window)
        if limit <= 0 or rejected < limit:
            return None
        return (f"{rejected} prompts answered 429 in the last {window:g} s: the hold queue is full",
                {"rejected": rejected, "window_s": window})


class ManyOoms(Rule):
    """Prompts keep running out of GPU memory: the OOM rescue hides each one, the rate says the server is
    too small for its workload (or a neighbour grew)."""
    name, title = "many_ooms", "GPU out-of-memory: more prompts than the hourly budget"
    resolved = "out-of-memory failures in the last hour are back within the budget"

    def __init__(self):
        self.ooms: deque = deque()

    def observe(self, event):
        if event.get("kind") == "oom_rescue" and event.get("outcome") != "recovered":
            self.ooms.append(float(event["at"]))

    def check(self, now, settings, snapshot):
        ooms, limit = _count_recent(self.ooms, now, HOUR_S), settings.alert_ooms_per_hour
        if limit <= 0 or ooms <= limit:
            return None
        return (f"{ooms} runs out of GPU memory in the last hour (more than {limit}): use smaller "
                "sizes or the tiny model, lower max_held, or add a server", {"ooms": ooms, "limit": limit})


RULES = (ManyPauses, LongHold, SensorFailing, HoldQueueFull, RejectBurst, ManyOoms)
RULE_NAMES = tuple(r.name for r in RULES)


class RuleSet:
    def __init__(self, settings: Callable[[], Any]):
        self._settings = settings
        self.rules = [cls() for cls in RULES]
        self._firing: dict = {}  # rule name -> announced (bool)
        self._last_fired: dict = {}  # rule name -> time of the last "firing" notification
        self._restored: set = set()  # restored as firing; not yet confirmed or cleared in this life
        self._started: Optional[float] = None  # the first evaluation of this life
        self.suppressed = 0

    def observe(self, event: dict) -> None:
        for rule in self.rules:
            rule.observe(event)

    def restore(self, rule: str, status: str, at: float) -> None:
        """Replay one logged notification (at start-up), so a restart neither repeats an alert inside its
        cool-down nor forgets to resolve one."""
        if rule not in RULE_NAMES:
            return
        if status == FIRING:
            self._firing[rule] = True
            self._last_fired[rule] = at
            self._restored.add(rule)
        elif status == RESOLVED:
            self._firing.pop(rule, None)
            self._restored.discard(rule)

    def evaluate(self, now: float, snapshot: dict) -> list:
        settings, out = self._settings(), []
        if self._started is None:
            self._started = now
        for rule in self.rules:
            result = rule.check(now, settings, snapshot)
            if rule.name in self._restored:
                if result is None and not rule.cleared(now, self._started, settings, snapshot):
                    continue  # restored as firing, no evidence yet that it is over: it stays firing
                self._restored.discard(rule.name)  # confirmed (holds again) or cleared: a live rule now
            if result is not None and rule.name not in self._firing:
                last = self._last_fired.get(rule.name)
                announce = last is None or now - last >= settings.alert_cooldown_s
                self._firing[rule.name] = announce
                if announce:
                    self._last_fired[rule.name] = now
                    out.append(Notification(rule.name, FIRING, rule.title, result[0], now, details=result[1]))
                else:
                    self.suppressed += 1
            elif result is None and rule.name in self._firing:
                if self._firing.pop(rule.name):
                    out.append(Notification(rule.name, RESOLVED, rule.title, rule.resolved, now))
        return out

    def firing(self) -> list:
        return sorted(self._firing)

    def unconfirmed(self) -> list:
        """Rules restored as firing that this life has neither confirmed nor seen clear."""
        return sorted(self._restored)
