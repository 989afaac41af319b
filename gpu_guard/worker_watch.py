"""Liveness: is ComfyUI's worker thread still taking and finishing prompts?

The queue hook reports the worker each time it enters `get` (idle, or done with a prompt) and each
time `get` hands it a prompt. The worker is alive while its thread is alive and it is either waiting
in `get` or has run its current prompt for less than `live_max_run_s`: a node that blocks forever
makes the worker stuck although the HTTP server still answers. No prompt data is kept, only its id.

The worker writes, the event loop reads: the phase, its start and the prompt id are one tuple,
replaced in one assignment, so a reader never pairs a new phase with an old start.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

WAITING = "waiting"
RUNNING = "running"
_UNSEEN = (None, 0.0, None)  # (phase, since, prompt id)


class WorkerWatch:
    def __init__(self, monotonic: Callable[[], float]):
        self._monotonic = monotonic
        self._thread: Optional[threading.Thread] = None
        self._state = _UNSEEN
        self.prompts_taken = 0

    def waiting(self) -> None:
        """Called on the worker thread as it enters `get` (which then hands it its prompts: `took`)."""
        if self._state[0] != WAITING:
            self._thread = threading.current_thread()
            self._state = (WAITING, self._monotonic(), None)

    def took(self, prompt_id: str) -> None:
        """Called on the worker thread as `get` hands it a prompt."""
        if self._thread is None:
            self._thread = threading.current_thread()
        self._state = (RUNNING, self._monotonic(), prompt_id)
        self.prompts_taken += 1

    @property
    def busy(self) -> bool:
        """The worker is running a prompt now."""
        return self._state[0] == RUNNING

    def verdict(self, max_run_s: float) -> tuple:
        """(alive, reason). `max_run_s` 0 = a prompt may run for ever."""
        return self._verdict(self._state, max_run_s)

    def _verdict(self, state: tuple, max_run_s: float) -> tuple:
        (phase, since, prompt_id), thread = state, self._thread
        if phase is None:
            return False, "the worker thread has not asked the queue for a prompt yet"
        if not thread.is_alive():
            return False, f"the worker thread {thread.name!r} has died"
        held_for = self._monotonic() - since
        if phase == WAITING:
            return True, f"worker waiting for a prompt ({held_for:.0f} s)"
        if max_run_s > 0 and held_for > max_run_s:
            return False, (f"worker stuck: prompt {prompt_id} has run for {held_for:.0f} s, longer than "
                           f"live_max_run_s={max_run_s:g}; raise live_max_run_s if jobs run this long")
        return True, f"worker running prompt {prompt_id} ({held_for:.0f} s)"

    def as_dict(self, max_run_s: float) -> dict:
        state = self._state
        phase, since, prompt_id = state
        alive, reason = self._verdict(state, max_run_s)
        return {"alive": alive, "reason": reason, "phase": phase,
                "for_s": round(self._monotonic() - since, 3) if phase else None,
                "prompt_id": prompt_id, "prompts_taken": self.prompts_taken}
