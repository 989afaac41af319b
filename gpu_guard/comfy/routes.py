"""HTTP routes under /gpu_guard/ (ComfyUI adds the /api/ twin of every route it is given).

POST config changes the guard, so it is accepted only from a loopback peer or with the token from
GPU_GUARD_TOKEN sent as `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import ipaddress
import json
import logging

from aiohttp import web

_log = logging.getLogger("gpu_guard.comfy")

ROUTE_PREFIX = "/gpu_guard"


def is_loopback(remote) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class GuardRoutes:
    """The handlers; `extra_status()` adds the adapter's own counters to the status object and
    `extra_metrics()` its own Prometheus lines (bytes) to the metrics."""

    def __init__(self, guard, extra_status=None, extra_metrics=None):
        self.guard = guard
        self.extra_status = extra_status
        self.extra_metrics = extra_metrics

    def definitions(self):
        """(method, path, handler) for every route, without the /api prefix."""
        return [
            ("GET", f"{ROUTE_PREFIX}/status", self.get_status),
            ("GET", f"{ROUTE_PREFIX}/config", self.get_config),
            ("POST", f"{ROUTE_PREFIX}/config", self.post_config),
            ("GET", f"{ROUTE_PREFIX}/metrics", self.get_metrics),
            ("GET", f"{ROUTE_PREFIX}/ready", self.get_ready),
        ]

    async def get_status(self, request):
        status = self.guard.status()
        if self.extra_status is not None:
            status["adapter"] = self.extra_status()
        return web.json_response(status)

    async def get_config(self, request):
        return web.json_response(self.guard.config_view())

    async def post_config(self, request):
        if not (is_loopback(request.remote) or self.guard.check_token(bearer_token(request))):
            return web.json_response(
                {"errors": ["changing the VRAM guard's settings needs a loopback client or the token from "
                            "GPU_GUARD_TOKEN as 'Authorization: Bearer <token>'"]}, status=403)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"errors": ["the body is not JSON; send an object such as "
                                                 "{\"pause_at\": 0.9}"]}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"errors": ["the body must be a JSON object of settings, e.g. "
                                                 "{\"pause_at\": 0.9}"]}, status=400)
        config, errors = self.guard.update_config(body)
        if errors:
            return web.json_response({"errors": list(errors)}, status=400)
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
