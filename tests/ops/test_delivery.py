"""Retries with backoff, dead letters, and a target that is down never holding up the caller."""
import threading
import time

from tests.ops.helpers import Settings, event
from tests.ops.receiver import Receiver

# a Standard Webhooks secret without the whsec_ prefix: base64, unpadded (the spec allows both)
PLAIN_SECRET = "ZGVsaXZlcnktdGVzdHMtc2lnbmluZy1rZXktMDEyMzQ1"


def json_target(receiver, name="ops"):
    return {"name": name, "format": "json", "secret": PLAIN_SECRET, "url": receiver.url + "/hook"}


def sensor_alert(service, clock):
    service.handle(event("sensor_failure", clock.now, error="probe file missing", consecutive=3))
    assert service.flush()


def test_a_500_then_a_timeout_are_retried_until_delivered(make_service, clock):
    with Receiver(script=[500, ("hang", 3.0), 200]) as receiver:
        service = make_service(Settings(webhooks=(json_target(receiver),), webhook_timeout_s=0.3,
                                        webhook_retries=3))
        sensor_alert(service, clock)
        first, second, third = receiver.wait_for(3)
        assert service.wait_deliveries()
        assert second.at - first.at >= 0.02 and third.at - second.at >= 0.3  # backoff, then the timeout
        assert first.headers["webhook-id"] == third.headers["webhook-id"]
        (view,) = service.status()["ops"]["webhooks"]
        assert view["delivered"] == 1 and view["failed_attempts"] == 2 and view["dead_letters"] == 0
        text = service.metrics_text().decode()
        assert 'gpu_guard_webhook_retries_total{target="ops"} 2.0' in text
        assert 'gpu_guard_webhook_deliveries_total{target="ops"} 1.0' in text


def test_after_the_last_retry_the_message_is_a_dead_letter(make_service, clock):
    with Receiver(script=[500]) as receiver:
        service = make_service(Settings(webhooks=(json_target(receiver),), webhook_retries=2))
        sensor_alert(service, clock)
        receiver.wait_for(3)
        assert service.wait_deliveries()
        time.sleep(0.2)
        assert len(receiver.requests) == 3, "1 attempt + 2 retries, then it stops"
        (view,) = service.status()["ops"]["webhooks"]
        assert view["dead_letters"] == 1 and view["last_error"] == "HTTP 500"
        assert 'gpu_guard_webhook_dead_letters_total{target="ops"} 1.0' in service.metrics_text().decode()


def test_a_hanging_target_delays_neither_the_caller_nor_the_other_targets(make_service, clock):
    with Receiver(script=[("hang", 30.0)]) as down, Receiver(script=[200]) as up:
        service = make_service(Settings(webhooks=(json_target(down, "down"), json_target(up, "up")),
                                        webhook_timeout_s=20, webhook_retries=0))
        sensor_alert(service, clock)
        down.wait_for(1)  # the down target's sender is stuck in its request now
        up.wait_for(1, timeout=5)  # the other target got its message anyway
        returned = threading.Event()

        def emit():
            for i in range(1000):
                service.handle(event("fast_lane", clock.now, prompt_id=f"p{i}", estimated_bytes=1))
            returned.set()

        threading.Thread(target=emit).start()
        assert returned.wait(2.0), "handing events over must not wait for any target"
        assert service.flush(timeout=10), "the ops thread keeps processing while a target hangs"
        assert service.events(since=0, kinds=["fast_lane"], limit=1000)["events"][-1]["prompt_id"] == "p999"
        down.release.set()


def test_the_backoff_doubles_between_attempts():
    from gpu_guard.ops import FIRING, Notification
    from gpu_guard.ops.metrics import OpsMetrics
    from gpu_guard.ops.webhook_sender import TargetSender

    with Receiver(script=[500, 500, 500, 200]) as receiver:
        sender = TargetSender(json_target(receiver), OpsMetrics(), "h", retries=lambda: 5, timeout_s=lambda: 2.0,
                              backoff_s=0.1)
        sender.submit(Notification("reject_burst", FIRING, "t", "x", at=time.time()))
        requests = receiver.wait_for(4)
        assert wait_for_idle(sender)
        sender.stop()
    gaps = [b.at - a.at for a, b in zip(requests, requests[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert sender.delivered == 1 and sender.attempt_errors == 3 and sender.dead_letters == 0


def wait_for_idle(sender, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sender.idle():
            return True
        time.sleep(0.01)
    return False
