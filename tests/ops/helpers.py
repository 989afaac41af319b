"""Helpers of the operations tests: settings that tests change, a settable clock, events."""
from __future__ import annotations

import dataclasses

from gpu_guard.config import GuardConfig

DAY0 = 1_780_000_000.0  # some midnight, in the tests' own day arithmetic


class Clock:
    def __init__(self, now=DAY0 + 3600.0):
        self.now = now

    def __call__(self):
        return self.now


def utc_day_start(at: float) -> float:
    """Days that start at DAY0 + k * 86400 (the tests never depend on the machine's time zone)."""
    return DAY0 + ((at - DAY0) // 86400) * 86400


def utc_next_start(day_start: float) -> float:
    return day_start + 86400


class Settings:
    """A callable like the adapter's `lambda: guard.config`, with replace()."""

    def __init__(self, **values):
        self.config = GuardConfig(**values)

    def __call__(self):
        return self.config

    def replace(self, **values):
        self.config = dataclasses.replace(self.config, **values)


def event(kind, at, **fields):
    return {"kind": kind, "at": at, "reading": None, "reason": f"test {kind}", **fields}
