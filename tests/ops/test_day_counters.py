"""Pauses today and time paused today: split at midnight, shown in status and metrics, kept over a restart."""
from gpu_guard.ops.day_counters import DayCounters, local_day_start, next_day_start
from tests.ops.helpers import DAY0, Settings, event, utc_day_start, utc_next_start


def test_counts_pauses_and_paused_time_of_the_day():
    counters = DayCounters(utc_day_start, utc_next_start)
    counters.pause(DAY0 + 100)
    counters.resume(DAY0 + 160)
    counters.pause(DAY0 + 1000)
    assert counters.snapshot(DAY0 + 1030) == {"date": counters.snapshot(DAY0 + 1030)["date"], "pauses": 2,
                                              "paused_s": 90.0, "paused_now": True}


def test_a_pause_over_midnight_counts_each_day_its_own_part():
    counters = DayCounters(utc_day_start, utc_next_start)
    counters.pause(DAY0 + 86400 - 50)
    assert counters.snapshot(DAY0 + 86400 - 10)["paused_s"] == 40.0
    after = counters.snapshot(DAY0 + 86400 + 30)
    assert (after["pauses"], after["paused_s"], after["paused_now"]) == (0, 30.0, True)
    counters.resume(DAY0 + 86400 + 60)
    assert counters.snapshot(DAY0 + 86400 + 100)["paused_s"] == 60.0


def test_local_days_are_24_hours_apart_and_start_at_midnight():
    start = local_day_start(DAY0 + 12345)
    assert start <= DAY0 + 12345 < next_day_start(start)
    assert 23 * 3600 <= next_day_start(start) - start <= 25 * 3600


def test_status_and_metrics_carry_the_day_and_a_restart_keeps_it(make_service, clock):
    service = make_service()
    clock.now = DAY0 + 7200
    for start in (DAY0 + 3600, DAY0 + 5000):
        service.handle(event("pause", start, **{"from": "running", "to": "paused"}))
        service.handle(event("resume", start + 100, **{"from": "paused", "to": "running"}))
    service.handle(event("pause", DAY0 + 7100, **{"from": "running", "to": "paused"}))
    assert service.flush()
    today = service.status()["today"]
    assert (today["pauses"], today["paused_s"], today["paused_now"]) == (3, 300.0, True)
    text = service.metrics_text().decode()
    assert "gpu_guard_pauses_today 3.0" in text and "gpu_guard_paused_seconds_today 300.0" in text
    service.stop()

    clock.now = DAY0 + 9000  # ComfyUI restarted; the log says it stopped while paused at 7100
    again = make_service()
    assert again.flush()  # the log is read back on the ops thread
    today = again.status()["today"]
    assert (today["pauses"], today["paused_s"], today["paused_now"]) == (3, 200.0, False)
    clock.now = DAY0 + 86400 + 10
    assert again.status()["today"]["pauses"] == 0
