"""Wires the neighbours registry (gpu_guard.neighbours) to one guard and its ComfyUI queue.

What this ComfyUI publishes comes from the guard's last reading (idle models, torch cache) and the
queue (busy = a prompt runs). A release request is honoured through the queue hook's
`request_idle_unload`: ComfyUI's worker, waiting in the guarded `get` with nothing queued and nothing
running, sets `unload_models` (what POST /free does; the execution cache stays) and unloads.
"""
from __future__ import annotations

import logging
import socket
from typing import Optional

from ..neighbours import Mine, NeighbourWatch, Pressure, Registry, default_base_dir, device_key_of

__all__ = ["device_key_of", "make_neighbours", "metrics_text", "release_when_idle"]

_log = logging.getLogger("gpu_guard.comfy")


def server_name(server) -> str:
    port = getattr(server, "port", None)  # known once ComfyUI listens
    return socket.gethostname() + (f":{port}" if port else "")


def release_when_idle(hook, queue, loaded_models) -> bool:
    """Have the worker release ComfyUI's idle models if it is idle with nothing queued and a model is
    loaded; False (nothing asked) otherwise, so the request waits for an idle moment."""
    with queue.mutex:
        if queue.queue or queue.currently_running:
            return False
    if not any(True for _ in loaded_models()):
        return False
    hook.request_idle_unload()  # done by the worker in get, only with nothing queued or running
    return True


def mine_of(guard, queue) -> Mine:
    """The loaded models are what unload_models releases; aimdo's pages outside them are not published
    (reading.other_reclaimable "dynamic_vram", see gpu_guard.dynamic_vram)."""
    reading = guard.reading
    return Mine(idle_models_bytes=reading.idle_models_bytes if reading else 0,
                torch_cache_bytes=reading.reclaimable_bytes if reading else 0,
                busy=bool(queue.currently_running), pending=len(queue.queue))


def pressure_of(guard) -> Optional[Pressure]:
    """The asker's view: only while paused by memory, with prompts held and a good reading."""
    if guard.state != "paused":
        return None
    status = guard.status()
    reading = guard.reading
    if status["operator_pause"] or status["probe"]["failing"] or not status["held"] or reading is None:
        return None
    return Pressure(True, reading.pressure_bytes, reading.total_bytes, guard.config.resume_at)


def make_neighbours(guard, server, hook, loaded_models) -> NeighbourWatch:
    """The NeighbourWatch of this guard; its probe names a GPU (device_key_of is not None)."""
    key = device_key_of(guard.probe)
    queue = hook.queue
    registry = Registry(guard.config.neighbours_dir or default_base_dir(), key, name=server_name(server))

    def mine() -> Mine:
        registry.name = server_name(server)
        return mine_of(guard, queue)

    return NeighbourWatch(registry, mine, lambda: pressure_of(guard),
                          lambda: release_when_idle(hook, queue, loaded_models),
                          enabled=lambda: guard.config.enabled and guard.config.neighbours)


def metrics_text(watch: Optional[NeighbourWatch]) -> bytes:
    if watch is None:
        return b""
    status = watch.status()
    return (
        "# HELP gpu_guard_neighbours Guards of other ComfyUI servers on the same GPU\n"
        "# TYPE gpu_guard_neighbours gauge\n"
        f"gpu_guard_neighbours {len(status['neighbours'])}\n"
        "# HELP gpu_guard_neighbour_idle_bytes Idle-model and torch-cache bytes the neighbours could release\n"
        "# TYPE gpu_guard_neighbour_idle_bytes gauge\n"
        f"gpu_guard_neighbour_idle_bytes {sum(n['idle_models_bytes'] + n['torch_cache_bytes'] for n in status['neighbours'])}\n"
        "# HELP gpu_guard_neighbour_asks_total Release requests this guard sent to neighbours\n"
        "# TYPE gpu_guard_neighbour_asks_total counter\n"
        f"gpu_guard_neighbour_asks_total {status['asks_sent']}\n"
        "# HELP gpu_guard_neighbour_releases_total Idle-model releases this guard made for neighbours\n"
        "# TYPE gpu_guard_neighbour_releases_total counter\n"
        f"gpu_guard_neighbour_releases_total {status['releases_done']}\n"
    ).encode()
