"""A flood of events cannot erase the history the restart and the 24 h rule are rebuilt from: 429s
share a line per span with a count, pauses, resumes and alerts are kept in a log of their own, and
the log's size is read under its lock while it rotates."""
import json
import threading

from gpu_guard.ops.event_log import EventLog
from gpu_guard.ops.service import REJECTED_LINE_S
from tests.ops.helpers import DAY0, Settings, event

FLOOD = 100_000


def pause_episode(service, start):
    service.handle(event("pause", start, **{"from": "running", "to": "paused"}))
    service.handle(event("resume", start + 30, **{"from": "paused", "to": "running"}))


def test_a_hundred_thousand_429s_do_not_push_the_days_pauses_out(make_service, clock):
    settings = Settings(event_log_max_bytes=64 * 1024, event_log_files=2, alert_pauses_per_day=3)
    service = make_service(settings)
    clock.now = DAY0 + 3600
    for i in range(4):  # four pauses: over the budget of 3
        pause_episode(service, clock.now + i * 100)
    clock.now += 400
    assert service.flush() and service.rules.firing() == ["many_pauses"]
    for i in range(FLOOD):  # 100,000 429s in a row, over 50 s
        service.handle(event("rejected", clock.now + i * 0.0005, held=10, max_held=10, retry_after_s=10))
    clock.now += FLOOD * 0.0005 + REJECTED_LINE_S
    assert service.flush(60)
    assert service.metrics_text().count(b'gpu_guard_events_total{kind="rejected"} 100000.0') == 1

    lines = service.events(kinds=["rejected"], limit=1000)["events"]
    assert sum(line["count"] for line in lines) == FLOOD  # every 429 is counted ...
    assert len(lines) <= FLOOD * 0.0005 / REJECTED_LINE_S + 2  # ... in one line per span
    assert [e["kind"] for e in service.events(kinds=["pause"])["events"]] == ["pause"] * 4
    service.stop()

    again = make_service(settings)  # a restart rebuilds the day and the 24 h window
    clock.now += 1
    assert again.flush()
    assert again.today()["pauses"] == 4 and again.rules.firing() == ["many_pauses", "reject_burst"]
    assert again.rules.unconfirmed() == ["reject_burst"]  # its 429s are not replayed: firing until a quiet window


def test_the_pause_history_survives_a_flood_that_rotates_the_event_log(make_service, clock):
    settings = Settings(event_log_max_bytes=8 * 1024, event_log_files=2, alert_pauses_per_day=3)
    service = make_service(settings)
    clock.now = DAY0 + 3600
    for i in range(4):
        pause_episode(service, clock.now + i * 100)
    clock.now += 400
    for i in range(2000):  # other events, each a line of its own: the small event log rotates many times
        service.handle(event("hold_timeout", clock.now + i, prompt_id=f"p{i}"))
    clock.now += 2000
    assert service.flush(30)
    assert service.events(kinds=["pause"])["events"] == []  # gone from the event log ...
    service.stop()
    again = make_service(settings)
    clock.now += 1
    assert again.flush()
    assert again.today()["pauses"] == 4 and again.rules.firing() == ["many_pauses"]  # ... not from history


def test_size_is_read_under_the_lock_while_the_log_rotates(tmp_path):
    log = EventLog(str(tmp_path / "events.jsonl"), max_bytes=4 * 600, files=4)  # rotates every few lines
    errors, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                assert 0 <= log.size_bytes() <= 4 * 600
            except Exception as error:  # noqa: BLE001 - collected for the assertion below
                errors.append(repr(error))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for i in range(5000):
        log.append(event("hold_timeout", DAY0 + i, note="x" * 60))
    stop.set()
    for reader in readers:
        reader.join()
    assert errors == []
    log.close()
