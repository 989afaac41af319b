"""The pending prompts as the guard sees them: ids in any order, entries built on demand.

The guard asks for a view of ComfyUI's heap when it needs one (the held set while paused, a status
read), under the queue's own lock. Building a QueueEntry for every queued prompt at every change would
make a burst of N puts cost N^2 entries, so the guard asks for the ids (a set update) and builds
entries only for prompts it has not seen.
"""
from __future__ import annotations

import threading

from typing import Callable, Collection, Iterable, Protocol, Sequence

from .policy import QueueEntry


class Pending(Protocol):
    def __len__(self) -> int: ...

    def ids(self) -> Iterable[str]:
        """The queued prompt ids, in any order (a set is cheapest)."""

    def entries(self, prompt_ids: Collection[str]) -> list:
        """The QueueEntry of each queued prompt whose id is in prompt_ids, in one pass."""


class EntryList:
    """A Pending over a list of QueueEntry (tests, and callers that have entries already)."""

    def __init__(self, entries: Sequence[QueueEntry]):
        self._by_id = {e.prompt_id: e for e in entries}

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> Iterable[str]:
        return self._by_id.keys()

    def entries(self, prompt_ids: Collection[str]) -> list:
        return [self._by_id[pid] for pid in prompt_ids]


NOTHING_PENDING = EntryList(())


def as_pending(value) -> Pending:
    """Accept a Pending or a plain sequence of QueueEntry."""
    return value if hasattr(value, "ids") else EntryList(value)


class QueueSource:
    """Where the guard views the queue: `view()` -> a Pending of what is queued now, called with `lock`
    (the queue's own, reentrant) held. The guard takes `lock` before its own lock, as ComfyUI's worker
    and queue_updated do when they call into it."""

    def __init__(self, lock, view: Callable[[], Pending]):
        self.lock, self.view = lock, view


class NotedQueue(QueueSource):
    """The queue of a guard that no ComfyUI queue is attached to (tests, simple callers): the entries
    note_pending last gave. A ComfyUI adapter attaches its queue instead (Guard.attach_queue)."""

    def __init__(self):
        self._pending: Pending = NOTHING_PENDING
        super().__init__(threading.RLock(), lambda: self._pending)

    def note(self, pending) -> None:
        self._pending = as_pending(pending)
