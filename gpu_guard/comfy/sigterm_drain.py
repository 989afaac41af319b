"""SIGTERM starts a drain (opt-in: drain_on_sigterm_s > 0), where ComfyUI's own handler permits.

ComfyUI 0.3.75 installs no SIGTERM handler (main.py only catches KeyboardInterrupt), so SIGTERM ends
the process at once and the queue is lost. With drain_on_sigterm_s set, the first SIGTERM makes the
guard drain (new prompts get 429, readiness 503) and the process ends with the default SIGTERM once
nothing is queued or running, or after drain_on_sigterm_s; a second SIGTERM ends it at once. When
another handler is installed already (a newer ComfyUI, another pack), it is left alone.

The handler itself only restores the default action and wakes the drain thread through a pipe: a
Python signal handler runs between two bytecodes of the main thread, which may hold a lock the drain
needs (the guard's, the event log's, ComfyUI's log interceptor's), so taking any lock there can hang
the process for good. Everything else runs on the drain thread, and the end is a SIGTERM with the
default action, which needs nothing from the main thread.

Signal handlers can only be set on the main thread: ComfyUI imports custom nodes there. As a PID
namespace's init (a container's PID 1 without tini) the process exits with status 143 instead, since the
kernel ignores a default-action SIGTERM there; the image runs tini as PID 1 anyway (deploy/container).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

_log = logging.getLogger("gpu_guard.comfy")

CHECK_S = 0.1  # how often the drain thread looks at the queue
EXIT_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


def queue_empty(queue) -> bool:
    with queue.mutex:
        return not queue.queue and not queue.currently_running


def _exit_as_init(signum=None, frame=None) -> None:
    # The kernel drops a default-action signal sent to a PID namespace's init (a container's PID 1
    # without tini): exit with the status a shell gives a SIGTERM'd process.
    logging.shutdown()
    os._exit(EXIT_STATUS)


def _end_now() -> None:
    """End the process as SIGTERM's default action does (the handler has restored it); from any thread."""
    if os.getpid() == 1:
        _exit_as_init()
    os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_drain(guard, queue, max_s: float, end=_end_now) -> threading.Thread:
    """Install the handler and start the drain thread (it sleeps until SIGTERM); returns the thread.
    Raises (the adapter logs it, the rest of the guard works) off the main thread or when SIGTERM has a
    handler already, which is kept. `end` is called on the drain thread when the drain is over."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the guard was installed off the main thread, where no signal handler can be set; "
                           "SIGTERM stops ComfyUI at once")
    current = signal.getsignal(signal.SIGTERM)
    if current not in (signal.SIG_DFL, None):
        raise RuntimeError(f"SIGTERM already has a handler ({current!r}); it is kept, and SIGTERM does not drain")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)

    def on_sigterm(signum, frame):
        # no locks here (see the module's docstring): the next SIGTERM takes the default action (PID 1:
        # exits), and the drain thread does the rest
        signal.signal(signal.SIGTERM, _exit_as_init if os.getpid() == 1 else signal.SIG_DFL)
        try:
            os.write(wake_write, b"\0")
        except OSError:
            pass  # the pipe is full: the drain thread has been woken already

    def drain_then_end():
        os.read(wake_read, 1)  # sleeps until the first SIGTERM
        record = guard.drain("SIGTERM", f"the process ends once drained or after {max_s:g} s")
        _log.warning("VRAM guard: SIGTERM; draining %d prompts before the process ends (a second SIGTERM "
                     "ends it now)", record["left"])
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and not queue_empty(queue):
            time.sleep(CHECK_S)
        # the queue itself says whether it drained: the guard's count follows the worker a moment later
        drained = queue_empty(queue)
        _log.warning("VRAM guard: %s; ending the process", "drained" if drained else
                     f"drain_on_sigterm_s={max_s:g} passed with {guard.drain_left()} prompts left")
        end()

    thread = threading.Thread(target=drain_then_end, name="gpu-guard-sigterm-drain", daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, on_sigterm)
    _log.info("VRAM guard: SIGTERM drains for at most %g s before ComfyUI ends", max_s)
    return thread
