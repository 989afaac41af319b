"""The `webhooks` setting: a list of alert targets, validated as a whole.

Each target is an object:
    {"name": "oncall", "format": "json" | "dingtalk" | "feishu" | "slack",
     "url": "https://..."  or  "url_env": "VAR",          # the URL, or the variable that holds it
     "secret": "..."       or  "secret_env": "VAR",       # signing secret (required for json)
     "rules": ["many_pauses", ...]}                        # optional: only these rules (default all)

Secrets (and URLs, which often carry a token) come from the config file or environment variables;
over HTTP a secret must be named with `secret_env`. The routes show a target without its secret and
with its URL cut to scheme://host.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from .alert_rules import RULE_NAMES

FORMATS = ("json", "dingtalk", "feishu", "slack")
SIGNED_REQUIRED = ("json",)  # Standard Webhooks: the receiver verifies every message
KEYS = ("name", "format", "url", "url_env", "secret", "secret_env", "rules")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALLOWED = ("a JSON list of targets {\"format\": json|dingtalk|feishu|slack, \"url\" or \"url_env\", "
           "\"secret\" or \"secret_env\", \"name\", \"rules\"}")


def check_url(text: Any) -> Optional[str]:
    """None for an http(s) URL with a host, else the problem."""
    if not isinstance(text, str) or not text.strip():
        return f"must be an http:// or https:// URL, got {text!r}"
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got a {parts.scheme or 'scheme-less'} URL"
    return None


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key: a `whsec_` secret is base64 after its prefix (Standard Webhooks); any other
    secret is used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode("utf-8")


def _env_name(where: str, value: Any, environ: Mapping[str, str], errors: list) -> Optional[str]:
    if not isinstance(value, str) or not ENV_RE.match(value):
        errors.append(f"{where} must name an environment variable, got {value!r}")
        return None
    if not environ.get(value):
        errors.append(f"{where}: the environment variable {value} is not set; set it before starting ComfyUI")
        return None
    return value


def _target(index: int, raw: Any, environ: Mapping[str, str], over_http: bool, errors: list) -> Optional[dict]:
    where = f"webhooks[{index}]"
    if not isinstance(raw, Mapping):
        errors.append(f"{where} must be an object with format and url, got {type(raw).__name__}")
        return None
    start = len(errors)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        errors.append(f"{where}.format must be one of {' | '.join(FORMATS)}, got {fmt!r}")
    target = {"name": raw.get("name", f"{fmt}-{index}" if isinstance(fmt, str) else f"target-{index}"),
              "format": fmt}
    if not isinstance(target["name"], str) or not NAME_RE.match(target["name"]):
        errors.append(f"{where}.name must be 1-40 letters, digits, '.', '_' or '-', got {target['name']!r}")
    if ("url" in raw) == ("url_env" in raw):
        errors.append(f"{where} needs exactly one of url or url_env")
    elif "url" in raw:
        problem = check_url(raw["url"])
        if problem:
            errors.append(f"{where}.url {problem}")
        target["url"] = str(raw["url"]).strip()
    else:
        name = _env_name(f"{where}.url_env", raw["url_env"], environ, errors)
        if name:
            problem = check_url(environ[name])
            if problem:
                errors.append(f"{where}.url_env: {name} {problem}")
            target["url_env"] = name
    if "secret" in raw and "secret_env" in raw:
        errors.append(f"{where} takes secret or secret_env, not both")
    elif "secret" in raw:
        if over_http:
            errors.append(f"{where}.secret: secrets are not accepted over HTTP; put the secret in an environment "
                          "variable and name it with secret_env, or write it in gpu_guard.json")
        elif not isinstance(raw["secret"], str) or not raw["secret"]:
            errors.append(f"{where}.secret must be a non-empty string")
        else:
            target["secret"] = raw["secret"]
    elif "secret_env" in raw:
        name = _env_name(f"{where}.secret_env", raw["secret_env"], environ, errors)
        if name:
            target["secret_env"] = name
    elif fmt in SIGNED_REQUIRED:
        errors.append(f"{where}: format {fmt} is signed the Standard Webhooks way and needs a secret: "
                      "set secret_env (or secret in gpu_guard.json)")
    secret = target.get("secret") or environ.get(target.get("secret_env", ""), "")
    if fmt == "json" and secret.startswith("whsec_"):
        try:
            standard_webhooks_key(secret)
        except (binascii.Error, ValueError):
            errors.append(f"{where}: a whsec_ secret must be base64 after the prefix")
    if "rules" in raw:
        rules = raw["rules"]
        if not isinstance(rules, list) or not rules or any(r not in RULE_NAMES for r in rules):
            errors.append(f"{where}.rules must be a non-empty list of {', '.join(RULE_NAMES)}, got {rules!r}")
        else:
            target["rules"] = list(rules)
    return target if len(errors) == start else None


def parse_targets(value: Any, from_text: bool, environ: Optional[Mapping[str, str]] = None,
                  over_http: bool = False) -> tuple:
    """The normalised tuple of targets; raises ValueError naming every problem."""
    environ = os.environ if environ is None else environ
    if from_text:
        try:
            value = json.loads(value)
        except ValueError as e:
            raise ValueError(f"must be {ALLOWED} as JSON text, got text that is not JSON ({e})") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be {ALLOWED}, got {type(value).__name__}")
    errors, targets = [], []
    for index, raw in enumerate(value):
        target = _target(index, raw, environ, over_http, errors)
        if target is not None:
            targets.append(target)
    names = [t["name"] for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"target names must be unique; repeated: {', '.join(duplicates)}")
    if errors:
        raise ValueError("; ".join(errors))
    return tuple(targets)


parse_targets.allowed = ALLOWED


def public_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def shown(targets: Any) -> list:
    """What the routes and logs may show of the targets: no secret, no URL path or query."""
    out = []
    for t in targets or ():
        signed = bool(t.get("signed") or t.get("secret") or t.get("secret_env"))  # idempotent: shown twice is fine
        item = {"name": t.get("name"), "format": t.get("format"), "signed": signed}
        if "url" in t:
            item["url"] = public_url(t["url"])
        if "url_env" in t:
            item["url_env"] = t["url_env"]
        if "secret_env" in t:
            item["secret_env"] = t["secret_env"]
        if "rules" in t:
            item["rules"] = list(t["rules"])
        out.append(item)
    return out


def resolve(target: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> tuple:
    """(url, secret or None) of a target, read from the environment where it names variables."""
    environ = os.environ if environ is None else environ
    url = target["url"] if "url" in target else environ.get(target.get("url_env", ""), "")
    secret = target.get("secret") or (environ.get(target["secret_env"]) if "secret_env" in target else None)
    return url, secret or None
