"""Liveness: is ComfyUI's worker thread still taking and finishing prompts?

The queue hook reports the worker each time it enters `get` (idle, or done with a prompt) and each
time `get` hands it a prompt. The worker is alive while its thread is alive and it is either waiting
in `get` or has run its current prompt for less than `live_max_run_s`: a node that blocks forever
makes the worker stuck although the HTTP server still answers. No prompt data is kept, only its id.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

WAITING = "waiting"
RUNNING = "running"


class WorkerWatch:
    def __init__(self, monotonic: Callable[[], float]):
        self._monotonic = monotonic
        self._thread: Optional[threading.Thread] = None
        self._phase: Optional[str] = None  # None until the worker was seen
        self._since = 0.0
        self._prompt_id: Optional[str] = None
        self.prompts_taken = 0

    def waiting(self) -> None:
        """Called on the worker thread as it enters `get`."""
        self._thread = threading.current_thread()
        if self._phase != WAITING:
            self._phase, self._since, self._prompt_id = WAITING, self._monotonic(), None

    def took(self, prompt_id: str) -> None:
        """Called on the worker thread as `get` hands it a prompt."""
        self._thread = threading.current_thread()
        self._phase, self._since, self._prompt_id = RUNNING, self._monotonic(), prompt_id
        self.prompts_taken += 1

    @property
    def busy(self) -> bool:
        """The worker is running a prompt now."""
        return self._phase == RUNNING

    def verdict(self, max_run_s: float) -> tuple:
        """(alive, reason). `max_run_s` 0 = a prompt may run for ever."""
        thread, phase = self._thread, self._phase
        if phase is None:
            return False, "the worker thread has not asked the queue for a prompt yet"
        if not thread.is_alive():
            return False, f"the worker thread {thread.name!r} has died"
        held_for = self._monotonic() - self._since
        if phase == WAITING:
            return True, f"worker waiting for a prompt ({held_for:.0f} s)"
        if max_run_s > 0 and held_for > max_run_s:
            return False, (f"worker stuck: prompt {self._prompt_id} has run for {held_for:.0f} s, longer than "
                           f"live_max_run_s={max_run_s:g}; raise live_max_run_s if jobs run this long")
        return True, f"worker running prompt {self._prompt_id} ({held_for:.0f} s)"

    def as_dict(self, max_run_s: float) -> dict:
        alive, reason = self.verdict(max_run_s)
        return {"alive": alive, "reason": reason, "phase": self._phase,
                "for_s": round(self._monotonic() - self._since, 3) if self._phase else None,
                "prompt_id": self._prompt_id, "prompts_taken": self.prompts_taken}
