"""A load balancer's preference signal: a tiny TCP agent in HAProxy's agent-check protocol.

/gpu_guard/ready stays 200 while a paused server can still hold prompts, so a pause never empties
a pool. The agent tells a load balancer which servers to prefer: HAProxy connects to it every
`agent-inter`, reads one line and sets the server's weight from it.

- "up 100%": running, prompts start at once;
- "up 1%": paused but holding, so it gets about one prompt in a hundred next to a running one, and
  an equal share when every server is paused;
- "up 0%": not ready (draining, hold queue full, failing closed): no new prompts; the HTTP check
  takes it out too.
Only weights and "up" (which defers to the health check): an agent never touches the server's
administrative state, so an operator's `disable server` (MAINT) or `drain` stays in force.
"""
from __future__ import annotations

import logging
import socketserver
import threading

from .monitor import PAUSED

_log = logging.getLogger("gpu_guard")

# A paused server keeps a weight above 0: with every server paused they share the load evenly
# instead of HAProxy having no server at all (the outage this signal exists to avoid).
PAUSED_WEIGHT = "up 1%"
RUNNING_WEIGHT = "up 100%"
NOT_READY = "up 0%"
ANSWER_TIMEOUT_S = 2.0  # a client that connects and stalls does not hold a handler thread for long


def agent_answer(guard) -> str:
    """The agent's line for the guard's state now."""
    ok, _ = guard.ready()
    if not ok:
        return NOT_READY
    return PAUSED_WEIGHT if guard.state == PAUSED else RUNNING_WEIGHT


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(ANSWER_TIMEOUT_S)
        try:
            answer = agent_answer(self.server.guard)
        except Exception:  # noqa: BLE001 - a fault in the guard must not take the server out
            _log.exception("VRAM guard: load-balancer agent could not read the guard; answering %s", RUNNING_WEIGHT)
            answer = RUNNING_WEIGHT
        try:
            self.request.sendall(answer.encode("ascii") + b"\n")
        except OSError:
            pass  # the balancer went away before the answer


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class LoadBalancerAgent:
    """Serves agent_answer on (host, port) from a daemon thread; `port` 0 picks a free one."""

    def __init__(self, guard, host: str, port: int):
        self._server = _Server((host, port), _Handler)
        self._server.guard = guard
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="gpu_guard-lb-agent",
                                        daemon=True)

    def start(self) -> "LoadBalancerAgent":
        self._thread.start()
        _log.info("VRAM guard: load-balancer agent (HAProxy agent-check) on %s:%d", *self.address)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
