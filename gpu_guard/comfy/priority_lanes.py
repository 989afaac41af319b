"""Priority classes at /prompt: the admission middleware finds the submission's class from its bearer
token; ComfyUI's on_prompt hook (called inside post_prompt, before the number is read) gives a class
prompt a number in its band and records the class in extra_data, and, with priority_enforce on,
drops `front` and `number` from clients without a class token (the middleware answers with an
`X-GPU-Guard-Ignored` header naming them).

The middleware and the hook meet through a context variable: aiohttp runs the handler in the
middleware's task, so each submission sees only its own class.
"""
from __future__ import annotations

import contextvars
import logging
from typing import Optional

from ..priority import CLASS_KEY

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


def on_prompt_handler(guard):
    """ComfyUI's on_prompt handler: json_data in, json_data out."""

    def on_prompt(json_data):
        submission = CURRENT.get(None)
        if submission is None or not isinstance(json_data, dict):
            return json_data  # not a submission the middleware saw
        extra = json_data.get("extra_data")
        if not isinstance(extra, dict):
            extra = json_data["extra_data"] = {}
        lane = submission.lane
        if lane is None:
            extra.pop(CLASS_KEY, None)  # a class is given by a token, never claimed
            if guard.config.priority_enforce:
                for key in ("front", "number"):
                    if key in json_data:
                        json_data.pop(key)
                        submission.ignored.append(key)
                if submission.ignored:
                    _log.info("VRAM guard: /prompt without a class token; ignored %s (priority_enforce)",
                              ", ".join(submission.ignored))
            return json_data
        extra[CLASS_KEY] = lane["name"]
        if "number" not in json_data:  # a class client may still set its own number
            json_data["number"] = guard.lanes.number_for(lane["name"], front=bool(json_data.pop("front", False)))
        return json_data

    return on_prompt
