"""Change notification: the version counter the worker waits on, and the guard's events (collected under
its lock, published in order to the event stream's one delivery thread)."""
from __future__ import annotations

import logging
from typing import Callable, Optional

from .event_stream import OPERATIONAL
from .waits import FLUSH_WAIT_S

log = logging.getLogger("gpu_guard")


class Notifications:
    """A part of Guard (gpu_guard.guard): it runs on the guard's state and under its lock."""

    def subscribe(self, callback: Callable[[str, dict], None]) -> Callable[[], None]:
        """callback(event, payload) for "gpu_guard.status", "gpu_guard.held", "gpu_guard.alert", on the
        event stream's delivery thread; returns a function that unsubscribes."""
        return self.events.subscribe(callback)

    def subscribe_events(self, callback: Callable[[dict], None]) -> Callable[[], None]:
        """callback(event) for every operational event (docs/gpu_guard_core_api.md: pause, resume,
        hold_start, hold_end, rejected, hold_timeout, reclaim, sensor_failure, sensor_recovered,
        config_change, fast_lane, unguarded); returns a function that unsubscribes."""
        return self.events.subscribe(callback, operational=True)

    def wait_events(self, timeout: float = FLUSH_WAIT_S) -> bool:
        """Wait until every event so far has reached the subscribers."""
        return self.events.flush(timeout)

    @property
    def version(self) -> int:
        """A counter bumped on every state, held-set or config change (and every reading while holding)."""
        return self._version

    def wait_for_change(self, timeout: float, since: Optional[int] = None) -> bool:
        """Block up to timeout seconds until version differs from since (default: the version now)."""
        with self._cond:
            start = self._version if since is None else since
            return self._cond.wait_for(lambda: self._version != start, timeout)

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _alert(self, kind: str, message: str, **extra) -> None:
        log.warning("VRAM guard alert (%s): %s", kind, message)
        self._events.append(("gpu_guard.alert", {"kind": kind, "message": message, **extra}))

    def _op(self, kind: str, reason: Optional[str], **fields) -> None:
        """Queue one operational event for subscribe_events (built now: it records this moment)."""
        if not self.events.wants_operational:
            return
        reading = self._monitor.reading
        self._events.append((OPERATIONAL, {"kind": kind, "at": self._wall(), "reason": reason or "",
                                                 "reading": reading.as_dict() if reading else None, **fields}))

    def _deliver(self) -> None:
        """Publish the collected events: payloads are built under the lock, once per batch, and queued
        in that order for the one delivery thread."""
        if not self._events:  # unlocked peek: events are appended by the thread that publishes them
            return
        with self._queue.lock, self._lock:
            events, self._events = self._events, []
            seen = set()
            for name, payload in events:
                if payload is None:
                    if name in seen:
                        continue  # one status / held event per batch is enough: it carries the latest
                    seen.add(name)
                    payload = self.status() if name == "gpu_guard.status" else \
                        {"held": self._policy.held_list(self._monotonic())}
                self.events.publish(name, payload)
