"""`/prompt` admission: while paused with the hold queue full, answer 429 instead of queueing.

ComfyUI's `post_prompt` awaits the body and the validation before it puts the prompt into the
queue, so many submissions can be in flight at once. Each accepted submission therefore reserves a
place until its handler returns (by then its prompt is in the queue, or it was refused), and the
bound is checked against queued + reserved under one lock: 50 concurrent posts cannot overshoot.

The place is reserved only once the whole body has arrived, so slow uploads cannot fill the bound
while they trickle in. aiohttp keeps the body it read; ComfyUI's handler reads it again from memory.

A 200 goes out only after `committed` (the journal's group commit, gpu_guard.comfy.persistence) says
the prompt is on disk; when it cannot be, the answer carries UNWRITTEN_HEADER naming why.
"""
from __future__ import annotations

import logging
import threading

from aiohttp import web

from .config_access import bearer_token
from .persistence import UNWRITTEN_HEADER
from .priority_lanes import CURRENT, IGNORED_HEADER, Submission, class_of

_log = logging.getLogger("gpu_guard.comfy")

PROMPT_PATHS = frozenset({"/prompt", "/api/prompt"})


class PromptAdmission:
    def __init__(self, guard, queue, committed=None):
        self.guard = guard
        self.queue = queue
        self._committed = committed  # async () -> None once journaled, else why not
        self.rejected = 0
        self._reserved: dict = {}  # lane (class name, None = normal) -> places reserved now
        self._lock = threading.Lock()

    def _queued(self, lane_name):
        """Prompts queued in one lane; with no priority classes every prompt is in the normal lane."""
        with self.queue.mutex:
            if not self.guard.lanes:
                return len(self.queue.queue)
            return sum(1 for item in self.queue.queue if class_of(item) == lane_name)

    def _reserve(self, lane):
        """Return None when a place was reserved in the submission's lane, else the guard's refusal."""
        name = lane["name"] if lane else None
        with self._lock:
            reserved = self._reserved.get(name, 0)
            admission = self.guard.admission(self._queued(name) + reserved, lane)
            if admission.accept:
                self._reserved[name] = reserved + 1
                return None
            self.rejected += 1
            return admission

    def _release(self, lane):
        name = lane["name"] if lane else None
        with self._lock:
            self._reserved[name] -= 1

    @web.middleware
    async def middleware(self, request, handler):
        if request.method != "POST" or request.path not in PROMPT_PATHS:
            return await handler(request)
        await request.read()
        reserved = False
        try:
            lane = self.guard.priority_class_for(bearer_token(request.headers))
            refusal = self._reserve(lane)
            reserved = refusal is None
        except Exception:  # noqa: BLE001 - a guard fault must not block submissions
            _log.exception("VRAM guard: admission check failed; accepting the prompt in the normal lane")
            lane, refusal = None, None  # still through on_prompt: under enforcement front/number are dropped
        if refusal is not None:
            retry_after = max(1, int(refusal.retry_after_s or 1))
            return web.json_response(refusal.error_body(), status=429,
                                     headers={"Retry-After": str(retry_after)})
        submission = Submission(lane)
        context = CURRENT.set(submission)  # read by the on_prompt handler inside ComfyUI's post_prompt
        try:
            response = await handler(request)
        finally:
            CURRENT.reset(context)
            if reserved:
                self._release(lane)
        if submission.ignored:
            response.headers[IGNORED_HEADER] = ", ".join(submission.ignored)
        return await self._journaled(response)

    async def _journaled(self, response):
        """Hold a 200 until its prompt is committed to the journal (outside the reserved place: the
        prompt is in the queue by now, and the bound counts it there)."""
        if self._committed is None or getattr(response, "status", None) != 200:
            return response
        try:
            problem = await self._committed()
        except Exception:  # noqa: BLE001 - a journal fault must not turn an accepted prompt into an error
            _log.exception("VRAM guard: waiting for the journal failed")
            problem = "waiting for the journal failed"
        if problem is not None:
            response.headers[UNWRITTEN_HEADER] = "not written; see /gpu_guard/status adapter.journal"
        return response
