"""One alert notification as the HTTP request each kind of target expects, and how to read its answer.

- json: `{"type", "timestamp", "data"}` signed as Standard Webhooks specifies: headers `webhook-id`
  (the same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
  `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).
- dingtalk: a robot `markdown` message; with a sign secret the URL gets `timestamp` (ms) and
  `sign` = urlencode(base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>"))). DingTalk answers 200
  with `errcode` 0 on success.
- feishu (Feishu/Lark custom bot): a `post` (rich text) message; with a sign secret the body gets
  `timestamp` (s) and `sign` = base64(HMAC-SHA256(key="<timestamp>\\n<secret>", message="")).
  The bot answers `code` 0 on success.
- slack (incoming webhook): `text` (the fallback) plus Block Kit `blocks`; Slack answers `ok`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote_plus

from .alert_rules import FIRING, Notification
from .event_log import iso_utc
from .webhook_settings import standard_webhooks_key

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict


def _dumps(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _headline(n: Notification, source: str) -> str:
    mark = "FIRING" if n.status == FIRING else "RESOLVED"
    return f"[{mark}] {n.title} ({source})"


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _json(url, secret, n, source, now):
    body = _dumps({"type": f"gpu_guard.alert.{n.status}", "timestamp": iso_utc(n.at),
                   "data": {"rule": n.rule, "status": n.status, "title": n.title, "text": n.text,
                            "source": source, "details": n.details, "at": n.at}})
    timestamp = int(now)
    headers = {**JSON_HEADERS, "webhook-id": n.id, "webhook-timestamp": str(timestamp),
               "webhook-signature": standard_webhooks_signature(secret, n.id, timestamp, body)}
    return Request(url, body, headers)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def _dingtalk(url, secret, n, source, now):
    text = f"### {_headline(n, source)}\n\n{n.text}\n\n> {iso_utc(n.at)}"
    body = _dumps({"msgtype": "markdown", "markdown": {"title": _headline(n, source), "text": text}})
    if secret:
        timestamp_ms = int(now * 1000)
        url += ("&" if "?" in url else "?") + f"timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"
    return Request(url, body, dict(JSON_HEADERS))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _feishu(url, secret, n, source, now):
    payload = {"msg_type": "post", "content": {"post": {"zh_cn": {
        "title": _headline(n, source),
        "content": [[{"tag": "text", "text": n.text}], [{"tag": "text", "text": iso_utc(n.at)}]]}}}}
    if secret:
        timestamp = int(now)
        payload = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **payload}
    return Request(url, _dumps(payload), dict(JSON_HEADERS))


def _slack(url, secret, n, source, now):
    headline = _headline(n, source)
    body = _dumps({"text": f"{headline}: {n.text}", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": n.text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": iso_utc(n.at)}]}]})
    return Request(url, body, dict(JSON_HEADERS))


BUILDERS = {"json": _json, "dingtalk": _dingtalk, "feishu": _feishu, "slack": _slack}


def build(fmt: str, url: str, secret: Optional[str], n: Notification, source: str, now: float) -> Request:
    """The request for one attempt (signatures use the attempt's time `now`)."""
    return BUILDERS[fmt](url, secret, n, source, now)


def answer_problem(fmt: str, status: int, body: bytes) -> Optional[str]:
    """None when the target accepted the message, else what went wrong. Only the status and a chat
    service's numeric error code are kept: the answer's text may echo tokens and ends up in status."""
    if 300 <= status < 400:
        return f"HTTP {status} (a redirect; webhook redirects are not followed - use the final URL)"
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if fmt in ("dingtalk", "feishu"):
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            return f"{fmt} answered {status} with a body that is not JSON"
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0))) if isinstance(answer, dict) else 0
        if code not in (0, None):
            shown = code if isinstance(code, int) and not isinstance(code, bool) else "(not a number)"
            return f"{fmt} refused the message: error code {shown} (see the service's error code list)"
    return None
