"""Who may change the guard's settings over HTTP (POST /gpu_guard/config), and in what form.

- With GPU_GUARD_TOKEN set, every client needs `Authorization: Bearer <token>`, loopback included:
  behind a reverse proxy on the same host every client is loopback.
- Without a token only a loopback peer may write, and only when the request carries no proxy header
  (Forwarded, X-Forwarded-*, X-Real-IP): such a request was relayed for someone else.
- The body must be declared `application/json`. A web page can send a `text/plain` POST to
  localhost without a CORS preflight; it cannot send `application/json` without one.
"""
from __future__ import annotations

import ipaddress
from typing import Mapping, Optional

JSON_TYPE = "application/json"
_PROXY_HEADERS = ("forwarded", "x-real-ip")
_PROXY_PREFIX = "x-forwarded-"
_TOKEN_HOW = "send the token from GPU_GUARD_TOKEN as 'Authorization: Bearer <token>'"


def is_loopback(remote) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer_token(headers: Mapping[str, str]) -> Optional[str]:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def proxy_headers(headers: Mapping[str, str]) -> list:
    """Names (as sent) of the headers that say a proxy relayed the request."""
    return [name for name in headers
            if name.lower() in _PROXY_HEADERS or name.lower().startswith(_PROXY_PREFIX)]


def write_refusal(remote, headers: Mapping[str, str], token_set: bool, token_valid: bool) -> Optional[str]:
    """None when the client may change the settings, else why not (for a 403)."""
    if token_set:
        if token_valid:
            return None
        return f"changing the VRAM guard's settings needs the token: {_TOKEN_HOW} (GPU_GUARD_TOKEN is set, " \
               "so it is required from every client, loopback included)"
    if not is_loopback(remote):
        return "changing the VRAM guard's settings needs a loopback client, or set GPU_GUARD_TOKEN on the " \
               f"server and {_TOKEN_HOW}"
    relayed = proxy_headers(headers)
    if relayed:
        return f"the request came through a proxy ({', '.join(relayed)}), so the loopback exemption does " \
               f"not apply; set GPU_GUARD_TOKEN on the server and {_TOKEN_HOW}"
    return None


def request_refusal(guard, request) -> Optional[str]:
    """write_refusal for an aiohttp request to one of `guard`'s write routes."""
    return write_refusal(request.remote, request.headers, guard.token_set,
                         guard.check_token(bearer_token(request.headers)))


def content_type_refusal(content_type: Optional[str]) -> Optional[str]:
    """None for a body declared as JSON, else why not (for a 415)."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared == JSON_TYPE:
        return None
    got = f"got '{declared}'" if declared else "no Content-Type was sent"
    return f"send the settings as a JSON object with 'Content-Type: {JSON_TYPE}' ({got})"
