"""The guard's background thread: idle-time readings, estimates of newly held prompts and the
rate-limited "gpu_guard.held" event. Decisions never wait for it: the worker reads for itself."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("gpu_guard")


class PollThread:
    def __init__(self, poll_once: Callable[[], None], after_poll: Callable[[], None],
                 interval: Callable[[], float], next_event_in: Callable[[], float]):
        """`poll_once()` reads; `after_poll()` runs after every wake-up (estimates, due events);
        `interval()` is the time to the next reading; `next_event_in()` the time until a held-back
        event is due (inf when none)."""
        self._poll_once, self._after_poll = poll_once, after_poll
        self._interval, self._next_event_in = interval, next_event_in
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpu-guard-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        next_poll = time.monotonic() + self._interval()
        while not self._stop.is_set():
            wait = min(max(0.0, next_poll - time.monotonic()), max(0.0, self._next_event_in()))
            woken = self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if woken or time.monotonic() >= next_poll:
                    self._poll_once()
                    next_poll = time.monotonic() + self._interval()
                self._after_poll()
            except Exception:  # noqa: BLE001 - the poll thread must outlive any bug
                log.exception("VRAM guard poll failed unexpectedly")
