"""Per-prompt admission: hold or run, the bounded hold queue, the fast lane and the hold timeout.

Pure bookkeeping: the guard passes in the time, the last reading and whether the gate is closed,
and serialises the calls under its lock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from . import estimators
from .config import GuardConfig
from .probes import Reading

RUN = "run"
HOLD = "hold"
FAIL = "fail"

LANE_NORMAL = "normal"  # the guard is running (or off): nothing to hold
LANE_FAST = "fast"  # paused, but the prompt's estimated peak fits in the free memory


class QueueEntry(NamedTuple):
    """One pending prompt as the adapter sees it in ComfyUI's queue (a tuple: built for every pending
    prompt at every wake-up of the worker, so it must be cheap)."""

    prompt_id: str
    number: float  # ComfyUI's queue number (front-of-queue prompts have negative numbers)
    prompt: Mapping[str, Any] = {}  # the API-format graph; never mutated
    client_id: Optional[str] = None


@dataclass(frozen=True)
class Verdict:
    """What to do with one entry: RUN (pop and execute), HOLD (leave it queued) or FAIL."""

    kind: str  # RUN | HOLD | FAIL
    lane: Optional[str] = None  # for RUN: LANE_NORMAL or LANE_FAST
    message: Optional[str] = None  # for FAIL: the error to put into ComfyUI's history
    estimated_bytes: Optional[int] = None  # the prompt's estimate when one was made


_RUN_NORMAL = Verdict(RUN, LANE_NORMAL)


@dataclass(frozen=True)
class Admission:
    """The answer to a /prompt submission."""

    accept: bool
    retry_after_s: Optional[int] = None
    message: Optional[str] = None

    def error_body(self) -> dict:
        """The 429 body in ComfyUI's error shape."""
        return {"error": {"type": "gpu_guard_busy", "message": self.message or "GPU memory is busy",
                          "details": f"retry after {self.retry_after_s} s",
                          "extra_info": {"retry_after_s": self.retry_after_s}},
                "node_errors": {}}


@dataclass
class HeldPrompt:
    prompt_id: str
    number: float
    client_id: Optional[str]
    since: float  # monotonic time it entered the held set
    prompt: Mapping[str, Any] = field(repr=False, default_factory=dict)
    estimated: bool = False
    estimated_bytes: Optional[int] = None
    alerted: bool = False
    hold_verdict: Optional["Verdict"] = None  # built once: the hook asks again at every wake-up

    def estimate(self) -> Optional[int]:
        if not self.estimated:  # estimators may be costly; a prompt's graph never changes
            self.estimated_bytes, self.estimated = estimators.estimate_prompt(self.prompt), True
        return self.estimated_bytes


def _percent(value: float) -> str:
    return f"{value * 100:.0f} %"


class Policy:
    def __init__(self, config: GuardConfig):
        self.config = config
        self.held: dict = {}  # prompt_id -> HeldPrompt, in priority order
        self._fast_reading: Optional[Reading] = None  # the reading the last fast-lane run relied on

    def sync(self, entries: Sequence[QueueEntry], now: float) -> tuple:
        """Make the held set the pending entries (the gate is closed). Returns (changed, left, joined)."""
        previous = self.held
        if [e.prompt_id for e in entries] == list(previous):
            return False, [], []  # the usual wake-up: nothing moved
        self.held = {}
        joined = []
        for e in entries:
            held = previous.get(e.prompt_id)
            if held is None:
                held = HeldPrompt(e.prompt_id, e.number, e.client_id, now, e.prompt)
                joined.append(held)
            self.held[e.prompt_id] = held
        left = [h for pid, h in previous.items() if pid not in self.held]
        return True, left, joined

    def release_all(self) -> list:
        released, self.held = list(self.held.values()), {}
        return released

    def decide(self, entry: QueueEntry, now: float, gate_closed: bool, reading: Optional[Reading],
               by_pressure: bool) -> tuple:
        """(Verdict, HeldPrompt that left the held set or None, HeldPrompt that joined or None)."""
        if not gate_closed:
            return _RUN_NORMAL, None, None
        joined = None
        held = self.held.get(entry.prompt_id)
        if held is None:
            held = joined = HeldPrompt(entry.prompt_id, entry.number, entry.client_id, now, entry.prompt)
            self.held[entry.prompt_id] = held
        cfg = self.config
        waited = now - held.since
        if cfg.hold_timeout_action == "fail" and 0 < cfg.hold_timeout_s <= waited:
            del self.held[entry.prompt_id]
            message = (f"waited {math.floor(waited)} s for GPU memory above {_percent(cfg.pause_at)} "
                       f"to drop below {_percent(cfg.resume_at)} (VRAM guard hold_timeout_s="
                       f"{cfg.hold_timeout_s:g}); the prompt was not run")
            return Verdict(FAIL, message=message, estimated_bytes=held.estimated_bytes), held, joined
        if cfg.fast_lane and by_pressure and self._fits(held, reading):
            del self.held[entry.prompt_id]
            self._fast_reading = reading
            return Verdict(RUN, LANE_FAST, estimated_bytes=held.estimated_bytes), held, joined
        if held.hold_verdict is None or held.hold_verdict.estimated_bytes != held.estimated_bytes:
            held.hold_verdict = Verdict(HOLD, estimated_bytes=held.estimated_bytes)
        return held.hold_verdict, None, joined

    def _fits(self, held: HeldPrompt, reading: Optional[Reading]) -> bool:
        # One fast-lane run per fresh reading: the next must see the memory the last one took.
        if reading is None or reading is self._fast_reading:
            return False
        estimate = held.estimate()
        return estimate is not None and estimate * (1 + self.config.fast_lane_margin) <= reading.free_bytes

    def admission(self, held_count: int, gate_closed: bool, why_closed: str) -> Admission:
        cfg = self.config
        if not gate_closed or cfg.max_held == 0 or held_count < cfg.max_held:
            return Admission(True)
        message = (f"VRAM guard is holding prompts ({why_closed}) and its hold queue is full "
                   f"({held_count} held, max_held={cfg.max_held}); retry in {cfg.retry_after_s} s")
        return Admission(False, cfg.retry_after_s, message)

    def overdue(self, now: float) -> list:
        """Held prompts that just crossed alert_held_s (or the hold timeout with action keep), once each."""
        cfg = self.config
        limits = [x for x in (cfg.alert_held_s, cfg.hold_timeout_s if cfg.hold_timeout_action == "keep" else 0)
                  if x > 0]
        if not limits:
            return []
        due = []
        for held in self.held.values():
            if not held.alerted and now - held.since >= min(limits):
                held.alerted = True
                due.append(held)
        return due

    def held_list(self, now: float) -> list:
        return [{"prompt_id": h.prompt_id, "number": h.number, "position": i, "waited_s": round(now - h.since, 3),
                 "client_id": h.client_id, "estimated_bytes": h.estimate()}
                for i, h in enumerate(self.held.values(), start=1)]
