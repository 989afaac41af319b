"""Small operations on ComfyUI's live PromptQueue (execution.PromptQueue).

What we rely on (checked in 0.3.75 and upstream, see docs/gpu_guard_comfyui.md):
- `queue.mutex` is an RLock and `queue.not_empty` a Condition on it; every method takes it;
- `queue.queue` is a heapq list of tuples `(number, prompt_id, prompt, extra_data, outputs, sensitive)`
  (older releases have no `sensitive`); ComfyUI's priority order is the tuple order;
- `queue.get()` pops `queue.queue[0]` and registers it in `currently_running`;
- `queue.task_done(item_id, history_result, status=ExecutionStatus(...), process_item=...)` moves a
  running item into `/history`.

Every function here must be called with `queue.mutex` held.
"""
from __future__ import annotations

import heapq
import logging
import time
from collections import namedtuple
from collections.abc import Sequence
from operator import itemgetter

from ..guard import QueueEntry

# ComfyUI's status tuple when the running release does not define one (kept field-compatible)
_FallbackStatus = namedtuple("ExecutionStatus", ["status_str", "completed", "messages"])

HOLD_TIMEOUT_EXCEPTION = "gpu_guard.HoldTimeout"

_log = logging.getLogger("gpu_guard.comfy")


_priority = itemgetter(0, 1)  # (number, prompt id): ComfyUI's heap order, without comparing graphs


def pending_items(queue) -> list:
    """The queued items in ComfyUI's priority order."""
    return sorted(queue.queue, key=_priority)


def entry_of(item) -> QueueEntry:
    extra_data = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    return QueueEntry(prompt_id=item[1], number=item[0], prompt=item[2],
                      client_id=extra_data.get("client_id"))


class PendingView:
    """The pending items in priority order with their QueueEntry; an item's entry is made once
    (queue items are immutable tuples), so listing a long queue at every change stays cheap."""

    def __init__(self):
        self._entries = {}  # prompt id -> (item, entry)

    def entry(self, item) -> QueueEntry:
        cached = self._entries.get(item[1])
        if cached is None or cached[0] is not item:
            cached = self._entries[item[1]] = (item, entry_of(item))
        return cached[1]

    def snapshot(self, queue):
        """(items, entries) of the queue now, in priority order."""
        items = pending_items(queue)
        entries = [self.entry(item) for item in items]
        if len(self._entries) > 2 * len(items) + 64:  # forget prompts that left the queue
            self._entries = {item[1]: self._entries[item[1]] for item in items}
        return items, entries


class LazyPending(Sequence):
    """The pending entries of a copy of the heap, sorted and converted on first use only.

    The tap on every queue change hands the guard one of these: while the guard runs it just keeps
    the last one (for the moment it pauses), so a long queue costs a list copy per change, not a sort.
    The items are immutable tuples, so the copy stays valid outside the queue's mutex.
    """

    def __init__(self, heap_copy, view: PendingView):
        self._heap = heap_copy
        self._view = view
        self._entries = None

    def _resolved(self):
        if self._entries is None:
            self._entries = [self._view.entry(item) for item in sorted(self._heap, key=_priority)]
        return self._entries

    def __len__(self):
        return len(self._heap)

    def __getitem__(self, index):
        return self._resolved()[index]

    def __iter__(self):
        return iter(self._resolved())


def pop_item(queue, item, original_get):
    """Pop `item` (which may sit anywhere in the heap) through ComfyUI's own `get`, so that the
    bookkeeping (currently_running, task counter, queue_updated) stays ComfyUI's.

    `get` pops `queue.queue[0]`; a prompt further back is moved to the front first and the heap
    property restored afterwards. The caller holds the mutex, so nobody sees the list in between.
    """
    heap = queue.queue
    index = next(i for i, queued in enumerate(heap) if queued is item)
    if index != 0:
        heap.pop(index)
        heap.insert(0, item)
    try:
        popped = original_get(timeout=0)
    finally:
        if index != 0:
            heapq.heapify(queue.queue)
    if popped is not None and popped[0] is not item:
        # ComfyUI registered it as running already: hand it on rather than lose it
        _log.error("VRAM guard: ComfyUI's queue gave prompt %s instead of the admitted %s; running it",
                   popped[0][1], item[1])
    return popped


def _without_sensitive(item):
    # ComfyUI's worker strips the sensitive extra data (index 5) before writing history
    return tuple(item[:5]) + tuple(item[6:])


def hold_timeout_messages(item, message: str) -> list:
    """Status messages in the shape ComfyUI's executor records them: (event, data) pairs."""
    now_ms = int(time.time() * 1000)
    prompt_id = item[1]
    return [
        ("execution_start", {"prompt_id": prompt_id, "timestamp": now_ms}),
        ("execution_error", {
            "prompt_id": prompt_id,
            "node_id": None,
            "node_type": "gpu_guard",
            "executed": [],
            "exception_message": message,
            "exception_type": HOLD_TIMEOUT_EXCEPTION,
            "traceback": [],
            "current_inputs": {},
            "current_outputs": [],
            "timestamp": now_ms,
        }),
    ]


def record_failure(queue, popped, messages) -> None:
    """End a popped (running) item in /history as an error with the given status messages."""
    _item, item_id = popped
    status_type = getattr(type(queue), "ExecutionStatus", _FallbackStatus)
    status = status_type(status_str="error", completed=False, messages=messages)
    queue.task_done(item_id, {"outputs": {}, "meta": {}}, status=status,
                    process_item=_without_sensitive)
