"""The `webhooks` setting: a list of alert targets, validated as a whole.

Each target is an object:
    {"name": "oncall", "format": "json" | "dingtalk" | "feishu" | "slack",
     "url": "https://..."  or  "url_env": "VAR",          # the URL, or the variable that holds it
     "secret": "..."       or  "secret_env": "VAR",       # signing secret (required for json)
     "rules": ["many_pauses", ...]}                        # optional: only these rules (default all)

Secrets (and URLs, which often carry a token) come from the config file or environment variables;
over HTTP a secret must be named with `secret_env`. The routes show a target without its secret and
with its URL cut to scheme://host. `url_env` and `secret_env` may only name variables that start with
ENV_NAME_PREFIX, so a writer cannot probe (or sign with) any other variable of the process; the
errors about them never say more than the prefix rule.

Where a target may point: an http(s) URL with a valid host and nothing that needs quoting (no
whitespace or control characters). `webhook_allow_hosts`, when set, lists the only hosts allowed.
Link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata services live there) and the
known metadata names and addresses are refused unless that list names them; the sender checks the
addresses a name resolves to again at every attempt.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import socket
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from .alert_rules import RULE_NAMES

FORMATS = ("json", "dingtalk", "feishu", "slack")
SIGNED_REQUIRED = ("json",)  # Standard Webhooks: the receiver verifies every message
KEYS = ("name", "format", "url", "url_env", "secret", "secret_env", "rules")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# url_env / secret_env must start with this; no setting's own variable (GPU_GUARD_<SETTING>) does
ENV_NAME_PREFIX = "GPU_GUARD_HOOK_"
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
# Cloud instance metadata services, refused as webhook targets unless webhook_allow_hosts lists them
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal",
                            "metadata.azure.internal"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")})
ALLOWED = ("a JSON list of targets {\"format\": json|dingtalk|feishu|slack, \"url\" or \"url_env\", "
           "\"secret\" or \"secret_env\", \"name\", \"rules\"}")


def check_url(text: Any) -> Optional[str]:
    """None for an http(s) URL with a valid host and nothing that needs quoting, else the problem
    (which never repeats the URL: it may carry a token)."""
    if not isinstance(text, str) or not text:
        return "must be an http:// or https:// URL, got " + ("an empty text" if text == "" else type(text).__name__)
    for position, char in enumerate(text):
        if char.isspace() or ord(char) < 32 or ord(char) == 127:
            what = "a space" if char == " " else f"the control or whitespace character {char!r}"
            return (f"must not contain whitespace or control characters, found {what} at position {position} "
                    "(percent-encode it, e.g. %20 for a space)")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got a {parts.scheme or 'scheme-less'} URL"
    host = parts.hostname
    if not host:
        return "must be an http:// or https:// URL with a host"
    if _ip(host) is None and not all(HOST_LABEL_RE.match(label) for label in host.rstrip(".").split(".")):
        return f"has an invalid host name {host!r} (letters, digits, '-' and '.' only)"
    return None


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refused_address(address) -> bool:
    if getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped
    return address.is_link_local or address in METADATA_ADDRESSES


def parse_allow_hosts(value: Any, from_text: bool) -> tuple:
    """`webhook_allow_hosts`: host names or addresses (a JSON list, or comma-separated text)."""
    if from_text:
        text = str(value).strip()
        value = json.loads(text) if text.startswith("[") else [h for h in text.split(",") if h.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) and h.strip() for h in value):
        raise ValueError(f"must be {parse_allow_hosts.allowed}, got {value!r}")
    hosts = tuple(sorted({h.strip().lower().strip("[]").rstrip(".") for h in value}))
    for host in hosts:
        if _ip(host) is None and not all(HOST_LABEL_RE.match(label) for label in host.split(".")):
            raise ValueError(f"must be {parse_allow_hosts.allowed}; {host!r} is not a host name or address")
    return hosts


parse_allow_hosts.allowed = "a list of host names or IP addresses (JSON list or comma-separated); empty = any host"


def host_problem(url: str, allow_hosts=()) -> Optional[str]:
    """Why this URL's host may not be a webhook target (from its text alone), or None."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in allow_hosts:
        return None
    if allow_hosts:
        return f"host {host} is not in webhook_allow_hosts"
    address = _ip(host)
    if host in METADATA_NAMES or (address is not None and _refused_address(address)):
        return (f"host {host} is a link-local or cloud metadata address, refused as a webhook target; "
                "list it in webhook_allow_hosts (gpu_guard.json or GPU_GUARD_WEBHOOK_ALLOW_HOSTS) if you mean it")
    return None


def resolved_problem(url: str, allow_hosts=(), resolve=socket.getaddrinfo) -> Optional[str]:
    """host_problem, plus the addresses the host resolves to now (a name may point at 169.254.169.254)."""
    problem = host_problem(url, allow_hosts)
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if problem is not None or host in allow_hosts or _ip(host) is not None:
        return problem
    try:
        addresses = {info[4][0] for info in resolve(host, None)}
    except (OSError, UnicodeError) as error:
        return f"host {host} does not resolve ({type(error).__name__})"
    for text in addresses:
        address = _ip(text.split("%", 1)[0])
        if address is not None and _refused_address(address):
            return (f"host {host} resolves to the link-local or metadata address {address}, refused; list the "
                    "host in webhook_allow_hosts if you mean it")
    return None


def targets_host_problems(targets, allow_hosts, environ: Optional[Mapping[str, str]] = None) -> list:
    """Config-time check of every target's host against the allow-list and the refused addresses."""
    environ = os.environ if environ is None else environ
    problems = []
    for index, target in enumerate(targets or ()):
        url = target.get("url") or environ.get(target.get("url_env", ""), "")
        problem = host_problem(url, allow_hosts) if url else None
        if problem:
            problems.append(f"webhooks[{index}] ({target.get('name')}): {problem}")
    return problems


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key, as the Standard Webhooks spec reads a secret: base64 (padding optional), after
    an optional `whsec_` prefix. ValueError when it is not base64 or empty."""
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if not key:
        raise ValueError("empty")
    return key


SECRET_HELP = ("a Standard Webhooks secret is base64 of at least 24 random bytes, optionally prefixed whsec_ "
               "(make one: python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")")


def _env_name(where: str, value: Any, environ: Mapping[str, str], errors: list) -> Optional[str]:
    if not isinstance(value, str) or not ENV_RE.match(value) or not value.startswith(ENV_NAME_PREFIX) \
            or value == ENV_NAME_PREFIX:
        errors.append(f"{where} must name an environment variable that starts with {ENV_NAME_PREFIX} "
                      f"(e.g. {ENV_NAME_PREFIX}ONCALL_SECRET); other variables are never read")
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
        target["url"] = str(raw["url"])
    else:
        name = _env_name(f"{where}.url_env", raw["url_env"], environ, errors)
        if name:
            if check_url(environ[name]):  # not echoed: the value is not the writer's to read
                errors.append(f"{where}.url_env: {name} does not hold a valid http:// or https:// URL "
                              "(no whitespace or control characters)")
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
    if fmt == "json" and secret:
        try:
            standard_webhooks_key(secret)
        except ValueError as why:
            source = f"the variable {target['secret_env']}" if "secret_env" in target else "the secret"
            errors.append(f"{where}: {source} is {why}: {SECRET_HELP}")
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
