"""Wires one Guard into a running ComfyUI: queue hook, /prompt admission, routes, websocket events.

Each part is attached on its own; a part that fails is logged and skipped, the others still work.
"""
from __future__ import annotations

import logging
import os

from .. import estimators, learned_peaks
from ..peak_meters import make_peak_meter
from .admission import PromptAdmission
from .comfy_memory import comfy_loaded_models, measured_device
from .compute_device import comfy_compute_device
from .events import failed_prompt_notifier, forward_guard_events
from . import neighbour_glue
from .dynamic_vram import IdleModels
from .oom_hook import OomHook, comfy_oom_types
from .operations import make_ops, start_ops
from .persistence import QueuePersistence
from .priority_lanes import on_prompt_handler
from .queue_hook import QueueHook
from .routes import GuardRoutes
from .sim_wiring import attach_sim_device
from .sigterm_drain import install_sigterm_drain

_log = logging.getLogger("gpu_guard.comfy")


def comfy_node_class(class_type):
    """ComfyUI's node class for a class_type (V1 and V3 nodes both land in NODE_CLASS_MAPPINGS), or
    None outside ComfyUI (no top-level `nodes` module with the mappings)."""
    try:
        import nodes as comfy_nodes  # ComfyUI's top-level nodes module

        return comfy_nodes.NODE_CLASS_MAPPINGS.get(class_type)
    except Exception:  # noqa: BLE001 - not ComfyUI's module: no class, the table still answers
        return None


def _learned_table(guard):
    """The learned-peak table, persisted next to the config file and the journal (in memory only when
    ComfyUI's user directory is unknown); installed for the fast lane and the rescue."""
    folder = os.path.dirname(os.path.abspath(guard.config_file)) if guard.config_file else None
    path = os.path.join(folder, learned_peaks.FILE_NAME) if folder else None
    table = learned_peaks.LearnedPeaks(path, guard.config.learned_peaks_max).load()
    learned_peaks.install(table)
    return table


def _peak_meter(probe, compute):
    try:
        return make_peak_meter(probe, compute.type, compute.index)
    except Exception:  # noqa: BLE001 - without a meter nothing is learned; the rescue still works
        _log.exception("VRAM guard: cannot measure prompt peaks on %s; nothing is learned", compute)
        return None


class ComfyAdapter:
    def __init__(self, guard, server, loaded_models=comfy_loaded_models, device=comfy_compute_device,
                 node_class=comfy_node_class):
        self.guard = guard
        self.server = server
        self.queue = server.prompt_queue
        compute_device = device()
        models_on = measured_device(guard.probe, compute_device)
        self.idle_models = IdleModels(loaded_models, models_on, compute_device.index)
        self.idle_models.attach(guard)
        estimators.set_class_lookup(node_class)
        self.hook = QueueHook(guard, self.queue, loaded_models, on_failed=failed_prompt_notifier(server))
        self.hook.on_worker_idle = self.idle_models.measure_on_worker  # aimdo is read on the worker only
        if getattr(guard.probe, "follows_comfy", False):
            attach_sim_device(guard.probe, self.hook, loaded_models, models_on)
        self.oom = OomHook(guard, server, self.queue, self.hook, _learned_table(guard),
                           _peak_meter(guard.probe, compute_device), comfy_oom_types())
        self.persistence = QueuePersistence(guard, server, self.queue, self.hook.original_get,
                                            on_failed=failed_prompt_notifier(server))
        self.admission = PromptAdmission(guard, self.queue)
        self.ops = make_ops(guard, getattr(server, "port", None))
        self.neighbours = None  # set by attach when the probe names a GPU others may share
        self._loaded_models = loaded_models
        self.routes = GuardRoutes(guard, extra_status=self.stats, extra_metrics=self.metrics_text, ops=self.ops,
                                  worker_watched=lambda: "queue hook" in self.attached,
                                  neighbours=lambda: self.neighbours)
        self.attached = []

    def stats(self) -> dict:
        return {**self.hook.stats(), "rejected_prompts": self.admission.rejected,
                "attached": list(self.attached), "journal": self.persistence.status(),
                "dynamic_vram": self.idle_models.status(), "oom_rescue": self.oom.status()}

    def metrics_text(self) -> bytes:
        """The adapter's own counter in Prometheus text format (the core's registry has the rest)."""
        return (
            "# HELP gpu_guard_hook_errors_total Exceptions inside the queue hook; ComfyUI's own get ran instead\n"
            "# TYPE gpu_guard_hook_errors_total counter\n"
            f"gpu_guard_hook_errors_total {self.hook.stats()['hook_errors']}\n"
        ).encode() + self.ops.metrics_text() + self.persistence.metrics_text() + \
            neighbour_glue.metrics_text(self.neighbours)

    def attach(self, routes_frozen_into_app: bool) -> None:
        """`routes_frozen_into_app`: ComfyUI already copied its RouteTableDef into the app (late,
        lazy install), so routes go straight to the app's router, /api twins included."""
        self._step("journal", lambda: self.persistence.open(self.hook))  # before the hook sees a change
        self._step("queue hook", self.hook.install)
        self._step("oom rescue", self.oom.install)
        self._step("prompt admission", lambda: self.server.app.middlewares.append(self.admission.middleware))
        self._step("priority classes", lambda: self.server.add_on_prompt_handler(on_prompt_handler(self.guard)))
        self._step("routes", lambda: self._add_routes(routes_frozen_into_app))
        self._step("websocket events", lambda: forward_guard_events(self.guard, self.server))
        self._step("operations", lambda: start_ops(self.guard, self.ops))
        if neighbour_glue.device_key_of(self.guard.probe) is not None:  # a GPU other servers may share
            self._step("neighbours", self._start_neighbours)
        if self.guard.config.drain_on_sigterm_s > 0:
            self._step("sigterm drain", lambda: install_sigterm_drain(self.guard, self.queue,
                                                                      self.guard.config.drain_on_sigterm_s))

    def _start_neighbours(self):
        self.neighbours = neighbour_glue.make_neighbours(self.guard, self.server, self.hook, self._loaded_models)
        self.neighbours.start()

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
