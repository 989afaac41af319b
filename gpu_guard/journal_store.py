"""The journal's SQLite file: schema, opening with damage handling, reading back and batched writes.

Two tables: `prompts` (one row per journaled prompt, written once: the queue item as JSON without
its sensitive part) and `running` (the ids ComfyUI runs now). A prompt that starts running costs a
tiny insert, not a rewrite of its (possibly large) row.

WAL mode with synchronous=NORMAL: a commit is in the operating system's hands when it returns, so a
killed process loses nothing that was committed (a power cut may lose the last commits).

Damage never stops the caller: a file SQLite cannot read, or written by a newer schema, is moved
aside (renamed, never deleted) with its WAL companions and a fresh file started; a folder that
cannot be used turns the journal off. Each is logged loudly and kept in `problem`.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger("gpu_guard.journal")

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS prompts (
        prompt_id TEXT PRIMARY KEY,
        number REAL NOT NULL,
        item TEXT NOT NULL,
        sensitive_keys TEXT NOT NULL,
        journaled_at REAL NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS running (prompt_id TEXT PRIMARY KEY)",
)


@dataclass(frozen=True)
class StoredRow:
    prompt_id: str
    number: float
    running: bool
    item_json: str
    keys_json: str


class JournalStore:
    def __init__(self, path: str, wall: Callable[[], float] = time.time):
        self.path = path
        self._wall = wall
        self._db: Optional[sqlite3.Connection] = None
        self.problem: Optional[str] = None
        self.moved_aside: Optional[str] = None

    @property
    def active(self) -> bool:
        return self._db is not None

    # -- opening ------------------------------------------------------------------------------------

    def open(self) -> list:
        """Open (or create) the file; the StoredRows it holds, in ComfyUI's priority order. Never
        raises: damage is moved aside and a fresh file started; an unusable folder leaves it off."""
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
            for statement in _SCHEMA:
                db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _load(self) -> list:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT p.prompt_id, p.number, r.prompt_id IS NOT NULL, p.item, p.sensitive_keys FROM prompts p "
                "LEFT JOIN running r ON r.prompt_id = p.prompt_id ORDER BY p.number, p.prompt_id").fetchall()
        except BaseException:
            db.close()
            raise
        self._db = db
        return [StoredRow(*row) for row in rows]

    def _move_aside_and_restart(self, why: str) -> list:
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
        return []

    def _off(self, problem: str) -> list:
        self.problem = problem
        self._db = None
        log.error("VRAM guard journal: %s", problem)
        return []

    # -- writing ------------------------------------------------------------------------------------

    def write(self, inserts, running, not_running, deletes) -> None:
        """One transaction. inserts: (prompt_id, number, item_json, keys_json); the others: prompt ids.
        Raises sqlite3.Error (rolled back)."""
        db = self._db
        now = self._wall()
        db.execute("BEGIN")
        try:
            if inserts:
                db.executemany("INSERT OR REPLACE INTO prompts (prompt_id, number, item, sensitive_keys, journaled_at) "
                               "VALUES (?, ?, ?, ?, ?)", [(*row, now) for row in inserts])
            if running:
                db.executemany("INSERT OR IGNORE INTO running (prompt_id) VALUES (?)", [(pid,) for pid in running])
            gone = [(pid,) for pid in list(not_running) + list(deletes)]
            if gone:
                db.executemany("DELETE FROM running WHERE prompt_id = ?", gone)
            if deletes:
                db.executemany("DELETE FROM prompts WHERE prompt_id = ?", [(pid,) for pid in deletes])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def encode_item(kept: list, had_sensitive: bool) -> str:
    # allow_nan: a prompt may carry NaN or Infinity (a float input, or what a pack put in extra_data);
    # Python writes them as NaN / Infinity and json.loads reads them back as the same floats
    return json.dumps({"item": kept, "had_sensitive": had_sensitive}, separators=(",", ":"), allow_nan=True)


class _NewerSchema(Exception):
    pass


def _is_damage(error: sqlite3.OperationalError) -> bool:
    # "unable to open", "readonly", "locked" are about the folder or another process, not the file
    text = str(error).lower()
    return "malformed" in text or "not a database" in text
