"""The OOM rescue's decisions, apart from ComfyUI: is a finished run an out-of-memory failure, is the
prompt put back, how much memory it waits for, and the words of the final error.

A rescued prompt carries its rescue in its extra data (RESCUE_KEY: the attempt and what it waits
for), like any other field ComfyUI keeps with a queued prompt: the journal keeps it across a
restart, and nothing about it stays in the guard once the prompt has ended.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional

from . import learned_peaks

RESCUE_KEY = "gpu_guard_oom_rescue"
RESCUED, EXHAUSTED, OFF, RECOVERED = "rescued", "exhausted", "off", "recovered"

# torch's message for a failed CUDA allocation: "Tried to allocate 2.00 GiB"
_TRIED = re.compile(r"Tried to allocate ([0-9.]+) ?(B|KiB|MiB|GiB|TiB)")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def oom_error(messages: Iterable, oom_types: frozenset) -> Optional[Mapping[str, Any]]:
    """The execution_error of a run that failed for memory (its exception type is one of `oom_types`),
    from ComfyUI's status messages [(event, data), ...], else None."""
    for message in messages or ():
        if isinstance(message, (list, tuple)) and len(message) == 2 and message[0] == "execution_error":
            data = message[1]
            if isinstance(data, Mapping) and data.get("exception_type") in oom_types:
                return data
    return None


def tried_bytes(exception_message: Any) -> int:
    """The allocation that failed, as torch names it in the message, else 0."""
    match = _TRIED.search(str(exception_message or ""))
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0


def rescue_of(extra_data: Any) -> Optional[Mapping[str, Any]]:
    """The rescue a queued prompt carries, or None."""
    if isinstance(extra_data, Mapping):
        mark = extra_data.get(RESCUE_KEY)
        if isinstance(mark, Mapping):
            return mark
    return None


def attempts_so_far(extra_data: Any) -> int:
    mark = rescue_of(extra_data)
    attempt = mark.get("attempt") if mark else 0
    return attempt if isinstance(attempt, int) and attempt > 0 else 0


def with_rescue(extra_data: Any, attempt: int, need_bytes: Optional[int], need_source: str) -> dict:
    """A copy of the extra data that carries the rescue (the original stays untouched)."""
    extra = dict(extra_data) if isinstance(extra_data, Mapping) else {}
    extra[RESCUE_KEY] = {"attempt": attempt, "need_bytes": need_bytes, "need_source": need_source}
    return extra


def free_bytes(reading) -> Optional[int]:
    """What a prompt can have now: the device's total less the pressure (ComfyUI's reclaimable memory,
    its torch cache and idle models, counts as free: ComfyUI frees it for the next prompt itself)."""
    if reading is None:
        return None
    return max(0, reading.total_bytes - reading.pressure_bytes)


def fits(need_bytes: Optional[int], reading) -> bool:
    """A rescued prompt may run: its need is free (an unknown need, or no reading, cannot be gated)."""
    free = free_bytes(reading)
    return need_bytes is None or free is None or free >= need_bytes


def gigabytes(n: Optional[int]) -> str:
    return "an unknown amount" if n is None else f"{n / 1e9:.1f} GB"


def waiting_words(need_bytes: Optional[int]) -> str:
    """The notice a user sees for a rescued prompt."""
    if need_bytes is None:
        return "ran out of GPU memory; held and will run again when the GPU has room"
    return f"ran out of GPU memory; held and will run again when {gigabytes(need_bytes)} is free"


def final_words(need_bytes: Optional[int], need_source: str, reading, runs: int, rescue_on: bool) -> str:
    """The error a user reads in /history once the prompt is not run again."""
    if need_bytes is None:
        needed = ("This prompt ran out of GPU memory; how much it needs is not known (no node gives an "
                  "estimate and no run of it finished)")
    else:
        how = "learned from its runs" if need_source == learned_peaks.LEARNED else "estimated by its nodes"
        needed = f"This prompt ran out of GPU memory: it needs about {gigabytes(need_bytes)} ({how})"
    free = free_bytes(reading)
    had = "" if free is None else f", and the GPU had {gigabytes(free)} free of {gigabytes(reading.total_bytes)}"
    if rescue_on:
        tries = f"It ran {runs} times, held each time until the memory seemed free, and still did not fit."
    else:
        tries = "It was not run again (oom_rescue is off)."
    return (f"{needed}{had}. {tries} To make it fit: use a smaller size, the tiny model, or fp16/bf16 "
            "precision; lower max_held so fewer prompts wait on this GPU; or send it to another server.")
