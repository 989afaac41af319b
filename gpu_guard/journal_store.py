"""The journal's SQLite file: schema, opening with damage handling, reading back and batched writes.

Two tables: `prompts` (one row per journaled prompt, written once: the queue item as JSON without
its sensitive part) and `running` (the prompts ComfyUI runs now). A prompt that starts running costs
a tiny insert, not a rewrite of its (possibly large) row. Rows are keyed by (prompt id, number): a
client may choose its prompt id, and two queued prompts with the same id are both kept (schema 2;
a schema 1 file is migrated in place when it is opened).

WAL mode with synchronous=FULL: a commit has reached the disk when it returns, so neither a killed
process nor a power cut loses a committed prompt. Commits are grouped (one per burst of puts), so the
fsync costs little: bench/bench_prompt_commit.py measures FULL against NORMAL.

When the journal empties and the file holds more than RECLAIM_MIN_BYTES of free pages, `reclaim`
vacuums it and truncates the WAL: a burst of large prompts does not leave a large file behind.

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

SCHEMA_VERSION = 2
SYNCHRONOUS = "FULL"  # see the module's docstring; bench/bench_prompt_commit.py compares NORMAL
# Free space worth a VACUUM once the journal is empty (a vacuum of an empty file takes milliseconds)
RECLAIM_MIN_BYTES = 1024 * 1024

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS prompts (
        prompt_id TEXT NOT NULL,
        number REAL NOT NULL,
        item TEXT NOT NULL,
        sensitive_keys TEXT NOT NULL,
        journaled_at REAL NOT NULL,
        PRIMARY KEY (prompt_id, number)
    )""",
    "CREATE TABLE IF NOT EXISTS running (prompt_id TEXT NOT NULL, number REAL NOT NULL, PRIMARY KEY (prompt_id, number))",
)
# schema 1 keyed rows by prompt id alone; its rows move to the schema 2 tables unchanged
_MIGRATE_FROM_1 = (
    "ALTER TABLE prompts RENAME TO prompts_v1",
    "ALTER TABLE running RENAME TO running_v1",
    *_SCHEMA,
    "INSERT INTO prompts SELECT prompt_id, number, item, sensitive_keys, journaled_at FROM prompts_v1",
    "INSERT INTO running SELECT r.prompt_id, p.number FROM running_v1 r JOIN prompts_v1 p USING (prompt_id)",
    "DROP TABLE prompts_v1",
    "DROP TABLE running_v1",
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
        self.reclaimed = 0  # vacuums done
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
            db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _NewerSchema(f"it was written by a newer version of the pack (schema {version}, "
                                   f"this one reads {SCHEMA_VERSION})")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            if version == 1:
                db.execute("BEGIN")
                for statement in _MIGRATE_FROM_1:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.execute("COMMIT")
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
                "LEFT JOIN running r ON r.prompt_id = p.prompt_id AND r.number = p.number "
                "ORDER BY p.number, p.prompt_id").fetchall()
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
        """One transaction. inserts: (prompt_id, number, item_json, keys_json); the others:
        (prompt_id, number). Raises sqlite3.Error (rolled back).

        Each statement takes many rows (not executemany): sqlite3 lets go of the GIL around every
        step, and a writer that takes it back once per row stalls ComfyUI's event loop once per row."""
        db = self._db
        now = self._wall()
        db.execute("BEGIN")
        try:
            _many_rows(db, "INSERT OR REPLACE INTO prompts (prompt_id, number, item, sensitive_keys, journaled_at) "
                           "VALUES {}", "(?, ?, ?, ?, ?)", [(*row, now) for row in inserts])
            _many_rows(db, "INSERT OR IGNORE INTO running (prompt_id, number) VALUES {}", "(?, ?)", running)
            _many_rows(db, "DELETE FROM running WHERE (prompt_id, number) IN (VALUES {})", "(?, ?)",
                       list(not_running) + list(deletes))
            _many_rows(db, "DELETE FROM prompts WHERE (prompt_id, number) IN (VALUES {})", "(?, ?)", deletes)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def reclaim(self) -> bool:
        """When no prompt is journaled and free pages are worth it: VACUUM and truncate the WAL, so
        the file shrinks back. Raises sqlite3.Error."""
        db = self._db
        if db.execute("SELECT EXISTS (SELECT 1 FROM prompts)").fetchone()[0]:
            return False
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
        if free < RECLAIM_MIN_BYTES:
            return False
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.reclaimed += 1
        return True

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# Rows per statement: 5 parameters a row stays under SQLite's oldest limit of 999 parameters
ROWS_PER_STATEMENT = 150


def _many_rows(db, sql: str, row_sql: str, rows) -> None:
    rows = list(rows)
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
        db.execute(sql.format(", ".join([row_sql] * len(chunk))), [value for row in chunk for value in row])


# allow_nan: a prompt may carry NaN or Infinity (a float input, or what a pack put in extra_data);
# Python writes them as NaN / Infinity and json.loads reads them back as the same floats. One encoder
# for every put: json.dumps with these arguments builds a new one each call (a third of a small put).
_ITEM_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def encode_item(kept: list, had_sensitive: bool) -> str:
    return _ITEM_ENCODER.encode({"item": kept, "had_sensitive": had_sensitive})


class _NewerSchema(Exception):
    pass


def _is_damage(error: sqlite3.OperationalError) -> bool:
    # "unable to open", "readonly", "locked" are about the folder or another process, not the file
    text = str(error).lower()
    return "malformed" in text or "not a database" in text
