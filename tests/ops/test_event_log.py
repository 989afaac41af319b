"""The event log: JSON lines with time, kind, reading and reason; capped, rotated, paged; restart-proof."""
import json
import os

from gpu_guard.ops.event_log import EventLog
from tests.ops.helpers import DAY0, event

READING = {"used_bytes": 9, "total_bytes": 10, "ratio": 0.9, "at": DAY0}


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_each_line_has_seq_time_kind_reading_reason(tmp_path):
    log = EventLog(str(tmp_path / "events.jsonl"), max_bytes=1 << 20, files=3)
    log.append({**event("pause", DAY0 + 1.5, **{"from": "running", "to": "paused"}), "reading": READING})
    log.append(event("resume", DAY0 + 9))
    log.close()
    first, second = lines(tmp_path / "events.jsonl")
    assert first == {"seq": 1, "time": "2026-05-28T20:26:41.500Z", "kind": "pause", "at": DAY0 + 1.5,
                     "reading": READING, "reason": "test pause", "from": "running", "to": "paused"}
    assert (second["seq"], second["kind"], second["reading"]) == (2, "resume", None)


def test_rotates_at_its_cap_and_keeps_the_newest(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=3 * 2000, files=3)  # 2000 bytes a file
    for i in range(200):
        log.append(event("rejected", DAY0 + i, held=i, note="x" * 40))
    log.close()
    files = [path, path + ".1", path + ".2"]
    assert all(os.path.exists(p) for p in files) and not os.path.exists(path + ".3")
    assert all(os.path.getsize(p) <= 2000 for p in files)
    assert log.size_bytes() <= 3 * 2000
    kept = [r["seq"] for p in reversed(files) for r in lines(p)]
    assert kept == list(range(kept[0], 201)), "the kept lines are the newest, contiguous, oldest file first"
    assert kept[0] > 1


def test_survives_a_restart_and_continues_the_sequence(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=1 << 20, files=2)
    for i in range(5):
        log.append(event("pause", DAY0 + i))
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"seq": 6, "kind": "pau')  # a crash in the middle of a line
    again = EventLog(path, max_bytes=1 << 20, files=2)
    again.append(event("resume", DAY0 + 10))
    page = again.query(since=0)
    assert [r["seq"] for r in page["events"]] == [1, 2, 3, 4, 5, 6]
    assert page["events"][-1]["kind"] == "resume"


def test_pages_through_rotated_files_with_since_kind_and_limit(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=4 * 1500, files=4)
    for i in range(60):
        log.append(event("pause" if i % 2 == 0 else "resume", DAY0 + i))
    oldest = log.query(since=0, limit=1)["events"][0]["seq"]
    seen, cursor, pages = [], 0, 0
    while True:
        page = log.query(since=cursor, limit=7)
        seen += [r["seq"] for r in page["events"]]
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            break
    assert seen == list(range(oldest, 61)) and pages > 2
    pauses = log.query(since=0, kinds=["pause"], limit=1000)["events"]
    assert pauses and all(r["kind"] == "pause" for r in pauses)
    assert log.query(since=60)["events"] == [] and log.query(since=60)["next"] == 60


def test_a_write_error_is_counted_and_loses_nothing_else(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the log's folder should be")
    log = EventLog(str(blocker / "events.jsonl"), max_bytes=1 << 20, files=2)
    assert log.append(event("pause", DAY0)) is None
    assert log.write_errors == 1 and "not_a_folder" in log.last_error


def test_every_kind_the_guard_emits_can_be_asked_for():
    import re
    from pathlib import Path

    import gpu_guard.guard
    from gpu_guard.ops.event_log import KINDS, parse_events_query

    # the guard's modules (guard.py and its parts guard_*.py) emit the events
    source = "".join(path.read_text() for path in Path(gpu_guard.guard.__file__).parent.glob("guard*.py"))
    emitted = set(re.findall(r'_op\("([a-z_]+)"', source)) | {"resume", "hold_start", "hold_end"}
    assert emitted <= set(KINDS), sorted(emitted - set(KINDS))
    assert parse_events_query({"kind": ",".join(sorted(emitted))})[1] == sorted(emitted)
