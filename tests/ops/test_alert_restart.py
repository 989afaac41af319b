"""Alerts after a restart are honest: a rule the log shows as firing is not resolved by a fresh
service whose state starts empty; it resolves only on evidence seen after the start, and the cool-down
never hides its re-fire (issue: a false "RESOLVED: the memory sensor reads again" after a restart)."""
import json

import pytest

from tests.ops.helpers import Settings, event
from tests.ops.receiver import Receiver


def fire_then_restart(make_service, clock, receiver, settings, snapshot, fire_events):
    first = make_service(settings, snapshot=lambda: dict(snapshot))
    for e in fire_events(clock.now):
        first.handle(e)
    clock.now += 1
    assert first.flush() and first.wait_deliveries() and len(first.rules.firing()) == 1
    first.stop()  # ComfyUI restarts: a new service on the same log
    clock.now += 30
    return make_service(settings, snapshot=lambda: dict(snapshot))


@pytest.mark.parametrize("rule, fire_events, still_failing, evidence", [
    ("sensor_failing",
     lambda at: [event("sensor_failure", at, error="no file", consecutive=3)],
     {"held": 0, "sensor_reads": False}, {"held": 0, "sensor_reads": True}),
    ("long_hold",
     lambda at: [event("hold_start", at - 700, held=1)],
     {"held": 3, "sensor_reads": True}, {"held": 0, "sensor_reads": True}),
])
def test_a_rule_restored_as_firing_stays_firing_until_evidence_after_the_start(
        make_service, clock, rule, fire_events, still_failing, evidence):
    with Receiver() as receiver:
        settings = Settings(webhooks=({"name": "chat", "format": "slack", "url": receiver.url + "/hook"},),
                            alert_hold_episode_s=600, sensor_failures=3, alert_cooldown_s=3600)
        snapshot = dict(still_failing)
        service = fire_then_restart(make_service, clock, receiver, settings, snapshot, fire_events)
        for _ in range(5):  # the condition is not rebuilt (the rule starts empty) but not over either
            clock.now += 10
            assert service.flush()
        assert service.wait_deliveries()
        assert service.rules.firing() == [rule] and len(receiver.requests) == 1  # no RESOLVED
        assert service.status()["ops"]["alerts"]["restored_unconfirmed"] == [rule]

        snapshot.update(evidence)  # the sensor reads again / nothing is held any more
        clock.now += 10
        assert service.flush() and service.wait_deliveries()
        assert service.rules.firing() == []
        assert [json.loads(r.body)["text"].split("]")[0] for r in receiver.wait_for(2)] == ["[FIRING", "[RESOLVED"]


def test_a_restored_sensor_alert_that_fails_again_is_neither_resolved_nor_repeated(make_service, clock):
    with Receiver() as receiver:
        settings = Settings(webhooks=({"name": "chat", "format": "slack", "url": receiver.url + "/hook"},),
                            sensor_failures=3, alert_cooldown_s=3600)
        snapshot = {"held": 0, "sensor_reads": False}
        service = fire_then_restart(make_service, clock, receiver, settings, snapshot,
                                    lambda at: [event("sensor_failure", at, error="no file", consecutive=3)])
        clock.now += 1
        for n in (1, 2, 3):  # the new life's sensor fails too: the rule confirms what it restored
            service.handle(event("sensor_failure", clock.now, error="no file", consecutive=n))
            assert service.flush()
        assert service.rules.firing() == ["sensor_failing"] and service.rules.unconfirmed() == []
        assert service.rules.suppressed == 0 and service.wait_deliveries() and len(receiver.requests) == 1
        service.handle(event("sensor_recovered", clock.now))
        assert service.flush() and service.wait_deliveries()
        assert [json.loads(r.body)["text"].split("]")[0] for r in receiver.wait_for(2)] == ["[FIRING", "[RESOLVED"]
