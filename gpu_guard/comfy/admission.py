"""`/prompt` admission: while paused with the hold queue full, answer 429 instead of queueing.

ComfyUI's `post_prompt` awaits the body and the validation before it puts the prompt into the
queue, so many submissions can be in flight at once. Each accepted submission therefore reserves a
place until its handler returns (by then its prompt is in the queue, or it was refused), and the
bound is checked against queued + reserved under one lock: 50 concurrent posts cannot overshoot.

The place is reserved only once the whole body has arrived, so slow uploads cannot fill the bound
while they trickle in. aiohttp keeps the body it read; ComfyUI's handler reads it again from memory.
"""
from __future__ import annotations

import logging
import threading

from aiohttp import web

_log = logging.getLogger("gpu_guard.comfy")

PROMPT_PATHS = frozenset({"/prompt", "/api/prompt"})


class PromptAdmission:
    def __init__(self, guard, queue):
        self.guard = guard
        self.queue = queue
        self.rejected = 0
        self._reserved = 0
        self._lock = threading.Lock()

    def _reserve(self):
        """Return None when a place was reserved, else the guard's refusal."""
        with self._lock:
            with self.queue.mutex:
                queued = len(self.queue.queue)
            admission = self.guard.admission(queued + self._reserved)
            if admission.accept:
                self._reserved += 1
                return None
            self.rejected += 1
            return admission

    def _release(self):
        with self._lock:
            self._reserved -= 1

    @web.middleware
    async def middleware(self, request, handler):
        if request.method != "POST" or request.path not in PROMPT_PATHS:
            return await handler(request)
        await request.read()
        try:
            refusal = self._reserve()
        except Exception:  # noqa: BLE001 - a guard fault must not block submissions
            _log.exception("VRAM guard: admission check failed; accepting the prompt")
            return await handler(request)
        if refusal is not None:
            retry_after = max(1, int(refusal.retry_after_s or 1))
            return web.json_response(refusal.error_body(), status=429,
                                     headers={"Retry-After": str(retry_after)})
        try:
            return await handler(request)
        finally:
            self._release()
