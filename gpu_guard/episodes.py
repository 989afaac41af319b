"""Hold episodes: from the first prompt held to the moment none is held any more.

Operators want one line per episode (how long, how many prompts, the longest wait), not one per
prompt; the guard feeds this tracker the prompts that join and leave the held set.
"""
from __future__ import annotations

from typing import Iterable, Optional


class HoldEpisode:
    def __init__(self):
        self.started: Optional[float] = None  # monotonic start of the current episode, None outside one
        self.held_count = 0
        self.longest_wait_s = 0.0

    @property
    def active(self) -> bool:
        return self.started is not None

    def update(self, joined: int, left_waits: Iterable[float], held_now: int, now: float) -> list:
        """[(kind, fields)] with kind "hold_start" / "hold_end": what the change starts or ends."""
        events = []
        if joined and self.started is None:
            self.started, self.held_count, self.longest_wait_s = now, 0, 0.0
            events.append(("hold_start", {"held": max(held_now, joined)}))
        if self.started is None:
            return events
        self.held_count += joined
        for wait in left_waits:
            self.longest_wait_s = max(self.longest_wait_s, wait)
        if held_now == 0:
            events.append(("hold_end", {"held_count": self.held_count,
                                        "longest_wait_s": round(self.longest_wait_s, 3),
                                        "duration_s": round(now - self.started, 3)}))
            self.started = None
        return events

    def as_dict(self, now: float) -> Optional[dict]:
        if self.started is None:
            return None
        return {"duration_s": round(now - self.started, 3), "held_count": self.held_count,
                "longest_wait_s": round(self.longest_wait_s, 3)}
