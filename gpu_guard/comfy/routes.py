"""HTTP routes under /gpu_guard/ (ComfyUI adds the /api/ twin of every route it is given).

POST config changes the guard: who may send it, and in what form, is in config_access. The update
writes the config file, so it runs in the loop's executor, never on the event loop itself.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from ..ops.event_log import parse_events_query
from .client_privacy import masked
from .config_access import content_type_refusal, request_refusal
from .operator_routes import OperatorRoutes

_log = logging.getLogger("gpu_guard.comfy")

ROUTE_PREFIX = "/gpu_guard"


def _errors(status: int, *messages: str):
    return web.json_response({"errors": list(messages)}, status=status)


class GuardRoutes:
    """The handlers; `extra_status()` adds the adapter's own counters to the status object and
    `extra_metrics()` its own Prometheus lines (bytes) to the metrics."""

    def __init__(self, guard, extra_status=None, extra_metrics=None, ops=None, worker_watched=lambda: True,
                 neighbours=lambda: None):
        self.guard = guard
        self.neighbours = neighbours  # () -> the NeighbourWatch, or None (no GPU shared with others)
        self.operator = OperatorRoutes(guard, worker_watched)  # live, drain, pause, resume
        self.extra_status = extra_status
        self.extra_metrics = extra_metrics
        self.ops = ops  # gpu_guard.ops.OpsService: event log, day counters, alerts

    def definitions(self):
        """(method, path, handler) for every route, without the /api prefix."""
        return [
            ("GET", f"{ROUTE_PREFIX}/status", self.get_status),
            ("GET", f"{ROUTE_PREFIX}/config", self.get_config),
            ("POST", f"{ROUTE_PREFIX}/config", self.post_config),
            ("GET", f"{ROUTE_PREFIX}/metrics", self.get_metrics),
            ("GET", f"{ROUTE_PREFIX}/ready", self.get_ready),
            ("GET", f"{ROUTE_PREFIX}/events", self.get_events),
            *self.operator.definitions(ROUTE_PREFIX),
        ]

    async def get_status(self, request):
        status = self.guard.status()
        operator = request_refusal(self.guard, request) is None
        if not operator:  # only its own client id
            status = masked(status, keep=request.query.get("client_id"))
        if self.extra_status is not None:
            status["adapter"] = self.extra_status()
        if self.ops is not None:
            status.update(self.ops.status())
        watch = self.neighbours()
        status["neighbours"] = watch.status(identities=operator) if watch is not None else None
        return web.json_response(status)

    async def get_config(self, request):
        return web.json_response(self.guard.config_view())

    async def post_config(self, request):
        refusal = request_refusal(self.guard, request)
        if refusal:
            return _errors(403, refusal)
        refusal = content_type_refusal(request.headers.get("Content-Type"))
        if refusal:
            return _errors(415, refusal)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors(400, "the body is not JSON; send an object such as {\"pause_at\": 0.9}")
        if not isinstance(body, dict):
            return _errors(400, "the body must be a JSON object of settings, e.g. {\"pause_at\": 0.9}")
        config, errors = await asyncio.get_running_loop().run_in_executor(None, self.guard.update_config, body)
        if errors:
            return _errors(400, *errors)
        _log.info("VRAM guard: settings changed over HTTP from %s: %s", request.remote, sorted(body))
        return web.json_response(config)

    async def get_metrics(self, request):
        body, content_type = self.guard.metrics_text()
        if self.extra_metrics is not None:
            body += self.extra_metrics()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def get_ready(self, request):
        ok, reason = self.guard.ready()
        return web.json_response({"ready": bool(ok), "reason": reason}, status=200 if ok else 503)

    async def get_events(self, request):
        """A page of the event log: ?since=<seq>&kind=pause,resume&limit=100 (the file is read in the
        executor, never on the event loop)."""
        if self.ops is None:
            return _errors(404, "the event log is not attached (see the server log)")
        try:
            since, kinds, limit = parse_events_query(request.query)
        except ValueError as e:
            return _errors(400, str(e))
        page = await asyncio.get_running_loop().run_in_executor(None, self.ops.events, since, kinds, limit)
        return web.json_response(page)
