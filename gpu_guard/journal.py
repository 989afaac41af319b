"""The journal of the pending set: the prompts queued or running, kept in SQLite so that a restart
of ComfyUI (or a crash) does not drop them.

One row per prompt: its id, number, state (pending / running) and the queue item as JSON without
the sensitive part (ComfyUI's index 5: API keys that ComfyUI strips from history), which is never
written; only the names of its keys are kept, so a restored prompt can say what it lost.

The file is SQLite in WAL mode with synchronous=NORMAL: a commit is in the operating system's
hands before `sync` returns, so a killed process loses nothing (a power cut may lose the last
commits). `sync` is given the whole pending set at every queue change and writes the difference
from what it last wrote, in one transaction.

Damage never stops the caller: a file SQLite cannot read, or written by a newer schema, is moved
aside (renamed, never deleted) and a fresh journal started; a folder that cannot be written turns
the journal off. Each is logged loudly and kept in `problem`. Nothing here imports ComfyUI.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

log = logging.getLogger("gpu_guard.journal")

FILE_NAME = "gpu_guard_journal.sqlite3"
SCHEMA_VERSION = 1
PENDING, RUNNING = "pending", "running"
# loaded from the file and not yet put back: a queue change meanwhile must not delete it
_RESTORING = "restoring"
# an item JSON cannot hold (another pack put it): not journaled, logged once
_UNJOURNALED = "unjournaled"
SENSITIVE_INDEX = 5  # ComfyUI's queue item: (number, prompt_id, prompt, extra_data, outputs, sensitive)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    prompt_id TEXT PRIMARY KEY,
    number REAL NOT NULL,
    state TEXT NOT NULL,
    item TEXT NOT NULL,
    sensitive_keys TEXT NOT NULL,
    journaled_at REAL NOT NULL
)
"""


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

    def __init__(self, path: str, sensitive_keys: Iterable[str] = (), wall: Callable[[], float] = time.time):
        self.path = path
        self.sensitive_keys = frozenset(sensitive_keys)
        self._wall = wall
        self._db: Optional[sqlite3.Connection] = None
        self._lock = threading.Lock()
        self._states: dict = {}  # prompt id -> state, as written (ids only: nothing else is kept)
        self.problem: Optional[str] = None  # the last damage or failure, for status and logs
        self.moved_aside: Optional[str] = None  # where a damaged file went
        self.write_errors = 0
        self._failing = False

    @property
    def active(self) -> bool:
        return self._db is not None

    # -- opening ------------------------------------------------------------------------------------

    def open(self) -> LoadResult:
        """Open (or create) the file and read what it holds. Never raises: damage is moved aside and
        a fresh journal started; an unusable folder leaves the journal off (`active` False)."""
        try:
            return self._load()
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and not _is_damage(error):
                return self._off(f"cannot use {self.path} ({error}); prompts are not journaled - "
                                 "make its folder writable (and the file, if it exists) and restart ComfyUI")
            return self._move_aside_and_restart(f"SQLite cannot read it ({error})")
        except _NewerSchema as newer:
            return self._move_aside_and_restart(str(newer))
        except OSError as error:
            return self._off(f"cannot use {self.path} ({error}); prompts are not journaled - "
                             "make its folder writable and restart ComfyUI")

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _NewerSchema(f"it was written by a newer version of the pack (schema {version}, "
                                   f"this one reads {SCHEMA_VERSION})")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            db.execute(_SCHEMA)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _load(self) -> LoadResult:
        db = self._connect()
        try:
            rows = db.execute("SELECT prompt_id, number, state, item, sensitive_keys FROM prompts "
                              "ORDER BY number, prompt_id").fetchall()
        except BaseException:
            db.close()
            raise
        prompts, dropped = [], []
        for prompt_id, number, state, item_json, keys_json in rows:
            try:
                prompts.append(_decode(prompt_id, number, state, item_json, keys_json))
            except (ValueError, TypeError, IndexError) as error:
                dropped.append((prompt_id, f"its journal row cannot be read ({error})"))
        self._db = db
        self._states = {row[0]: _RESTORING for row in rows}
        return LoadResult(prompts, dropped)

    def _move_aside_and_restart(self, why: str) -> LoadResult:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._wall()))
        target = f"{self.path}.damaged-{stamp}"
        try:
            for suffix in ("", "-wal", "-shm"):  # the WAL companions belong to the damaged file
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, target + suffix)
        except OSError as error:
            return self._off(f"the journal {self.path} is damaged ({why}) and cannot be moved aside ({error}); "
                             "prompts are not journaled - move or delete the file and restart ComfyUI")
        self.moved_aside = target
        self.problem = (f"the journal {self.path} was damaged ({why}); it was moved to {target} and a fresh "
                        "journal started - the prompts it held are not restored (inspect or delete the moved file)")
        log.error("VRAM guard journal: %s", self.problem)
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, OSError) as error:
            return self._off(f"cannot start a fresh journal at {self.path} ({error}); prompts are not journaled")
        self._states = {}
        return LoadResult([], [])

    def _off(self, problem: str) -> LoadResult:
        self.problem = problem
        self._db = None
        log.error("VRAM guard journal: %s", problem)
        return LoadResult([], [])

    # -- writing ------------------------------------------------------------------------------------

    def sync(self, pending: Iterable, running: Iterable) -> None:
        """Make the journal hold exactly these queue items (`pending`: the heap, `running`: the
        items ComfyUI runs now), writing only what changed. Prompts loaded by `open` and not yet put
        back are kept. A failed write is logged (loudly, once per failing streak) and retried at the
        next change: the in-memory view only moves with what was committed."""
        if self._db is None:
            return
        wanted = {}
        for item in pending:
            wanted[item[1]] = (PENDING, item)
        for item in running:
            wanted[item[1]] = (RUNNING, item)
        with self._lock:
            states = self._states
            inserts, updates, deletes, unjournaled = [], [], [], []
            for prompt_id, (state, item) in wanted.items():
                known = states.get(prompt_id)
                if known is None:
                    row = self._row(prompt_id, state, item)
                    if row is None:
                        unjournaled.append(prompt_id)
                    else:
                        inserts.append(row)
                elif known != state and known != _UNJOURNALED:
                    updates.append((state, str(prompt_id), prompt_id))
            for prompt_id, known in states.items():
                if prompt_id not in wanted and known != _RESTORING:
                    deletes.append(prompt_id)
            if not (inserts or updates or deletes or unjournaled):
                return
            try:
                self._write(inserts, updates, deletes)
            except _WriteFailed:
                return
            for row in inserts:
                states[row[-1]] = row[2]
            for state, _key, prompt_id in updates:
                states[prompt_id] = state
            for prompt_id in deletes:
                del states[prompt_id]
            for prompt_id in unjournaled:
                states[prompt_id] = _UNJOURNALED

    def forget(self, prompt_ids: Iterable) -> None:
        """Delete rows loaded by `open` that will not be put back (failed validation, unreadable)."""
        if self._db is None:
            return
        with self._lock:
            gone = [pid for pid in prompt_ids if self._states.get(pid) == _RESTORING]
            if gone:
                try:
                    self._write([], [], gone)
                except _WriteFailed:
                    return
                for prompt_id in gone:
                    del self._states[prompt_id]

    def _row(self, prompt_id, state, item):
        sensitive = item[SENSITIVE_INDEX] if len(item) > SENSITIVE_INDEX else None
        kept = list(item[:SENSITIVE_INDEX]) + list(item[SENSITIVE_INDEX + 1:])
        keys = sorted(sensitive) if isinstance(sensitive, dict) else []
        if len(kept) > 3 and isinstance(kept[3], dict) and self.sensitive_keys & kept[3].keys():
            keys = sorted(set(keys) | (self.sensitive_keys & kept[3].keys()))
            kept[3] = {k: v for k, v in kept[3].items() if k not in self.sensitive_keys}
        try:
            item_json = json.dumps({"item": kept, "had_sensitive": len(item) > SENSITIVE_INDEX},
                                   separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as error:
            log.error("VRAM guard journal: prompt %s cannot be journaled (%s); it is lost if ComfyUI stops "
                      "before it runs", prompt_id, error)
            return None
        number = item[0] if isinstance(item[0], (int, float)) else 0
        return (str(prompt_id), float(number), state, item_json, json.dumps(keys), self._wall(), prompt_id)

    def _write(self, inserts, updates, deletes) -> None:
        try:
            db = self._db
            db.execute("BEGIN")
            try:
                if inserts:
                    db.executemany("INSERT OR REPLACE INTO prompts (prompt_id, number, state, item, sensitive_keys, "
                                   "journaled_at) VALUES (?, ?, ?, ?, ?, ?)", [row[:-1] for row in inserts])
                if updates:
                    db.executemany("UPDATE prompts SET state = ? WHERE prompt_id = ?",
                                   [update[:2] for update in updates])
                if deletes:
                    db.executemany("DELETE FROM prompts WHERE prompt_id = ?", [(str(pid),) for pid in deletes])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            self.write_errors += 1
            if not self._failing:
                self._failing = True
                self.problem = f"writing the journal {self.path} failed ({error}); retried at the next queue change"
                log.error("VRAM guard journal: %s - prompts queued meanwhile are lost if ComfyUI stops", self.problem)
            raise _WriteFailed() from error
        if self._failing:
            self._failing = False
            log.warning("VRAM guard journal: writing %s works again", self.path)

    def pending_count(self) -> int:
        with self._lock:
            return sum(1 for state in self._states.values() if state != _UNJOURNALED)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class _NewerSchema(Exception):
    pass


class _WriteFailed(Exception):
    """Internal: `sync` leaves its view unchanged when the write failed."""


def _is_damage(error: sqlite3.OperationalError) -> bool:
    # "unable to open", "readonly", "locked" are about the folder or another process, not the file
    text = str(error).lower()
    return "malformed" in text or "not a database" in text


def _decode(prompt_id, number, state, item_json, keys_json) -> JournaledPrompt:
    data = json.loads(item_json)
    kept = data["item"]
    if not isinstance(kept, list) or len(kept) < 5:
        raise ValueError("the item is not a queue item")
    item = tuple(kept[:SENSITIVE_INDEX]) + (({},) if data.get("had_sensitive") else ()) + tuple(kept[SENSITIVE_INDEX:])
    if str(item[1]) != prompt_id:
        raise ValueError(f"the item holds prompt id {item[1]!r}")
    return JournaledPrompt(prompt_id=item[1], number=item[0], running=state == RUNNING, item=item,
                           sensitive_keys=tuple(json.loads(keys_json)))
