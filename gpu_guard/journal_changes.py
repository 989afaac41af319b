"""What changed in ComfyUI's queue since the journal last looked, as journal changes.

The journal (gpu_guard.journal) is handed the whole pending set at every queue change, under the
queue's mutex. `QueueKeys` remembers the keys only - (number, prompt id): a client may choose the
prompt id, so two queued prompts can share one; ComfyUI's number tells them apart - and turns each
call into changes: (INSERT, key, item), (DELETE, key, None), (RUNNING | NOT_RUNNING, key, None).
"""
from __future__ import annotations

from typing import Iterable

from .journal_rows import key_of

INSERT, DELETE, RUNNING, NOT_RUNNING = "insert", "delete", "running", "not running"
# Every this many queue changes the whole pending set is compared (heals a change nobody announced)
FULL_SYNC_EVERY = 64


class QueueKeys:
    def __init__(self):
        self.ids: set = set()  # every key the journal holds
        self.running: set = set()
        self.restoring: set = set()  # loaded and not yet put back: a queue change must not delete them
        self._fast_syncs = 0  # single-change syncs since the last whole comparison

    def load(self, keys: Iterable, running: Iterable) -> None:
        """The keys read back from the file: all are restoring until the queue holds them again."""
        self.ids = set(keys)
        self.restoring = set(self.ids)
        self.running = set(running)

    def changes(self, pending, running_items: list) -> list:
        """The changes that make the journal hold exactly `pending` (the heap) and `running_items`;
        restoring keys are kept."""
        running_ids = {key_of(item) for item in running_items}
        if not self.restoring and self._fast_syncs < FULL_SYNC_EVERY:
            self._fast_syncs += 1
            found = self._one_change(pending, running_ids)
            if found is not None:
                return found
        self._fast_syncs = 0
        return self._full_sync({key_of(item) for item in pending}, pending, running_ids, running_items)

    def forget(self, keys: Iterable) -> list:
        """Deletes for restoring keys that will not be put back."""
        gone = [key for key in keys if key in self.restoring]
        for key in gone:
            self.restoring.discard(key)
            self.ids.discard(key)
            self.running.discard(key)
        return [(DELETE, key, None) for key in gone]

    def _one_change(self, heap, running_ids):
        """ComfyUI calls queue_updated after every single change, so between two calls the pending
        set changed by one put, pop, task_done, or not at all. Recognise those from the sizes without
        reading the whole heap (a put is found on the path its sift took: O(log n)). None: anything
        else (a delete, a clear, a change no call announced): the caller compares the whole set."""
        ids, known_running = self.ids, self.running
        known_pending = len(ids) - len(known_running)
        queued = len(heap)
        if running_ids == known_running:
            if queued == known_pending:
                return []  # nothing changed
            if queued != known_pending + 1:
                return None
            index = queued - 1  # heappush appends, then moves the item up towards the root
            while True:
                item = heap[index]
                key = key_of(item)
                if key not in ids:
                    ids.add(key)
                    return [(INSERT, key, item)]
                if index == 0:
                    return None
                index = (index - 1) // 2
        if len(running_ids) == len(known_running) + 1 and queued == known_pending - 1 \
                and known_running <= running_ids:
            (started,) = running_ids - known_running
            if started not in ids:
                return None
            known_running.add(started)  # a pop: ComfyUI's get moved it to currently_running
            return [(RUNNING, started, None)]
        if len(running_ids) == len(known_running) - 1 and queued == known_pending and running_ids <= known_running:
            (done,) = known_running - running_ids
            known_running.discard(done)  # task_done: it left the queue for /history
            ids.discard(done)
            return [(DELETE, done, None)]
        return None

    def _full_sync(self, pending_ids, pending, running_ids, running_items) -> list:
        """Compare the whole pending set with the keys the journal knows (set operations)."""
        ids = self.ids
        present = pending_ids | running_ids if running_ids else pending_ids
        new = present - ids
        gone = ids - present - self.restoring
        to_running = running_ids - self.running
        waiting = self.restoring - present
        to_pending = self.running - running_ids - gone - waiting
        back = self.restoring & present
        if not (new or gone or to_running or to_pending or back):
            return []
        changes = []
        if new:
            changes += [(INSERT, key_of(item), item) for item in _items_of(new, pending, running_items)]
            ids |= new
        changes += [(RUNNING, key, None) for key in to_running]
        # back in the queue from running (the OOM rescue puts a prompt back): written again as it is
        # now, since its extra data carries the rescue
        if to_pending:
            changes += [(INSERT, key_of(item), item) for item in _items_of(to_pending, pending, ())]
        changes += [(NOT_RUNNING, key, None) for key in to_pending]
        changes += [(DELETE, key, None) for key in gone]
        self.running = (self.running | to_running) - to_pending - gone
        ids -= gone
        self.restoring -= back
        return changes


def compact(changes: list) -> list:
    """The same effect in fewer changes, per key: the last delete of a committed row, the last
    insert, the last running mark (in that order). An insert that a later delete undoes before either
    was written leaves nothing."""
    final: dict = {}  # key -> [delete or None, insert or None, running mark or None]
    for change in changes:
        kind, key, _row = change
        entry = final.setdefault(key, [None, None, None])
        if kind == INSERT:
            entry[1], entry[2] = change, None
        elif kind == DELETE:
            if entry[1] is None:
                entry[0] = change  # the row is on disk: it must be deleted there
            entry[1] = entry[2] = None
        else:
            entry[2] = change
    return [change for entry in final.values() for change in entry if change is not None]


def _items_of(wanted: set, pending, running_items) -> list:
    """The items of these keys. From the end of the heap, stopping once all are found: a put appends
    to the heap and ComfyUI's numbers grow, so a new prompt is almost always among the last items."""
    found, left = [], set(wanted)
    for item in running_items:
        if key_of(item) in left:
            found.append(item)
            left.discard(key_of(item))
    for item in reversed(pending):
        if not left:
            break
        if key_of(item) in left:
            found.append(item)
            left.discard(key_of(item))
    return found
