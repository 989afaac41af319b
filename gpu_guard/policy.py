"""Per-prompt admission: hold or run, the bounded hold queue, the fast lane and the hold timeout.

Pure bookkeeping: the guard passes in the time, the last reading and whether the gate is closed,
and serialises the calls under its lock. The held set is a dict keyed by prompt id; its priority
order (ComfyUI's (number, prompt id)) is computed only when someone asks for it, so a burst of
prompts while paused costs a set update per queue change, not a sort.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional

from . import learned_peaks
from .config import GuardConfig
from .probes import Reading

RUN = "run"
HOLD = "hold"
FAIL = "fail"

LANE_NORMAL = "normal"  # the guard is running (or off): nothing to hold
LANE_FAST = "fast"  # paused, but the prompt's estimated peak keeps the pressure under pause_at


class QueueEntry(NamedTuple):
    """One pending prompt as the adapter sees it in ComfyUI's queue (a tuple, cheap to build)."""

    prompt_id: str
    number: float  # ComfyUI's queue number (front-of-queue prompts have negative numbers)
    prompt: Mapping[str, Any] = {}  # the API-format graph; never mutated
    client_id: Optional[str] = None
    priority_class: Optional[str] = None  # the class /prompt gave it (gpu_guard.priority); None = normal
    created_at: Optional[float] = None  # wall time it was queued (ComfyUI's create_time), for aging


@dataclass(frozen=True)
class Verdict:
    """What to do with one entry: RUN (pop and execute), HOLD (leave it queued) or FAIL."""

    kind: str  # RUN | HOLD | FAIL
    lane: Optional[str] = None  # for RUN: LANE_NORMAL or LANE_FAST
    message: Optional[str] = None  # for FAIL: the error to put into ComfyUI's history
    estimated_bytes: Optional[int] = None  # the prompt's estimate when one was made


RUN_NORMAL = Verdict(RUN, LANE_NORMAL)
HOLD_ALL = Verdict(HOLD)


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
    prompt: Mapping[str, Any] = field(repr=False, default_factory=dict)  # dropped with the HeldPrompt
    estimated: bool = False
    estimated_bytes: Optional[int] = None  # the learned peak when there is one, else the nodes' estimate
    need_source: str = learned_peaks.PENDING  # until the poll thread made the estimate
    alerted: bool = False
    priority_class: Optional[str] = None

    @property
    def priority(self) -> tuple:
        return (self.number, self.prompt_id)

    def estimate(self) -> Optional[int]:
        """The cached estimate (None until one was made, see Policy.needs_estimate); never computed
        here: estimators are third-party code and must not run under the guard's or the queue's lock."""
        return self.estimated_bytes


class PassResult(NamedTuple):
    """The outcome of one decision pass over the pending prompts, against one gate reading (a tuple:
    one is built at every dispatch)."""

    run: Optional[str] = None  # prompt id to pop and execute
    verdict: Verdict = HOLD_ALL  # the run's verdict (lane, estimate)
    fails: tuple = ()  # ((prompt id, Verdict), ...) to end as errors, in order


def _percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def _held_from(entry: QueueEntry, now: float) -> HeldPrompt:
    return HeldPrompt(entry.prompt_id, entry.number, entry.client_id, now, entry.prompt,
                      priority_class=entry.priority_class)


class Policy:
    def __init__(self, config: GuardConfig):
        self.config = config
        self.held: dict = {}  # prompt_id -> HeldPrompt (any order; see ordered())
        self._ordered: Optional[list] = None  # priority order, rebuilt after a membership change
        self._fast_reading: Optional[Reading] = None  # the reading the last fast-lane run relied on
        self._checked_reading: Optional[Reading] = None  # the reading the prompts in _checked failed
        self._checked: set = set()

    # -- the held set ------------------------------------------------------------------------------

    def _add(self, held: HeldPrompt) -> None:
        self.held[held.prompt_id] = held
        self._ordered = None

    def _remove(self, prompt_id: str) -> HeldPrompt:
        self._ordered = None
        return self.held.pop(prompt_id)

    def ordered(self) -> list:
        """The held prompts in ComfyUI's priority order."""
        if self._ordered is None:
            self._ordered = sorted(self.held.values(), key=lambda h: h.priority)
        return self._ordered

    def head(self) -> Optional[HeldPrompt]:
        ordered = self.ordered()
        return ordered[0] if ordered else None

    def sync(self, prompt_ids: Iterable[str], entries_of: Callable[[set], list], now: float) -> tuple:
        """Make the held set the pending prompts (the gate is closed): `prompt_ids` are the queued
        ids in any order, `entries_of(ids)` builds the entries of the new ones. Returns
        (changed, left, joined). A put costs a set difference, never a sort."""
        pending = prompt_ids if isinstance(prompt_ids, (set, frozenset)) else set(prompt_ids)
        held = self.held
        new = pending.difference(held)
        left = []
        if len(held) + len(new) != len(pending):  # some held prompt is gone (deleted, run, cleared)
            left = [self._remove(pid) for pid in [pid for pid in held if pid not in pending]]
        if not new and not left:
            return False, [], []  # the usual wake-up: nothing moved
        joined = [_held_from(entry, now) for entry in entries_of(new)] if new else []
        for prompt in joined:
            self._add(prompt)
        return True, left, joined

    def needs_estimate(self) -> list:
        """[(prompt id, graph)] of the held prompts without an estimate yet (to compute outside the lock)."""
        return [(h.prompt_id, h.prompt) for h in self.held.values() if not h.estimated]

    def set_estimate(self, prompt_id: str, estimated_bytes: Optional[int], need_source: Optional[str] = None) -> None:
        """`estimated_bytes`: the prompt's need (gpu_guard.learned_peaks.need_of: the learned peak when
        there is one, else its nodes' estimate); `need_source` says which."""
        held = self.held.get(prompt_id)
        if held is not None and not held.estimated:
            held.estimated_bytes, held.estimated = estimated_bytes, True
            held.need_source = need_source or (learned_peaks.UNKNOWN if estimated_bytes is None
                                               else learned_peaks.ESTIMATED)
            if prompt_id in self._checked:
                self._checked.discard(prompt_id)  # it may fit now that its cost is known

    def release_all(self) -> list:
        released, self.held, self._ordered = list(self.held.values()), {}, None
        self._checked = set()
        return released

    # -- decisions -----------------------------------------------------------------------------------

    def closed_pass(self, now: float, reading: Optional[Reading], by_pressure: bool) -> tuple:
        """A decision pass over the whole held set while the gate is closed (sync it first).
        Returns (PassResult, left) where left are the HeldPrompts that leave the held set."""
        fails, left = [], []
        cfg = self.config
        if cfg.hold_timeout_action == "fail" and cfg.hold_timeout_s > 0:
            for held in list(self.ordered()):
                verdict = self._timed_out(held, now)
                if verdict is not None:
                    left.append(self._remove(held.prompt_id))
                    fails.append((held.prompt_id, verdict))
        if not (by_pressure and cfg.fast_lane) or not self._fresh(reading):
            return PassResult(fails=tuple(fails)), left
        if reading is not self._checked_reading:  # a new reading: every prompt may fit again
            self._checked_reading, self._checked = reading, set()
        unchecked = [h for pid, h in self.held.items() if pid not in self._checked]
        for held in sorted(unchecked, key=lambda h: h.priority):
            self._checked.add(held.prompt_id)
            if self._may_overtake(held, now) and self._fits(held, reading):
                left.append(held)
                return PassResult(held.prompt_id, self._run_fast(held, reading), tuple(fails)), left
        return PassResult(fails=tuple(fails)), left

    def _timed_out(self, held: HeldPrompt, now: float) -> Optional[Verdict]:
        cfg = self.config
        waited = now - held.since
        if not (cfg.hold_timeout_action == "fail" and 0 < cfg.hold_timeout_s <= waited):
            return None
        message = (f"waited {math.floor(waited)} s for GPU memory pressure above {_percent(cfg.pause_at)} "
                   f"to drop below {_percent(cfg.resume_at)} (VRAM guard hold_timeout_s="
                   f"{cfg.hold_timeout_s:g}); the prompt was not run")
        return Verdict(FAIL, message=message, estimated_bytes=held.estimated_bytes)

    def _run_fast(self, held: HeldPrompt, reading: Reading) -> Verdict:
        if held.prompt_id in self.held:
            self._remove(held.prompt_id)
        self._fast_reading = reading
        return Verdict(RUN, LANE_FAST, estimated_bytes=held.estimated_bytes)

    def _fresh(self, reading: Optional[Reading]) -> bool:
        # One fast-lane run per fresh reading: the next must see the memory the last one took.
        return reading is not None and reading is not self._fast_reading

    def _may_overtake(self, held: HeldPrompt, now: float) -> bool:
        """Aging: once the head of the held queue has waited fast_lane_max_overtake_s, nothing else
        may run before it."""
        limit = self.config.fast_lane_max_overtake_s
        head = self.head()
        return limit <= 0 or head is None or head is held or now - head.since < limit

    def _fits(self, held: HeldPrompt, reading: Optional[Reading]) -> bool:
        """The pressure after the prompt, (pressure + estimate * (1 + margin)) / total, stays under
        pause_at: the fast lane never takes a paused GPU back over the pause mark."""
        if not self.config.fast_lane or not self._fresh(reading):
            return False
        estimate = held.estimate()
        if estimate is None:
            return False
        after = reading.pressure_bytes + estimate * (1 + self.config.fast_lane_margin)
        return after < self.config.pause_at * reading.total_bytes

    # -- admission and reporting ------------------------------------------------------------------

    def admission(self, held_count: int, gate_closed: bool, why_closed: str,
                  priority_class: Optional[dict] = None) -> Admission:
        """`held_count`: prompts held now in the submission's own lane (its priority class, or the
        normal lane); each lane has its own bound, so a full normal queue does not refuse a class."""
        cfg = self.config
        bound = cfg.max_held if priority_class is None else priority_class["max_held"]
        if not gate_closed or bound == 0 or held_count < bound:
            return Admission(True)
        lane = "its hold queue" if priority_class is None else f"the hold queue of class {priority_class['name']}"
        message = (f"VRAM guard is holding prompts ({why_closed}) and {lane} is full "
                   f"({held_count} held, max_held={bound}); retry in {cfg.retry_after_s} s")
        return Admission(False, cfg.retry_after_s, message)

    def held_by_class(self) -> dict:
        """{class name or None (normal): prompts held}"""
        counts: dict = {}
        for held in self.held.values():
            counts[held.priority_class] = counts.get(held.priority_class, 0) + 1
        return counts

    def overdue(self, now: float) -> list:
        """Held prompts that just crossed alert_held_s (or the hold timeout with action keep), once each."""
        cfg = self.config
        limits = [x for x in (cfg.alert_held_s, cfg.hold_timeout_s if cfg.hold_timeout_action == "keep" else 0)
                  if x > 0]
        if not limits or not self.held:
            return []
        due = []
        for held in self.held.values():
            if not held.alerted and now - held.since >= min(limits):
                held.alerted = True
                due.append(held)
        return due

    def held_list(self, now: float) -> list:
        return [{"prompt_id": h.prompt_id, "number": h.number, "position": i, "waited_s": round(now - h.since, 3),
                 "client_id": h.client_id, "estimated_bytes": h.estimate(), "need_source": h.need_source,
                 "learned_bytes": h.estimated_bytes if h.need_source == learned_peaks.LEARNED else None,
                 "priority_class": h.priority_class or "normal"}
                for i, h in enumerate(self.ordered(), start=1)]
