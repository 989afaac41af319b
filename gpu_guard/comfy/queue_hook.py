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

from ..guard import LANE_FAST
from . import queue_ops

_log = logging.getLogger("gpu_guard.comfy")

# While holding, how long one `get` waits before handing control back to ComfyUI's worker loop
HOLD_WAIT_S = 0.25
# While paused, at most one decision pass per this interval: every put wakes the worker, and a pass
# over a long held queue under the queue's mutex would make a burst of puts wait on each other.
PAUSED_PASS_INTERVAL_S = 0.05


class QueueHook:
    """Wraps `get` and `server.queue_updated` of one live PromptQueue.

    `loaded_models` returns ComfyUI's loaded models (comfy.model_management.current_loaded_models);
    `on_failed(item, messages)` is told of each prompt the guard ended as an error.
    """

    def __init__(self, guard, queue, loaded_models, on_failed=None, hold_wait_s=HOLD_WAIT_S,
                 monotonic=time.monotonic):
        self.guard = guard
        self.queue = queue
        self.loaded_models = loaded_models
        self.on_failed = on_failed
        self.hold_wait_s = hold_wait_s
        self._monotonic = monotonic
        self.original_get = queue.get
        self.original_queue_updated = None
        self.errors = 0
        self.free_requests = 0
        self.idle_unloads = 0
        self.failed_prompts = 0
        self.fast_lane_runs = 0
        self._poll_after_free = False
        self._next_paused_pass = 0.0
        self._last_prompt_at = monotonic()  # when the worker last finished a prompt (or the hook started)
        self._running = False  # the worker took a prompt and has not come back to get yet
        self._ended_at = None  # when the worker came back from its last prompt, until it takes the next
        self.last_handover_s = None  # from the end of one prompt to the pop of the next (the guard's share)
        self._idle_unloaded = False  # released the idle models since then
        self._unload_requested = False  # someone asked for an unload of the idle models (request_idle_unload)
        self._stats_lock = threading.Lock()
        # on_queue_change(queue): told of every change of the pending set, under the queue's mutex
        # (the journal); before_get(): run once, by the worker's first get (the journal's restore)
        self.on_queue_change = None
        self.before_get = None
        # on_prompt_start(prompt) / on_prompt_end(): the worker took a prompt / came back from running it
        # (on the worker thread, outside every lock; the simulated GPU follows the working set)
        self.on_prompt_start = None
        self.on_prompt_end = None
        # on_worker_idle(): run on the worker thread each time it enters get (between prompts): what
        # must not be read from another thread (aimdo's VBAR list, gpu_guard.dynamic_vram)
        self.on_worker_idle = None
        self._idle_measure_failed = False
        # hold_first(item) -> True while the heap's first prompt must wait whatever the gate says
        # (a prompt the OOM rescue put back, until its need is free), under the queue's mutex
        self.hold_first = None

    # installation -------------------------------------------------------------------------

    def install(self) -> None:
        queue = self.queue
        self.guard.attach_queue(queue.mutex, lambda: queue_ops.HeapView(list(queue.queue)))
        self.queue.get = self.get
        server = getattr(self.queue, "server", None)
        if server is not None and hasattr(server, "queue_updated"):
            self.original_queue_updated = server.queue_updated
            server.queue_updated = self._queue_updated

    def uninstall(self) -> None:
        self.queue.get = self.original_get
        self.guard.attach_queue()
        if self.original_queue_updated is not None:
            self.queue.server.queue_updated = self.original_queue_updated

    # the hooks ----------------------------------------------------------------------------

    def get(self, *args, **kwargs):
        if self._running:  # the worker is back: the prompt it took has finished
            self._running, self._idle_unloaded = False, False
            self._last_prompt_at = self._ended_at = self._monotonic()
            if self.on_prompt_end is not None:
                self._notify(self.on_prompt_end)
        self._tell_guard_worker(None)  # the worker is waiting in get: alive (liveness)
        if self.on_worker_idle is not None:
            try:
                self.on_worker_idle()
            except Exception:  # noqa: BLE001 - a measurement must not stop the worker
                if not self._idle_measure_failed:
                    _log.exception("VRAM guard: the between-prompts measurement failed (logged once)")
                self._idle_measure_failed = True
        popped = self._get(*args, **kwargs)
        if popped is not None:
            self._running = True
            if self._ended_at is not None:
                self.last_handover_s, self._ended_at = self._monotonic() - self._ended_at, None
            self._tell_guard_worker(popped)
            if self.on_prompt_start is not None:
                self._notify(self.on_prompt_start, popped[0][2])
        return popped

    def request_idle_unload(self) -> None:
        """Ask for ComfyUI's idle models to be released the next time the worker waits with nothing
        queued and nothing running (never while a prompt runs); e.g. a neighbour on the GPU needs room."""
        self._unload_requested = True
        with self.queue.mutex:
            self.queue.not_empty.notify_all()

    def _notify(self, callback, *args):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a listener must not stop the worker
            self._count("errors")
            _log.exception("VRAM guard: a prompt start/end listener failed")

    def _tell_guard_worker(self, popped):
        try:
            if popped is None:
                self.guard.worker_waiting()
            else:
                self.guard.worker_took(popped[0][1])
        except Exception:  # noqa: BLE001 - liveness reporting must not stop the worker
            _log.exception("VRAM guard: could not report the worker's state")

    def _get(self, *args, **kwargs):
        timeout = kwargs.pop("timeout", args[0] if args else None)
        try:
            before_get, self.before_get = self.before_get, None
            if before_get is not None:
                before_get()
            popped = self._guarded_get(timeout)
        except _RunInstead as run_instead:
            return run_instead.popped
        except Exception as error:  # noqa: BLE001 - the worker thread must never die
            self._count("errors")
            _log.exception("VRAM guard: queue hook failed; this prompt is dispatched WITHOUT the guard")
            self._tell_guard_unguarded(error)
            return self.original_get(timeout=timeout)
        try:
            self.guard.note_guarded()
        except Exception:  # noqa: BLE001 - the popped prompt must reach the worker whatever happens
            self._count("errors")
            _log.exception("VRAM guard: could not report a guarded dispatch")
        return popped

    def _tell_guard_unguarded(self, error):
        try:
            self.guard.note_unguarded(f"{type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001 - reporting must not stop the fallback
            _log.exception("VRAM guard: could not report the unguarded dispatch")

    def _queue_updated(self, *args, **kwargs):
        # ComfyUI calls this (under the mutex) after every put, pop, delete, clear and task_done:
        # the one place that sees every change of the pending set (the guard views the heap if paused).
        try:
            with self.queue.mutex:
                self.guard.queue_changed()
        except Exception:  # noqa: BLE001 - never break ComfyUI's queue
            self._count("errors")
            _log.exception("VRAM guard: could not track the pending prompts")
        if self.on_queue_change is not None:
            try:
                with self.queue.mutex:
                    self.on_queue_change(self.queue)
            except Exception:  # noqa: BLE001 - never break ComfyUI's queue
                self._count("errors")
                _log.exception("VRAM guard: could not journal the pending prompts")
        self.original_queue_updated(*args, **kwargs)

    # decision -----------------------------------------------------------------------------

    def _guarded_get(self, timeout):
        deadline = None if timeout is None else self._monotonic() + timeout
        queue = self.queue
        if self._poll_after_free:
            # the worker has handled the unload flag since the last call: measure again now
            self._poll_after_free = False
            self.guard.request_poll()
        with queue.mutex:  # not_empty's own lock: entered without the Condition's Python-level wrapper
            while not queue.queue:
                if self._unload_when_idle():
                    return None  # the worker handles the flag right away
                if timeout is not None and getattr(queue, "flags", None):
                    # set while the worker was away (POST /free during its post-prompt gc): their
                    # notify found nobody waiting, so hand back now instead of sleeping the timeout
                    return None
                remaining = None if deadline is None else deadline - self._monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                queue.not_empty.wait(timeout=self._idle_wait(remaining))
                if timeout is not None and not queue.queue and not self._idle_unload_due():
                    # as ComfyUI's own get: a wake-up with nothing queued (the flags POST /free
                    # sets) goes back to the worker at once, so it frees memory while idle
                    return None
            now = self._monotonic()
            if self.guard.state == "paused" and now < self._next_paused_pass:
                wait_s = self._next_paused_pass - now  # a pass was made just now: wait for the next one
                popped = None
            else:
                wait_s = self.hold_wait_s
                popped = self._admit_one()
                self._next_paused_pass = now + PAUSED_PASS_INTERVAL_S
            if popped is not None:
                return popped
            if self._ask_comfy_to_free():
                return None  # let the worker handle the flag right away
            since = self.guard.version
        # everything is held: wait outside the mutex for a change (resume, new prompt, config)
        now = self._monotonic()
        remaining = wait_s if deadline is None else min(wait_s, deadline - now)
        if remaining > 0:
            self.guard.wait_for_change(remaining, since)
        return None

    def _admit_one(self):
        """Under the mutex: one decision pass against one reading of the gate. With the gate open the
        heap's top (ComfyUI's next prompt) runs; with it closed, timed-out prompts fail and at most
        one prompt runs in the fast lane."""
        heap = self.queue.queue
        first = heap[0]
        if self.hold_first is not None and self.hold_first(first):
            return None
        views = []

        def view():  # the guard asks for it only with the gate closed (we hold the mutex)
            views.append(queue_ops.HeapView(list(heap)))
            return views[0]

        result = self.guard.decide_pass(queue_ops.entry_of(first), view)
        for prompt_id, verdict in result.fails:
            self._fail(views[0].item(prompt_id), verdict.message)
        if result.run is None:
            return None
        item = first if result.run == first[1] else views[0].item(result.run)
        popped = queue_ops.pop_item(self.queue, item, self.original_get)
        if result.verdict.lane == LANE_FAST:
            self._count("fast_lane_runs")
        return popped

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
        """Held with nothing running: ask ComfyUI to release its idle models (only unload_models, not
        free_memory, which would also drop ComfyUI's execution cache), and measure again once the
        worker has acted on it. The guard says when (once per episode, again after a prompt ran)."""
        if self.queue.currently_running or not self.guard.should_request_free():
            return False
        self.queue.set_flag("unload_models", True)
        self._poll_after_free = True
        self._count("free_requests")
        _log.info("VRAM guard: prompts held and nothing running; asked ComfyUI to release its idle models")
        return True

    # idle unload (opt-in keep-alive) --------------------------------------------------------

    def _idle_unload_due(self) -> bool:
        """idle_unload_s after the last prompt finished (not after it started), or on request."""
        if self._running or self.queue.currently_running:
            return False
        if self._unload_requested:
            return True
        idle_unload_s = self.guard.config.idle_unload_s
        return (idle_unload_s > 0 and not self._idle_unloaded
                and self._monotonic() - self._last_prompt_at >= idle_unload_s)

    def _idle_wait(self, remaining):
        """How long to wait for a prompt: no longer than until the idle unload is due."""
        idle_unload_s = self.guard.config.idle_unload_s
        if idle_unload_s <= 0 or self._idle_unloaded or self._running:
            return remaining
        until = max(0.0, self._last_prompt_at + idle_unload_s - self._monotonic())
        return until if remaining is None else min(remaining, until)

    def _unload_when_idle(self) -> bool:
        """After idle_unload_s without a prompt, release this ComfyUI's idle models once."""
        if not self._idle_unload_due():
            return False
        requested, self._unload_requested = self._unload_requested, False
        if not requested:
            self._idle_unloaded = True
        if not any(True for _ in self.loaded_models()):
            return False  # nothing loaded: nothing to release
        self.queue.set_flag("unload_models", True)
        self._poll_after_free = True
        self._count("idle_unloads")
        self.guard.note_idle_unload(self._monotonic() - self._last_prompt_at, requested=requested)
        return True

    # stats --------------------------------------------------------------------------------

    def _count(self, name):
        with self._stats_lock:
            setattr(self, name, getattr(self, name) + 1)

    def stats(self) -> dict:
        with self._stats_lock:
            return {"hook_errors": self.errors, "free_requests": self.free_requests, "idle_unloads": self.idle_unloads,
                    "failed_prompts": self.failed_prompts, "fast_lane_runs": self.fast_lane_runs,
                    "last_handover_s": self.last_handover_s}


class _RunInstead(Exception):
    """Internal: a popped item that could not be failed; it is handed to the worker to run."""

    def __init__(self, popped):
        super().__init__("run instead")
        self.popped = popped
