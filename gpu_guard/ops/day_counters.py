"""Per-day counters: pauses today and time paused today (the server's local day).

A pause that runs over midnight counts for each day only the part inside it; it counts as a pause
only on the day it started. Rebuilt from the event log at start-up, so a restart keeps the day's
figures.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Callable, Optional


def local_day_start(at: float) -> float:
    """Unix time of the local midnight that starts the day of `at`."""
    day = datetime.fromtimestamp(at).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def next_day_start(day_start: float) -> float:
    nxt = datetime.fromtimestamp(day_start) + timedelta(days=1, hours=3)  # hours=3: survives DST shifts
    return local_day_start(nxt.timestamp())


class DayCounters:
    def __init__(self, day_start: Callable[[float], float] = local_day_start,
                 next_start: Callable[[float], float] = next_day_start):
        self._day_start_of, self._next_start_of = day_start, next_start
        self._lock = threading.Lock()
        self._day: Optional[float] = None
        self._next: float = 0.0
        self._pauses = 0
        self._closed_s = 0.0  # paused time today of the pauses already over
        self._paused_since: Optional[float] = None

    def _roll(self, at: float) -> None:
        if self._day is None or at >= self._next or at < self._day:
            self._day = self._day_start_of(at)
            self._next = self._next_start_of(self._day)
            self._pauses, self._closed_s = 0, 0.0

    def pause(self, at: float) -> None:
        with self._lock:
            self._roll(at)
            if self._paused_since is None:
                self._pauses += 1
                self._paused_since = at

    def resume(self, at: float) -> None:
        with self._lock:
            self._roll(at)
            if self._paused_since is not None:
                self._closed_s += max(0.0, at - max(self._paused_since, self._day))
                self._paused_since = None

    def snapshot(self, now: Optional[float] = None) -> dict:
        now = time.time() if now is None else now
        with self._lock:
            self._roll(now)
            paused_s = self._closed_s
            if self._paused_since is not None:
                paused_s += max(0.0, now - max(self._paused_since, self._day))
            return {"date": datetime.fromtimestamp(self._day).strftime("%Y-%m-%d"), "pauses": self._pauses,
                    "paused_s": round(paused_s, 3), "paused_now": self._paused_since is not None}
