"""Alert rules through the whole service, delivered over HTTP to a loopback receiver."""
import json

from tests.ops.helpers import DAY0, Settings, event
from tests.ops.receiver import Receiver


def slack_target(receiver, **extra):
    return ({"name": "chat", "format": "slack", "url": receiver.url + "/hook", **extra},)


def statuses(receiver, count, timeout=10.0):
    return [(json.loads(r.body)["text"].split("]")[0].lstrip("["), r) for r in receiver.wait_for(count, timeout)]


def pause_episode(service, start, length=60.0):
    service.handle(event("pause", start, **{"from": "running", "to": "paused"}))
    service.handle(event("resume", start + length, **{"from": "paused", "to": "running"}))


def test_eleven_pauses_in_a_day_fire_once_then_resolve(make_service, clock):
    with Receiver() as receiver:
        service = make_service(Settings(webhooks=slack_target(receiver)))
        for i in range(11):  # one every two hours from 01:00 to 21:00
            clock.now = DAY0 + 3600 + i * 7200
            pause_episode(service, clock.now)
            assert service.flush()
            assert service.rules.firing() == ([] if i < 10 else ["many_pauses"])
        for late in (3600.0, 7200.0):  # later the same day: still firing, nothing new sent
            clock.now += late
            assert service.flush()
        assert service.wait_deliveries()
        assert [s for s, _ in statuses(receiver, 1)] == ["FIRING"] and len(receiver.requests) == 1
        text = json.loads(receiver.requests[0].body)["text"]
        assert "11 pauses in the last 24 h (more than 10)" in text

        clock.now = DAY0 + 3600 + 86400 + 1  # the first pause leaves the 24 h window: 10 left
        assert service.flush() and service.wait_deliveries()
        assert [s for s, _ in statuses(receiver, 2)] == ["FIRING", "RESOLVED"]
        assert service.rules.firing() == []
        assert service.metrics_text().count(b'gpu_guard_alert_notifications_total{rule="many_pauses"') == 2


def test_cool_down_keeps_a_returning_alert_quiet(make_service, clock):
    def two_pauses():
        pause_episode(service, clock.now)
        pause_episode(service, clock.now + 10)
        clock.now += 20
        assert service.flush()

    with Receiver() as receiver:
        settings = Settings(webhooks=slack_target(receiver), alert_pauses_per_day=1, alert_cooldown_s=2 * 86400)
        service = make_service(settings)
        two_pauses()  # 2 > 1: fires
        clock.now += 86400  # both age out: resolved
        assert service.flush()
        two_pauses()  # back within the cool-down: quiet
        assert service.rules.firing() == ["many_pauses"] and service.rules.suppressed == 1
        clock.now += 86400  # its quiet end sends no resolve either
        assert service.flush()
        two_pauses()  # two days after the first: the cool-down is over
        assert service.wait_deliveries()
        assert [s for s, _ in statuses(receiver, 3)] == ["FIRING", "RESOLVED", "FIRING"]
        assert len(receiver.requests) == 3


def test_long_hold_sensor_failing_full_queue_and_429_burst(make_service, clock):
    snapshot = {"held": 0}
    with Receiver() as receiver:
        settings = Settings(webhooks=slack_target(receiver), alert_hold_episode_s=600, max_held=10,
                            alert_held_fraction=0.8, alert_rejected_burst=3, alert_rejected_window_s=60,
                            sensor_failures=3)
        service = make_service(settings, snapshot=lambda: dict(snapshot))
        t0 = clock.now
        service.handle(event("hold_start", t0, held=1))
        clock.now = t0 + 599
        assert service.flush() and service.rules.firing() == []
        clock.now = t0 + 601
        assert service.flush() and service.rules.firing() == ["long_hold"]
        service.handle(event("hold_end", clock.now, held_count=4, longest_wait_s=601, duration_s=601))
        assert service.flush() and service.rules.firing() == []

        for n in (1, 2, 3):
            service.handle(event("sensor_failure", clock.now, error="no file", consecutive=n))
            assert service.flush()
            assert service.rules.firing() == ([] if n < 3 else ["sensor_failing"])
        service.handle(event("sensor_recovered", clock.now))
        assert service.flush() and service.rules.firing() == []

        snapshot["held"] = 8
        assert service.flush() and service.rules.firing() == []  # 8 is not over 80 % of 10
        snapshot["held"] = 9
        assert service.flush() and service.rules.firing() == ["hold_queue_full"]
        snapshot["held"] = 2
        assert service.flush() and service.rules.firing() == []

        for i in range(3):
            service.handle(event("rejected", clock.now + i, held=10, max_held=10, retry_after_s=10))
        clock.now += 3
        assert service.flush() and service.rules.firing() == ["reject_burst"]
        clock.now += 61
        assert service.flush() and service.rules.firing() == []

        assert service.wait_deliveries()
        got = [(json.loads(r.body)["text"].split("]")[0].lstrip("["), json.loads(r.body)["text"])
               for r in receiver.wait_for(8)]
        assert [s for s, _ in got] == ["FIRING", "RESOLVED"] * 4
        assert "held for 601 s" in got[0][1] and "failed 3 readings" in got[2][1]
        assert "9 prompts held of max_held 10" in got[4][1] and "3 prompts answered 429" in got[6][1]
        assert "the hold episode is over" in got[1][1]


def test_a_target_can_take_only_some_rules(make_service, clock):
    with Receiver() as receiver:
        service = make_service(Settings(webhooks=slack_target(receiver, rules=["sensor_failing"]),
                                        alert_pauses_per_day=1))
        pause_episode(service, clock.now)
        pause_episode(service, clock.now + 1)
        service.handle(event("sensor_failure", clock.now, error="e", consecutive=3))
        clock.now += 2
        assert service.flush() and service.wait_deliveries()
        assert sorted(service.rules.firing()) == ["many_pauses", "sensor_failing"]
        (only,) = receiver.wait_for(1)
        assert "sensor" in json.loads(only.body)["text"] and len(receiver.requests) == 1


def test_more_out_of_memory_runs_in_an_hour_than_the_budget_fire_once_then_resolve(make_service, clock):
    with Receiver() as receiver:
        service = make_service(Settings(webhooks=slack_target(receiver), alert_ooms_per_hour=3))
        for i, outcome in enumerate(["rescued", "recovered", "rescued", "recovered", "exhausted"]):
            clock.now = DAY0 + 60 * (i + 1)  # a recovery is the same OOM's good end: it does not count
            service.handle(event("oom_rescue", clock.now, outcome=outcome, prompt_id=f"p{i}"))
            assert service.flush()
        assert service.rules.firing() == []  # 3 OOMs: not more than 3
        clock.now += 60
        service.handle(event("oom_rescue", clock.now, outcome="off", prompt_id="p9"))
        assert service.flush() and service.rules.firing() == ["many_ooms"]
        assert service.wait_deliveries()
        assert "4 runs out of GPU memory in the last hour (more than 3)" in json.loads(receiver.requests[0].body)["text"]
        clock.now = DAY0 + 60 + 3600 + 1  # the first OOM leaves the hour
        assert service.flush() and service.wait_deliveries()
        assert [s for s, _ in statuses(receiver, 2)] == ["FIRING", "RESOLVED"]
