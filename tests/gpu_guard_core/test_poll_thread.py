"""The background poll thread with the real clock: wake-ups, resilience and shutdown."""
import threading
import time

from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import FileProbe


def real_guard(probe_file, **settings):
    return Guard(GuardConfig(probe="file:" + probe_file.path, **settings), FileProbe(probe_file.path))


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_start_reads_at_once_and_the_thread_follows_the_file(probe_file):
    probe_file.write(ratio=0.9)
    guard = real_guard(probe_file, poll_s=0.05)
    try:
        guard.start()
        assert guard.state == "paused"  # the first reading is taken before start returns
        probe_file.write(ratio=0.1)
        assert wait_until(lambda: guard.state == "running", 2.0)
    finally:
        guard.stop()


def test_wait_for_change_wakes_on_the_transition(probe_file):
    probe_file.write(ratio=0.9)
    guard = real_guard(probe_file, poll_s=0.05)
    woke = []
    try:
        guard.start()
        since = guard.version
        waiter = threading.Thread(target=lambda: woke.append(guard.wait_for_change(5.0, since)))
        waiter.start()
        probe_file.write(ratio=0.1)
        waiter.join(5.0)
        assert woke == [True] and guard.state == "running"
        assert guard.wait_for_change(0.01) is False  # nothing changes: times out
    finally:
        guard.stop()


def test_request_poll_measures_now_despite_a_long_interval(probe_file):
    probe_file.write(ratio=0.9)
    guard = real_guard(probe_file, poll_s=30)
    try:
        guard.start()
        probe_file.write(ratio=0.1)
        guard.request_poll()
        assert wait_until(lambda: guard.state == "running", 2.0)
    finally:
        guard.stop()


def test_poll_thread_survives_a_bug_and_a_failing_listener(probe_file, monkeypatch):
    probe_file.write(ratio=0.5)
    guard = real_guard(probe_file, poll_s=0.02)
    calls = {"n": 0}
    original = guard._monitor.observe

    def flaky(reading):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("bug")
        return original(reading)

    monkeypatch.setattr(guard._monitor, "observe", flaky)
    guard.subscribe(lambda name, payload: 1 / 0)
    try:
        guard.start()
        probe_file.write(ratio=0.9)
        assert wait_until(lambda: guard.state == "paused", 2.0)
        assert calls["n"] >= 3
    finally:
        guard.stop()


def test_start_and_stop_are_idempotent(probe_file):
    probe_file.write(ratio=0.5)
    guard = real_guard(probe_file, poll_s=0.05)
    guard.start()
    first = guard._poller._thread
    guard.start()
    assert guard._poller._thread is first
    guard.stop()
    guard.stop()
    assert not first.is_alive()


def test_without_a_probe_the_guard_is_off_and_starts_no_thread():
    guard = Guard(GuardConfig(probe="off"), None, "probe off (GPU_GUARD_PROBE=off)")
    guard.start()
    assert guard.state == "off" and guard._poller._thread is None
    assert guard.status()["probe"]["note"] == "probe off (GPU_GUARD_PROBE=off)"
    assert guard.status()["reading"] is None
