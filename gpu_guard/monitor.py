"""The hysteresis state machine: running <-> paused from readings, plus the sensor-failure policy.

Pure: it never reads a sensor or a clock itself; the guard's poll thread feeds it readings and
failures. Pause when ratio >= pause_at; resume when ratio < resume_at; anything between keeps the
current state, so readings oscillating inside the band never flap.
"""
from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Optional

from .probes import Reading

log = logging.getLogger("gpu_guard")

RUNNING = "running"
PAUSED = "paused"

HISTORY_S = 600.0  # the sparkline covers the last ten minutes
HISTORY_POINTS = 1200  # bound on memory whatever the poll interval
HISTORY_SPACING_S = HISTORY_S / HISTORY_POINTS  # faster readings share a point: the highest is kept
TRANSITIONS_KEPT = 50


@dataclass(frozen=True)
class Transition:
    at: float
    before: str
    after: str
    ratio: Optional[float]
    reason: str

    def as_dict(self) -> dict:
        ratio = None if self.ratio is None else round(self.ratio, 6)
        return {"at": self.at, "from": self.before, "to": self.after, "ratio": ratio, "reason": self.reason}


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


class Monitor:
    def __init__(self, pause_at: float = 0.85, resume_at: float = 0.75, sensor_failures: int = 3,
                 sensor_policy: str = "open"):
        self.state = RUNNING
        self.reading: Optional[Reading] = None
        self.error: Optional[str] = None  # the last sensor error while failing, None when healthy
        self.error_count = 0
        self.consecutive_failures = 0
        self.transitions: deque = deque(maxlen=TRANSITIONS_KEPT)
        self._history: deque = deque(maxlen=HISTORY_POINTS)  # closed points: (start time, highest ratio)
        self._open_point: Optional[tuple] = None  # the point still collecting readings
        self._latest_point: Optional[tuple] = None
        self.configure(pause_at, resume_at, sensor_failures, sensor_policy)

    def configure(self, pause_at: float, resume_at: float, sensor_failures: int, sensor_policy: str,
                  at: Optional[float] = None) -> Optional[Transition]:
        """Apply new settings; a sensor already failing is judged again under the new policy."""
        self.pause_at, self.resume_at = pause_at, resume_at
        self.sensor_failures, self.sensor_policy = sensor_failures, sensor_policy
        if self.sensor_failing and at is not None:
            return self._apply_sensor_policy(at)
        return None

    @property
    def sensor_failing(self) -> bool:
        """True once the sensor failed sensor_failures polls in a row (the policy applies)."""
        return self.consecutive_failures >= self.sensor_failures

    @property
    def failing_closed(self) -> bool:
        return self.sensor_failing and self.sensor_policy == "closed"

    def observe(self, reading: Reading, record: bool = True) -> Optional[Transition]:
        """A good reading: apply the hysteresis. `record`: add it to the sparkline (the poll thread's
        readings; the worker's readings at dispatch decide, they do not draw)."""
        if self.sensor_failing:
            log.warning("VRAM guard sensor recovered after %d failed polls", self.consecutive_failures)
        self.reading, self.error, self.consecutive_failures = reading, None, 0
        ratio = reading.ratio
        if record:
            self._record(reading.at, round(ratio, 4))
        if self.state == RUNNING and ratio >= self.pause_at:
            return self._move(PAUSED, reading.at, ratio, f"ratio {_percent(ratio)} >= pause_at "
                              f"{_percent(self.pause_at)}")
        if self.state == PAUSED and ratio < self.resume_at:
            return self._move(RUNNING, reading.at, ratio, f"ratio {_percent(ratio)} < resume_at "
                              f"{_percent(self.resume_at)}")
        return None

    def _record(self, at: float, ratio: float) -> None:
        opened = self._open_point
        if opened and at - opened[0] < HISTORY_SPACING_S:
            self._open_point = (opened[0], max(opened[1], ratio))
        else:
            if opened:
                self._history.append(opened)
            self._open_point = (at, ratio)
        self._latest_point = (at, ratio)
        while self._history and self._history[0][0] < at - HISTORY_S:
            self._history.popleft()

    def history(self) -> list:
        """[[time, ratio], ...] for the sparkline: one point per half second at most (the highest
        reading in it, so short spikes stay visible), ending with the latest reading."""
        points = [list(p) for p in self._history]
        if self._open_point:
            points.append(list(self._open_point))
            if self._latest_point != self._open_point:
                points.append(list(self._latest_point))
        return points

    def observe_failure(self, error: str, at: float) -> Optional[Transition]:
        """A failed reading: count it; after sensor_failures in a row the sensor policy decides."""
        self.error = error
        self.error_count += 1
        self.consecutive_failures += 1
        if self.consecutive_failures == self.sensor_failures:
            action = "holding prompts (fail-closed)" if self.sensor_policy == "closed" else \
                "ADMITTING EVERY PROMPT UNGUARDED (fail-open)"
            log.warning("VRAM guard sensor failed %d polls in a row (%s); %s", self.consecutive_failures,
                        error, action)
        if self.sensor_failing:
            return self._apply_sensor_policy(at)
        return None

    def _apply_sensor_policy(self, at: float) -> Optional[Transition]:
        reason = f"sensor failed {self.consecutive_failures} polls ({self.error})"
        if self.sensor_policy == "closed" and self.state == RUNNING:
            return self._move(PAUSED, at, None, reason + "; failing closed")
        if self.sensor_policy == "open" and self.state == PAUSED:
            return self._move(RUNNING, at, None, reason + "; failing open")
        return None

    def _move(self, after: str, at: float, ratio: Optional[float], reason: str) -> Transition:
        transition = Transition(at, self.state, after, ratio, reason)
        self.state = after
        self.transitions.append(transition)
        used = self.reading
        detail = f" (used {used.used_bytes} of {used.total_bytes} bytes, reclaimable " \
                 f"{used.reclaimable_bytes})" if ratio is not None and used else ""
        when = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
        log.warning("VRAM guard %s -> %s at %s: %s%s", transition.before, after, when, reason, detail)
        return transition
