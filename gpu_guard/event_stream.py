"""One in-order stream of the guard's events, delivered to the subscribers by one thread.

The guard publishes while it holds its lock, with each payload built at that moment, so the stream's
order is the order of the changes: a subscriber never gets an older status after a newer one. The
delivery thread calls the subscribers outside every lock of the guard and of ComfyUI's queue, so a
slow listener delays only later events, never a decision. Callbacks must not block for long.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable
from .waits import FLUSH_WAIT_S

log = logging.getLogger("gpu_guard")

OPERATIONAL = "gpu_guard.event"  # delivered to subscribe_events callbacks as callback(event)


class EventStream:
    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque = deque()
        self._published = 0
        self._delivered = 0
        self._state_subscribers: list = []
        self._event_subscribers: list = []
        self._thread = None

    # -- subscribers ----------------------------------------------------------------------------------

    def subscribe(self, callback: Callable, operational: bool = False) -> Callable[[], None]:
        subscribers = self._event_subscribers if operational else self._state_subscribers
        with self._cond:
            subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in subscribers:
                    subscribers.remove(callback)

        return unsubscribe

    @property
    def wants_operational(self) -> bool:
        return bool(self._event_subscribers)

    @property
    def wants_state(self) -> bool:
        return bool(self._state_subscribers)

    # -- publishing and delivery -----------------------------------------------------------------------

    def publish(self, name: str, payload) -> None:
        """Queue one event (its payload already built); returns at once."""
        with self._cond:
            self._queue.append((name, payload))
            self._published += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gpu-guard-events", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = FLUSH_WAIT_S) -> bool:
        """Wait until every event published so far has been delivered (tests, orderly shutdown)."""
        with self._cond:
            target = self._published
            return self._cond.wait_for(lambda: self._delivered >= target, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue)
                name, payload = self._queue.popleft()
                targets = list(self._event_subscribers if name == OPERATIONAL else self._state_subscribers)
            for callback in targets:
                try:
                    callback(payload) if name == OPERATIONAL else callback(name, payload)
                except Exception:  # noqa: BLE001 - a listener never breaks the guard
                    log.exception("VRAM guard event listener failed on %s", name)
            with self._cond:
                self._delivered += 1
                self._cond.notify_all()
