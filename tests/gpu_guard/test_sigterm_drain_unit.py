"""The SIGTERM drain's installation rules, without ComfyUI: another handler is kept, the first
SIGTERM drains, the second ends at once."""
import os
import signal
import threading
import time

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


def test_the_first_sigterm_drains_the_second_takes_the_default_action_and_the_wait_is_bounded(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    guard, ended = Guard(), threading.Event()
    install_sigterm_drain(guard, Queue(), 0.3, end=ended.set)
    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    # a second SIGTERM ends the process at once, whatever the main thread is doing
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    # the queue never empties: the drain ends after drain_on_sigterm_s
    assert not ended.wait(0.1) and ended.wait(5)
    assert guard.drains == ["SIGTERM"]


def test_the_process_ends_as_soon_as_the_queue_is_empty(restore_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    queue, ended = Queue(), threading.Event()
    install_sigterm_drain(Guard(), queue, 60, end=ended.set)
    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    assert not ended.wait(0.3)
    with queue.mutex:
        queue.queue.clear()
    assert ended.wait(5)


def test_the_handler_takes_no_lock_the_interrupted_main_thread_may_hold(restore_sigterm):
    """A Python signal handler runs between two bytecodes of the main thread: here inside a section
    that holds a lock the drain needs (as the guard's, the event log's or ComfyUI's log lock can be).
    A handler that drained there would wait on its own thread for good."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    lock = threading.Lock()

    class LockingGuard(Guard):
        def drain(self, by, reason):
            if not lock.acquire(timeout=2):
                raise AssertionError("the drain waited on a lock held by the thread it interrupted")
            lock.release()
            return super().drain(by, reason)

    guard, ended = LockingGuard(), threading.Event()
    install_sigterm_drain(guard, Queue(), 0.2, end=ended.set)
    with lock:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, on this thread, in the section
        for _ in range(100):  # bytecodes for the handler to run between
            time.sleep(0.001)
    assert ended.wait(5) and guard.drains == ["SIGTERM"]
