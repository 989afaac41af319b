"""Priority classes at /prompt: the admission middleware finds the submission's class from its bearer
token; ComfyUI's on_prompt hook (called inside post_prompt, before the number is read) gives a class
prompt a number in its band and records the class in extra_data, and, with priority_enforce on,
drops `front` and `number` from clients without a class token (the middleware answers with an
`X-GPU-Guard-Ignored` header naming them), also when the guard faults. A class client's own `number`
counts only inside its band.

The middleware and the hook meet through a context variable: aiohttp runs the handler in the
middleware's task, so each submission sees only its own class.
"""
from __future__ import annotations

import contextvars
import logging
from typing import Optional

from ..priority import CLASS_KEY, enforced

_log = logging.getLogger("gpu_guard.comfy")

IGNORED_HEADER = "X-GPU-Guard-Ignored"


class Submission:
    __slots__ = ("lane", "ignored")

    def __init__(self, lane: Optional[dict]):
        self.lane = lane  # the class (gpu_guard.priority) or None for the normal lane
        self.ignored: list = []


CURRENT: contextvars.ContextVar = contextvars.ContextVar("gpu_guard_submission")


def class_of(item) -> Optional[str]:
    """The class a queued item was given at /prompt (None: normal)."""
    extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    return extra.get(CLASS_KEY)


def _drop(json_data, submission, keys) -> None:
    for key in keys:
        if key in json_data:
            json_data.pop(key)
            submission.ignored.append(key)


def _enforcing(guard) -> bool:
    try:
        return enforced(guard.config)
    except Exception:  # noqa: BLE001 - when the guard cannot say, queue jumping stays closed
        return True


def _place(guard, submission, json_data) -> dict:
    extra = json_data.get("extra_data")
    if not isinstance(extra, dict):
        extra = json_data["extra_data"] = {}
    lane = submission.lane
    if lane is None:
        extra.pop(CLASS_KEY, None)  # a class is given by a token, never claimed
        if _enforcing(guard):
            _drop(json_data, submission, ("front", "number"))
            if submission.ignored:
                _log.info("VRAM guard: /prompt without a class token; ignored %s (priority_enforce)",
                          ", ".join(submission.ignored))
        return json_data
    extra[CLASS_KEY] = lane["name"]
    if "number" in json_data and not guard.lanes.in_band(lane["name"], json_data["number"]):
        _drop(json_data, submission, ("number",))  # outside its band it could jump a higher class
    if "number" not in json_data:
        json_data["number"] = guard.lanes.number_for(lane["name"], front=bool(json_data.pop("front", False)))
    return json_data


def on_prompt_handler(guard):
    """ComfyUI's on_prompt handler: json_data in, json_data out. It never lets a fault keep `front` or
    `number` (ComfyUI logs a handler's exception and queues the prompt as it was)."""

    def on_prompt(json_data):
        submission = CURRENT.get(None)
        if submission is None or not isinstance(json_data, dict):
            return json_data  # not a submission the middleware saw
        try:
            return _place(guard, submission, json_data)
        except Exception:  # noqa: BLE001 - the prompt still runs, without jumping the queue
            _log.exception("VRAM guard: priority lanes failed on /prompt; front and number are ignored")
            if _enforcing(guard):
                _drop(json_data, submission, ("front", "number"))
            return json_data

    return on_prompt
