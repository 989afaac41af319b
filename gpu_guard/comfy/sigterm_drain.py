"""SIGTERM starts a drain (opt-in: drain_on_sigterm_s > 0), where ComfyUI's own handler permits.

ComfyUI 0.3.75 installs no SIGTERM handler (main.py only catches KeyboardInterrupt), so SIGTERM ends
the process at once and the queue is lost. With drain_on_sigterm_s set, the first SIGTERM makes the
guard drain (new prompts get 429, readiness 503) and the process ends with the default SIGTERM once
nothing is queued or running, or after drain_on_sigterm_s; a second SIGTERM ends it at once. When
another handler is installed already (a newer ComfyUI, another pack), it is left alone.

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

CHECK_S = 0.1  # how often the exit waits look at the queue


def queue_empty(queue) -> bool:
    with queue.mutex:
        return not queue.queue and not queue.currently_running


def _end_now() -> None:
    if os.getpid() == 1:
        # The kernel drops a default-action signal sent to a PID namespace's init (a container's PID 1
        # without tini), so the SIGTERM below would do nothing: exit with the status a shell gives it.
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _signal_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the handler then runs end() on the main thread


def install_sigterm_drain(guard, queue, max_s: float, end=_end_now, signal_self=_signal_self) -> None:
    """Install the handler; raises (the adapter logs it, the rest of the guard works) off the main
    thread or when SIGTERM has a handler already, which is kept."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the guard was installed off the main thread, where no signal handler can be set; "
                           "SIGTERM stops ComfyUI at once")
    current = signal.getsignal(signal.SIGTERM)
    if current not in (signal.SIG_DFL, None):
        raise RuntimeError(f"SIGTERM already has a handler ({current!r}); it is kept, and SIGTERM does not drain")
    terminating = threading.Event()

    def exit_when_drained():
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and not queue_empty(queue):
            time.sleep(CHECK_S)
        # the queue itself says whether it drained: the guard's count follows the worker a moment later
        drained = queue_empty(queue)
        _log.warning("VRAM guard: %s; ending the process", "drained" if drained else
                     f"drain_on_sigterm_s={max_s:g} passed with {guard.drain_left()} prompts left")
        signal_self()

    def on_sigterm(signum, frame):
        if terminating.is_set():
            end()
            return
        terminating.set()
        record = guard.drain("SIGTERM", f"the process ends once drained or after {max_s:g} s")
        _log.warning("VRAM guard: SIGTERM; draining %d prompts before the process ends (a second SIGTERM "
                     "ends it now)", record["left"])
        threading.Thread(target=exit_when_drained, name="gpu-guard-sigterm-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    _log.info("VRAM guard: SIGTERM drains for at most %g s before ComfyUI ends", max_s)
