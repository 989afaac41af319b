"""The journal of the pending set: the prompts queued or running, kept in a SQLite file
(gpu_guard.journal_store) so that a restart of ComfyUI, or a crash, does not drop them.

`sync` is handed the whole pending set at every queue change (under the queue's mutex): it works
out what changed against the ids it knows, with set operations, and hands the changes to a writer
thread. The writer encodes the items and commits each batch in one transaction, off the queue's
mutex, so neither `/prompt` nor the worker waits for SQLite; a burst of changes becomes one commit.
A change is committed a few milliseconds after it happened: a crash inside that window loses it
(`unwritten` says how many wait; `flush` waits for them).

The sensitive part of a queue item (ComfyUI's index 5: API keys that ComfyUI strips from history)
is never written; only the names of its keys are kept, so a restored prompt can say what it lost.
Nothing here imports ComfyUI; in memory it keeps prompt ids, and items only until they are written.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .journal_store import JournalStore, encode_item

log = logging.getLogger("gpu_guard.journal")

FILE_NAME = "gpu_guard_journal.sqlite3"
SENSITIVE_INDEX = 5  # ComfyUI's queue item: (number, prompt_id, prompt, extra_data, outputs, sensitive)
RETRY_S = 1.0  # after a failed write, the writer tries the same changes again this much later
# Every this many queue changes the whole pending set is compared (heals a change nobody announced)
FULL_SYNC_EVERY = 64

_INSERT, _DELETE, _RUNNING, _NOT_RUNNING = "insert", "delete", "running", "not running"


@dataclass(frozen=True)
class JournaledPrompt:
    """One prompt read back from the journal. `item` is the queue item with an empty sensitive dict
    in its place; `sensitive_keys` names the keys it had there (their values were never written)."""

    prompt_id: str
    number: float
    running: bool
    item: tuple
    sensitive_keys: tuple


@dataclass
class LoadResult:
    prompts: list  # JournaledPrompt in ComfyUI's priority order (number, then prompt id)
    dropped: list  # (prompt_id, reason) of rows that could not be read back


class Journal:
    """The pending set of one ComfyUI in `path`. `sensitive_keys`: extra_data keys that are never
    written even when a ComfyUI release leaves them in extra_data (older ones have no index 5)."""

    def __init__(self, path: str, sensitive_keys: Iterable[str] = (), wall: Callable[[], float] = time.time,
                 retry_s: float = RETRY_S):
        self.path = path
        self.sensitive_keys = frozenset(sensitive_keys)
        self._store = JournalStore(path, wall)
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # the journal's view, as handed to the writer: prompt ids only
        self._ids: set = set()
        self._running: set = set()
        self._restoring: set = set()  # loaded and not yet put back: a queue change must not delete them
        self._changes: list = []  # (kind, prompt_id, item or None), waiting for the writer
        self._writing = 0  # changes the writer has taken and not yet committed
        self._fast_syncs = 0  # single-change syncs since the last whole comparison
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        self.write_errors = 0
        self._write_problem: Optional[str] = None

    # -- state --------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._store.active

    @property
    def problem(self) -> Optional[str]:
        return self._write_problem or self._store.problem

    @property
    def moved_aside(self) -> Optional[str]:
        return self._store.moved_aside

    def pending_count(self) -> int:
        """Prompts the journal holds (queued, held, running, or loaded and not yet put back)."""
        with self._lock:
            return len(self._ids)

    @property
    def unwritten(self) -> int:
        with self._lock:
            return len(self._changes) + self._writing

    # -- opening ------------------------------------------------------------------------------------

    def open(self) -> LoadResult:
        """Open (or create) the file, read what it holds and start the writer. Never raises (see
        journal_store: damage is moved aside, an unusable folder turns the journal off)."""
        prompts, dropped = [], []
        for row in self._store.open():
            try:
                prompts.append(_decode(row))
            except (ValueError, TypeError, IndexError, KeyError) as error:
                dropped.append((row.prompt_id, f"its journal row cannot be read ({error})"))
        with self._lock:
            self._ids = {p.prompt_id for p in prompts} | {pid for pid, _ in dropped}
            self._restoring = set(self._ids)
            self._running = {p.prompt_id for p in prompts if p.running}
        if self.active:
            self._thread = threading.Thread(target=self._write_loop, name="gpu-guard-journal", daemon=True)
            self._thread.start()
        return LoadResult(prompts, dropped)

    # -- changes ------------------------------------------------------------------------------------

    def sync(self, pending, running: Iterable) -> None:
        """Make the journal hold exactly these queue items (`pending`: the heap, `running`: the
        items ComfyUI runs now); prompts loaded by `open` and not yet put back are kept. Called under
        the queue's mutex, so it only works out the change; the writer thread writes it."""
        if not self._store.active:
            return
        running_items = list(running)
        running_ids = {item[1] for item in running_items}
        with self._lock:
            if not self._restoring and self._fast_syncs < FULL_SYNC_EVERY:
                self._fast_syncs += 1
                if self._one_change(pending, running_ids, running_items):
                    return
            self._fast_syncs = 0
            self._full_sync({item[1] for item in pending}, pending, running_ids, running_items)

    def _one_change(self, heap, running_ids, running_items) -> bool:
        """ComfyUI calls queue_updated after every single change, so between two calls the pending
        set changed by one put, pop, task_done, or not at all. Recognise those from the sizes without
        reading the whole heap (a put is found on the path its sift took: O(log n)). False: anything
        else (a delete, a clear, a change no call announced): the caller compares the whole set."""
        ids, known_running = self._ids, self._running
        known_pending = len(ids) - len(known_running)
        queued = len(heap)
        if running_ids == known_running:
            if queued == known_pending:
                return True  # nothing changed
            if queued != known_pending + 1:
                return False
            index = queued - 1  # heappush appends, then moves the item up towards the root
            while True:
                item = heap[index]
                if item[1] not in ids:
                    self._changes.append((_INSERT, item[1], item))
                    ids.add(item[1])
                    self._changed.notify()
                    return True
                if index == 0:
                    return False
                index = (index - 1) // 2
        if len(running_ids) == len(known_running) + 1 and queued == known_pending - 1 \
                and known_running <= running_ids:
            (started,) = running_ids - known_running
            if started not in ids:
                return False
            known_running.add(started)  # a pop: ComfyUI's get moved it to currently_running
            self._changes.append((_RUNNING, started, None))
            self._changed.notify()
            return True
        if len(running_ids) == len(known_running) - 1 and queued == known_pending and running_ids <= known_running:
            (done,) = known_running - running_ids
            known_running.discard(done)  # task_done: it left the queue for /history
            ids.discard(done)
            self._changes.append((_DELETE, done, None))
            self._changed.notify()
            return True
        return False

    def _full_sync(self, pending_ids, pending, running_ids, running_items) -> None:
        """Compare the whole pending set with the ids the journal knows (set operations)."""
        ids = self._ids
        present = pending_ids | running_ids if running_ids else pending_ids
        new = present - ids
        gone = ids - present - self._restoring
        to_running = running_ids - self._running
        waiting = self._restoring - present
        to_pending = self._running - running_ids - gone - waiting
        back = self._restoring & present
        if not (new or gone or to_running or to_pending or back):
            return
        changes = self._changes
        if new:
            for item in _items_of(new, pending, running_items):
                changes.append((_INSERT, item[1], item))
            ids |= new
        for prompt_id in to_running:
            changes.append((_RUNNING, prompt_id, None))
        # back in the queue from running (the OOM rescue puts a prompt back): written as it is now,
        # since its extra data carries the rescue
        for item in _items_of(to_pending, pending, ()) if to_pending else ():
            changes.append((_INSERT, item[1], item))
        for prompt_id in to_pending:
            changes.append((_NOT_RUNNING, prompt_id, None))
        for prompt_id in gone:
            changes.append((_DELETE, prompt_id, None))
        self._running = (self._running | to_running) - to_pending - gone
        ids -= gone
        self._restoring -= back
        self._changed.notify()

    def forget(self, prompt_ids: Iterable) -> None:
        """Delete rows loaded by `open` that will not be put back (failed validation, unreadable)."""
        with self._lock:
            gone = [pid for pid in prompt_ids if pid in self._restoring]
            for prompt_id in gone:
                self._restoring.discard(prompt_id)
                self._ids.discard(prompt_id)
                self._running.discard(prompt_id)
                self._changes.append((_DELETE, prompt_id, None))
            if gone:
                self._changed.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change handed over so far is committed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._changes and not self._writing or self._thread is None,
                                          timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what waits, stop the writer and close the file."""
        self.flush(timeout)
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._store.close()

    # -- the writer ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._changes or self._stop)
                if self._stop and not self._changes:
                    return
                batch, self._changes = self._changes, []
                self._writing = len(batch)
            try:
                ok = self._write(batch)
            except Exception:  # noqa: BLE001 - the writer must outlive any bug
                log.exception("VRAM guard journal: writing failed unexpectedly")
                ok = False
            with self._changed:
                self._writing = 0
                if not ok:
                    self._changes = batch + self._changes  # the same changes, again, in order
                self._changed.notify_all()
                if not ok:
                    self._changed.wait_for(lambda: self._stop, self._retry_s)
                    if self._stop:
                        return

    def _write(self, batch) -> bool:
        final: dict = {}  # prompt id -> [item or None, deleted, running or None]
        for kind, prompt_id, item in batch:
            entry = final.setdefault(prompt_id, [None, False, None])
            if kind == _INSERT:
                entry[0], entry[1] = item, False
            elif kind == _DELETE:
                entry[0], entry[1], entry[2] = None, True, False
            else:
                entry[2] = kind == _RUNNING
        inserts = []
        for prompt_id, (item, _deleted, _running) in final.items():
            if item is not None:
                row = self._encode(prompt_id, item)
                if row is not None:
                    inserts.append(row)
        try:
            self._store.write(
                inserts,
                running=[str(pid) for pid, entry in final.items() if entry[2] and not entry[1]],
                not_running=[str(pid) for pid, entry in final.items() if entry[2] is False and not entry[1]],
                deletes=[str(pid) for pid, entry in final.items() if entry[1]])
        except Exception as error:  # noqa: BLE001 - sqlite3.Error, or the file went away
            self.write_errors += 1
            if self._write_problem is None:
                self._write_problem = f"writing the journal {self.path} failed ({error}); retrying every {self._retry_s:g} s"
                log.error("VRAM guard journal: %s - changes since then are lost if ComfyUI stops", self._write_problem)
            return False
        if self._write_problem is not None:
            self._write_problem = None
            log.warning("VRAM guard journal: writing %s works again", self.path)
        return True

    def _encode(self, prompt_id, item):
        sensitive = item[SENSITIVE_INDEX] if len(item) > SENSITIVE_INDEX else None
        kept = list(item[:SENSITIVE_INDEX]) + list(item[SENSITIVE_INDEX + 1:])
        keys = set(sensitive) if isinstance(sensitive, dict) else set()
        if len(kept) > 3 and isinstance(kept[3], dict) and self.sensitive_keys & kept[3].keys():
            keys |= self.sensitive_keys & kept[3].keys()
            kept[3] = {k: v for k, v in kept[3].items() if k not in self.sensitive_keys}
        for attempt in (1, 2):
            try:
                item_json = encode_item(kept, len(item) > SENSITIVE_INDEX)
                break
            except RuntimeError:  # a dict changed while it was read (another pack): once more
                if attempt == 2:
                    raise
            except (TypeError, ValueError) as error:
                log.error("VRAM guard journal: prompt %s cannot be journaled (%s); it is lost if ComfyUI stops "
                          "before it runs", prompt_id, error)
                return None
        number = item[0] if isinstance(item[0], (int, float)) and not isinstance(item[0], bool) else 0
        return (str(prompt_id), float(number), item_json, json.dumps(sorted(keys)))


def _items_of(wanted: set, pending, running_items) -> list:
    """The items of these ids. From the end of the heap, stopping once all are found: a put appends
    to the heap and ComfyUI's numbers grow, so a new prompt is almost always among the last items."""
    found, left = [], set(wanted)
    for item in running_items:
        if item[1] in left:
            found.append(item)
            left.discard(item[1])
    for item in reversed(pending):
        if not left:
            break
        if item[1] in left:
            found.append(item)
            left.discard(item[1])
    return found


def _decode(row) -> JournaledPrompt:
    data = json.loads(row.item_json)
    kept = data["item"]
    if not isinstance(kept, list) or len(kept) < 5:
        raise ValueError("the item is not a queue item")
    item = tuple(kept[:SENSITIVE_INDEX]) + (({},) if data.get("had_sensitive") else ()) + tuple(kept[SENSITIVE_INDEX:])
    if str(item[1]) != row.prompt_id:
        raise ValueError(f"the item holds prompt id {item[1]!r}")
    return JournaledPrompt(prompt_id=item[1], number=item[0], running=bool(row.running), item=item,
                           sensitive_keys=tuple(json.loads(row.keys_json)))
