"""A settings change writes the config file outside the guard's lock: a slow disk must not stall the
worker's decisions, the poll thread or a status read. Concurrent changes are serialised, so none is lost."""
import json
import threading

import pytest

from gpu_guard import config as config_module
from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import FileProbe


class SlowPersist:
    """Wraps the real persist: signals that a write started, then waits for `release` before writing."""

    def __init__(self, monkeypatch, hold_s=5.0):
        self.real = config_module.persist
        self.started = threading.Event()
        self.release = threading.Event()
        self.hold_s = hold_s
        self.calls = []
        monkeypatch.setattr(config_module, "persist", self)

    def __call__(self, path, partial):
        self.calls.append(dict(partial))
        self.started.set()
        self.release.wait(self.hold_s)
        self.real(path, partial)


@pytest.fixture
def guard(tmp_path, probe_file):
    probe_file.write(ratio=0.1)
    return Guard(GuardConfig(probe="file:" + probe_file.path), FileProbe(probe_file.path),
                 config_file=str(tmp_path / "gpu_guard.json"))


def in_thread(function, *args):
    results = []
    thread = threading.Thread(target=lambda: results.append(function(*args)), daemon=True)
    thread.start()
    return thread, results


def test_the_guard_answers_while_the_config_file_is_written(guard, monkeypatch):
    slow = SlowPersist(monkeypatch)
    writer, written = in_thread(guard.update_config, {"pause_at": 0.9})
    assert slow.started.wait(5)
    # the write is in progress: readers and the poll must not wait for it
    reader, statuses = in_thread(guard.status)
    reader.join(1.0)
    poller, _ = in_thread(guard.poll_once)
    poller.join(1.0)
    assert not reader.is_alive() and not poller.is_alive(), "the guard's lock is held during the file write"
    assert statuses[0]["thresholds"]["pause_at"] == 0.85  # applied only once the file is written
    slow.release.set()
    writer.join(5)
    (view, errors), = written
    assert errors == [] and view["pause_at"] == 0.9 and guard.config.pause_at == 0.9
    assert json.load(open(guard.config_file)) == {"pause_at": 0.9}


def test_concurrent_changes_are_serialised_and_none_is_lost(guard, monkeypatch):
    slow = SlowPersist(monkeypatch)
    first, first_result = in_thread(guard.update_config, {"pause_at": 0.9})
    assert slow.started.wait(5)
    # validated against pause_at 0.85 alone this is fine; it must be checked after the first change
    second, second_result = in_thread(guard.update_config, {"resume_at": 0.8})
    third, third_result = in_thread(guard.update_config, {"max_held": 7})
    second.join(0.3)
    assert second.is_alive(), "a second change must wait for the first one's write"
    slow.release.set()
    for thread in (first, second, third):
        thread.join(5)
    assert [r[0][1] for r in (first_result, second_result, third_result)] == [[], [], []]
    assert (guard.config.pause_at, guard.config.resume_at, guard.config.max_held) == (0.9, 0.8, 7)
    assert json.load(open(guard.config_file)) == {"pause_at": 0.9, "resume_at": 0.8, "max_held": 7}


def test_a_change_is_validated_against_the_one_before_it(guard, monkeypatch):
    slow = SlowPersist(monkeypatch)
    first, _ = in_thread(guard.update_config, {"pause_at": 0.7, "resume_at": 0.6})
    assert slow.started.wait(5)
    second, second_result = in_thread(guard.update_config, {"resume_at": 0.72})  # >= the new pause_at
    slow.release.set()
    first.join(5)
    second.join(5)
    (_view, errors), = second_result
    assert errors and "resume_at (0.72) must be below pause_at (0.7)" in errors[0]
    assert (guard.config.pause_at, guard.config.resume_at) == (0.7, 0.6)
    assert len(slow.calls) == 1  # the refused change never reached the file


def test_a_failed_write_changes_nothing(guard, monkeypatch):
    def broken(path, partial):
        raise OSError("disk full")

    monkeypatch.setattr(config_module, "persist", broken)
    view, errors = guard.update_config({"pause_at": 0.9})
    assert errors and "could not save the settings" in errors[0] and "disk full" in errors[0]
    assert view["pause_at"] == 0.85 and guard.config.pause_at == 0.85
