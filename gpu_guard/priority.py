"""Priority classes (VIP lanes): who gets one, what number their prompts get, and aging.

ComfyUI runs its heap in (number, prompt_id) order, and with the gate open the guard runs the heap's
first prompt. So a class is a band of numbers below every normal prompt: the /prompt adapter gives a
class prompt the number BAND * (rank - len(classes)) + seq (the first class lowest), and ComfyUI's own
order does the rest, also while paused and on resume. Normal prompts keep ComfyUI's counter (>= 0);
with `priority_enforce` on (by default whenever classes are configured), a client without a class token
cannot set `front` or `number`, so none can jump ahead of the classes (or of each other); a class client
may set its own `number` only inside its band.

Aging: once the first normal prompt has waited `priority_max_wait_s`, no prompt that came after it
runs before it (decide_pass compares its arrival with that of the heap's first prompt).

Settings: `priority_classes` = [{"name": "vip", "token": "..." | "token_sha256": "<hex>", "max_held": 5}],
first = highest. A plain token is hashed as it is read and never kept; over HTTP only hashes are taken.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from typing import Any, Iterable, Optional

NORMAL = "normal"
BAND = 1e12  # numbers per class: far more prompts than one server will ever queue, exact in a float
CLASS_KEY = "gpu_guard_class"  # in a prompt's extra_data: the class it was given at /prompt
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_class(index: int, raw: Any, over_http: bool, errors: list) -> Optional[dict]:
    where = f"class {index + 1}"
    if not isinstance(raw, dict):
        errors.append(f"{where} must be an object such as {{\"name\": \"vip\", \"token_sha256\": \"<64 hex>\"}}")
        return None
    unknown = set(raw) - {"name", "token", "token_sha256", "max_held"}
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)} (known: name, token, token_sha256, max_held)")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name == NORMAL:
        errors.append(f"{where}: name must be 1-32 lowercase letters, digits, - or _ (not {NORMAL!r}), got {name!r}")
    token, digest = raw.get("token"), raw.get("token_sha256")
    if token is not None and over_http:
        errors.append(f"{where}: send token_sha256 (the SHA-256 hex of the token), not the token itself, over HTTP")
    elif (token is None) == (digest is None):
        errors.append(f"{where}: give exactly one of token or token_sha256")
    elif token is not None and (not isinstance(token, str) or len(token) < 16):
        errors.append(f"{where}: token must be text of at least 16 characters")
    elif digest is not None and (not isinstance(digest, str) or not _HEX.match(digest.lower())):
        errors.append(f"{where}: token_sha256 must be 64 hex digits (sha256sum of the token)")
    max_held = raw.get("max_held", 0)
    if isinstance(max_held, bool) or not isinstance(max_held, int) or max_held < 0:
        errors.append(f"{where}: max_held must be an integer >= 0 (0 = unbounded), got {max_held!r}")
    if errors:
        return None
    return {"name": name, "token_sha256": digest.lower() if digest else token_sha256(token), "max_held": max_held}


def parse_classes(value: Any, from_text: bool, over_http: bool = False) -> tuple:
    """The normalised classes (tokens hashed); raises ValueError naming every problem."""
    if from_text:
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("must be a JSON list of classes, e.g. "
                             "[{\"name\": \"vip\", \"token_sha256\": \"<64 hex>\", \"max_held\": 5}]") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of classes, got {type(value).__name__}")
    errors, classes = [], []
    for index, raw in enumerate(value):
        problems: list = []
        parsed = _parse_class(index, raw, over_http, problems)
        errors += problems
        if parsed:
            classes.append(parsed)
    names = [c["name"] for c in classes]
    if len(set(names)) != len(names):
        errors.append(f"class names must differ, got {names}")
    if len({c["token_sha256"] for c in classes}) != len(classes):
        errors.append("two classes have the same token")
    if errors:
        raise ValueError("; ".join(errors))
    return tuple(classes)


parse_classes.allowed = "a JSON list of {name, token | token_sha256, max_held}"


ENFORCE_AUTO = "auto"


def parse_enforce(value: Any, from_text: bool):
    """priority_enforce: true, false or "auto" (on whenever classes are configured)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text == ENFORCE_AUTO:
        return ENFORCE_AUTO
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true, false or auto (on whenever priority classes are configured), got {value!r}")


parse_enforce.allowed = "true, false or auto"


def enforced(config) -> bool:
    """Whether clients without a class token lose `front` and `number` (see parse_enforce)."""
    if config.priority_enforce == ENFORCE_AUTO:
        return bool(config.priority_classes)
    return bool(config.priority_enforce)


def shown_classes(classes: Iterable[dict]) -> list:
    """As routes show them: no token, only the first 8 hex digits of its hash."""
    return [{"name": c["name"], "max_held": c["max_held"], "token_sha256": c["token_sha256"][:8] + "..."}
            for c in classes]


class Lanes:
    """The configured classes, in rank order (0 = highest). `update` keeps the arrival counter, so
    numbers keep growing across settings changes."""

    def __init__(self, classes: Iterable[dict] = ()):
        self.classes = tuple(classes)
        self._seq = itertools.count(1)  # next() is atomic under the GIL: /prompt handlers may race

    def update(self, classes: Iterable[dict]) -> None:
        self.classes = tuple(classes)

    def __bool__(self) -> bool:
        return bool(self.classes)

    def names(self) -> list:
        return [c["name"] for c in self.classes]

    def class_for_token(self, token: Optional[str]) -> Optional[dict]:
        """The class whose token this is (constant-time per class), or None."""
        if not token:
            return None
        digest = token_sha256(token)
        found = None
        for c in self.classes:
            if hmac.compare_digest(c["token_sha256"], digest):
                found = c
        return found

    def by_name(self, name: Optional[str]) -> Optional[dict]:
        return next((c for c in self.classes if c["name"] == name), None)

    def number_for(self, name: str, front: bool = False) -> float:
        """A number in the class's band: in arrival order, or ahead of the band's others with front."""
        rank = self.names().index(name)
        middle = BAND * (rank - len(self.classes)) + BAND / 2
        seq = next(self._seq)
        return middle - seq if front else middle + seq

    def in_band(self, name: str, number: Any) -> bool:
        """Whether a number a class client chose lies in its own band (it may not jump a higher class)."""
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return False
        low = BAND * (self.names().index(name) - len(self.classes))
        return low <= number < low + BAND


def waited_s(created_at: Optional[float], now_wall: float) -> float:
    return 0.0 if created_at is None else max(0.0, now_wall - created_at)


def aged_normal_before(first, pending, now_wall: float, max_wait_s: float):
    """The first normal prompt of `pending` (a gpu_guard.pending view), when it has waited max_wait_s
    and came before `first` (a class prompt at the head of the queue): aging, so that it is not
    overtaken any more; else None. Scans the queue: only when a class prompt heads it."""
    entries = pending.entries(set(pending.ids()))
    normal = [e for e in entries if e.priority_class is None]
    if not normal:
        return None
    head = min(normal, key=lambda e: (e.number, e.prompt_id))
    if head.created_at is None or now_wall - head.created_at < max_wait_s:
        return None
    if first.created_at is not None and first.created_at < head.created_at:
        return None  # the class prompt was there first: it overtakes nobody
    return head
