"""Wires one Guard into a running ComfyUI: queue hook, /prompt admission, routes, websocket events.

Each part is attached on its own; a part that fails is logged and skipped, the others still work.
"""
from __future__ import annotations

import logging

from .. import estimators
from .admission import PromptAdmission
from .events import failed_prompt_notifier, forward_guard_events
from .operations import make_ops, start_ops
from .persistence import QueuePersistence
from .priority_lanes import on_prompt_handler
from .queue_hook import QueueHook
from .routes import GuardRoutes
from .sigterm_drain import install_sigterm_drain

_log = logging.getLogger("gpu_guard.comfy")


def comfy_loaded_models():
    """ComfyUI's own loaded models (empty when its model management cannot be imported)."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return []
    return model_management.current_loaded_models


def comfy_compute_device():
    """The device ComfyUI executes on (its models' load device), or None."""
    try:
        import comfy.model_management as model_management
        return model_management.get_torch_device()
    except Exception:  # noqa: BLE001 - unusual builds: no device, no idle models counted
        return None


def idle_models_bytes(loaded_models, device) -> int:
    """Bytes held on `device` by ComfyUI's loaded models (LoadedModel.model_loaded_memory()). The guard
    asks while the worker is idle between prompts, so none of them is in use and ComfyUI would evict
    any of them for the next prompt (`currently_used` stays set after a prompt, so it is not read)."""
    if device is None:
        return 0
    wanted, total = str(device), 0
    for loaded in list(loaded_models):  # a copy: the worker may load or unload meanwhile
        if str(getattr(loaded, "device", None)) != wanted or getattr(loaded, "model", None) is None:
            continue
        total += int(loaded.model_loaded_memory())
    return total


def comfy_node_class(class_type):
    """ComfyUI's node class for a class_type (V1 and V3 nodes both land in NODE_CLASS_MAPPINGS), or
    None outside ComfyUI (no top-level `nodes` module with the mappings)."""
    try:
        import nodes as comfy_nodes  # ComfyUI's top-level nodes module

        return comfy_nodes.NODE_CLASS_MAPPINGS.get(class_type)
    except Exception:  # noqa: BLE001 - not ComfyUI's module: no class, the table still answers
        return None


class ComfyAdapter:
    def __init__(self, guard, server, loaded_models=comfy_loaded_models, device=comfy_compute_device,
                 node_class=comfy_node_class):
        self.guard = guard
        self.server = server
        self.queue = server.prompt_queue
        compute_device = device()
        guard.set_idle_models_source(lambda: idle_models_bytes(loaded_models(), compute_device))
        estimators.set_class_lookup(node_class)
        self.hook = QueueHook(guard, self.queue, loaded_models, on_failed=failed_prompt_notifier(server))
        self.persistence = QueuePersistence(guard, server, self.queue, self.hook.original_get,
                                            on_failed=failed_prompt_notifier(server))
        self.admission = PromptAdmission(guard, self.queue, committed=self.persistence.committed)
        self.ops = make_ops(guard, getattr(server, "port", None))
        self.persistence.on_event = self.ops.handle
        self.routes = GuardRoutes(guard, extra_status=self.stats, extra_metrics=self.metrics_text, ops=self.ops,
                                  worker_watched=lambda: "queue hook" in self.attached)
        self.attached = []

    def stats(self) -> dict:
        return {**self.hook.stats(), "rejected_prompts": self.admission.rejected,
                "attached": list(self.attached), "journal": self.persistence.status()}

    def metrics_text(self) -> bytes:
        """The adapter's own counter in Prometheus text format (the core's registry has the rest)."""
        return (
            "# HELP gpu_guard_hook_errors_total Exceptions inside the queue hook; ComfyUI's own get ran instead\n"
            "# TYPE gpu_guard_hook_errors_total counter\n"
            f"gpu_guard_hook_errors_total {self.hook.stats()['hook_errors']}\n"
        ).encode() + self.ops.metrics_text() + self.persistence.metrics_text()

    def attach(self, routes_frozen_into_app: bool) -> None:
        """`routes_frozen_into_app`: ComfyUI already copied its RouteTableDef into the app (late,
        lazy install), so routes go straight to the app's router, /api twins included."""
        self._step("journal", lambda: self.persistence.open(self.hook))  # before the hook sees a change
        self._step("queue hook", self.hook.install)
        self._step("prompt admission", lambda: self.server.app.middlewares.append(self.admission.middleware))
        self._step("priority classes", lambda: self.server.add_on_prompt_handler(on_prompt_handler(self.guard)))
        self._step("routes", lambda: self._add_routes(routes_frozen_into_app))
        self._step("websocket events", lambda: forward_guard_events(self.guard, self.server))
        self._step("operations", lambda: start_ops(self.guard, self.ops))
        if self.guard.config.drain_on_sigterm_s > 0:
            self._step("sigterm drain", lambda: install_sigterm_drain(self.guard, self.queue,
                                                                      self.guard.config.drain_on_sigterm_s))

    def _step(self, name, action):
        try:
            action()
            self.attached.append(name)
        except Exception:  # noqa: BLE001 - one broken part must not stop the others
            _log.exception("VRAM guard: could not attach the %s; the rest of the guard works", name)

    def _add_routes(self, straight_to_app):
        for method, path, handler in self.routes.definitions():
            if straight_to_app:
                self.server.app.router.add_route(method, path, handler)
                self.server.app.router.add_route(method, "/api" + path, handler)
            else:
                # ComfyUI's add_routes() registers these and an /api twin of each
                self.server.routes.route(method, path)(handler)
