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
from operator import itemgetter

from ..guard import QueueEntry
from ..priority import CLASS_KEY

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
    created_ms = extra_data.get("create_time")  # ComfyUI's, in milliseconds
    # positional: one is built at every dispatch, and keywords cost a third more
    return QueueEntry(item[1], item[0], item[2], extra_data.get("client_id"), extra_data.get(CLASS_KEY),
                      created_ms / 1000 if isinstance(created_ms, (int, float)) else None)


class HeapView:
    """The guard's view (gpu_guard.pending.Pending) of a copy of the heap: ids in any order, an
    entry built only when the guard asks for one. Nothing is cached across changes: the guard holds
    the latest view only, which ComfyUI's own queue_updated replaces after every pop, so no prompt
    outlives its time in the queue here."""

    __slots__ = ("_items", "_by_id")

    def __init__(self, heap_copy: list):
        self._items = heap_copy
        self._by_id = None

    def __len__(self):
        return len(self._items)

    def ids(self):
        return {item[1] for item in self._items}

    def item(self, prompt_id):
        if self._by_id is None:
            self._by_id = {item[1]: item for item in self._items}
        return self._by_id[prompt_id]

    def entries(self, prompt_ids) -> list:
        # From the end, stopping once all are found: a put appends to the heap and ComfyUI's numbers
        # grow, so a new prompt is almost always among the last items.
        found, wanted = [], len(prompt_ids)
        for item in reversed(self._items):
            if item[1] in prompt_ids:
                found.append(entry_of(item))
                if len(found) == wanted:
                    break
        return found


def pop_item(queue, item, original_get):
    """Pop `item` (which may sit anywhere in the heap) through ComfyUI's own `get`, so that the
    bookkeeping (currently_running, task counter, queue_updated) stays ComfyUI's.

    `get` pops `queue.queue[0]`; a prompt further back is moved to the front first and the heap
    property restored afterwards. The caller holds the mutex, so nobody sees the list in between.
    """
    heap = queue.queue
    index = 0 if heap[0] is item else next(i for i, queued in enumerate(heap) if queued is item)
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
    return failure_messages(item, message, HOLD_TIMEOUT_EXCEPTION)


def failure_messages(item, message: str, exception_type: str) -> list:
    """An execution_start and an execution_error for a prompt the guard ends without running it."""
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
            "exception_type": exception_type,
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
