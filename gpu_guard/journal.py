"""The journal of the pending set: the prompts queued or running, kept in a SQLite file
(gpu_guard.journal_store) so that a restart of ComfyUI, or a crash, does not drop them.

`sync` is handed the whole pending set at every queue change (under the queue's mutex): it works
out what changed against the keys it knows (gpu_guard.journal_changes), and rows are encoded
without their sensitive part (gpu_guard.journal_rows). A new prompt is encoded right there,
at put time: the journal keeps what was submitted, never what a node writes into the prompt later
(ComfyUI stores IS_CHANGED results, NaN included, in the prompt dict while it runs). Non-finite floats
are written as NaN / Infinity and read back as such.

A writer thread commits each batch of changes in one transaction, off the queue's mutex: a burst of
puts becomes one commit (group commit). Every change gets a sequence number; `when_committed` calls
back once everything handed over up to now is committed, which is how `/prompt` answers only after
its prompt is on disk. Pops and task_done are not waited for (losing them means at-least-once).

While writes fail (disk full, read-only, locked) the waiting changes are compacted to the current
set at every retry: a prompt that came and went while the disk was full leaves nothing behind, so
memory follows the live queue, not the traffic. `backlog_bytes` says how much waits; past
BACKLOG_LIMIT_BYTES `over_limit` says so (status, metric, log, event).

The sensitive part of a queue item (ComfyUI's index 5: API keys that ComfyUI strips from history)
is never written; only the names of its keys are kept, so a restored prompt can say what it lost.
Nothing here imports ComfyUI; in memory it keeps prompt ids, and encoded rows only until written.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .journal_changes import DELETE, INSERT, RUNNING, QueueKeys, compact
from .journal_rows import decode_row, encode_row, stored
from .journal_store import JournalStore
from .waits import SLOW_FLUSH_WAIT_S

log = logging.getLogger("gpu_guard.journal")

FILE_NAME = "gpu_guard_journal.sqlite3"
RETRY_S = 1.0  # after a failed write, the writer tries the same changes again this much later
# Encoded rows waiting for a failing disk beyond this are reported loudly (they are still kept: they are
# the prompts queued now, which ComfyUI holds in memory anyway)
BACKLOG_LIMIT_BYTES = 64 * 1024 * 1024


@dataclass
class LoadResult:
    prompts: list  # JournaledPrompt in ComfyUI's priority order (number, then prompt id)
    dropped: list  # (key, reason) of rows that could not be read back; key = (number, prompt_id)


class Journal:
    """The pending set of one ComfyUI in `path`. `sensitive_keys`: extra_data keys that are never
    written even when a ComfyUI release leaves them in extra_data (older ones have no index 5).
    `on_state`: called on the writer thread with (event kind, details) when writes start failing,
    work again, or the backlog passes BACKLOG_LIMIT_BYTES (for the event log)."""

    def __init__(self, path: str, sensitive_keys: Iterable[str] = (), wall: Callable[[], float] = time.time,
                 retry_s: float = RETRY_S, backlog_limit_bytes: int = BACKLOG_LIMIT_BYTES,
                 on_state: Optional[Callable[[str, dict], None]] = None):
        self.path = path
        self.sensitive_keys = frozenset(sensitive_keys)
        self._store = JournalStore(path, wall)
        self._retry_s = retry_s
        self._backlog_limit = backlog_limit_bytes
        self._on_state = on_state
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._keys = QueueKeys()  # the journal's view of the queue, as handed to the writer: keys only
        self._changes: list = []  # (kind, key, row or None), waiting for the writer
        self._writing = 0  # changes the writer has taken and not yet committed
        self._handed = 0  # sequence number of the last change handed over
        self._committed = 0  # every change up to this sequence number is committed
        self._waiters: list = []  # (sequence number, callback(committed: bool))
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        self.write_errors = 0
        self.unencodable = 0
        self.backlog_bytes = 0  # encoded rows waiting (measured at each failed write)
        self.over_limit = False
        self._write_problem: Optional[str] = None

    # -- state --------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._store.active

    @property
    def problem(self) -> Optional[str]:
        return self._write_problem or self._store.problem

    @property
    def failing(self) -> bool:
        """True while writes fail (from the first failure until a write works again)."""
        return self._write_problem is not None

    @property
    def moved_aside(self) -> Optional[str]:
        return self._store.moved_aside

    def pending_count(self) -> int:
        """Prompts the journal holds (queued, held, running, or loaded and not yet put back)."""
        with self._lock:
            return len(self._keys.ids)

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
                prompts.append(decode_row(row))
            except (ValueError, TypeError, IndexError, KeyError) as error:
                dropped.append(((row.number, row.prompt_id), f"its journal row cannot be read ({error})"))
        with self._lock:
            self._keys.load([p.key for p in prompts] + [key for key, _ in dropped],
                            [p.key for p in prompts if p.running])
        if self.active:
            self._thread = threading.Thread(target=self._write_loop, name="gpu-guard-journal", daemon=True)
            self._thread.start()
        return LoadResult(prompts, dropped)

    # -- changes ------------------------------------------------------------------------------------

    def sync(self, pending, running: Iterable) -> None:
        """Make the journal hold exactly these queue items (`pending`: the heap, `running`: the
        items ComfyUI runs now); prompts loaded by `open` and not yet put back are kept. Called under
        the queue's mutex: it works out the change and encodes new items; the writer thread writes."""
        if not self._store.active:
            return
        with self._lock:
            self._hand_over(self._keys.changes(pending, list(running)))

    def _hand_over(self, changes: list) -> None:
        """Hand changes to the writer (under the lock); an insert is encoded now, at put time."""
        for kind, key, item in changes:
            row = self._encode(key[1], item) if kind == INSERT else None
            if kind == INSERT and row is None:
                continue  # cannot be encoded: logged, counted, never written
            self._changes.append((kind, key, row))
            self._handed += 1
        if changes:
            self._changed.notify()

    def forget(self, keys: Iterable) -> None:
        """Delete rows loaded by `open` that will not be put back (failed validation, unreadable);
        `keys`: JournaledPrompt.key, or the keys of LoadResult.dropped."""
        with self._lock:
            self._hand_over(self._keys.forget(keys))

    def sequence(self) -> tuple:
        """(handed, committed): the sequence number of the last change handed over, and the one up to
        which every change is committed (a waiter for `handed` is answered once committed reaches it)."""
        with self._lock:
            return self._handed, self._committed

    def when_committed(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(True)` once every change handed over so far is committed (on the writer
        thread, or here at once when nothing waits), or `callback(False)` at once while writes fail
        or the journal is off, and when the next write fails. Never raises into the caller."""
        with self._lock:
            if self._committed >= self._handed:
                result = True
            elif self._write_problem is not None or self._thread is None or self._stop:
                result = False
            else:
                self._waiters.append((self._handed, callback))
                return
        _call(callback, result)

    def flush(self, timeout: float = SLOW_FLUSH_WAIT_S) -> bool:
        """Wait until every change handed over so far is committed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._changes and not self._writing or self._thread is None,
                                          timeout)

    def close(self, timeout: float = SLOW_FLUSH_WAIT_S) -> None:
        """Write what waits, stop the writer and close the file."""
        self.flush(timeout)
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._store.close()
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for _seq, callback in waiters:
            _call(callback, False)

    # -- the writer ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._changes or self._stop)
                if self._stop and not self._changes:
                    return
                batch, self._changes = self._changes, []
                self._writing = len(batch)
                batch_end = self._handed
            try:
                ok = self._write(batch)
                if ok and any(kind == DELETE for kind, _key_, _row in batch):
                    self._reclaim_if_empty()  # before flush() returns: the file is small again by then
            except Exception:  # noqa: BLE001 - the writer must outlive any bug
                log.exception("VRAM guard journal: writing failed unexpectedly")
                ok = False
            with self._changed:
                self._writing = 0
                if ok:
                    self._committed = batch_end
                    done = [cb for seq, cb in self._waiters if seq <= batch_end]
                    self._waiters = [(seq, cb) for seq, cb in self._waiters if seq > batch_end]
                else:
                    # the same changes again, in order, compacted to the current set: memory follows
                    # the live queue however long the disk stays full
                    self._changes = compact(batch + self._changes)
                    done, self._waiters = [cb for _seq, cb in self._waiters], []
                    self._measure_backlog()
                self._changed.notify_all()
            for callback in done:
                _call(callback, ok)
            if not ok:
                with self._changed:
                    self._changed.wait_for(lambda: self._stop, self._retry_s)
                    if self._stop:
                        return

    def _reclaim_if_empty(self) -> None:
        """On the writer thread, after a commit that deleted rows: shrink the file once it is empty."""
        with self._lock:
            if self._keys.ids or self._keys.restoring or self._changes:
                return
        try:
            if self._store.reclaim():
                log.info("VRAM guard journal: the journal is empty; %s was vacuumed to reclaim its space", self.path)
        except Exception as error:  # noqa: BLE001 - sqlite3.Error: reclaiming is an optimisation, never a failure
            log.warning("VRAM guard journal: could not vacuum %s (%s)", self.path, error)

    def _measure_backlog(self) -> None:
        """Under the lock, after a failed write: the bytes waiting, and the loud edge past the limit."""
        self.backlog_bytes = sum(len(row[2]) for _kind, _pid, row in self._changes if row is not None)
        over = self.backlog_bytes > self._backlog_limit
        if over and not self.over_limit:
            log.error("VRAM guard journal: %d MB of prompts wait for the failing journal %s (limit %d MB); "
                      "they are lost if ComfyUI stops - free space on that disk",
                      self.backlog_bytes // 2**20, self.path, self._backlog_limit // 2**20)
            self._state("journal_backlog", {"backlog_bytes": self.backlog_bytes, "limit_bytes": self._backlog_limit})
        self.over_limit = over

    def _state(self, kind: str, details: dict) -> None:
        if self._on_state is not None:
            try:
                self._on_state(kind, details)
            except Exception:  # noqa: BLE001 - a listener must not stop the writer
                log.exception("VRAM guard journal: the state listener failed")

    def _encode(self, prompt_id, item):
        try:
            return encode_row(prompt_id, item, self.sensitive_keys)
        except (TypeError, ValueError) as error:
            self.unencodable += 1
            log.error("VRAM guard journal: prompt %s cannot be journaled (%s); it is lost if ComfyUI stops "
                      "before it runs", prompt_id, error)
            return None

    def _write(self, batch) -> bool:
        final: dict = {}  # key -> [row or None, deleted, running or None]
        for kind, key, row in batch:
            entry = final.setdefault(key, [None, False, None])
            if kind == INSERT:
                entry[0], entry[1] = row, False
            elif kind == DELETE:
                entry[0], entry[1], entry[2] = None, True, False
            else:
                entry[2] = kind == RUNNING
        inserts = [entry[0] for entry in final.values() if entry[0] is not None]
        try:
            self._store.write(
                inserts,
                running=[stored(key) for key, entry in final.items() if entry[2] and not entry[1]],
                not_running=[stored(key) for key, entry in final.items() if entry[2] is False and not entry[1]],
                deletes=[stored(key) for key, entry in final.items() if entry[1]])
        except Exception as error:  # noqa: BLE001 - sqlite3.Error, or the file went away
            self.write_errors += 1
            if self._write_problem is None:
                self._write_problem = f"writing the journal {self.path} failed ({error}); retrying every {self._retry_s:g} s"
                log.error("VRAM guard journal: %s - /prompt answers without waiting for the journal, and "
                          "changes since then are lost if ComfyUI stops", self._write_problem)
                self._state("journal_failing", {"error": str(error)})
            return False
        if self._write_problem is not None:
            self._write_problem = None
            self.backlog_bytes, self.over_limit = 0, False
            log.warning("VRAM guard journal: writing %s works again; the waiting changes are committed", self.path)
            self._state("journal_recovered", {})
        return True


def _call(callback, committed: bool) -> None:
    try:
        callback(committed)
    except Exception:  # noqa: BLE001 - a waiter's bug must not stop the writer
        log.exception("VRAM guard journal: a commit callback failed")
