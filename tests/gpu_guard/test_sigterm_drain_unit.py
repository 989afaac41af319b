"""The SIGTERM drain's installation rules, without ComfyUI: another handler is kept, the first
SIGTERM drains, the second ends at once."""
import signal
import threading

import pytest

from gpu_guard.comfy.sigterm_drain import install_sigterm_drain


class Guard:
    def __init__(self):
        self.drains = []

    def drain(self, by, reason):
        self.drains.append(by)
        return {"by": by, "reason": reason, "at": 0.0, "left": 1}

    def drain_left(self):
        return 1


class Queue:
    def __init__(self):
        self.mutex = threading.Lock()
        self.queue = [("item",)]  # never drains: the test ends it with the second signal
        self.currently_running = {}


@pytest.fixture
def restore_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_an_existing_handler_is_kept(restore_sigterm):
    def theirs(signum, frame):
        pass

    signal.signal(signal.SIGTERM, theirs)
    with pytest.raises(RuntimeError, match="SIGTERM already has a handler"):
        install_sigterm_drain(Guard(), Queue(), 5)
    assert signal.getsignal(signal.SIGTERM) is theirs


def test_off_the_main_thread_nothing_is_installed(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    errors = []
    thread = threading.Thread(target=lambda: _catch(errors, install_sigterm_drain, Guard(), Queue(), 5))
    thread.start()
    thread.join()
    assert "main thread" in str(errors[0]) and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except RuntimeError as error:
        errors.append(error)


def test_the_first_sigterm_drains_the_second_ends_and_the_wait_is_bounded(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    guard, ended, signalled = Guard(), [], threading.Event()
    install_sigterm_drain(guard, Queue(), 0.3, end=lambda: ended.append(True), signal_self=signalled.set)
    handler = signal.getsignal(signal.SIGTERM)
    handler(signal.SIGTERM, None)
    assert guard.drains == ["SIGTERM"] and ended == []
    # the queue never empties: after drain_on_sigterm_s the process signals itself to end
    assert not signalled.wait(0.1) and signalled.wait(5)
    handler(signal.SIGTERM, None)
    assert ended == [True] and guard.drains == ["SIGTERM"]


def test_the_process_ends_as_soon_as_the_queue_is_empty(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    queue, signalled = Queue(), threading.Event()
    install_sigterm_drain(Guard(), queue, 60, end=lambda: None, signal_self=signalled.set)
    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    assert not signalled.wait(0.3)
    with queue.mutex:
        queue.queue.clear()
    assert signalled.wait(5)
