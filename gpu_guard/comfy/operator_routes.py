"""Operator routes: liveness, drain, pause and resume (POST ones under the config route's rules).

- `GET live`: 200 while ComfyUI's worker thread takes and finishes prompts (see worker_watch), 503
  when it died or is stuck in one prompt; no token, no config in the answer.
- `POST drain` / `pause` / `resume`: who may send them and in what form is exactly as for
  `POST config` (config_access): the token once GPU_GUARD_TOKEN is set, else a direct loopback
  client, and a body declared `application/json` (`{}` or `{"by": "...", "reason": "..."}`), so a
  web page cannot pause a server on localhost with a form post. `{"cancel": true}` ends a drain.
"""
from __future__ import annotations

import json

from aiohttp import web

from .config_access import bearer_token, content_type_refusal, request_refusal

MAX_TEXT = 200  # "by" and "reason" are recorded in the status and the event log


def _errors(status: int, *messages: str):
    return web.json_response({"errors": list(messages)}, status=status)


class OperatorRoutes:
    def __init__(self, guard, worker_watched=lambda: True):
        self.guard = guard
        self.worker_watched = worker_watched  # False when the queue hook is not attached

    def definitions(self, prefix: str):
        return [
            ("GET", f"{prefix}/live", self.get_live),
            ("GET", f"{prefix}/operator", self.get_operator),
            ("POST", f"{prefix}/drain", self.post_drain),
            ("POST", f"{prefix}/pause", self.post_pause),
            ("POST", f"{prefix}/resume", self.post_resume),
            ("POST", f"{prefix}/unguarded/clear", self.post_clear_unguarded),
        ]

    async def get_live(self, request):
        if not self.worker_watched():
            return web.json_response({"live": True, "reason": "the queue hook is not attached, so the worker "
                                      "is not watched (see the server log)"})
        ok, reason = self.guard.live()
        return web.json_response({"live": bool(ok), "reason": reason}, status=200 if ok else 503)

    async def get_operator(self, request):
        """Whether this client may pause, resume and drain (the web UI shows its button then)."""
        refusal = request_refusal(self.guard, request)
        return web.json_response({"can_change": refusal is None, "why_not": refusal})

    async def _operator_request(self, request):
        """(fields, None) for an allowed request with a valid body, else (None, error response)."""
        refusal = request_refusal(self.guard, request)
        if refusal:
            return None, _errors(403, refusal.replace("changing the VRAM guard's settings",
                                                      "this operator action"))
        refusal = content_type_refusal(request.headers.get("Content-Type"))
        if refusal:
            return None, _errors(415, refusal.replace("the settings", "the request ({} or {\"reason\": \"...\"})"))
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, _errors(400, "the body is not JSON; send {} or {\"by\": \"ops\", \"reason\": \"...\"}")
        if not isinstance(body, dict):
            return None, _errors(400, "the body must be a JSON object: {} or {\"by\": \"ops\", \"reason\": \"...\"}")
        fields = {}
        for name in ("by", "reason"):
            value = body.get(name, "")
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                return None, _errors(400, f"{name} must be text of at most {MAX_TEXT} characters")
            fields[name] = value.strip()
        fields["by"] = fields["by"] or f"{request.remote}" + (" (token)" if bearer_token(request.headers) else "")
        fields["cancel"] = body.get("cancel", False)
        if not isinstance(fields["cancel"], bool):
            return None, _errors(400, "cancel must be true or false")
        return fields, None

    async def post_drain(self, request):
        fields, error = await self._operator_request(request)
        if error is not None:
            return error
        if fields["cancel"]:
            ended = self.guard.cancel_drain(fields["by"])
            return web.json_response({"draining": False, "ended": ended})
        return web.json_response({"draining": True, **self.guard.drain(fields["by"], fields["reason"])})

    async def post_pause(self, request):
        fields, error = await self._operator_request(request)
        if error is not None:
            return error
        return web.json_response({"paused": True, **self.guard.operator_pause(fields["by"], fields["reason"])})

    async def post_resume(self, request):
        fields, error = await self._operator_request(request)
        if error is not None:
            return error
        ended = self.guard.operator_resume(fields["by"])
        return web.json_response({"paused": False, "ended": ended, "state": self.guard.state})

    async def post_clear_unguarded(self, request):
        """An operator has seen the "unguarded" state (a queue hook failure) and clears it."""
        fields, error = await self._operator_request(request)
        if error is not None:
            return error
        return web.json_response({"unguarded": False, "ended": self.guard.clear_unguarded(fields["by"])})
