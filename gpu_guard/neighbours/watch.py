"""Neighbours on one GPU: each guard publishes what it could release, honours release requests when
its worker is idle, and asks the neighbours whose idle memory is what keeps it paused.

Several ComfyUI servers often share one large GPU. For each of them the others' idle models are
memory it cannot free, so one server may hold prompts forever while another sits idle with its
models loaded. The guards meet in a Registry (one folder per physical device) and settle it:

- every TICK_S each guard writes its claim: idle-model and torch-cache bytes, busy or not;
- a guard that holds prompts while paused by memory asks the idle neighbours whose release would
  take its pressure below resume_at (fewest first, largest first); if all of them together would
  not, it asks nobody (they would lose their warm models for nothing); each neighbour at most every
  ASK_INTERVAL_S;
- a guard that was asked releases its idle models (ComfyUI's unload_models, as POST /free does) only
  when its worker is idle with nothing queued, at most every HONOUR_INTERVAL_S; a request waits for
  that moment until it expires (ASK_EXPIRES_S).

The asker never waits on an answer: it decides on its own device reading, which falls when the
neighbour's memory is freed - or when the neighbour dies and the driver frees it.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from .registry import ASK_EXPIRES_S, Claim, Registry
from ..waits import STOP_WAIT_S

log = logging.getLogger("gpu_guard.neighbours")

# Heartbeat: a neighbour's claim is at most this old, and a request is picked up within it. A tick is
# one listdir and a few small reads on tmpfs.
TICK_S = 0.5
# An asker repeats a request to the same neighbour at most this often: the neighbour needs a moment
# to unload and the device reading to follow; asking faster only repeats the request.
ASK_INTERVAL_S = 5.0
# A guard releases its idle models at most this often, however many neighbours ask: a chatty
# neighbour must not make it reload its models before each of its own prompts.
HONOUR_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Mine:
    """What this guard publishes."""
    idle_models_bytes: int
    torch_cache_bytes: int
    busy: bool
    pending: int


@dataclass(frozen=True)
class Pressure:
    """What this guard knows when it decides whether to ask."""
    holding: bool  # paused by memory (not by an operator, not a failing sensor) with prompts held
    pressure_bytes: int
    total_bytes: int
    resume_at: float


def who_to_ask(pressure: Pressure, neighbours: Sequence[Claim]) -> List[Claim]:
    """The idle neighbours whose release would take this guard below resume_at (largest first, as few
    as will do), or nobody when even all of them would not."""
    if not pressure.holding or pressure.total_bytes <= 0:
        return []
    excess = pressure.pressure_bytes - int(pressure.resume_at * pressure.total_bytes) + 1
    if excess <= 0:
        return []
    chosen, freed = [], 0
    for claim in sorted((c for c in neighbours if not c.busy and c.releasable_bytes > 0),
                        key=lambda c: (-c.releasable_bytes, c.pid)):
        chosen.append(claim)
        freed += claim.releasable_bytes
        if freed >= excess:
            return chosen
    return []


class NeighbourWatch:
    """One guard's part in the registry. `tick()` does one round; `start()` runs it on a daemon thread.

    mine(): what to publish; pressure(): the asker's view, or None; release_idle() -> bool: release
    this ComfyUI's idle models if its worker is idle (False: busy, nothing released); enabled(): the
    opt-out setting, read at every tick.
    """

    def __init__(self, registry: Registry, mine: Callable[[], Mine], pressure: Callable[[], Optional[Pressure]],
                 release_idle: Callable[[], bool], enabled: Callable[[], bool] = lambda: True,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.registry = registry
        self._mine, self._pressure, self._release_idle, self._enabled = mine, pressure, release_idle, enabled
        self._monotonic, self._wall = monotonic, wall
        self._lock = threading.Lock()
        self._published: Optional[Claim] = None
        self._neighbours: List[Claim] = []
        self._asked_at: Dict[str, float] = {}  # neighbour tag -> monotonic time of the last request
        self._request: Optional[dict] = None  # the latest request not yet honoured, with "seen_at"
        self._released_at = float("-inf")
        self.asks_sent = 0
        self.releases_done = 0
        self.last_ask: Optional[dict] = None
        self.last_release: Optional[dict] = None
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- one round -------------------------------------------------------------------------------------

    def tick(self) -> None:
        if not self._enabled():
            if self._published is not None:
                self.registry.withdraw()
            with self._lock:
                self._published, self._neighbours, self._request = None, [], None
            return
        mine = self._mine()
        published = self.registry.publish(mine.idle_models_bytes, mine.torch_cache_bytes, mine.busy, mine.pending)
        neighbours = self.registry.neighbours()
        with self._lock:
            self._published, self._neighbours = published, neighbours
        self._honour(self.registry.take_requests())
        self._ask(neighbours)
        self.error = None

    def _honour(self, requests: List[dict]) -> None:
        now = self._monotonic()
        if requests:
            self._request = dict(requests[-1], seen_at=now)
        request = self._request
        if request is None:
            return
        if now - request["seen_at"] > ASK_EXPIRES_S:
            self._request = None  # the asker has decided on newer readings long since
            return
        if now - self._released_at < HONOUR_INTERVAL_S:
            return
        if not self._release_idle():
            return  # busy or nothing loaded: keep the request for an idle moment
        self._request, self._released_at = None, now
        self.releases_done += 1
        self.last_release = {"at": self._wall(), "for": request.get("by", ""), "reason": request.get("reason", "")}
        log.info("VRAM guard neighbours: released this ComfyUI's idle models for %s (%s)",
                 request.get("by", "a neighbour"), request.get("reason", ""))

    def _ask(self, neighbours: List[Claim]) -> None:
        pressure = self._pressure()
        if pressure is None:
            return
        now = self._monotonic()
        for claim in who_to_ask(pressure, neighbours):
            tag = claim.process.tag
            if now - self._asked_at.get(tag, float("-inf")) < ASK_INTERVAL_S:
                continue
            reason = (f"pressure {pressure.pressure_bytes / pressure.total_bytes:.2f} holds prompts; "
                      f"your {claim.releasable_bytes} idle bytes would take it below resume_at "
                      f"{pressure.resume_at:.2f}")
            self.registry.ask(claim, reason)
            self._asked_at[tag] = now
            self.asks_sent += 1
            self.last_ask = {"at": self._wall(), "to": claim.name, "pid": claim.pid,
                             "releasable_bytes": claim.releasable_bytes}
            log.info("VRAM guard neighbours: asked %s (pid %d) to release %d idle bytes: %s",
                     claim.name, claim.pid, claim.releasable_bytes, reason)
        live = {c.process.tag for c in neighbours}
        for tag in [t for t in self._asked_at if t not in live]:
            del self._asked_at[tag]  # a dead neighbour keeps no state here

    # -- thread ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpu-guard-neighbours", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop the thread and withdraw this guard's claim (a killed process is cleaned up by the others)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.registry.withdraw()
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the registry is a courtesy; never break the guard
                if self.error is None:
                    log.exception("VRAM guard neighbours: a round failed")
                self.error = f"{type(e).__name__}: {e}"
            self._stop.wait(TICK_S)

    # -- reporting -------------------------------------------------------------------------------------

    def status(self, identities: bool = True) -> dict:
        """The status view; `identities` False (a caller that may not operate the guard) leaves out
        what names the other servers and this host: their host:port names, pids, the registry folder,
        the device key and the error text."""
        with self._lock:
            published, neighbours = self._published, list(self._neighbours)
        now = self._wall()
        shown = _shown if identities else _shown_anonymous
        last_ask, last_release = self.last_ask, self.last_release
        if not identities:
            last_ask = last_ask and {"at": last_ask["at"], "releasable_bytes": last_ask["releasable_bytes"]}
            last_release = last_release and {"at": last_release["at"]}
        return {
            "enabled": published is not None,
            "device": self.registry.device_key if identities else None,
            "dir": self.registry.dir if identities else None,
            "me": shown(published, now) if published else None,
            "neighbours": [shown(c, now) for c in neighbours],
            "asks_sent": self.asks_sent,
            "last_ask": last_ask,
            "releases_done": self.releases_done,
            "last_release": last_release,
            "request_waiting": self._request is not None,
            "error": self.error if identities or self.error is None else "failing (details for operators)",
        }


def _shown(claim: Claim, now: float) -> dict:
    return {"name": claim.name, "pid": claim.pid, "idle_models_bytes": claim.idle_models_bytes,
            "torch_cache_bytes": claim.torch_cache_bytes, "busy": claim.busy, "pending": claim.pending,
            "age_s": round(max(0.0, now - claim.at), 3)}


def _shown_anonymous(claim: Claim, now: float) -> dict:
    return dict(_shown(claim, now), name=None, pid=None)
