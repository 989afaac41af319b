"""The OOM rescue in ComfyUI's own path (gpu_guard.oom_rescue has the decisions).

ComfyUI 0.3.75's worker catches an out-of-memory error in a node, unloads every model, sends the
client an `execution_error` and calls `queue.task_done(item_id, history_result, status=...)`, which
moves the prompt from `currently_running` to `/history`. Three small wrappers, each passing other
wrappers' arguments through:

- `task_done`: for a run that failed for memory, with rescues left, the prompt (the same tuple:
  id, number, client id, extra data and sensitive part, plus the rescue mark) goes back into the
  queue through its own `put`, under the mutex in the same step that takes it out of
  `currently_running`, so the journal never sees it missing; nothing reaches `/history`. Without
  rescues left it ends there with the plain-words error. Every run on a measured device teaches the
  learned-peak table.
- `send_sync`: the client's `execution_error` for a prompt that will be rescued becomes a
  `gpu_guard.oom_rescue` event (ComfyUI's error dialog becomes the extension's notice); the final one
  carries the plain-words error.
- the queue hook's `hold_first`: a rescued prompt at the head of the queue waits until its need is
  free (at most hold_timeout_s when that is set), and everything behind it waits with it.
"""
from __future__ import annotations

import logging
import threading
import time

from .. import learned_peaks, oom_rescue
from ..oom_rescue import EXHAUSTED, OFF, RECOVERED, RESCUED

_log = logging.getLogger("gpu_guard.comfy")

EVENT = "gpu_guard.oom_rescue"
# Exception type names ComfyUI reports for torch's OOM (execution.full_type_name), whatever the release
TORCH_OOM_TYPES = frozenset({"torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError"})


def comfy_oom_types() -> frozenset:
    """The names ComfyUI gives its OOM_EXCEPTION in execution_error, plus torch's own."""
    try:
        import comfy.model_management as model_management

        oom = model_management.OOM_EXCEPTION
        if oom is not Exception:  # ComfyUI falls back to Exception when torch has no OOM class
            return TORCH_OOM_TYPES | {f"{oom.__module__}.{oom.__qualname__}"}
    except (ImportError, AttributeError):
        pass
    return TORCH_OOM_TYPES


class OomHook:
    def __init__(self, guard, server, queue, hook, table, meter, oom_types=TORCH_OOM_TYPES,
                 monotonic=time.monotonic):
        self.guard = guard
        self.server = server
        self.queue = queue
        self.hook = hook
        self.table = table  # learned_peaks.LearnedPeaks
        self.meter = meter  # gpu_guard.peak_meters, or None: nothing is learned on this device
        self.oom_types = oom_types
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._plan = None  # (prompt_id, plan dict) of the run that just failed: read by task_done, then dropped
        self._waiting = None  # the rescued prompt held at the head of the queue (status), or None
        self.counts = {RESCUED: 0, RECOVERED: 0, EXHAUSTED: 0, OFF: 0}
        self.inner_task_done = None
        self.inner_send_sync = None

    # installation -------------------------------------------------------------------------

    def install(self) -> None:
        self.inner_task_done = self.queue.task_done
        self.queue.task_done = self.task_done
        self.inner_send_sync = self.server.send_sync
        self.server.send_sync = self.send_sync
        before = self.hook.on_prompt_start

        def on_prompt_start(prompt):
            if before is not None:
                before(prompt)
            if self.meter is not None:
                self.meter.reset()

        self.hook.on_prompt_start = on_prompt_start
        self.hook.hold_first = self.hold_first

    # the wrappers -------------------------------------------------------------------------

    def task_done(self, item_id, history_result, *args, **kwargs):
        status = kwargs["status"] if "status" in kwargs else (args[0] if args else None)
        try:
            outcome = self._finish(item_id, status)
        except Exception:  # noqa: BLE001 - ComfyUI's own task_done must run whatever happens here
            _log.exception("VRAM guard: the OOM rescue failed; the prompt ends as ComfyUI recorded it")
            outcome = None
        if outcome is RESCUED:
            return None
        if outcome is not None:  # the final error, in plain words
            if "status" in kwargs:
                kwargs["status"] = outcome
            else:
                args = (outcome,) + tuple(args[1:])
        return self.inner_task_done(item_id, history_result, *args, **kwargs)

    def send_sync(self, event, data, *args, **kwargs):
        if event == "execution_error" and isinstance(data, dict) and data.get("exception_type") in self.oom_types:
            try:
                plan = self._plan_for(data.get("prompt_id"), data)
            except Exception:  # noqa: BLE001 - the client still gets ComfyUI's own message
                _log.exception("VRAM guard: could not plan the OOM rescue")
                plan = None
            if plan is not None and plan["outcome"] == RESCUED:
                return None  # the prompt did not fail: the client gets gpu_guard.oom_rescue instead
            if plan is not None:
                data = dict(data, exception_message=plan["final_message"])
        return self.inner_send_sync(event, data, *args, **kwargs)

    # the rescue ---------------------------------------------------------------------------

    def _running_item(self, prompt_id):
        with self.queue.mutex:
            for item in self.queue.currently_running.values():
                if item[1] == prompt_id:
                    return item
        return None

    def _plan_for(self, prompt_id, error, item=None):
        """What happens to the prompt whose run just failed for memory (memoized for that one prompt:
        the client's message and task_done must agree)."""
        with self._lock:
            if self._plan is not None and self._plan[0] == prompt_id:
                return self._plan[1]
        item = item if item is not None else self._running_item(prompt_id)
        if item is None:
            return None
        prompt, extra = item[2], item[3] if len(item) > 3 else {}
        sig = learned_peaks.signature(prompt)
        measured = self.meter.peak() if self.meter is not None else None
        if measured:  # it needed more than it got: at least the peak plus the allocation that failed
            self.table.record(sig, measured + oom_rescue.tried_bytes(error.get("exception_message")),
                              at_least=True)
        need, source = learned_peaks.need_of(prompt)
        attempt = oom_rescue.attempts_so_far(extra) + 1
        config = self.guard.config
        if not config.oom_rescue:
            outcome = OFF
        else:
            outcome = RESCUED if attempt <= config.oom_retries else EXHAUSTED
        reading = self.guard.reading
        final = oom_rescue.final_words(need, source, reading, attempt, config.oom_rescue)
        original = str(error.get("exception_message") or "").strip()
        plan = {"outcome": outcome, "attempt": attempt, "need_bytes": need, "need_source": source,
                "free_bytes": oom_rescue.free_bytes(reading), "node_id": error.get("node_id"),
                "node_type": error.get("node_type"),
                "final_message": final + (f"\n\n{original}" if original else "")}
        with self._lock:
            self._plan = (prompt_id, plan)
        return plan

    def _finish(self, item_id, status):
        """After a run: learn its peak; for an OOM, rescue it (RESCUED) or return the status with the
        plain-words error; None: ComfyUI records it as it is."""
        with self.queue.mutex:
            item = self.queue.currently_running.get(item_id)
        if item is None:
            return None
        self.table.resize(self.guard.config.learned_peaks_max)  # a changed setting applies from the next run
        messages = getattr(status, "messages", None)
        error = oom_rescue.oom_error(messages, self.oom_types)
        prompt_id, extra = item[1], item[3] if len(item) > 3 else {}
        if error is None:
            with self._lock:
                self._plan = None
            self._learn(item, status)
            if oom_rescue.rescue_of(extra) is not None and getattr(status, "status_str", None) == "success":
                self._outcome(RECOVERED, item, {"attempt": oom_rescue.attempts_so_far(extra)},
                              "a rescued prompt ran to the end")
            return None
        plan = self._plan_for(prompt_id, error, item)
        with self._lock:
            self._plan = None  # nothing about the prompt outlives its run here
        if plan["outcome"] == RESCUED:
            self._put_back(item_id, item, plan)
            return RESCUED
        self._outcome(plan["outcome"], item, plan, plan["final_message"].split("\n", 1)[0])
        return status._replace(messages=[_with_message(m, prompt_id, plan["final_message"]) for m in messages])

    def _learn(self, item, status):
        if self.meter is None or getattr(status, "status_str", None) != "success":
            return
        peak = self.meter.peak()
        if peak:
            self.table.record(learned_peaks.signature(item[2]), peak)

    def _put_back(self, item_id, item, plan):
        extra = oom_rescue.with_rescue(item[3], plan["attempt"], plan["need_bytes"], plan["need_source"])
        rescued = tuple(item[:3]) + (extra,) + tuple(item[4:])
        with self.queue.mutex:  # out of currently_running and into the queue in one step (the journal)
            self.queue.currently_running.pop(item_id, None)
            self.queue.put(rescued)
        waits = oom_rescue.waiting_words(plan["need_bytes"])
        payload = {"prompt_id": item[1], "attempt": plan["attempt"], "max_attempts": self.guard.config.oom_retries,
                   "waits_for_bytes": plan["need_bytes"], "need_source": plan["need_source"],
                   "free_bytes": plan["free_bytes"], "node_id": plan["node_id"], "node_type": plan["node_type"],
                   "message": waits}
        client_id = extra.get("client_id")
        self.inner_send_sync(EVENT, payload, client_id) if client_id else self.inner_send_sync(EVENT, payload)
        self._outcome(RESCUED, item, plan, f"prompt {item[1]} {waits} (rescue {plan['attempt']} of "
                      f"{self.guard.config.oom_retries})")

    def _outcome(self, outcome, item, plan, reason):
        with self._lock:
            self.counts[outcome] += 1
        self.guard.note_oom(outcome, reason, prompt_id=item[1], attempt=plan.get("attempt"),
                            need_bytes=plan.get("need_bytes"), need_source=plan.get("need_source"))

    # the hold -----------------------------------------------------------------------------

    def hold_first(self, item) -> bool:
        """Under the queue's mutex, for the heap's first prompt: True while it is a rescued prompt whose
        need is not free yet."""
        try:
            return self._hold(item)
        except Exception:  # noqa: BLE001 - a broken gate must not stall the queue
            _log.exception("VRAM guard: could not judge a rescued prompt's memory; it runs")
            return False

    def _hold(self, item):
        mark = oom_rescue.rescue_of(item[3] if len(item) > 3 else None)
        if mark is None:
            self._waiting = None
            return False
        learned = learned_peaks.learned_for(item[2])
        need = learned if learned is not None else mark.get("need_bytes")
        now = self._monotonic()
        waiting = self._waiting if self._waiting and self._waiting["prompt_id"] == item[1] else None
        since = waiting["since"] if waiting else now
        timeout = self.guard.config.hold_timeout_s
        reading = self.guard.reading
        if oom_rescue.fits(need, reading) or (timeout > 0 and now - since >= timeout):
            self._waiting = None
            return False
        self._waiting = {"prompt_id": item[1], "attempt": mark.get("attempt"), "need_bytes": need,
                         "need_source": learned_peaks.LEARNED if learned is not None else mark.get("need_source"),
                         "free_bytes": oom_rescue.free_bytes(reading), "since": since}
        self.guard.request_poll()  # the next pass judges a fresh reading
        return True

    # status -------------------------------------------------------------------------------

    def status(self) -> dict:
        waiting = self._waiting
        if waiting is not None:
            with self.queue.mutex:  # deleted from the queue meanwhile: it waits for nothing any more
                if not any(item[1] == waiting["prompt_id"] for item in self.queue.queue):
                    waiting = self._waiting = None
        shown = None
        if waiting is not None:
            shown = {k: v for k, v in waiting.items() if k != "since"}
            shown["waited_s"] = round(self._monotonic() - waiting["since"], 3)
        with self._lock:
            counts = dict(self.counts)
        return {"enabled": self.guard.config.oom_rescue, "retries": self.guard.config.oom_retries,
                "counts": counts, "waiting": shown, "learned_peaks": len(self.table),
                "learned_peaks_max": self.table.max_entries, "meter": getattr(self.meter, "name", None),
                "note": self.table.note}


def _with_message(message, prompt_id, text):
    if isinstance(message, (list, tuple)) and len(message) == 2 and message[0] == "execution_error" \
            and isinstance(message[1], dict) and message[1].get("prompt_id", prompt_id) == prompt_id:
        return (message[0], dict(message[1], exception_message=text))
    return message
