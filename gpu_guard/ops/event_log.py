"""The operational event log: one JSON object per line, size-capped, rotated, paged by sequence number.

The log is `gpu_guard_events.jsonl` (the newest lines) plus `gpu_guard_events.jsonl.1` ... `.N-1`
(older files; the highest number is the oldest). `max_bytes` caps the whole log: each file may
grow to `max_bytes / files` before it is rotated, and the oldest file is dropped. Every record gets a
`seq` one higher than the last one written, also across restarts (the newest file's last line is
read back when the log opens), so a reader pages with `since=<last seq it has>` and never misses or
repeats a line while the log rotates.

Only the ops thread writes; readers (the HTTP route, on an executor thread) take the same lock.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Iterable, Iterator, Optional, Sequence

log = logging.getLogger("gpu_guard.ops")

FILE_NAME = "gpu_guard_events.jsonl"
TAIL_BYTES = 64 * 1024  # enough to hold the last complete line of a file (a line is well under 4 KiB)
MAX_LIMIT = 1000
# the guard's operational event kinds (tests/ops/test_event_log.py checks guard.py against this), plus
# "alert": a notification the webhook rules sent
KINDS = ("pause", "resume", "hold_start", "hold_end", "rejected", "hold_timeout", "reclaim", "sensor_failure",
         "sensor_recovered", "config_change", "fast_lane", "unguarded", "operator_pause", "operator_resume",
         "drain", "drain_cancel", "oom_rescue", "alert")


def iso_utc(at: float) -> str:
    """2026-12-01T06:43:04.123Z"""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class EventLog:
    def __init__(self, path: str, max_bytes: int, files: int):
        self.path = path
        self._lock = threading.Lock()
        self._max_bytes, self._files = int(max_bytes), max(1, int(files))
        self._handle = None
        self.write_errors = 0
        self.last_error: Optional[str] = None
        last = self._last_record_of_newest_file()
        self._seq = int(last.get("seq", 0)) if last else 0

    # -- settings --------------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0

    def configure(self, max_bytes: int, files: int) -> None:
        with self._lock:
            if max_bytes == self._max_bytes and files == self._files:
                return
            old_files = self._files
            self._max_bytes, self._files = int(max_bytes), max(1, int(files))
            for index in range(self._files, old_files):  # fewer files kept: drop the surplus oldest
                self._remove(self._name(index))

    @property
    def file_cap(self) -> int:
        return max(1, self._max_bytes // self._files)

    def _name(self, index: int) -> str:
        return self.path if index == 0 else f"{self.path}.{index}"

    def paths_oldest_first(self) -> list:
        return [p for p in (self._name(i) for i in reversed(range(self._files))) if os.path.exists(p)]

    # -- writing ---------------------------------------------------------------------------------------

    def append(self, event: dict) -> Optional[dict]:
        """Write one event (a copy gets `seq` and `time`); returns the record, or None when the log is
        off or the write failed (counted in write_errors; the guard never stops for its log)."""
        if not self.enabled:
            return None
        with self._lock:
            record = {"seq": self._seq + 1, "time": iso_utc(float(event.get("at") or time.time())), **event}
            line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
            try:
                self._write(line)
            except OSError as e:
                self.write_errors += 1
                self.last_error = f"{self.path}: {e}"
                self._close()
                if self.write_errors in (1, 10, 100) or self.write_errors % 1000 == 0:
                    log.error("VRAM guard event log: could not write %s (%s); %d events lost so far - "
                              "check the folder's space and permissions", self.path, e, self.write_errors)
                return None
            self._seq = record["seq"]
            return record

    def _write(self, line: bytes) -> None:
        if self._handle is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
            self._handle = open(self.path, "ab")
            if self._handle.tell() > 0 and not self._ends_with_newline(self.path):
                self._handle.write(b"\n")  # a torn last line (crash mid-write) stays a line of its own
        if self._handle.tell() > 0 and self._handle.tell() + len(line) > self.file_cap:
            self._rotate()
        self._handle.write(line)
        self._handle.flush()

    def _rotate(self) -> None:
        self._close()
        self._remove(self._name(self._files - 1))
        for index in reversed(range(self._files - 1)):
            if os.path.exists(self._name(index)):
                os.replace(self._name(index), self._name(index + 1))
        self._handle = open(self.path, "ab")

    def _close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                pass
            self._handle = None

    def close(self) -> None:
        with self._lock:
            self._close()

    @staticmethod
    def _remove(path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

    # -- reading ---------------------------------------------------------------------------------------

    @staticmethod
    def _ends_with_newline(path: str) -> bool:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    @staticmethod
    def _last_record(path: str) -> Optional[dict]:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - TAIL_BYTES))
                tail = f.read()
        except OSError:
            return None
        for line in reversed(tail.splitlines()):
            record = _parse(line)
            if record is not None:
                return record
        return None

    def _last_record_of_newest_file(self) -> Optional[dict]:
        for path in reversed(self.paths_oldest_first()):
            record = self._last_record(path)
            if record is not None:
                return record
        return None

    def last_record(self) -> Optional[dict]:
        with self._lock:
            if self._handle is not None:
                self._handle.flush()
            return self._last_record_of_newest_file()

    def _records(self, since: int) -> Iterator[dict]:
        for path in self.paths_oldest_first():
            last = self._last_record(path)
            if last is None or int(last.get("seq", 0)) <= since:
                continue  # the whole file is older than the cursor
            with open(path, "rb") as f:
                for line in f:
                    record = _parse(line)
                    if record is not None and int(record.get("seq", 0)) > since:
                        yield record

    def query(self, since: int = 0, kinds: Optional[Sequence[str]] = None, limit: int = 100) -> dict:
        """Records with seq > since (oldest first), of the given kinds, at most `limit`.
        `next` is the cursor for the following page; `more` says whether one exists."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        wanted = set(kinds) if kinds else None
        events, more = [], False
        with self._lock:
            if self._handle is not None:
                self._handle.flush()
            for record in self._records(since):
                if wanted is not None and record.get("kind") not in wanted:
                    continue
                if len(events) == limit:
                    more = True
                    break
                events.append(record)
            last_seq = self._seq
        # a full scan answers for everything up to the last line written, matching or not
        cursor = events[-1]["seq"] if more else max(since, last_seq)
        return {"events": events, "next": cursor, "more": more, "last_seq": last_seq}

    def replay(self, since_at: float, kinds: Iterable[str]) -> list:
        """Records of the given kinds with at >= since_at, oldest first (to rebuild counters at start)."""
        wanted = set(kinds)
        with self._lock:
            return [r for r in self._records(0)
                    if r.get("kind") in wanted and float(r.get("at") or 0) >= since_at]

    def size_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in self.paths_oldest_first())


def _parse(line: bytes) -> Optional[dict]:
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn line from a crash: skipped, the rest of the file is fine
    return record if isinstance(record, dict) else None


def parse_events_query(query) -> tuple:
    """(since, kinds or None, limit) from `?since=&kind=&limit=`; ValueError names the bad parameter."""
    def integer(name, default, lo, hi):
        raw = query.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        return value

    since = integer("since", 0, 0, 2 ** 62)
    limit = integer("limit", 100, 1, MAX_LIMIT)
    kinds = [k.strip() for k in query.get("kind", "").split(",") if k.strip()] or None
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ValueError(f"kind {', '.join(unknown)} is not an event kind; known: {', '.join(KINDS)}")
    return since, kinds, limit
