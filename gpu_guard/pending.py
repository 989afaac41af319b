"""The pending prompts as the guard sees them: ids in any order, entries built on demand.

The adapter hands the guard a view of ComfyUI's heap at every queue change. Building a QueueEntry
for every queued prompt at every change would make a burst of N puts cost N^2 entries, so the guard
asks for the ids (a set update) and builds entries only for prompts it has not seen.
"""
from __future__ import annotations

from typing import Collection, Iterable, Protocol, Sequence

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
