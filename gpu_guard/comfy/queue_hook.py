"""The guard's hook on ComfyUI's prompt queue: `get` decides hold or run under the queue's mutex.

ComfyUI's worker thread loops on `queue.get(timeout)`. The guarded `get` never blocks inside
ComfyUI's own `get` (a prompt put while it waits there would be popped unchecked): it waits on the
queue's condition itself, decides under the mutex and pops the admitted item through ComfyUI's `get`
while still holding the mutex. While everything is held it returns None after a short wait, so the
worker keeps handling its flags (free/unload) and garbage collection.

Any exception inside the guard falls back to ComfyUI's own `get`: the worker thread must never die.
"""
from __future__ import annotations

import logging
import threading
import time

from ..guard import FAIL, LANE_FAST, RUN
from . import queue_ops

_log = logging.getLogger("gpu_guard.comfy")

PAUSED = "paused"  # the guard state in which prompts are held

# While holding, how long one `get` waits before handing control back to ComfyUI's worker loop
HOLD_WAIT_S = 0.25


class QueueHook:
    """Wraps `get` and `server.queue_updated` of one live PromptQueue.

    `loaded_models` returns ComfyUI's loaded models (comfy.model_management.current_loaded_models);
    `on_failed(item, messages)` is told of each prompt the guard ended as an error.
    """

    def __init__(self, guard, queue, loaded_models, on_failed=None, hold_wait_s=HOLD_WAIT_S):
        self.guard = guard
        self.queue = queue
        self.loaded_models = loaded_models
        self.on_failed = on_failed
        self.hold_wait_s = hold_wait_s
        self.original_get = queue.get
        self.original_queue_updated = None
        self.pending = queue_ops.PendingView()
        self.errors = 0
        self.free_requests = 0
        self.failed_prompts = 0
        self.fast_lane_runs = 0
        self._poll_after_free = False
        self._stats_lock = threading.Lock()

    # installation -------------------------------------------------------------------------

    def install(self) -> None:
        self.queue.get = self.get
        server = getattr(self.queue, "server", None)
        if server is not None and hasattr(server, "queue_updated"):
            self.original_queue_updated = server.queue_updated
            server.queue_updated = self._queue_updated

    def uninstall(self) -> None:
        self.queue.get = self.original_get
        if self.original_queue_updated is not None:
            self.queue.server.queue_updated = self.original_queue_updated

    # the hooks ----------------------------------------------------------------------------

    def get(self, timeout=None):
        try:
            return self._guarded_get(timeout)
        except _RunInstead as run_instead:
            return run_instead.popped
        except Exception:  # noqa: BLE001 - the worker thread must never die
            self._count("errors")
            _log.exception("VRAM guard: queue hook failed; this prompt is dispatched without the guard")
            return self.original_get(timeout=timeout)

    def _queue_updated(self):
        # ComfyUI calls this (under the mutex) after every put, pop, delete, clear and task_done:
        # the one place that sees every change of the pending set.
        try:
            with self.queue.mutex:
                self.guard.note_pending(queue_ops.LazyPending(list(self.queue.queue), self.pending))
        except Exception:  # noqa: BLE001 - never break ComfyUI's queue
            self._count("errors")
            _log.exception("VRAM guard: could not track the pending prompts")
        self.original_queue_updated()

    # decision -----------------------------------------------------------------------------

    def _guarded_get(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        queue = self.queue
        if self._poll_after_free:
            # the worker has handled the free/unload flags since the last call: measure again now
            self._poll_after_free = False
            self.guard.request_poll()
        with queue.not_empty:
            while not queue.queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                queue.not_empty.wait(timeout=remaining)
                if timeout is not None and not queue.queue:
                    # as ComfyUI's own get: a wake-up with nothing queued (the flags POST /free
                    # sets) goes back to the worker at once, so it frees memory while idle
                    return None
            popped = self._admit_one()
            if popped is not None:
                return popped
            if self._ask_comfy_to_free():
                return None  # let the worker handle the flags right away
            since = self.guard.version
        # everything is held: wait outside the mutex for a change (resume, new prompt, config)
        remaining = self.hold_wait_s if deadline is None else min(self.hold_wait_s, deadline - time.monotonic())
        if remaining > 0:
            self.guard.wait_for_change(remaining, since)
        return None

    def _admit_one(self):
        """Under the mutex: pop the first prompt the guard lets run, failing timed-out ones."""
        if self.guard.state != PAUSED:
            # the common case: the heap's top is ComfyUI's next prompt; no need to list the queue
            first = self.queue.queue[0]
            verdict = self.guard.decide(self.pending.entry(first))
            if verdict.kind == RUN:
                return queue_ops.pop_item(self.queue, first, self.original_get)
        items, entries = self.pending.snapshot(self.queue)
        self.guard.note_pending(entries)
        for item, entry in zip(items, entries):
            verdict = self.guard.decide(entry)
            if verdict.kind == RUN:
                popped = queue_ops.pop_item(self.queue, item, self.original_get)
                if verdict.lane == LANE_FAST:
                    self._count("fast_lane_runs")
                return popped
            if verdict.kind == FAIL:
                self._fail(item, verdict.message)
        return None

    def _fail(self, item, message):
        messages = queue_ops.hold_timeout_messages(item, message)
        popped = queue_ops.pop_item(self.queue, item, self.original_get)
        if popped is None or popped[0] is not item:
            raise _RunInstead(popped)  # not the prompt to fail: the worker runs what it got
        try:
            queue_ops.record_failure(self.queue, popped, messages)
        except Exception:
            # it is already in currently_running: it must not vanish, so the worker runs it after all
            self._count("errors")
            _log.exception("VRAM guard: could not record prompt %s as failed; running it instead", item[1])
            raise _RunInstead(popped)
        self._count("failed_prompts")
        _log.warning("VRAM guard: prompt %s failed: %s", item[1], message)
        if self.on_failed is not None:
            try:
                self.on_failed(item, messages)
            except Exception:  # noqa: BLE001 - a notification must not break the queue
                _log.exception("VRAM guard: could not notify the client of the failed prompt")

    def _ask_comfy_to_free(self) -> bool:
        """Held with nothing running and ComfyUI's models loaded: once per hold episode, set the
        flags that POST /free sets, and measure again once the worker has acted on them."""
        if self.queue.currently_running or not self.loaded_models():
            return False
        if not self.guard.should_request_free():
            return False
        self.queue.set_flag("unload_models", True)
        self.queue.set_flag("free_memory", True)
        self._poll_after_free = True
        self._count("free_requests")
        _log.info("VRAM guard: prompts held and nothing running; asked ComfyUI to release its models")
        return True

    # stats --------------------------------------------------------------------------------

    def _count(self, name):
        with self._stats_lock:
            setattr(self, name, getattr(self, name) + 1)

    def stats(self) -> dict:
        with self._stats_lock:
            return {"hook_errors": self.errors, "free_requests": self.free_requests,
                    "failed_prompts": self.failed_prompts, "fast_lane_runs": self.fast_lane_runs}


class _RunInstead(Exception):
    """Internal: a popped item that could not be failed; it is handed to the worker to run."""

    def __init__(self, popped):
        super().__init__("run instead")
        self.popped = popped
